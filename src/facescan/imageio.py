"""Safe image loading: any input becomes an upright 8-bit RGB array, or a clear error.

Handles paths, bytes, numpy arrays and PIL images; EXIF orientation; grayscale, RGBA,
palette, CMYK and 16-bit images; truncated, empty and non-image files; decompression
bombs; and very large photos (decoded, then downscaled for detection with the scale
recorded so boxes are reported in the original pixel coordinates).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: Refuse images above this many pixels before decoding them (decompression-bomb guard).
MAX_PIXELS = 100_000_000
#: Larger photos are downscaled to this longest side for analysis.
MAX_SIDE = 4096
#: Refuse files larger than this many bytes.
MAX_BYTES = 200 * 1024 * 1024

ImageSource = Union[str, Path, bytes, bytearray, np.ndarray, Image.Image]


class ImageLoadError(ValueError):
    """An input could not be turned into an image; the message names the input and the problem."""

    def __init__(self, source: str, problem: str):
        super().__init__(f"{source}: {problem}")
        self.source = source
        self.problem = problem


@dataclass
class LoadedImage:
    """An upright RGB uint8 image ready for analysis."""

    pixels: np.ndarray  # H x W x 3, uint8, RGB
    source: str
    original_size: tuple[int, int]  # (width, height) after EXIF rotation, before downscaling
    original_mode: str
    scale: float = 1.0  # analysis pixels per original pixel (< 1 when downscaled)
    original: np.ndarray | None = None  # full-resolution pixels, when asked for (``pixels`` itself if not downscaled)

    @property
    def size(self) -> tuple[int, int]:
        return self.pixels.shape[1], self.pixels.shape[0]


def describe_source(source: ImageSource) -> str:
    """A short name for an input, for messages and results."""
    if isinstance(source, (str, Path)):
        return str(source)
    if isinstance(source, (bytes, bytearray)):
        return f"<{len(source)} bytes>"
    if isinstance(source, np.ndarray):
        return f"<array {'x'.join(map(str, source.shape))} {source.dtype}>"
    if isinstance(source, Image.Image):
        return f"<PIL image {source.mode} {source.size[0]}x{source.size[1]}>"
    return f"<{type(source).__name__}>"


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB; alpha is composited over white, 16-bit is rescaled."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        if mode.startswith("I;16"):
            lo, hi = 0.0, 65535.0
        elif hi <= lo:
            hi = lo + 1
        arr = np.clip((arr - lo) / (hi - lo) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if mode == "P" or mode == "PA":
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV…


def _array_to_rgb(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.size == 0:
        raise ImageLoadError(name, "empty array")
    if arr.dtype == np.uint16:
        arr = (arr / 257.0 + 0.5).astype(np.uint8)
    elif arr.dtype in (np.float32, np.float64):
        if not np.isfinite(arr).all():
            raise ImageLoadError(name, "array has NaN or infinite values")
        scale = 255.0 if arr.max() <= 1.0 else 1.0
        arr = np.clip(arr * scale + 0.5, 0, 255).astype(np.uint8)
    elif arr.dtype != np.uint8:
        raise ImageLoadError(name, f"unsupported array dtype {arr.dtype} (use uint8, uint16 or float)")
    if arr.ndim == 2:
        return np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim == 3 and arr.shape[2] == 1:
        return np.repeat(arr, 3, axis=2)
    if arr.ndim == 3 and arr.shape[2] == 3:
        return np.ascontiguousarray(arr)
    if arr.ndim == 3 and arr.shape[2] == 4:
        return np.asarray(_to_rgb(Image.fromarray(arr, "RGBA")))
    raise ImageLoadError(name, f"array of shape {arr.shape} is not an image (want HxW, HxWx1, HxWx3 or HxWx4)")


def _open(source: ImageSource, name: str) -> Image.Image:
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise ImageLoadError(name, "file not found")
        if path.is_dir():
            raise ImageLoadError(name, "is a folder, not an image file")
        size = path.stat().st_size
        if size == 0:
            raise ImageLoadError(name, "file is empty")
        if size > MAX_BYTES:
            raise ImageLoadError(name, f"file is {size / 1e6:.0f} MB, over the {MAX_BYTES / 1e6:.0f} MB limit")
        data: bytes | Path = path
    else:
        if len(source) == 0:
            raise ImageLoadError(name, "no data (0 bytes)")
        if len(source) > MAX_BYTES:
            raise ImageLoadError(name, f"{len(source) / 1e6:.0f} MB of data, over the {MAX_BYTES / 1e6:.0f} MB limit")
        data = bytes(source)
    try:
        with warnings.catch_warnings():
            # the pixel limit is checked (and reported) by load_image itself
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data) if isinstance(data, bytes) else data)
    except UnidentifiedImageError:
        raise ImageLoadError(name, "not a recognized image format (JPEG, PNG, WebP, BMP, TIFF, GIF…)") from None
    except Image.DecompressionBombError as e:
        raise ImageLoadError(name, f"refused as a decompression bomb ({e})") from None
    except OSError as e:
        raise ImageLoadError(name, f"cannot read image: {e}") from None


def load_image(source: ImageSource, max_side: int | None = MAX_SIDE, name: str | None = None,
               keep_original: bool = False) -> LoadedImage:
    """Decode ``source`` into an upright RGB :class:`LoadedImage`, or raise :class:`ImageLoadError`.

    ``keep_original`` keeps the full-resolution pixels in ``original`` as well (for drawing)."""
    name = name or describe_source(source)
    if isinstance(source, np.ndarray):
        pixels = _array_to_rgb(source, name)
        h, w = pixels.shape[:2]
        mode = f"array:{source.dtype}"
        original_size = (w, h)
    else:
        img = _open(source, name)
        w, h = img.size
        if w * h > MAX_PIXELS:
            raise ImageLoadError(name, f"{w}x{h} pixels is over the {MAX_PIXELS:,} pixel limit (decompression bomb?)")
        if w == 0 or h == 0:
            raise ImageLoadError(name, "image has zero width or height")
        mode = img.mode
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img.load()
                img = ImageOps.exif_transpose(img)
            img = _to_rgb(img)
            pixels = np.asarray(img, dtype=np.uint8)
        except (OSError, SyntaxError, ValueError) as e:
            raise ImageLoadError(name, f"corrupt or truncated image data ({e})") from None
        except Image.DecompressionBombWarning as e:
            raise ImageLoadError(name, f"refused as a decompression bomb ({e})") from None
        original_size = (pixels.shape[1], pixels.shape[0])
    scale = 1.0
    full = np.ascontiguousarray(pixels) if keep_original else None
    longest = max(pixels.shape[:2])
    if max_side and longest > max_side:
        import cv2

        scale = max_side / longest
        new = (max(1, round(pixels.shape[1] * scale)), max(1, round(pixels.shape[0] * scale)))
        pixels = cv2.resize(pixels, new, interpolation=cv2.INTER_AREA)
    pixels = np.ascontiguousarray(pixels)
    return LoadedImage(pixels=pixels, source=name, original_size=original_size, original_mode=mode, scale=scale,
                       original=pixels if keep_original and scale == 1.0 else full)


def expand_inputs(paths: Iterable[str | Path]) -> list[Path]:
    """Files named directly, plus every non-hidden file below each folder (sorted).

    Non-image files inside folders are kept: they get a per-file error rather than vanishing.
    """
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(
                f for f in sorted(p.rglob("*"))
                if f.is_file() and not any(part.startswith(".") for part in f.relative_to(p).parts)
            )
        else:
            out.append(p)
    return out

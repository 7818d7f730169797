"""Safe image loading: any input becomes an upright 8-bit RGB array, or a clear error.

Handles paths, http(s) URLs, ``-`` (stdin), bytes, base64 text and data URIs, file-like objects,
numpy arrays (RGB by default, ``channels="bgr"`` for OpenCV's order) and PIL images; EXIF orientation; grayscale, RGBA,
palette, CMYK and 16-bit images; truncated, empty, corrupt and non-image files (whatever the
decoder raises, the input gets an :class:`ImageLoadError`); FIFOs, devices and broken links
(refused without being opened); decompression bombs; and very large photos (decoded, then
downscaled for detection with the scale recorded so boxes are reported in the original pixel
coordinates).
"""

from __future__ import annotations

import base64
import binascii
import errno
import glob
import io
import os
import re
import stat
import sys
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, UnidentifiedImageError

#: Refuse images above this many pixels before decoding them (decompression-bomb guard).
MAX_PIXELS = 100_000_000
#: Larger photos are downscaled to this longest side for analysis.
MAX_SIDE = 4096
#: Refuse files larger than this many bytes.
MAX_BYTES = 200 * 1024 * 1024

#: Files with these suffixes are videos (decoded by :mod:`facescan.video`, not here).
VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")
#: Give up on a URL that sends nothing for this many seconds.
URL_TIMEOUT_S = 20.0
#: A text input at least this long, made only of base64 characters and naming no file, is base64 image data.
MIN_BASE64_CHARS = 200

ImageSource = Union[str, Path, bytes, bytearray, memoryview, np.ndarray, Image.Image, BinaryIO]


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
    if isinstance(source, str) and source.startswith("data:"):
        return f"<data URI, {len(source)} characters>"
    if isinstance(source, str) and _is_base64(source):
        return f"<base64, {len(source)} characters>"
    if isinstance(source, str) and source == "-":
        return "<stdin>"
    if isinstance(source, (str, Path)):
        return str(source)
    if hasattr(source, "read"):
        name = getattr(source, "name", None)
        return str(name) if isinstance(name, str) else f"<{type(source).__name__}>"
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{memoryview(source).nbytes} bytes>"
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
        with np.errstate(all="ignore"):  # float images may hold NaN, infinities or a range wider than float64
            arr = np.nan_to_num(np.asarray(img, dtype=np.float64))
            lo, hi = float(arr.min()), float(arr.max())
            if mode.startswith("I;16"):
                lo, hi = 0.0, 65535.0
            elif hi <= lo:
                hi = lo + 1
            arr = np.nan_to_num(np.clip((arr - lo) / (hi - lo) * 255.0 + 0.5, 0, 255)).astype(np.uint8)
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
    if arr.dtype.kind in "uf" and not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
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
        return np.asarray(_to_rgb(Image.fromarray(np.ascontiguousarray(arr), "RGBA")))
    raise ImageLoadError(name, f"array of shape {arr.shape} is not an image (want HxW, HxWx1, HxWx3 or HxWx4)")


_FILE_KINDS = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device",
               stat.S_IFBLK: "a block device"}


def _stat_file(path: Path, name: str) -> None:
    """Raise unless ``path`` is a regular file of an acceptable size; never opens it."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        if os.path.islink(path):
            raise ImageLoadError(name, f"broken link (its target {os.readlink(path)} does not exist)") from None
        raise ImageLoadError(name, "file not found") from None
    except PermissionError:
        raise ImageLoadError(name, "permission denied") from None
    except (OSError, ValueError) as e:  # ELOOP, ENAMETOOLONG, embedded NUL…
        if getattr(e, "errno", None) == errno.ELOOP:
            raise ImageLoadError(name, "broken link (a loop of links)") from None
        raise ImageLoadError(name, f"cannot read file ({_short(getattr(e, 'strerror', None) or e)})") from None
    if stat.S_ISDIR(st.st_mode):
        if os.path.islink(path):
            raise ImageLoadError(name, "is a link to a folder, not an image file (links to folders are not followed)")
        if not os.access(path, os.R_OK | os.X_OK):
            raise ImageLoadError(name, "is a folder that cannot be read (permission denied)")
        raise ImageLoadError(name, "is a folder, not an image file")
    if not stat.S_ISREG(st.st_mode):
        kind = _FILE_KINDS.get(stat.S_IFMT(st.st_mode), "a special file")
        raise ImageLoadError(name, f"not a regular file ({kind}); only regular files are read")
    if st.st_size == 0:
        raise ImageLoadError(name, "file is empty")
    if st.st_size > MAX_BYTES:
        raise ImageLoadError(name, f"file is {st.st_size / 1e6:.0f} MB, over the {MAX_BYTES / 1e6:.0f} MB limit")


def _read_file(path: Path, name: str) -> bytes:
    """The bytes of a regular file; FIFOs, devices and sockets are refused without blocking on them."""
    _stat_file(path, name)
    try:
        # O_NONBLOCK: should the path have become a FIFO since the check, opening it must not wait for a writer
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except PermissionError:
        raise ImageLoadError(name, "permission denied") from None
    except OSError as e:
        raise ImageLoadError(name, f"cannot open file ({_short(e.strerror or e)})") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ImageLoadError(name, "not a regular file; only regular files are read")
        try:
            # read(n) allocates n bytes up front: ask for the file's size (plus one, to see it grow), not the limit
            data = f.read(min(st.st_size, MAX_BYTES) + 1)
            if len(data) > st.st_size:  # it grew since: read on up to the limit
                data += f.read(MAX_BYTES + 1 - len(data))
        except OSError as e:
            raise ImageLoadError(name, f"cannot read file ({_short(e.strerror or e)})") from None
    if not data:
        raise ImageLoadError(name, "file is empty")
    if len(data) > MAX_BYTES:
        raise ImageLoadError(name, f"file is over the {MAX_BYTES / 1e6:.0f} MB limit")
    return data


def is_url(source) -> bool:
    """Whether ``source`` is an http(s) URL."""
    return isinstance(source, str) and source[:8].lower().startswith(("http://", "https://"))


def _is_base64(text: str) -> bool:
    return len(text) >= MIN_BASE64_CHARS and re.fullmatch(r"[A-Za-z0-9+/=\s]+", text[:4096]) is not None


def _from_base64(text: str, name: str) -> bytes:
    payload = text.split(",", 1)[1] if text.startswith("data:") else text
    if text.startswith("data:") and ";base64" not in text.split(",", 1)[0]:
        raise ImageLoadError(name, "data URI is not base64-encoded (want data:image/…;base64,…)")
    try:
        return base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError) as e:
        raise ImageLoadError(name, f"not valid base64 ({_short(e)})") from None


def _read_stream(stream: BinaryIO, name: str) -> bytes:
    """Read a file-like object (up to the size limit), whatever its type."""
    try:
        data = stream.read(MAX_BYTES + 1)
    except Exception as e:  # noqa: BLE001 - any reader's failure is this input's error
        raise ImageLoadError(name, f"cannot read ({type(e).__name__}: {_short(e)})") from None
    if isinstance(data, str):
        raise ImageLoadError(name, "file-like object is open in text mode; open it in binary mode ('rb')")
    return bytes(data)


def fetch_url(url: str, name: str | None = None) -> bytes:
    """Download ``url`` (at most :data:`MAX_BYTES`, :data:`URL_TIMEOUT_S` per read), or raise
    :class:`ImageLoadError` naming it."""
    import urllib.error
    import urllib.request

    name = name or url
    request = urllib.request.Request(url, headers={"User-Agent": "facescan"})
    try:
        with urllib.request.urlopen(request, timeout=URL_TIMEOUT_S) as response:  # noqa: S310 - http(s) only
            data = response.read(MAX_BYTES + 1)
    except urllib.error.HTTPError as e:
        raise ImageLoadError(name, f"download failed: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise ImageLoadError(name, f"download failed ({_short(reason)})") from None
    if len(data) > MAX_BYTES:
        raise ImageLoadError(name, f"download is over the {MAX_BYTES / 1e6:.0f} MB limit")
    return data


def _source_bytes(source: ImageSource, name: str, allow_urls: bool = True) -> bytes:
    if isinstance(source, str) and (source.startswith("data:") or (_is_base64(source) and not os.path.exists(source))):
        source = _from_base64(source, name)
    elif is_url(source):
        if not allow_urls:
            raise ImageLoadError(name, "URLs are not fetched here; send the image itself")
        source = fetch_url(source, name)
    elif isinstance(source, str) and source == "-":
        source = _read_stream(sys.stdin.buffer, name)
    elif isinstance(source, (str, Path)):
        return _read_file(Path(source), name)
    elif hasattr(source, "read"):
        source = _read_stream(source, name)
    if not isinstance(source, (bytes, bytearray, memoryview)):
        raise ImageLoadError(name, f"unsupported input type {type(source).__name__} "
                                   "(use a path, URL, bytes, base64, a file object, a numpy array or a PIL image)")
    data = bytes(source)
    if not data:
        raise ImageLoadError(name, "no data (0 bytes)")
    if len(data) > MAX_BYTES:
        raise ImageLoadError(name, f"{len(data) / 1e6:.0f} MB of data, over the {MAX_BYTES / 1e6:.0f} MB limit")
    return data


def _short(e: BaseException | str, limit: int = 200) -> str:
    """An exception (or its text) as one printable line of at most ``limit`` characters."""
    text = str(e) or type(e).__name__  # EOFError() and the like have no message
    text = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text[: limit * 2])
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _problem(e: Exception, reading: str) -> str:
    """What a decoder's exception means for the user; ``reading`` prefixes plain read errors."""
    if isinstance(e, UnidentifiedImageError):
        return "not a recognized image format (JPEG, PNG, WebP, BMP, TIFF, GIF…)"
    if isinstance(e, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return f"refused as a decompression bomb ({_short(e)})"
    if isinstance(e, MemoryError):
        return "too large to decode in the memory available"
    if isinstance(e, ValueError) and "decompressed data too large" in str(e).lower():
        return f"refused: its compressed text metadata is over Pillow's safety limit ({_short(e)})"
    if isinstance(e, (OSError, SyntaxError, EOFError)):
        return f"{reading} ({_short(e)})"
    return f"corrupt or unsupported image data ({type(e).__name__}: {_short(e)})"


_ORIENTATION = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
                5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
                8: Image.Transpose.ROTATE_90}


def _upright(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation; unreadable EXIF leaves the pixels as stored, as image viewers do."""
    try:
        orientation = img.getexif().get(0x0112, 1)
    except Exception:
        return img
    method = _ORIENTATION.get(orientation) if isinstance(orientation, int) else None
    return img.transpose(method) if method is not None else img


def _check_size(img: Image.Image, name: str) -> None:
    w, h = img.size
    if w * h > MAX_PIXELS:
        raise ImageLoadError(name, f"{w}x{h} pixels is over the {MAX_PIXELS:,} pixel limit (decompression bomb?)")
    if w <= 0 or h <= 0:
        raise ImageLoadError(name, "image has zero width or height")


def _decode(source: Image.Image | bytes, name: str) -> tuple[np.ndarray, str]:
    """Upright RGB pixels and the original mode; any decoder failure becomes an :class:`ImageLoadError`."""
    with warnings.catch_warnings():
        # only "ignore" filters here: catch_warnings is not thread-safe, and a leaked "ignore" changes no result.
        # The pixel limit is checked (and reported) by _check_size; Pillow's own bomb *errors* still raise.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        warnings.simplefilter("ignore", UserWarning)  # "corrupt EXIF data" and the like: the pixels decide
        try:
            img = source if isinstance(source, Image.Image) else Image.open(io.BytesIO(source))
        except ImageLoadError:
            raise
        except Exception as e:
            raise ImageLoadError(name, _problem(e, "cannot read image")) from None
        try:
            _check_size(img, name)
            mode = img.mode
            img.load()
            img = _to_rgb(_upright(img))
            _check_size(img, name)
            return np.asarray(img, dtype=np.uint8), mode
        except ImageLoadError:
            raise
        except Exception as e:
            raise ImageLoadError(name, _problem(e, "corrupt or truncated image data")) from None


def load_image(source: ImageSource, max_side: int | None = MAX_SIDE, name: str | None = None,
               keep_original: bool = False, channels: str = "rgb", allow_urls: bool = True) -> LoadedImage:
    """Decode ``source`` into an upright RGB :class:`LoadedImage`, or raise :class:`ImageLoadError`.

    Every failure to read the input (missing, special or unreadable file, any decoder exception,
    a failed download) raises :class:`ImageLoadError` naming the input. ``keep_original`` keeps the
    full-resolution pixels in ``original`` as well (for drawing). ``channels`` is the order of a
    numpy array's colour channels: ``"rgb"`` (default: PIL, imageio, matplotlib) or ``"bgr"``
    (OpenCV's ``cv2.imread``); files and PIL images are always decoded correctly."""
    if channels not in ("rgb", "bgr"):
        raise ValueError(f"channels must be 'rgb' or 'bgr', not {channels!r}")
    name = name or describe_source(source)
    if isinstance(source, np.ndarray):
        try:
            if channels == "bgr" and source.ndim == 3 and source.shape[2] in (3, 4):
                source = source[:, :, [2, 1, 0, 3][: source.shape[2]]]
            pixels = _array_to_rgb(source, name)
        except ImageLoadError:
            raise
        except Exception as e:
            raise ImageLoadError(name, f"unusable array ({type(e).__name__}: {_short(e)})") from None
        mode = f"array:{source.dtype}"
    else:
        data = source if isinstance(source, Image.Image) else _source_bytes(source, name, allow_urls)
        pixels, mode = _decode(data, name)
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


def expand_inputs(paths: Iterable[str | Path], skipped: list[Path] | None = None) -> list[str | Path]:
    """Paths named directly, plus every non-hidden entry below each folder that is not a folder (sorted).

    URLs and ``-`` (stdin) pass through as text; a path that does not exist but holds ``*``, ``?`` or
    ``[`` is a glob pattern (``**`` descends), replaced by its matches (kept as it is, to fail as
    missing, when nothing matches). Nothing below a folder vanishes: FIFOs, sockets, device links,
    broken links and links to folders are all listed, so each gets its own error from
    :func:`load_image`; when ``skipped`` is a list, regular files whose suffix is neither an image's
    nor a video's go there instead (a folder's notes and sidecar files are not failures). Entries
    are never opened; links to folders are not followed (no loops); an unreadable subfolder is
    listed itself.
    """
    out: list[str | Path] = []
    for entry in paths:
        text = str(entry)
        if is_url(text) or text == "-":
            out.append(text)
            continue
        p = Path(entry)
        matches = sorted(glob.glob(text, recursive=True)) if not os.path.lexists(p) and any(
            c in text for c in "*?[") else []
        for match in matches or [p]:
            out.extend(_expand_one(Path(match), skipped))
    return out


def _expand_one(p: Path, skipped: list[Path] | None) -> list[Path]:
    if not p.is_dir():
        return [p]
    found = sorted(_entries_below(p))
    if skipped is None:
        return found
    media = _media_suffixes()
    kept = []
    for f in found:
        if f.suffix and f.suffix.lower() not in media and f.is_file() and not f.is_symlink():
            skipped.append(f)
        else:
            kept.append(f)
    return kept


def _media_suffixes() -> set[str]:
    Image.init()
    return {s.lower() for s in Image.registered_extensions()} | set(VIDEO_SUFFIXES) | {".heic", ".heif", ".avif"}


def _entries_below(folder: Path) -> list[Path]:
    found: list[Path] = []
    unreadable: list[Path] = []

    def on_error(e: OSError) -> None:
        if e.filename is not None:
            unreadable.append(Path(e.filename))

    for root, dirs, files in os.walk(folder, onerror=on_error):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        base = Path(root)
        # os.walk puts links to folders among ``dirs`` without following them; they are entries too
        found.extend(base / d for d in dirs if (base / d).is_symlink())
        found.extend(base / f for f in files if not f.startswith("."))
    return found + unreadable

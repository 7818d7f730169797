"""Generators for every kind of bad or unusual input the loader must handle (used by several tests)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image


def _jpeg(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", **kw)
    return buf.getvalue()


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def gradient(w: int = 96, h: int = 64) -> Image.Image:
    x = np.linspace(0, 255, w, dtype=np.uint8)[None, :].repeat(h, 0)
    y = np.linspace(0, 255, h, dtype=np.uint8)[:, None].repeat(w, 1)
    return Image.fromarray(np.stack([x, y, 255 - x], axis=2), "RGB")


def exif_rotated_jpeg() -> bytes:
    """A 96x64 JPEG whose EXIF orientation (6) says: rotate 90° clockwise to view (→ 64x96)."""
    img = gradient()
    exif = Image.Exif()
    exif[0x0112] = 6
    return _jpeg(img, exif=exif.tobytes())


def bad_files(folder: Path) -> dict[str, Path]:
    """Write files that must each fail with a clear error; returns name → path."""
    folder.mkdir(parents=True, exist_ok=True)
    good = _jpeg(gradient(256, 256))
    files = {
        "empty.jpg": b"",
        "text.jpg": b"this is not an image at all\n",
        "truncated.jpg": good[: len(good) // 2],
        "corrupt.png": b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 50,
        "document.pdf": b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n",
    }
    # decompression bomb: a tiny PNG that claims 12,000 x 12,000 pixels
    bomb = Image.new("1", (12_000, 12_000))
    files["bomb.png"] = _png(bomb)
    paths = {}
    for name, data in files.items():
        p = folder / name
        p.write_bytes(data)
        paths[name] = p
    return paths


def odd_but_valid_files(folder: Path) -> dict[str, Path]:
    """Images in unusual modes that must load as RGB; returns name → path."""
    folder.mkdir(parents=True, exist_ok=True)
    base = gradient()
    arr16 = np.linspace(0, 65535, 96 * 64).reshape(64, 96).astype(np.uint16)
    imgs = {
        "gray.png": base.convert("L"),
        "rgba.png": base.convert("RGBA"),
        "palette.png": base.convert("P"),
        "cmyk.jpg": base.convert("CMYK"),
        "bilevel.png": base.convert("1"),
        "gray16.png": Image.fromarray(arr16),
        "la.png": base.convert("LA"),
    }
    paths = {}
    for name, img in imgs.items():
        p = folder / name
        img.save(p)
        paths[name] = p
    p = folder / "rotated.jpg"
    p.write_bytes(exif_rotated_jpeg())
    paths["rotated.jpg"] = p
    return paths

"""Draw faces, boxes and top labels onto a copy of the photo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from facescan import taxonomy
from facescan.imageio import load_image
from facescan.schema import ImageResult

_COLORS = [(230, 57, 70), (29, 161, 242), (46, 196, 182), (255, 183, 3), (131, 56, 236), (251, 86, 7)]


def face_caption(face) -> str:
    """``#0 20-29 female 0.93 · happy 0.88``-style caption for one face."""
    parts = [f"#{face.index}"]
    for name, a in face.attributes.items():
        if a.valid:
            parts.append(f"{taxonomy.label_set(a.label_set).pretty(a.label)} {a.score:.2f}")
        else:
            parts.append(f"{name}: invalid")
    return " ".join(parts)


def draw_result(source, result: ImageResult) -> Image.Image:
    """Return the image with each face's box and caption drawn on it."""
    pixels = load_image(source, max_side=None).pixels if not isinstance(source, np.ndarray) else source
    img = Image.fromarray(pixels).convert("RGB")
    draw = ImageDraw.Draw(img)
    side = max(img.size)
    width = max(2, side // 400)
    try:
        font = ImageFont.load_default(size=max(12, side // 60))
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    for face in result.faces:
        color = _COLORS[face.index % len(_COLORS)]
        b = face.box
        draw.rectangle([b.x, b.y, b.x + b.width, b.y + b.height], outline=color, width=width)
        text = face_caption(face)
        tb = draw.textbbox((0, 0), text, font=font)
        tw, th = tb[2] - tb[0], tb[3] - tb[1]
        ty = b.y - th - 2 * width if b.y - th - 2 * width > 0 else b.y + b.height + width
        tx = min(max(0, b.x), img.size[0] - tw - 2 * width)
        draw.rectangle([tx, ty, tx + tw + 2 * width, ty + th + 2 * width], fill=color)
        draw.text((tx + width, ty + width - tb[1]), text, fill=(255, 255, 255), font=font)
    return img


def save_annotated(source, result: ImageResult, out: str | Path) -> Path:
    """Draw ``result`` onto ``source`` and save it to ``out`` (format from the suffix)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    img = draw_result(source, result)
    if out.suffix.lower() in (".jpg", ".jpeg"):
        img.save(out, quality=92)
    else:
        img.save(out)
    return out

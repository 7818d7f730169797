"""Draw faces, boxes and top labels onto a copy of the photo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from facescan import taxonomy
from facescan.imageio import load_image
from facescan.schema import ImageResult

_COLORS = [(230, 57, 70), (29, 161, 242), (46, 196, 182), (255, 183, 3), (131, 56, 236), (251, 86, 7)]


def face_caption(face) -> list[str]:
    """Caption lines for one face: ``#0`` then one ``label score`` line per attribute."""
    lines = [f"#{face.index}"]
    for name, a in face.attributes.items():
        if a.valid:
            lines.append(f"{taxonomy.label_set(a.label_set).pretty(a.label)} {a.score:.2f}")
        else:
            lines.append(f"{name}: invalid")
    return lines


def _canvas(source):
    """An RGB copy of the photo to draw on, its drawing context, its longer side and a line width."""
    pixels = load_image(source, max_side=None).pixels if not isinstance(source, np.ndarray) else source
    img = Image.fromarray(pixels).convert("RGB")
    side = max(img.size)
    return img, ImageDraw.Draw(img), side, max(2, side // 400)


def draw_result(source, result: ImageResult) -> Image.Image:
    """Return the image with each face's box, its number above it and its labels below it."""
    img, draw, side, width = _canvas(source)
    for face in result.faces:
        color = _COLORS[face.index % len(_COLORS)]
        b = face.box
        draw.rectangle([b.x, b.y, b.x + b.width, b.y + b.height], outline=color, width=width)
        # text scales with the face so neighbouring captions stay apart
        font = _font(int(min(max(10, b.width / 6), side / 40)))
        tag, *labels = face_caption(face)
        _label(draw, (b.x, b.y), tag, font, color, width, above=True)
        y = b.y + b.height
        for line in labels:
            y = _label(draw, (b.x, y), line, font, color, width, above=False)
    return img


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _label(draw, xy, text, font, color, pad, above: bool) -> float:
    """Draw ``text`` on a filled box at ``xy`` (above or below that point); returns the box's lower edge."""
    tb = draw.textbbox((0, 0), text, font=font)
    tw, th = tb[2] - tb[0] + 2 * pad, tb[3] - tb[1] + 2 * pad
    x, y = xy
    y = y - th if above else y
    draw.rectangle([x, y, x + tw, y + th], fill=color)
    draw.text((x + pad, y + pad - tb[1]), text, fill=(255, 255, 255), font=font)
    return y + th


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


def draw_numbered_boxes(source, faces) -> Image.Image:
    """The photo with each face boxed in red and numbered 1…n (the numbers a VLM is asked to choose from)."""
    img, draw, side, _ = _canvas(source)
    width = max(2, side // 300)
    for k, face in enumerate(faces, start=1):
        b = face.box
        draw.rectangle([b.x, b.y, b.x + b.width, b.y + b.height], outline=(255, 0, 0), width=width)
        font = _font(int(max(14, b.width / 3)))
        tb = draw.textbbox((0, 0), str(k), font=font)
        y = max(0, b.y - (tb[3] - tb[1]) - 3 * width)  # kept inside the photo for faces at its top edge
        _label(draw, (b.x, y), str(k), font, (255, 0, 0), width, above=False)
    return img


def draw_chosen(source, result: ImageResult, chosen: int | None) -> Image.Image:
    """The photo with every face in a thin grey box and the chosen face (by index) in a thick one."""
    img, draw, side, width = _canvas(source)
    for face in result.faces:
        b = face.box
        mine = face.index == chosen
        color = (255, 200, 0) if mine else (170, 170, 170)
        draw.rectangle([b.x, b.y, b.x + b.width, b.y + b.height], outline=color, width=3 * width if mine else width)
        font = _font(int(min(max(10, b.width / 6), side / 40)))
        _label(draw, (b.x, b.y), f"#{face.index}" + (" chosen" if mine else ""), font, color, width, above=True)
    return img

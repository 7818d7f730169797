"""Draw faces, boxes and top labels onto a copy of the photo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from facescan import taxonomy
from facescan.imageio import load_image
from facescan.schema import ImageResult

COLOURS = [(230, 57, 70), (29, 161, 242), (46, 196, 182), (255, 183, 3), (131, 56, 236), (251, 86, 7)]


def face_caption(face) -> list[str]:
    """Caption lines for one face: ``#0`` then one ``label score`` line per attribute (``weak``: why not)."""
    lines = [f"#{face.index}"]
    if getattr(face, "weak", None):
        lines.append("weak: " + "; ".join(face.weak))
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
    """Return the image with each face's box and, beside it, its number and labels (captions kept
    inside the image and, where there is room, off the other faces and captions)."""
    img, draw, side, width = _canvas(source)
    boxes = [(f.box.x, f.box.y, f.box.width, f.box.height) for f in result.faces]
    colours = [COLOURS[f.index % len(COLOURS)] for f in result.faces]
    for (x, y, w, h), colour in zip(boxes, colours):
        draw.rectangle([x, y, x + w, y + h], outline=colour, width=width)
    draw_captions(draw, boxes, [face_caption(f) for f in result.faces], colours, width, img.size)
    return img


def font(size: int):
    """Pillow's default (scalable) font at ``size`` pixels."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def caption_font(box: tuple, image_size: tuple[int, int]):
    """Text that scales with the face (so neighbouring captions stay apart) but stays readable."""
    return font(int(min(max(11, box[2] / 6), max(image_size) / 40)))


def draw_captions(draw, boxes: list[tuple], captions: list[list[str]], colours: list[tuple], pad: int,
                  image_size: tuple[int, int]) -> list[tuple[float, float, float, float]]:
    """Draw each face's caption (lines of text on a filled block) next to its box (see
    :func:`place_captions`); returns the blocks drawn, as (x, y, w, h)."""
    fonts = [caption_font(b, image_size) for b in boxes]
    sizes = [_block_size(draw, lines, f, pad) for lines, f in zip(captions, fonts)]
    spots = place_captions(boxes, sizes, image_size)
    for spot, size, lines, f, colour in zip(spots, sizes, captions, fonts, colours):
        _block(draw, spot, size, lines, f, colour, pad)
    return [(*spot, *size) for spot, size in zip(spots, sizes)]


def place_captions(boxes: list[tuple], sizes: list[tuple[float, float]],
                   image_size: tuple[int, int]) -> list[tuple[float, float]]:
    """Top-left corners for caption blocks of ``sizes`` beside face ``boxes`` (x, y, w, h).

    Written by hand because no drawing library places labels: larger faces first, each block goes
    to the first of below / above / right / left of its box that stays inside the image and covers
    no face (its own included: a block pushed back inside the image may land on it) and no block
    placed before it; when none is free, to the one covering least.
    """
    placed: list[tuple] = []
    spots: dict[int, tuple[float, float]] = {}
    for i in sorted(range(len(boxes)), key=lambda i: -boxes[i][2] * boxes[i][3]):
        spots[i] = _best_spot(boxes[i], sizes[i], image_size, list(boxes) + placed)
        placed.append((*spots[i], *sizes[i]))
    return [spots[i] for i in range(len(boxes))]


def _block_size(draw, lines: list[str], f, pad: int) -> tuple[float, float]:
    boxes = [draw.textbbox((0, 0), line, font=f) for line in lines]
    line_h = max(b[3] - b[1] for b in boxes) + pad
    return max(b[2] - b[0] for b in boxes) + 2 * pad, line_h * len(lines) + pad


def _block(draw, xy, size, lines, f, colour, pad) -> None:
    x, y = xy
    draw.rectangle([x, y, x + size[0], y + size[1]], fill=colour)
    line_h = (size[1] - pad) / len(lines)
    for k, line in enumerate(lines):
        top = draw.textbbox((0, 0), line, font=f)[1]
        draw.text((x + pad, y + pad + k * line_h - top), line, fill=(255, 255, 255), font=f)


def _best_spot(box, size, image_size, obstacles) -> tuple[float, float]:
    x, y, w, h = box
    cw, ch = size
    iw, ih = image_size
    candidates = [(x, y + h), (x, y - ch), (x + w, y), (x - cw, y), (x, y)]
    best, best_cost = None, None
    for cx, cy in candidates:
        cx, cy = min(max(0.0, cx), max(0.0, iw - cw)), min(max(0.0, cy), max(0.0, ih - ch))
        cost = sum(_overlap((cx, cy, cw, ch), o) for o in obstacles)
        if best_cost is None or cost < best_cost - 1e-6:
            best, best_cost = (cx, cy), cost
        if cost == 0:
            break
    return best


def _overlap(a, b) -> float:
    iw = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    ih = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(0.0, iw) * max(0.0, ih)


def _label(draw, xy, text, f, color, pad, above: bool) -> float:
    """Draw ``text`` on a filled box at ``xy`` (above or below that point); returns the box's lower edge."""
    tb = draw.textbbox((0, 0), text, font=f)
    tw, th = tb[2] - tb[0] + 2 * pad, tb[3] - tb[1] + 2 * pad
    x, y = xy
    y = y - th if above else y
    draw.rectangle([x, y, x + tw, y + th], fill=color)
    draw.text((x + pad, y + pad - tb[1]), text, fill=(255, 255, 255), font=f)
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
        f = font(int(max(14, b.width / 3)))
        tb = draw.textbbox((0, 0), str(k), font=f)
        y = max(0, b.y - (tb[3] - tb[1]) - 3 * width)  # kept inside the photo for faces at its top edge
        _label(draw, (b.x, y), str(k), f, (255, 0, 0), width, above=False)
    return img


def draw_chosen(source, result: ImageResult, chosen: int | None) -> Image.Image:
    """The photo with every face in a thin grey box and the chosen face (by index) in a thick one."""
    img, draw, side, width = _canvas(source)
    for face in result.faces:
        b = face.box
        mine = face.index == chosen
        color = (255, 200, 0) if mine else (170, 170, 170)
        draw.rectangle([b.x, b.y, b.x + b.width, b.y + b.height], outline=color, width=3 * width if mine else width)
        f = font(int(min(max(10, b.width / 6), side / 40)))
        _label(draw, (b.x, b.y), f"#{face.index}" + (" chosen" if mine else ""), f, color, width, above=True)
    return img

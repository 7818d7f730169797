"""Seeded synthetic scenes for the detection benchmark: real face crops pasted on varied backgrounds.

Each pasted crop brings its own truth box: the face square the crop was framed around. FairFace
crops are dlib chips with padding 0.25, so the face box is the crop's central 2/3 (the crop is 1.5
face widths). UTKFace and RAF-DB crops are framed tighter; their face squares were measured by
fitting FairFace's keypoint template to MediaPipe's median keypoints on 300 crops of each set
(``benchmarks/detection.py --calibrate``), and are given below as (centre x, centre y, side) in
fractions of the crop. A box is (x, y, w, h) in scene pixels.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

#: (centre x, centre y, side) of the face square, as fractions of each dataset's crop side.
FACE_SQUARE = {"fairface": (0.5, 0.5, 2 / 3), "utkface": (0.502, 0.506, 0.713), "rafdb": (0.492, 0.537, 0.755)}
#: A face less visible than this (covered by later faces or objects) is neither required nor a false positive.
MIN_VISIBLE = 0.5

CONDITIONS = ("plain", "crowd", "small", "large", "occluded_by_faces", "occluded_by_objects", "edge_cut",
              "yaw", "roll", "turned", "blur", "dark", "jpeg", "gray")


@dataclass
class Scene:
    """A composed image, its required faces' boxes, and boxes of faces that are too hidden to require."""

    image: np.ndarray
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)
    ignore: list[tuple[float, float, float, float]] = field(default_factory=list)
    condition: str = ""


class Faces:
    """Face crops of FairFace (train), UTKFace and RAF-DB under ``data``, drawn at random."""

    def __init__(self, data: Path, profiles: list[Path] | None = None):
        self.files = {
            "fairface": sorted((data / "fairface" / "train").glob("*.jpg")),
            "utkface": sorted((data / "utkface" / "crop_part1").glob("*.jpg")),
            "rafdb": sorted((data / "rafdb" / "basic" / "Image" / "aligned").glob("*.jpg")),
        }
        missing = [k for k, v in self.files.items() if not v]
        if missing:
            raise FileNotFoundError(f"no face crops for {', '.join(missing)} under {data}")
        self.profiles = profiles or []

    def draw(self, rng: np.random.Generator, profile: bool = False) -> tuple[np.ndarray, tuple[float, float, float]]:
        """A random crop (RGB) and its face square (cx, cy, side) in fractions of the crop."""
        if profile and self.profiles:
            path, kind = self.profiles[rng.integers(len(self.profiles))], "fairface"
        else:
            kind = rng.choice(["fairface", "utkface", "rafdb"], p=[0.6, 0.2, 0.2])
            path = self.files[kind][rng.integers(len(self.files[kind]))]
        return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB), FACE_SQUARE[kind]


# ------------------------------------------------------------------------ backgrounds
def background(rng: np.random.Generator, w: int, h: int, photo: np.ndarray | None = None) -> np.ndarray:
    """Gradient, smooth noise, clutter of shapes, or part of a face-free photo."""
    kind = rng.integers(4 if photo is not None else 3)
    if kind == 0:
        a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        t = np.linspace(0, 1, w)[None, :, None] if rng.random() < 0.5 else np.linspace(0, 1, h)[:, None, None]
        img = np.broadcast_to(a * (1 - t) + b * t, (h, w, 3)).copy()
        img += rng.normal(0, 6, img.shape)
    elif kind == 1:
        small = rng.integers(0, 256, (rng.integers(3, 12), rng.integers(3, 12), 3)).astype(np.float32)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
        img += rng.normal(0, 10, img.shape)
    elif kind == 2:
        img = np.full((h, w, 3), rng.integers(0, 256, 3), np.float64)
        for _ in range(rng.integers(15, 60)):
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            p = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            s = int(rng.integers(5, max(6, min(w, h) // 4)))
            if rng.random() < 0.5:
                cv2.rectangle(img, p, (p[0] + s, p[1] + int(s * rng.uniform(0.3, 3))), colour, -1)
            else:
                cv2.ellipse(img, p, (s, int(s * rng.uniform(0.3, 1.5))), float(rng.uniform(0, 180)), 0, 360, colour, -1)
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 3))
    else:
        ph, pw = photo.shape[:2]
        s = rng.uniform(0.3, 1.0)
        cw, ch = int(pw * s), int(pw * s * h / w)
        ch = min(ch, ph)
        x0, y0 = rng.integers(0, pw - cw + 1), rng.integers(0, ph - ch + 1)
        img = cv2.resize(photo[y0 : y0 + ch, x0 : x0 + cw], (w, h)).astype(np.float64)
    return np.clip(img, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------ pasting
class Canvas:
    """A scene being composed: pasted faces, who owns each pixel (to measure occlusion), objects."""

    def __init__(self, image: np.ndarray):
        self.image = image.astype(np.float32)
        self.owner = np.full(image.shape[:2], -1, np.int32)
        self.boxes: list[tuple[float, float, float, float]] = []
        self.owned: list[int] = []

    def paste(self, crop: np.ndarray, square: tuple[float, float, float], cx: float, cy: float, face: float,
              angle: float = 0.0, squeeze: float = 1.0) -> int:
        """Paste ``crop`` so its face square (side ``face`` px) is centred on (cx, cy); returns the face's index.

        ``angle`` rolls the face (degrees, counter-clockwise); ``squeeze`` narrows it (a weak proxy for yaw)."""
        fx, fy, fside = square
        scale = face / (fside * crop.shape[0])
        sx, sy = scale * squeeze, scale
        # crop pixel (u, v) -> scene: around the face centre, squeezed, then rotated
        c, s = np.cos(np.radians(angle)), np.sin(np.radians(angle))
        rot = np.array([[c, s], [-s, c]])
        lin = rot @ np.diag([sx, sy])
        centre = np.array([fx, fy]) * crop.shape[0]
        m = np.c_[lin, np.array([cx, cy]) - lin @ centre]
        h, w = self.image.shape[:2]
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        warped = cv2.warpAffine(crop.astype(np.float32), m, (w, h), flags=interp)
        alpha = cv2.warpAffine(_oval(crop.shape[0]), m, (w, h), flags=cv2.INTER_LINEAR)[:, :, None]
        self.image = self.image * (1 - alpha) + warped * alpha
        idx = len(self.boxes)
        box = (cx - face * squeeze / 2, cy - face / 2, face * squeeze, face)
        self.owner[alpha[:, :, 0] > 0.5] = idx
        self.boxes.append(box)
        self.owned.append(self._count(box, idx))
        return idx

    def cover(self, mask: np.ndarray, colour: np.ndarray) -> None:
        """Draw an object (a boolean mask) over everything."""
        self.image[mask] = colour
        self.owner[mask] = -2

    def _count(self, box: tuple, idx: int) -> int:
        h, w = self.owner.shape
        x0, y0 = int(max(0, box[0])), int(max(0, box[1]))
        x1, y1 = int(min(w, box[0] + box[2])), int(min(h, box[1] + box[3]))
        return int((self.owner[y0:y1, x0:x1] == idx).sum())

    def scene(self, condition: str) -> Scene:
        """The finished scene: boxes clipped to the image; faces less than half visible are only ignored."""
        h, w = self.owner.shape
        out = Scene(np.clip(self.image, 0, 255).astype(np.uint8), condition=condition)
        for idx, box in enumerate(self.boxes):
            visible = self._count(box, idx) / max(1, self.owned[idx])
            clipped = clip(box, w, h)
            if clipped[2] < 4 or clipped[3] < 4:
                continue
            (out.boxes if visible >= MIN_VISIBLE else out.ignore).append(clipped)
        return out


def _oval(side: int) -> np.ndarray:
    """Feathered elliptical alpha over a crop: the head and a little of its surroundings."""
    yy, xx = (np.mgrid[0:side, 0:side] + 0.5) / side - 0.5
    r = np.sqrt((xx / 0.47) ** 2 + (yy / 0.5) ** 2)
    return np.clip((1.0 - r) / 0.15, 0, 1).astype(np.float32)


def clip(box: tuple, w: int, h: int) -> tuple[float, float, float, float]:
    """An (x, y, w, h) box clipped to a w x h image."""
    x0, y0 = max(0.0, box[0]), max(0.0, box[1])
    x1, y1 = min(float(w), box[0] + box[2]), min(float(h), box[1] + box[3])
    return (x0, y0, max(0.0, x1 - x0), max(0.0, y1 - y0))


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """``image`` through JPEG compression at ``quality``."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=int(quality))
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


# ------------------------------------------------------------------------ conditions
def _size(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _canvas_size(rng: np.random.Generator, lo: int = 480, hi: int = 1280) -> tuple[int, int]:
    w = int(rng.integers(lo, hi + 1))
    return w, int(w / rng.choice([4 / 3, 3 / 2, 16 / 9, 3 / 4, 1.0]))


def _spots(rng: np.random.Generator, w: int, h: int, sizes: list[float], gap: float = 0.7) -> list[tuple]:
    """Centres for faces of ``sizes`` inside the frame, ``gap`` x (sum of sides) apart (rejection sampling)."""
    placed: list[tuple[float, float, float]] = []
    for f in sorted(sizes, reverse=True):
        for _ in range(200):
            cx, cy = rng.uniform(f * 0.6, w - f * 0.6), rng.uniform(f * 0.6, h - f * 0.6)
            if all(np.hypot(cx - x, cy - y) >= gap * (f + g) for x, y, g in placed):
                placed.append((cx, cy, f))
                break
    return placed


def _faces_scene(rng, faces: Faces, photo, n: tuple[int, int], size: tuple[float, float],
                 canvas: tuple[int, int] = (480, 1280), gap: float = 0.7, **paste) -> Canvas:
    w, h = _canvas_size(rng, *canvas)
    c = Canvas(background(rng, w, h, photo))
    hi = min(size[1], min(w, h) / 2.2)
    sizes = [_size(rng, size[0], max(size[0] + 1, hi)) for _ in range(rng.integers(n[0], n[1] + 1))]
    for cx, cy, f in _spots(rng, w, h, sizes, gap):
        crop, square = faces.draw(rng)
        c.paste(crop, square, cx, cy, f, **{k: v(rng) for k, v in paste.items()})
    return c


def _occluded_by_faces(rng, faces: Faces, photo) -> Canvas:
    w, h = _canvas_size(rng, 640, 1280)
    c = Canvas(background(rng, w, h, photo))
    sizes = [_size(rng, 40, min(w, h) / 4) for _ in range(rng.integers(2, 5))]
    for cx, cy, f in _spots(rng, w, h, [s * 2.2 for s in sizes], 0.55):
        f /= 2.2
        d = rng.uniform(0.7, 1.0) * f
        a = rng.uniform(-0.5, 0.5) + (np.pi if rng.random() < 0.5 else 0.0)
        back, front = (cx - d / 2 * np.cos(a), cy - d / 2 * np.sin(a)), (cx + d / 2 * np.cos(a), cy + d / 2 * np.sin(a))
        for (x, y), s in ((back, f), (front, f * rng.uniform(0.85, 1.15))):
            crop, square = faces.draw(rng)
            c.paste(crop, square, x, y, s)
    return c


def _occluded_by_objects(rng, faces: Faces, photo) -> Canvas:
    c = _faces_scene(rng, faces, photo, (1, 6), (40, 220))
    h, w = c.owner.shape
    yy, xx = np.mgrid[0:h, 0:w]
    for x, y, bw, bh in list(c.boxes):
        p = rng.uniform(0.2, 0.45)  # share of the face box covered
        colour = rng.integers(0, 256, 3).astype(np.float32)
        if rng.random() < 0.5:  # a bar from one side: a hand, a phone, a scarf, a shoulder in front
            side = rng.integers(4)
            if side == 0:
                mask = (xx < x + p * bw) & (xx >= x - 0.3 * bw)
            elif side == 1:
                mask = (xx > x + (1 - p) * bw) & (xx <= x + 1.3 * bw)
            elif side == 2:
                mask = (yy < y + p * bh) & (yy >= y - 0.3 * bh)
            else:
                mask = (yy > y + (1 - p) * bh) & (yy <= y + 1.3 * bh)
            mask &= (yy >= y - 0.3 * bh) & (yy <= y + 1.3 * bh) & (xx >= x - 0.3 * bw) & (xx <= x + 1.3 * bw)
        else:  # a round object somewhere on the face
            r = np.sqrt(p * bw * bh / np.pi)
            ox, oy = x + rng.uniform(0.2, 0.8) * bw, y + rng.uniform(0.2, 0.8) * bh
            mask = (xx - ox) ** 2 + (yy - oy) ** 2 <= r * r
        c.cover(mask, colour)
    return c


def _edge_cut(rng, faces: Faces, photo) -> Canvas:
    w, h = _canvas_size(rng)
    c = Canvas(background(rng, w, h, photo))
    for side in rng.permutation(4)[: rng.integers(1, 5)]:
        f = _size(rng, 50, min(w, h) / 2.5)
        out = rng.uniform(0.2, 0.5)  # share of the face box outside the frame
        along = rng.uniform(0.3, 0.7)
        cx, cy = [(f / 2 - out * f, along * h), (w - f / 2 + out * f, along * h),
                  (along * w, f / 2 - out * f), (along * w, h - f / 2 + out * f)][side]
        crop, square = faces.draw(rng)
        c.paste(crop, square, cx, cy, f)
    return c


def _yaw(rng, faces: Faces, photo) -> Canvas:
    w, h = _canvas_size(rng)
    c = Canvas(background(rng, w, h, photo))
    sizes = [_size(rng, 40, min(w, h) / 3) for _ in range(rng.integers(1, 7))]
    for cx, cy, f in _spots(rng, w, h, sizes):
        profile = bool(faces.profiles) and rng.random() < 0.5
        crop, square = faces.draw(rng, profile=profile)
        c.paste(crop, square, cx, cy, f, squeeze=1.0 if profile else rng.uniform(0.55, 0.8))
    return c


def compose(condition: str, rng: np.random.Generator, faces: Faces, photo: np.ndarray | None) -> Scene:
    """One scene of ``condition`` (see CONDITIONS)."""
    simple = {
        "plain": dict(n=(1, 6), size=(40, 200)),
        "crowd": dict(n=(15, 40), size=(20, 70), canvas=(1024, 1600), gap=0.55),
        "small": dict(n=(4, 12), size=(16, 32), canvas=(480, 960)),
        "large": dict(n=(1, 1), size=(200, 2000), canvas=(320, 1024)),
        "roll": dict(n=(1, 6), size=(40, 200), angle=lambda r: r.uniform(-60, 60)),
    }
    if condition in simple:
        canvas = _faces_scene(rng, faces, photo, **simple[condition])
        if condition == "large":  # most of the frame: the face square is 45-80 % of the short side
            h, w = canvas.owner.shape
            canvas = Canvas(background(rng, w, h, photo))
            crop, square = faces.draw(rng)
            f = rng.uniform(0.45, 0.8) * min(w, h)
            canvas.paste(crop, square, rng.uniform(f / 2, w - f / 2), rng.uniform(f / 2, h - f / 2), f)
        return canvas.scene(condition)
    special = {"occluded_by_faces": _occluded_by_faces, "occluded_by_objects": _occluded_by_objects,
               "edge_cut": _edge_cut, "yaw": _yaw}
    if condition in special:
        return special[condition](rng, faces, photo).scene(condition)
    scene = _faces_scene(rng, faces, photo, (1, 6), (30, 160)).scene(condition)
    return degrade(scene, condition, rng)


def degrade(scene: Scene, condition: str, rng: np.random.Generator) -> Scene:
    """The photometric conditions, and whole-photo turns, applied to a plain scene."""
    img = scene.image
    if condition == "turned":
        k = int(rng.integers(1, 4))
        h, w = img.shape[:2]
        scene.boxes = [_turn_box(b, k, w, h) for b in scene.boxes]
        scene.ignore = [_turn_box(b, k, w, h) for b in scene.ignore]
        scene.image = np.ascontiguousarray(np.rot90(img, k))
    elif condition == "blur":
        if rng.random() < 0.5:
            scene.image = cv2.GaussianBlur(img, (0, 0), rng.uniform(1.5, 3.5))
        else:  # motion blur along a random direction
            n = int(rng.integers(7, 16))
            kernel = np.zeros((n, n), np.float32)
            kernel[n // 2] = 1 / n
            kernel = cv2.warpAffine(kernel, cv2.getRotationMatrix2D((n / 2 - 0.5, n / 2 - 0.5), rng.uniform(0, 180), 1),
                                    (n, n))
            scene.image = cv2.filter2D(img, -1, kernel / max(kernel.sum(), 1e-6))
    elif condition == "dark":
        dark = (img / 255.0) ** rng.uniform(1.2, 1.6) * rng.uniform(0.12, 0.3) * 255
        scene.image = np.clip(dark + rng.normal(0, rng.uniform(1.5, 4), img.shape), 0, 255).astype(np.uint8)
    elif condition == "jpeg":
        scene.image = jpeg(img, int(rng.integers(5, 21)))
    elif condition == "gray":
        scene.image = np.repeat(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[:, :, None], 3, 2)
    else:
        raise ValueError(f"unknown condition {condition!r}; known: {', '.join(CONDITIONS)}")
    return scene


def _turn_box(box: tuple, k: int, w: int, h: int) -> tuple[float, float, float, float]:
    """A box of a w x h image after ``np.rot90(image, k)`` (counter-clockwise quarter turns)."""
    x, y, bw, bh = box
    if k == 1:
        return (y, w - x - bw, bh, bw)
    if k == 2:
        return (w - x - bw, h - y - bh, bw, bh)
    return (h - y - bh, x, bh, bw)

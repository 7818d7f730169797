"""A quality record per face (:class:`~facescan.schema.FaceQuality`): how big, how turned, how sharp,
how cut off."""

from __future__ import annotations

from dataclasses import dataclass, fields

import cv2
import numpy as np

from facescan.detect.base import Detection
from facescan.detect.boxes import roll_degrees
from facescan.schema import FaceQuality

#: Side of the grey chip the sharpness is measured on (the same scale whatever the face's size).
BLUR_SIDE = 112


@dataclass(frozen=True)
class QualityFloor:
    """The least a face must show for its attributes to be predicted (``--min-quality``).

    ``size``: the shorter box side in photo pixels, at least; ``blur``: the sharpness (:func:`blur_variance`),
    at least; ``yaw``: the head turn, at most this many degrees either way; ``outside``: the fraction of the
    box the frame cuts off, at most. None is not judged, nor is a yaw a face has no keypoints for.
    """

    size: float | None = None
    blur: float | None = None
    yaw: float | None = None
    outside: float | None = None

    @classmethod
    def parse(cls, text: str | QualityFloor | None) -> QualityFloor | None:
        """``"size=32,blur=40,yaw=60,outside=0.3"`` (any of them) → a floor; None or ``""`` → None.

        Raises ValueError naming the part that cannot be read."""
        if text is None or isinstance(text, QualityFloor):
            return text
        values: dict[str, float] = {}
        names = [f.name for f in fields(cls)]
        for part in (p.strip() for p in str(text).split(",")):
            if not part:
                continue
            key, sep, value = (s.strip() for s in part.partition("="))
            if not sep or key not in names:
                raise ValueError(f"min-quality {part!r}: write name=value with a name among {', '.join(names)}, "
                                 "separated by commas")
            if key in values:
                raise ValueError(f"min-quality {text!r}: {key} is given twice")
            try:
                number = float(value)
            except ValueError:
                raise ValueError(f"min-quality {part!r}: {value!r} is not a number (separate the parts with "
                                 "commas)") from None
            top = {"outside": 1.0, "yaw": 90.0}.get(key)
            if not np.isfinite(number) or number < 0 or (top is not None and number > top):
                raise ValueError(f"min-quality {part!r}: {key} must be a finite number from 0"
                                 + (f" to {top:g}" if top is not None else ""))
            values[key] = number
        return cls(**values) if values else None

    def failures(self, quality: FaceQuality) -> list[str]:
        """Why ``quality`` falls under this floor (empty when it does not)."""
        out = []
        if self.size is not None and quality.size < self.size:
            out.append(f"size {quality.size:g} px < {self.size:g}")
        if self.blur is not None and quality.blur < self.blur:
            out.append(f"blur {quality.blur:g} < {self.blur:g}")
        if self.yaw is not None and quality.yaw is not None and abs(quality.yaw) > self.yaw:
            out.append(f"yaw {quality.yaw:g}° beyond ±{self.yaw:g}")
        if self.outside is not None and quality.outside > self.outside:
            out.append(f"outside {quality.outside:g} > {self.outside:g}")
        return out

    def __str__(self) -> str:
        given = ((f.name, getattr(self, f.name)) for f in fields(self))
        return ",".join(f"{name}={value:.12g}" for name, value in given if value is not None)


def face_quality(face: Detection, chip: np.ndarray, scale: float = 1.0) -> FaceQuality:
    """The quality of a detected ``face``, whose ``chip`` the backend sees; ``scale`` maps its box to the
    photo's pixels."""
    roll = roll_degrees(face.keypoints)
    if roll is None:
        roll = face.roll
    return FaceQuality(size=round(float(min(face.box[2], face.box[3]) * scale), 1),
                       yaw=_round(yaw_degrees(face.keypoints)), roll=_round(roll), blur=round(blur_variance(chip), 1),
                       outside=round(float(face.outside), 3))


def crop_quality(chip: np.ndarray, face_side: float) -> FaceQuality:
    """The quality of a given crop (``--crops``): its face's size and sharpness (no keypoints: no turn)."""
    return FaceQuality(size=round(float(face_side), 1), blur=round(blur_variance(chip), 1))


def blur_variance(chip: np.ndarray) -> float:
    """Variance of the Laplacian of the chip's grey levels at :data:`BLUR_SIDE` px (a standard sharpness
    measure)."""
    gray = chip if chip.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(chip), cv2.COLOR_RGB2GRAY)
    if gray.shape[:2] != (BLUR_SIDE, BLUR_SIDE):
        interpolation = cv2.INTER_AREA if min(gray.shape[:2]) > BLUR_SIDE else cv2.INTER_LINEAR
        gray = cv2.resize(gray, (BLUR_SIDE, BLUR_SIDE), interpolation=interpolation)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def yaw_degrees(keypoints: np.ndarray | None) -> float | None:
    """A rough head turn from 2-D keypoints (right eye, left eye, nose tip, mouth, [right ear, left ear]).

    With ear points (BlazeFace's six): where the nose falls between the ears, ``asin(2t - 1)``.
    Without: the nose's offset from the eyes' midpoint along the eye line, in half eye distances,
    through ``atan(offset / 1.1)`` (the nose tip stands about 1.1 half eye distances in front of
    the eyes on an average head). Both read the points in the face's own upright frame.
    """
    if keypoints is None or len(keypoints) < 3:
        return None
    p = np.asarray(keypoints, float)
    axis = p[1] - p[0]
    iod = float(np.hypot(*axis))
    if iod < 1e-6:
        return None
    u = axis / iod
    if len(p) >= 6:
        ears = (p[5] - p[4]) @ u
        if abs(ears) > 1e-6:
            t = ((p[2] - p[4]) @ u) / ears
            return float(np.degrees(np.arcsin(np.clip(2 * t - 1, -1, 1))))
    offset = ((p[2] - (p[0] + p[1]) / 2) @ u) / (iod / 2)
    return float(np.degrees(np.arctan(offset / 1.1)))


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 1)

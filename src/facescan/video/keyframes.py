"""Keyframes for costly backends (VLMs): per person, a few sharp, frontal, spread-out face chips.

While the clip streams, each track keeps a small pool of candidate chips (bounded: memory does not
grow with the clip), at most one per ``min_gap_s`` stretch of time: the best of each stretch. At the
end ``choose`` picks the best ``k``, spread over the track's duration where it can.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from facescan.backends.base import FaceInput
from facescan.schema import Face

MIN_GAP_S = 0.5
POOL_PER_KEYFRAME = 4


def sharpness(chip: np.ndarray) -> float:
    """Variance of the Laplacian of the chip's luminance (higher is sharper)."""
    gray = chip if chip.ndim == 2 else cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def frontality(keypoints) -> float:
    """1 when the eyes are symmetric about the nose tip (a frontal face), towards 0 when turned; 0.5 unknown."""
    if keypoints is None or len(keypoints) < 3:
        return 0.5
    right, left, nose = (np.asarray(k, dtype=np.float64) for k in keypoints[:3])
    d_right, d_left = float(np.linalg.norm(nose - right)), float(np.linalg.norm(nose - left))
    return 1.0 - abs(d_right - d_left) / (d_right + d_left + 1e-9)


def face_quality(face_input: FaceInput) -> float:
    """How well a VLM will see this face: frontality × log sharpness."""
    return frontality(face_input.keypoints) * math.log1p(sharpness(face_input.chip))


@dataclass(eq=False)  # compared by identity: the chips are arrays
class Candidate:
    """One face of one frame that may be sent to the backend."""

    quality: float
    frame: int
    time_s: float
    face_input: FaceInput  # the chip only: no reference to the frame's pixels
    face: Face  # the frame's face record, which receives the backend's answer


class KeyframePool:
    """The best candidate of each ``min_gap_s`` stretch of a track, at most ``size`` of them."""

    def __init__(self, k: int, min_gap_s: float = MIN_GAP_S):
        self.k = k
        self.size = max(k, POOL_PER_KEYFRAME * k)
        self.min_gap_s = min_gap_s
        self.pool: list[Candidate] = []

    def offer(self, c: Candidate) -> None:
        """Keep ``c`` if it beats its close neighbours in time (and, when the pool is full, the worst)."""
        near = [p for p in self.pool if abs(p.time_s - c.time_s) < self.min_gap_s]
        if near:
            if c.quality <= max(p.quality for p in near):
                return
            self.pool = [p for p in self.pool if p not in near]
        self.pool.append(c)
        if len(self.pool) > self.size:
            self.pool.remove(min(self.pool, key=lambda p: p.quality))

    def choose(self) -> list[Candidate]:
        """The best ``k`` candidates at least a ``2k``-th of the pool's time span apart, then the best of the rest."""
        if not self.pool:
            return []
        span = max(p.time_s for p in self.pool) - min(p.time_s for p in self.pool)
        ranked = sorted(self.pool, key=lambda p: -p.quality)
        chosen: list[Candidate] = []
        for c in ranked:
            if len(chosen) < self.k and all(abs(c.time_s - p.time_s) >= span / (2 * self.k) for p in chosen):
                chosen.append(c)
        chosen += [c for c in ranked if c not in chosen][: self.k - len(chosen)]
        return sorted(chosen, key=lambda p: p.time_s)

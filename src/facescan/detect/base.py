"""The detector interface and registry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from facescan.registry import Registry


@dataclass
class Detection:
    """One face: box (x, y, w, h) in pixels, confidence, and optional keypoints.

    ``keypoints`` rows are (x, y) pixels in the order right eye, left eye, nose tip, mouth
    centre (the subject's right/left), optionally followed by more points.
    """

    box: tuple[float, float, float, float]
    score: float
    keypoints: np.ndarray | None = None


class Detector(Protocol):
    """Anything with a name and ``detect(rgb_image) -> list[Detection]``."""

    name: str

    def detect(self, image: np.ndarray) -> list[Detection]: ...


DETECTORS = Registry("detector")
DETECTORS.register("mediapipe", "facescan.detect.mediapipe:MediaPipeDetector.from_spec",
                   "MediaPipe BlazeFace short- and full-range (mediapipe:short, mediapipe:full; default both)")
DETECTORS.register("haar", "facescan.detect.haar:HaarDetector.from_spec", "OpenCV's frontal-face Haar cascade")


def create_detector(spec: str = "mediapipe") -> Detector:
    """Build a detector from a spec string such as ``mediapipe``, ``mediapipe:short`` or ``haar``."""
    return DETECTORS.create(spec)

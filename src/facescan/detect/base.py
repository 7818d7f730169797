"""The detector interface and registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np


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


DETECTORS: dict[str, Callable[[str], Detector]] = {}


def register_detector(kind: str, factory: Callable[[str], Detector]) -> None:
    """Make ``kind[:options]`` specs create detectors with ``factory(options)``."""
    DETECTORS[kind] = factory


def create_detector(spec: str = "mediapipe") -> Detector:
    """Build a detector from a spec string such as ``mediapipe``, ``mediapipe:short`` or ``haar``."""
    kind, _, options = spec.partition(":")
    if kind not in DETECTORS:
        raise ValueError(f"unknown detector {spec!r}; known: {', '.join(DETECTORS)}")
    return DETECTORS[kind](options)


def _mediapipe(options: str) -> Detector:
    from facescan.detect.mediapipe import MediaPipeDetector

    return MediaPipeDetector(options or "auto")


def _haar(options: str) -> Detector:
    from facescan.detect.haar import HaarDetector

    return HaarDetector()


register_detector("mediapipe", _mediapipe)
register_detector("haar", _haar)

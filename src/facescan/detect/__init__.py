"""Face detectors, chosen by a spec string: ``mediapipe`` (default), ``mediapipe:short``, ``haar``."""

from facescan.detect.base import DETECTORS, Detection, Detector, create_detector

__all__ = ["Detection", "Detector", "create_detector", "DETECTORS"]

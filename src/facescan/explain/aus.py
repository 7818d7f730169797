"""Facial action units measured from MediaPipe face-mesh geometry, and the emotions they signal.

Each AU is a geometric ratio of mesh landmarks, normalized by the face's own size (the distance
between the eye centres), then expressed as an intensity 0–5 against the spread of that ratio
over a reference set of faces (:data:`REFERENCE`, measured on FER2013 train by
``benchmarks/au_reference.py``): 0 at or below the neutral median, 5 at three reference spreads
above it. These are appearance proxies for FACS action units, not certified AU coding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# MediaPipe face-mesh landmark indices (468-point topology); "right" is the subject's right.
_EYE_R = {"outer": 33, "inner": 133, "upper": 159, "lower": 145}
_EYE_L = {"outer": 263, "inner": 362, "upper": 386, "lower": 374}
_BROW_R = {"inner": 55, "mid": 105, "outer": 46}
_BROW_L = {"inner": 285, "mid": 334, "outer": 276}
_MOUTH = {"right": 61, "left": 291, "upper_inner": 13, "lower_inner": 14, "upper_outer": 0, "lower_outer": 17}
_NOSE_TIP, _CHIN = 1, 152
_CHEEK_R, _CHEEK_L = 50, 280

#: AU name, FACS number and the emotions it is linked with (ExpLLM-style evidence).
AUS: dict[str, tuple[str, tuple[str, ...]]] = {
    "AU1+2": ("inner and outer brow raiser", ("surprise", "fear")),
    "AU4": ("brow lowerer", ("angry", "sad", "fear", "disgust")),
    "AU6": ("cheek raiser", ("happy",)),
    "AU12": ("lip corner puller", ("happy", "contempt")),
    "AU15": ("lip corner depressor", ("sad", "disgust")),
    "AU25": ("lips part", ("surprise", "fear", "happy")),
    "AU26": ("jaw drop", ("surprise", "fear")),
    "AU43": ("eyes closed", ("sad",)),
}

#: Per AU: (neutral median, spread) of its raw ratio. Measured on FER2013 train (neutral faces for
#: the median, all faces for the spread) by benchmarks/au_reference.py; the sign says which
#: direction is the action (-1: the ratio falls when the AU acts).
REFERENCE: dict[str, tuple[float, float, int]] = {
    "AU1+2": (0.328, 0.059, 1),
    "AU4": (0.418, 0.024, -1),
    "AU6": (0.508, 0.048, -1),
    "AU12": (0.766, 0.093, 1),
    "AU15": (-0.018, 0.048, 1),
    "AU25": (0.032, 0.055, 1),
    "AU26": (0.361, 0.122, 1),
    "AU43": (0.160, 0.033, -1),
}


@dataclass(frozen=True)
class AUReading:
    """One action unit of one face."""

    au: str
    name: str
    intensity: float  # 0–5
    raw: float
    emotions: tuple[str, ...]


def raw_ratios(points: np.ndarray) -> dict[str, float]:
    """Geometric ratios of a face mesh (N×2 or N×3 landmark coordinates, any consistent unit)."""
    p = np.asarray(points, dtype=float)[:, :2]

    def d(a, b):
        return float(np.linalg.norm(p[a] - p[b]))

    eye_r = (p[_EYE_R["outer"]] + p[_EYE_R["inner"]]) / 2
    eye_l = (p[_EYE_L["outer"]] + p[_EYE_L["inner"]]) / 2
    iod = float(np.linalg.norm(eye_r - eye_l)) or 1.0
    brow_eye = (d(_BROW_R["mid"], _EYE_R["upper"]) + d(_BROW_L["mid"], _EYE_L["upper"])) / 2 / iod
    brow_gap = d(_BROW_R["inner"], _BROW_L["inner"]) / iod
    openness = (d(_EYE_R["upper"], _EYE_R["lower"]) + d(_EYE_L["upper"], _EYE_L["lower"])) / 2 / iod
    cheek = (d(_EYE_R["lower"], _CHEEK_R) + d(_EYE_L["lower"], _CHEEK_L)) / 2 / iod
    mouth_width = d(_MOUTH["right"], _MOUTH["left"]) / iod
    centre_y = (p[_MOUTH["upper_inner"], 1] + p[_MOUTH["lower_inner"], 1]) / 2
    corner_drop = ((p[_MOUTH["right"], 1] + p[_MOUTH["left"], 1]) / 2 - centre_y) / iod  # image y grows down
    lips_apart = d(_MOUTH["upper_inner"], _MOUTH["lower_inner"]) / iod
    # jaw drop shows as a mouth opened taller than wide (an "O"), unlike the wide-open smile
    jaw = d(_MOUTH["upper_outer"], _MOUTH["lower_outer"]) / max(d(_MOUTH["right"], _MOUTH["left"]), 1e-6)
    return {"AU1+2": brow_eye, "AU4": brow_gap, "AU6": cheek, "AU12": mouth_width, "AU15": corner_drop,
            "AU25": lips_apart, "AU26": jaw, "AU43": openness}


def intensities(points: np.ndarray) -> list[AUReading]:
    """AU readings (intensity 0–5) of one face mesh, strongest first."""
    readings = []
    for au, value in raw_ratios(points).items():
        median, spread, sign = REFERENCE[au]
        z = sign * (value - median) / spread
        name, emotions = AUS[au]
        readings.append(AUReading(au, name, float(np.clip(z / 3 * 5, 0, 5)), value, emotions))
    return sorted(readings, key=lambda r: -r.intensity)


class FaceMesh:
    """MediaPipe's face mesh (its model ships in the mediapipe 0.10.x wheel), on RGB crops."""

    def __init__(self, min_size: int = 192):
        from facescan.detect.mediapipe import import_mediapipe

        mp = import_mediapipe()

        self.min_size = min_size
        self._mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1,
                                                     refine_landmarks=False, min_detection_confidence=0.3)

    def landmarks(self, rgb: np.ndarray) -> np.ndarray | None:
        """468×2 pixel coordinates of the most prominent face in ``rgb``, or None when no mesh fits."""
        import cv2

        img = np.ascontiguousarray(rgb if rgb.ndim == 3 else np.repeat(rgb[..., None], 3, 2))[..., :3]
        h, w = img.shape[:2]
        scale = max(1.0, self.min_size / min(h, w))  # small crops (FER's 48 px) are upscaled first
        if scale > 1:
            img = cv2.resize(img, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_CUBIC)
        result = self._mesh.process(img)
        if not result.multi_face_landmarks:
            return None
        lm = result.multi_face_landmarks[0].landmark
        return np.array([(p.x * img.shape[1] / scale, p.y * img.shape[0] / scale) for p in lm])

    def close(self) -> None:
        self._mesh.close()

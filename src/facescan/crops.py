"""Face chips: aligned, padded crops framed the way the models' training data was framed.

FairFace crops are dlib face chips with padding 0.25: the face is rotated upright, scaled
to a fixed size and centred with a margin of 0.25 face widths on every side. We rebuild that
framing from any detector's eye/nose/mouth keypoints with a similarity transform onto the
mean keypoint positions measured on FairFace chips (``TEMPLATE_*`` below), so the built-in
models see at inference what they were trained on.
"""

from __future__ import annotations

import cv2
import numpy as np

#: Padding of the chips ``align`` produces (FairFace's own).
CHIP_PADDING = 0.25

# Mean keypoint positions (x, y) in a FairFace chip, as a fraction of its side.
# Measured with MediaPipe face detection over the 2,500 FairFace val chips
# (benchmarks/measure_chip_template.py; found in 94.3%): right eye, left eye (subject's), nose tip, mouth.
TEMPLATE_POINTS = np.array(
    [[0.327, 0.316], [0.666, 0.313], [0.496, 0.521], [0.497, 0.688]], dtype=np.float32
)


def align(image: np.ndarray, keypoints: np.ndarray, size: int = 224) -> np.ndarray:
    """Warp ``image`` so ``keypoints`` (4x2: eyes, nose tip, mouth centre, in pixels) land on the template.

    Keypoints are in the detectors' convention (a pixel spans [i, i + 1)); OpenCV samples at pixel
    centres, hence the half-pixel shifts, which keep the chip of a turned photo the same chip."""
    dst = TEMPLATE_POINTS * size - 0.5
    src = np.asarray(keypoints, np.float32) - 0.5
    matrix, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.LMEDS)
    if matrix is None:
        raise ValueError("keypoints are degenerate; cannot align the face")
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def box_chip(image: np.ndarray, box: tuple[float, float, float, float], padding: float = CHIP_PADDING,
             size: int = 224, angle: float = 0.0) -> np.ndarray:
    """Square chip around an (x, y, w, h) box with ``padding`` face widths of margin.

    ``angle`` is the face's in-plane tilt in degrees, clockwise in the image (a detector's roll):
    the chip is turned back by it, so the face comes out upright."""
    x, y, w, h = box
    side = max(w, h) * (1 + 2 * padding)
    cx, cy = x + w / 2 - 0.5, y + h / 2 - 0.5  # OpenCV's pixel-centre coordinates
    scale = size / side
    c, s = np.cos(np.radians(angle)) * scale, np.sin(np.radians(angle)) * scale
    # chip = R(-angle) * scale * (p - centre) + chip centre
    o = size / 2 - 0.5
    matrix = np.array([[c, s, o - c * cx - s * cy], [-s, c, o + s * cx - c * cy]], np.float32)
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def face_chip(image: np.ndarray, box: tuple[float, float, float, float], keypoints: np.ndarray | None = None,
              roll: float | None = None, size: int = 224) -> np.ndarray:
    """The upright chip of one detected face: aligned on its keypoints (which removes any roll), else
    cut around its box and turned back by ``roll`` (degrees clockwise, when the detector knows it)."""
    if keypoints is not None and len(keypoints) >= 4:
        try:
            return align(image, np.asarray(keypoints)[:4], size)
        except ValueError:
            pass
    return box_chip(image, box, CHIP_PADDING, size, angle=roll or 0.0)


def reframe(chip: np.ndarray, padding_in: float, padding_out: float) -> np.ndarray:
    """Change a square chip's padding by cropping its centre (or padding its border)."""
    if abs(padding_in - padding_out) < 1e-6:
        return chip
    side = chip.shape[0]
    new_side = side * (1 + 2 * padding_out) / (1 + 2 * padding_in)
    if new_side <= side:
        off = (side - new_side) / 2
        lo, hi = int(round(off)), int(round(off + new_side))
        return chip[lo:hi, lo:hi]
    pad = int(round((new_side - side) / 2))
    return cv2.copyMakeBorder(chip, pad, pad, pad, pad, cv2.BORDER_REPLICATE)


def resize(chip: np.ndarray, size: int) -> np.ndarray:
    """Resize a chip to ``size``x``size`` (area interpolation when shrinking)."""
    if chip.shape[0] == size and chip.shape[1] == size:
        return chip
    interp = cv2.INTER_AREA if chip.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(chip, (size, size), interpolation=interp)


def center_crop(chip: np.ndarray, size: int) -> np.ndarray:
    """Central ``size``x``size`` region."""
    off_y, off_x = (chip.shape[0] - size) // 2, (chip.shape[1] - size) // 2
    return chip[off_y : off_y + size, off_x : off_x + size]


def to_gray(chip: np.ndarray) -> np.ndarray:
    """RGB → single-channel luminance (already-gray input is returned as is)."""
    return chip if chip.ndim == 2 else cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY)

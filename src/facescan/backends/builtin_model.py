"""What a built-in ONNX model expects as input, and the preprocessing that produces it.

Shared by training (building the data cache) and inference, so both frame, resize and
crop faces identically.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from facescan import crops


@dataclass(frozen=True)
class ModelSpec:
    """Input framing and outputs of one built-in model."""

    name: str
    file: str
    input_padding: float  # face padding of the chips the model was trained on
    resize: int  # chip is resized to resize x resize ...
    crop: int  # ... then centre-cropped to crop x crop
    channels: int  # 3 = RGB, 1 = grayscale
    outputs: dict[str, str] = field(default_factory=dict)  # attribute -> label-set name
    # the age head predicts whole years 0 … taxonomy.AGE_YEARS_TOP; the graph's "age" output sums them into
    # the age label set's groups, and its "age_years" output is the distribution over years
    age_years: bool = False


def prepare_input(chip: np.ndarray, spec: ModelSpec, padding_in: float, crop: bool = True) -> np.ndarray:
    """Turn a square RGB (or gray) chip with ``padding_in`` into the model's HxWxC uint8 input."""
    if chip.ndim == 2:
        chip = chip[:, :, None].repeat(3, axis=2)
    if chip.shape[0] != chip.shape[1]:
        side = min(chip.shape[:2])
        chip = crops.center_crop(chip, side)
    c = crops.reframe(chip, padding_in, spec.input_padding)
    c = crops.resize(c, spec.resize)
    if crop:
        c = crops.center_crop(c, spec.crop)
    if spec.channels == 1:
        c = crops.to_gray(c)[:, :, None]
    return np.ascontiguousarray(c)

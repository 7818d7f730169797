"""AffectNet: the annotation CSV (``training.csv`` / ``validation.csv``) + ``Manually_Annotated_Images/``.

Columns: subDirectory_filePath, face_x, face_y, face_width, face_height, facial_landmarks,
expression, valence, arousal. Expressions 0-7 are neutral, happy, sad, surprise, fear, disgust,
anger, contempt; 8-10 (none, uncertain, non-face) are left out. The 7-class view drops contempt.
"""

from __future__ import annotations

import csv
from pathlib import Path

from facescan import taxonomy
from facescan.datasets.base import Sample

_FILES = {"train": "training.csv", "val": "validation.csv", "validation": "validation.csv"}
_IMAGES = ("Manually_Annotated_Images", "Manually_Annotated/Manually_Annotated_Images", "")


def read_affectnet(root: Path, split: str, with_contempt: bool = True) -> list[Sample]:
    """Samples of one split, in the 8-class label set (or FER2013's 7 without contempt)."""
    root = Path(root)
    if split not in _FILES:
        raise ValueError(f"AffectNet split must be one of {', '.join(_FILES)}, not {split!r}")
    csv_path = root / _FILES[split]
    if not csv_path.exists():
        raise FileNotFoundError(f"{csv_path} not found (AffectNet layout: training.csv / validation.csv)")
    image_root = next((root / d for d in _IMAGES if (root / d).is_dir() and d), root)
    label_set = "affectnet8" if with_contempt else "fer7"
    samples = []
    with csv_path.open(newline="", encoding="utf-8") as f:
        for line, row in enumerate(csv.DictReader(f), start=2):
            try:
                code = int(row["expression"])
            except (KeyError, ValueError):
                raise ValueError(f"{csv_path}:{line}: expression {row.get('expression')!r} is not 0-10") from None
            if code > 7 or (code == 7 and not with_contempt):
                continue
            label = taxonomy.EMOTION_AFFECTNET8.labels[code]
            box = None
            if row.get("face_width"):
                box = tuple(float(row[k]) for k in ("face_x", "face_y", "face_width", "face_height"))
            rel = row["subDirectory_filePath"]
            samples.append(Sample(id=rel, path=image_root / rel, labels={"emotion": label},
                                  label_sets={"emotion": label_set}, box=box))
    return samples

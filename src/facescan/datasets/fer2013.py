"""FER2013, in either layout: the original ``fer2013.csv`` (emotion,pixels,Usage), or one folder per
class, ``<split>/<emotion>/*.png|jpg``."""

from __future__ import annotations

from pathlib import Path

from facescan.datasets.base import Sample, _check_label

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}


_USAGE = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}


def read_fer2013(root: Path, split: str) -> list[Sample]:
    """Samples of one split folder (class folder names are emotion names), or of ``fer2013.csv``."""
    csv_path = Path(root) if Path(root).is_file() else Path(root) / "fer2013.csv"
    if csv_path.is_file() and not (Path(root) / split).is_dir():
        return read_fer2013_csv(csv_path, split)
    split_dir = Path(root) / split
    if not split_dir.is_dir():
        raise FileNotFoundError(f"{split_dir} not found (FER2013 layout: <root>/<split>/<emotion>/<image>)")
    samples = []
    for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        label = _check_label("emotion", "fer7", class_dir.name, str(class_dir))
        for img in sorted(class_dir.iterdir()):
            if img.suffix.lower() in _IMAGE_SUFFIXES:
                samples.append(
                    Sample(id=f"{class_dir.name}/{img.name}", path=img, labels={"emotion": label},
                           label_sets={"emotion": "fer7"})
                )
    return samples


def read_fer2013_csv(path: Path, split: str) -> list[Sample]:
    """Rows of ``fer2013.csv`` whose Usage matches ``split`` (train / val = PublicTest / test = PrivateTest)."""
    import csv

    import numpy as np

    from facescan import taxonomy

    usage = _USAGE.get(split, split)
    samples = []
    with Path(path).open(newline="", encoding="utf-8") as f:
        for line, row in enumerate(csv.DictReader(f), start=2):
            if row.get("Usage") != usage:
                continue
            try:
                pixels = np.array(row["pixels"].split(), dtype=np.uint8).reshape(48, 48)
                label = taxonomy.FER2013_CSV_CODES[int(row["emotion"])]
            except (ValueError, IndexError, KeyError) as e:
                raise ValueError(f"{path}:{line}: not a FER2013 row ({e})") from None
            samples.append(Sample(id=f"{usage}/{line}", path=Path(path), labels={"emotion": label},
                                  label_sets={"emotion": "fer7"}, pixels=pixels))
    return samples

"""FairFace: ``fairface_label_{split}.csv`` (file,age,gender,race[,service_test]) + image folders."""

from __future__ import annotations

import csv
from pathlib import Path

from facescan.datasets.base import Sample, _check_label

_SETS = {"age": "age9", "gender": "gender", "race": "race7"}


def read_fairface(root: Path, split: str) -> list[Sample]:
    """Samples of one FairFace split; ``root`` holds the label CSVs and the image folders."""
    csv_path = Path(root) / f"fairface_label_{split}.csv"
    if not csv_path.exists():
        raise FileNotFoundError(f"{csv_path} not found (FairFace layout: fairface_label_<split>.csv)")
    samples = []
    with csv_path.open(newline="", encoding="utf-8") as f:
        for line, row in enumerate(csv.DictReader(f), start=2):
            where = f"{csv_path}:{line}"
            labels = {a: _check_label(a, s, row[a], where) for a, s in _SETS.items()}
            samples.append(Sample(id=row["file"], path=Path(root) / row["file"], labels=labels, label_sets=dict(_SETS)))
    return samples

"""Common sample type and the dataset registry."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facescan import taxonomy


@dataclass(frozen=True)
class Sample:
    """One image with its ground-truth labels (canonical taxonomy labels, by attribute).

    ``pixels`` holds the image itself for datasets stored as pixel tables (``fer2013.csv``);
    ``box`` (x, y, width, height) is the face in a larger image (AffectNet).
    """

    id: str
    path: Path
    labels: dict[str, str] = field(default_factory=dict)
    label_sets: dict[str, str] = field(default_factory=dict)
    exact_age: float | None = None
    pixels: np.ndarray | None = field(default=None, compare=False, repr=False)
    box: tuple[float, float, float, float] | None = None

    @property
    def source(self):
        """What the analyzer reads: the pixels when the dataset holds them, else the file."""
        return self.pixels if self.pixels is not None else self.path


def _fairface(root: Path, split: str) -> list[Sample]:
    from facescan.datasets.fairface import read_fairface

    return read_fairface(root, split)


def _fer2013(root: Path, split: str) -> list[Sample]:
    from facescan.datasets.fer2013 import read_fer2013

    return read_fer2013(root, split)


def _utkface(root: Path, split: str) -> list[Sample]:
    from facescan.datasets.utkface import read_utkface

    return read_utkface(root, split)


def _affectnet(root: Path, split: str) -> list[Sample]:
    from facescan.datasets.affectnet import read_affectnet

    return read_affectnet(root, split, with_contempt=True)


def _affectnet7(root: Path, split: str) -> list[Sample]:
    from facescan.datasets.affectnet import read_affectnet

    return read_affectnet(root, split, with_contempt=False)


def _rafdb(root: Path, split: str) -> list[Sample]:
    from facescan.datasets.rafdb import read_rafdb

    return read_rafdb(root, split)


def _csv(root: Path, split: str) -> list[Sample]:
    from facescan.datasets.generic import read_csv

    return read_csv(root, split)


def _imagefolder(root: Path, split: str) -> list[Sample]:
    from facescan.datasets.generic import read_imagefolder

    return read_imagefolder(root, split)


DATASET_KINDS: dict[str, Callable[[Path, str], list[Sample]]] = {
    "fairface": _fairface,
    "fer2013": _fer2013,
    "utkface": _utkface,
    "affectnet": _affectnet,
    "affectnet7": _affectnet7,
    "rafdb": _rafdb,
    "csv": _csv,
    "imagefolder": _imagefolder,
}


def open_dataset(spec: str, split: str, limit: int | None = None, seed: int = 0,
                 stratify: str | None = None) -> list[Sample]:
    """Read ``KIND:PATH`` (e.g. ``fairface:../shared/data/fairface``) for one split.

    ``limit`` keeps a seeded random sample of that many items; with ``stratify`` (an attribute,
    or ``race,gender`` for their combination) the sample takes every group in proportion.
    """
    kind, sep, path = spec.partition(":")
    if not sep or kind not in DATASET_KINDS:
        raise ValueError(f"dataset spec {spec!r} must be KIND:PATH with KIND one of {', '.join(DATASET_KINDS)}")
    root = Path(path).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"dataset folder {root} does not exist")
    samples = DATASET_KINDS[kind](root, split)
    if limit is not None and limit < len(samples):
        samples = subsample(samples, limit, seed, stratify)
    return samples


def subsample(samples: list[Sample], limit: int, seed: int = 0, stratify: str | None = None) -> list[Sample]:
    """A seeded sample of ``limit`` items (in dataset order), stratified by ``stratify`` when given."""
    rng = random.Random(seed)
    if not stratify:
        keep = set(rng.sample(range(len(samples)), limit))
        return [s for i, s in enumerate(samples) if i in keep]
    keys = [a.strip() for a in stratify.split(",")]
    missing = [k for k in keys if any(k not in s.labels for s in samples)]
    if missing:
        raise ValueError(f"cannot stratify by {', '.join(missing)}: not labelled in this dataset")
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, s in enumerate(samples):
        groups[tuple(s.labels[k] for k in keys)].append(i)
    # largest-remainder allocation: each group gets its share of ``limit``, rounded fairly
    shares = {g: limit * len(idx) / len(samples) for g, idx in groups.items()}
    counts = {g: int(v) for g, v in shares.items()}
    for g in sorted(shares, key=lambda g: shares[g] - counts[g], reverse=True)[: limit - sum(counts.values())]:
        counts[g] += 1
    keep = set()
    for g, idx in sorted(groups.items()):
        keep.update(rng.sample(idx, counts[g]))
    return [s for i, s in enumerate(samples) if i in keep]


def _check_label(attribute: str, set_name: str, value: str, where: str) -> str:
    try:
        return taxonomy.canonical(set_name, value)
    except ValueError as e:
        raise ValueError(f"{where}: bad {attribute} label: {e}") from None

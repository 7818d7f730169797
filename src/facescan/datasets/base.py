"""Common sample type and the dataset registry."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facescan import taxonomy
from facescan.registry import Registry


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
        """What the analyzer reads: the dataset's pixels, the face chip cut around ``box``, or the file."""
        if self.pixels is not None:
            return self.pixels
        if self.box is not None:
            from facescan.crops import box_chip
            from facescan.imageio import load_image

            return box_chip(load_image(self.path).pixels, self.box)
        return self.path


DATASET_KINDS = Registry("dataset")
DATASET_KINDS.register("fairface", "facescan.datasets.fairface:read_fairface", "FairFace CSV + crops")
DATASET_KINDS.register("fer2013", "facescan.datasets.fer2013:read_fer2013", "FER2013 folders or fer2013.csv")
DATASET_KINDS.register("utkface", "facescan.datasets.utkface:read_utkface", "UTKFace crops, labels in file names")
DATASET_KINDS.register("affectnet", "facescan.datasets.affectnet:read_affectnet", "AffectNet, 8 expressions",
                       with_contempt=True)
DATASET_KINDS.register("affectnet7", "facescan.datasets.affectnet:read_affectnet", "AffectNet without contempt",
                       with_contempt=False)
DATASET_KINDS.register("rafdb", "facescan.datasets.rafdb:read_rafdb", "RAF-DB basic, official layout")
DATASET_KINDS.register("csv", "facescan.datasets.generic:read_csv", "a CSV of paths and labels")
DATASET_KINDS.register("imagefolder", "facescan.datasets.generic:read_imagefolder", "one folder per label")


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
    samples = DATASET_KINDS.factory(kind)(root, split, **DATASET_KINDS[kind].fixed)
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

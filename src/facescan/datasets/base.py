"""Common sample type and the dataset registry."""

from __future__ import annotations

import inspect
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facescan import taxonomy
from facescan.registry import Registry, parse_query


@dataclass(frozen=True)
class Sample:
    """One image with its ground-truth labels (canonical taxonomy labels, by attribute).

    ``pixels`` holds the image itself for datasets stored as pixel tables (``fer2013.csv``);
    ``box`` (x, y, width, height) is the face in a larger image (AffectNet); ``video`` marks a clip
    (a video file, or a folder of one clip's frames) whose labels hold for the whole clip (DFEW, RAVDESS…).
    """

    id: str
    path: Path
    labels: dict[str, str] = field(default_factory=dict)
    label_sets: dict[str, str] = field(default_factory=dict)
    exact_age: float | None = None
    pixels: np.ndarray | None = field(default=None, compare=False, repr=False)
    box: tuple[float, float, float, float] | None = None
    video: bool = False

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
DATASET_KINDS.register("dfew", "facescan.datasets.dfew:read_dfew", "DFEW clips, 5-fold single-label splits")
DATASET_KINDS.register("afew", "facescan.datasets.afew:read_afew", "AFEW (EmotiW) clips, one folder per emotion")
DATASET_KINDS.register("ravdess", "facescan.datasets.ravdess:read_ravdess", "RAVDESS clips, labels in file names")
DATASET_KINDS.register("mafw", "facescan.datasets.mafw:read_mafw", "MAFW clips, 5-fold splits")
DATASET_KINDS.register("csv", "facescan.datasets.generic:read_csv", "a CSV of paths and labels")
DATASET_KINDS.register("imagefolder", "facescan.datasets.generic:read_imagefolder", "one folder per label")


class Samples(list):
    """A reader's samples, and what it left out: ``excluded`` counts the items of each reason
    (``"RAVDESS calm (code 02) has no counterpart among the 7 basic emotions …"`` → 192), for the report."""

    def __init__(self, items=(), excluded: dict[str, int] | None = None):
        super().__init__(items)
        self.excluded: dict[str, int] = dict(excluded or {})


#: Video files a clip dataset may hold: the suffixes :mod:`facescan.video` reads (datasets sit below it).
CLIP_SUFFIXES: tuple[str, ...] = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")


def open_dataset(spec: str, split: str, limit: int | None = None, seed: int = 0,
                 stratify: str | None = None) -> list[Sample]:
    """Read ``KIND:PATH`` (e.g. ``fairface:../shared/data/fairface``) for one split.

    ``KIND:PATH?key=value`` passes options to readers that take them (``dfew:DFEW?fold=2``).
    ``limit`` keeps a seeded random sample of that many items; with ``stratify`` (an attribute,
    or ``race,gender`` for their combination) the sample takes every group in proportion.
    The result is a :class:`Samples` list: its ``excluded`` counts what the reader left out (of the
    whole split, before any sampling).
    """
    kind, sep, path = spec.partition(":")
    if not sep or kind not in DATASET_KINDS:
        raise ValueError(f"dataset spec {spec!r} must be KIND:PATH with KIND one of {', '.join(DATASET_KINDS)}")
    options: dict[str, str] = {}
    if "?" in path and not Path(path).expanduser().exists():
        path, query = path.split("?", 1)
        options = parse_query(query, spec)
    root = Path(path).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"dataset folder {root} does not exist")
    reader = DATASET_KINDS.factory(kind)
    _check_options(kind, reader, options)
    samples = reader(root, split, **DATASET_KINDS[kind].fixed, **options)
    excluded = getattr(samples, "excluded", {})
    if limit is not None and limit < len(samples):
        samples = subsample(samples, limit, seed, stratify)
    return Samples(samples, excluded)


def _check_options(kind: str, reader, options: dict[str, str]) -> None:
    """Refuse options the reader does not take, naming those it does."""
    if not options:
        return
    fixed = set(DATASET_KINDS[kind].fixed)
    params = [p.name for p in list(inspect.signature(reader).parameters.values())[2:] if p.name not in fixed
              and p.kind == p.POSITIONAL_OR_KEYWORD]
    unknown = [k for k in options if k not in params]
    if unknown:
        known = f"its options: {', '.join(params)}" if params else "it takes none"
        raise ValueError(f"the {kind} dataset has no option {', '.join(map(repr, unknown))} ({known})")


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


# --- clip datasets ----------------------------------------------------------------------------
def basic_emotion(dataset: str, label: str, excluded: Counter) -> str | None:
    """The basic emotion (``fer7``) of a clip dataset's official ``label`` (see
    :data:`facescan.taxonomy.CLIP_EMOTIONS`); None for a label without one, counted in ``excluded``
    under the reason the taxonomy gives. ValueError for a label the dataset does not have."""
    emotions = taxonomy.CLIP_EMOTIONS[dataset]
    basic = emotions.to_basic(label)
    if basic is None:
        excluded[emotions.excluded[emotions.label(label)]] += 1
    return basic


def clip_sample(root: Path, path: Path, emotion: str, **labels: str) -> Sample:
    """A clip labelled with a basic emotion (and e.g. ``gender``), its id the path below ``root``."""
    sets = {"emotion": "fer7", **{a: taxonomy.DEFAULT_LABEL_SETS[a].name for a in labels}}
    return Sample(id=path.relative_to(root).as_posix(), path=path, labels={"emotion": emotion, **labels},
                  label_sets=sets, video=True)


def fold_number(fold: str | int, dataset: str, folds: int = 5) -> int:
    """A cross-validation fold given as an option (``?fold=2``), checked to be 1…``folds``."""
    try:
        n = int(fold)
    except (TypeError, ValueError):
        n = 0
    if not 1 <= n <= folds:
        raise ValueError(f"{dataset} fold must be 1-{folds}, not {fold!r}")
    return n


def find_clip(folder: Path, stem: str) -> Path:
    """The clip named ``stem`` in ``folder``: a folder of its frames, or a video file of any known suffix
    (``stem.mp4`` when there is none: the evaluation then reports it missing, and goes on)."""
    if (folder / stem).is_dir():
        return folder / stem
    for suffix in CLIP_SUFFIXES:
        if (folder / f"{stem}{suffix}").is_file():
            return folder / f"{stem}{suffix}"
    return folder / f"{stem}.mp4"

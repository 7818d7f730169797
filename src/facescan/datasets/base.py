"""Common sample type and the dataset registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from facescan import taxonomy


@dataclass(frozen=True)
class Sample:
    """One image with its ground-truth labels (canonical taxonomy labels, by attribute)."""

    id: str
    path: Path
    labels: dict[str, str] = field(default_factory=dict)
    label_sets: dict[str, str] = field(default_factory=dict)
    exact_age: float | None = None


def _fairface(root: Path, split: str) -> list[Sample]:
    from facescan.datasets.fairface import read_fairface

    return read_fairface(root, split)


def _fer2013(root: Path, split: str) -> list[Sample]:
    from facescan.datasets.fer2013 import read_fer2013

    return read_fer2013(root, split)


DATASET_KINDS: dict[str, Callable[[Path, str], list[Sample]]] = {
    "fairface": _fairface,
    "fer2013": _fer2013,
}


def open_dataset(spec: str, split: str) -> list[Sample]:
    """Read ``KIND:PATH`` (e.g. ``fairface:../shared/data/fairface``) for one split."""
    kind, sep, path = spec.partition(":")
    if not sep or kind not in DATASET_KINDS:
        raise ValueError(f"dataset spec {spec!r} must be KIND:PATH with KIND one of {', '.join(DATASET_KINDS)}")
    root = Path(path).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"dataset folder {root} does not exist")
    return DATASET_KINDS[kind](root, split)


def _check_label(attribute: str, set_name: str, value: str, where: str) -> str:
    try:
        return taxonomy.canonical(set_name, value)
    except ValueError as e:
        raise ValueError(f"{where}: bad {attribute} label: {e}") from None

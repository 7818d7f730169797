"""Your own data: a CSV of image paths and labels, or an ImageFolder (one folder per label).

CSV (``csv:labels.csv``): a column ``path`` (or ``file`` / ``image``) relative to the CSV's folder,
and any of ``age``, ``gender``, ``race``, ``emotion``. Each column's label set is the first of that
attribute's sets that names every value (official spellings accepted); a numeric ``age`` column is
exact ages, binned into FairFace's 9 groups. ``split``: rows whose ``split`` column equals it, or all
rows when the CSV has no such column.

ImageFolder (``imagefolder:ROOT``): ``ROOT/<split>/<label>/<image>`` (or ``ROOT/<label>/<image>``);
the attribute and label set are those that name every folder.
"""

from __future__ import annotations

import csv
from pathlib import Path

from facescan import taxonomy
from facescan.datasets.base import Sample

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


def _label_set_for(attribute: str, values: set[str]) -> str:
    for ls in taxonomy.LABEL_SETS.values():
        if ls.attribute != attribute:
            continue
        try:
            for v in values:
                taxonomy.canonical(ls, v)
        except ValueError:
            continue
        return ls.name
    raise ValueError(f"no {attribute} label set names all of: {', '.join(sorted(values)[:10])}")


def read_csv(path: Path, split: str) -> list[Sample]:
    """Samples from a labels CSV (see the module docstring)."""
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path} has no rows")
    path_col = next((c for c in ("path", "file", "image") if c in rows[0]), None)
    if path_col is None:
        raise ValueError(f"{path} needs a path, file or image column")
    if "split" in rows[0]:
        rows = [r for r in rows if r["split"] == split]
    attrs = [a for a in taxonomy.ATTRIBUTES if a in rows[0]]
    exact_age = "age" in attrs and all(r["age"].replace(".", "", 1).isdigit() for r in rows if r["age"])
    sets = {a: ("age9" if a == "age" and exact_age else _label_set_for(a, {r[a] for r in rows if r[a]}))
            for a in attrs}
    samples = []
    for r in rows:
        labels = {}
        for a in attrs:
            if not r[a]:
                continue
            labels[a] = taxonomy.age_to_group(float(r[a]), "age9") if a == "age" and exact_age else \
                taxonomy.canonical(sets[a], r[a])
        samples.append(Sample(id=r[path_col], path=path.parent / r[path_col], labels=labels, label_sets=dict(sets),
                              exact_age=float(r["age"]) if exact_age and r["age"] else None))
    return samples


def read_imagefolder(root: Path, split: str) -> list[Sample]:
    """Samples from class folders (see the module docstring)."""
    root = Path(root)
    folder = root / split if (root / split).is_dir() else root
    classes = sorted(p for p in folder.iterdir() if p.is_dir())
    if not classes:
        raise ValueError(f"{folder} has no class folders")
    names = {c.name for c in classes}
    for attribute in taxonomy.ATTRIBUTES:
        try:
            set_name = _label_set_for(attribute, names)
            break
        except ValueError:
            continue
    else:
        raise ValueError(f"no label set names every folder of {folder}: {', '.join(sorted(names))}")
    samples = []
    for c in classes:
        label = taxonomy.canonical(set_name, c.name)
        for img in sorted(c.iterdir()):
            if img.suffix.lower() in _IMAGE_SUFFIXES:
                samples.append(Sample(id=f"{c.name}/{img.name}", path=img, labels={attribute: label},
                                      label_sets={attribute: set_name}))
    return samples

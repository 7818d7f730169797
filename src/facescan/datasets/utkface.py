"""UTKFace: labels in file names, ``age_gender_race_datetime.jpg.chip.jpg`` (aligned & cropped faces).

gender 0 = male, 1 = female; race 0-4 = White, Black, Asian, Indian, Others. UTKFace has no
official split: ``split`` names a subfolder when there is one (e.g. ``UTKFace/``, ``part1/``),
``all`` reads every image under the root.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

from facescan import taxonomy
from facescan.datasets.base import Sample

_NAME = re.compile(r"^(\d+)_([01])_([0-4])_\d+")
_SETS = {"age": "age9", "gender": "gender", "race": "race5_utk"}


def read_utkface(root: Path, split: str) -> list[Sample]:
    """Every well-named UTKFace image; malformed names are skipped with a warning naming them."""
    folder = Path(root) if split in ("all", "") else Path(root) / split
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} not found (UTKFace: a folder of age_gender_race_date.jpg.chip.jpg)")
    samples, bad = [], []
    for path in sorted(folder.rglob("*.jpg")):
        m = _NAME.match(path.name)
        if not m:
            bad.append(path.name)
            continue
        age, gender, race = int(m.group(1)), int(m.group(2)), int(m.group(3))
        labels = {"age": taxonomy.age_to_group(age, "age9"), "gender": taxonomy.GENDER.labels[gender],
                  "race": taxonomy.RACE_UTKFACE5.labels[race]}
        samples.append(Sample(id=str(path.relative_to(root)), path=path, labels=labels, label_sets=dict(_SETS),
                              exact_age=float(age)))
    if bad:
        warnings.warn(f"UTKFace: skipped {len(bad)} file(s) whose names carry no labels: {', '.join(bad[:5])}",
                      stacklevel=2)
    return samples

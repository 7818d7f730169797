"""MAFW (a Multi-modal, compound Affective database for dynamic facial expression recognition in the Wild)::

    data/clips/00001.mp4 …                                        the clips
    Train & Test Set/single/no_caption/set_1/train.txt, test.txt  "00025.mp4 anger", folds set_1 … set_5
    Train & Test Set/compound/no_caption/set_1/…                  "00031.mp4 anger_disgust"

The 11 single labels are anger, disgust, fear, happiness, neutral, sadness, surprise, contempt, anxiety,
helplessness and disappointment; the last four have no basic emotion, and a compound label (several
emotions joined by ``_``) has no single one: those clips are left out and counted (see
:data:`facescan.taxonomy.CLIP_EMOTIONS`). ``split`` is train or test (val reads test) of fold ``fold``
(``mafw:PATH?fold=2``; default 1) of the ``subset`` ``single`` (default) or ``compound``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from facescan import taxonomy
from facescan.datasets.base import Samples, basic_emotion, clip_sample, find_clip, fold_number

_PARTS = {"train": "train", "test": "test", "val": "test"}
_SPLIT_ROOTS = ("Train & Test Set", "*/Train & Test Set")
_CLIP_FOLDERS = ("data/clips", "clips")


def read_mafw(root: Path, split: str, fold: str = "1", subset: str = "single") -> Samples:
    """The clips of one fold's train or test list, labelled with their basic emotion."""
    root = Path(root)
    part = _PARTS.get(split)
    if part is None:
        raise ValueError(f"MAFW split must be train or test (val reads test), not {split!r}")
    if subset not in ("single", "compound"):
        raise ValueError(f"MAFW subset must be single or compound, not {subset!r}")
    rel = Path(subset) / "no_caption" / f"set_{fold_number(fold, 'MAFW')}" / f"{part}.txt"
    list_path = next((d / rel for pattern in _SPLIT_ROOTS for d in sorted(root.glob(pattern)) if (d / rel).is_file()),
                     None)
    if list_path is None:
        raise FileNotFoundError(f"{root / _SPLIT_ROOTS[0] / rel} not found (MAFW layout: "
                                "'Train & Test Set/<single|compound>/no_caption/set_N/<train|test>.txt' + data/clips/)")
    clip_dir = next((root / d for d in _CLIP_FOLDERS if (root / d).is_dir()), None)
    if clip_dir is None:
        raise FileNotFoundError(f"no MAFW clips under {root}: expected {' or '.join(_CLIP_FOLDERS)}")
    excluded: Counter = Counter()
    samples = []
    for line_no, line in enumerate(list_path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            name, label = line.split()[:2]
        except ValueError:
            raise ValueError(f"{list_path}:{line_no}: expected 'CLIP LABEL', got {line!r}") from None
        if "_" in label:
            excluded[taxonomy.COMPOUND_EXCLUDED] += 1
            continue
        try:
            emotion = basic_emotion("mafw", label, excluded)
        except ValueError as e:
            raise ValueError(f"{list_path}:{line_no}: {e}") from None
        if emotion is not None:
            samples.append(clip_sample(root, find_clip(clip_dir, Path(name).stem), emotion))
    return Samples(samples, excluded)

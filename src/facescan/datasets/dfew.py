"""DFEW (Dynamic Facial Expression in the Wild), in its released layout::

    EmoLabel_DataSplit/train(single-labeled)/set_1.csv … set_5.csv    video_name,label
    EmoLabel_DataSplit/test(single-labeled)/set_1.csv … set_5.csv
    Clip/original/00001.mp4 …                          the clips
    Clip/clip_224x224/00001/…jpg                       or the aligned faces: one folder of frames per clip
    Clip/clip_224x224_16f/00001/00001_1.jpg …          (16 frames per clip, time-interpolated)

Labels 1-7 are happy, sad, neutral, angry, surprise, disgust, fear: all seven basic emotions, so no clip
is left out. ``split`` is train or test (val reads test) of the 5-fold cross-validation's fold ``fold``
(``dfew:PATH?fold=2``; default 1). Clips come from the first of ``Clip/original``, ``Clip/clip_224x224``
and ``Clip/clip_224x224_16f`` that exists, or from the folder ``clips`` names (``?clips=Clip/clip_224x224``).
A ``video_name`` of digits is the zero-padded clip name (``1`` → ``00001``).
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

from facescan import taxonomy
from facescan.datasets.base import Samples, basic_emotion, clip_sample, find_clip, fold_number

_PARTS = {"train": "train", "test": "test", "val": "test"}
CLIP_FOLDERS = ("Clip/original", "Clip/clip_224x224", "Clip/clip_224x224_16f")


def read_dfew(root: Path, split: str, fold: str = "1", clips: str = "") -> Samples:
    """The clips of one fold's train or test list, labelled with their basic emotion."""
    root = Path(root)
    part = _PARTS.get(split)
    if part is None:
        raise ValueError(f"DFEW split must be train or test (val reads test), not {split!r}")
    csv_path = _split_file(root, part, fold_number(fold, "DFEW"))
    clip_dir = _clip_folder(root, clips)
    excluded: Counter = Counter()
    samples = []
    with csv_path.open(newline="", encoding="utf-8-sig") as f:
        for line, row in enumerate(csv.DictReader(f), start=2):
            name = str(row.get("video_name") or "").strip()
            try:
                if not name:
                    raise ValueError("no video_name")
                label = taxonomy.CLIP_EMOTIONS["dfew"].by_code(int(str(row.get("label")).strip()))
            except (TypeError, ValueError) as e:
                raise ValueError(f"{csv_path}:{line}: expected video_name,label (1-7), got {dict(row)} ({e})") from None
            emotion = basic_emotion("dfew", label, excluded)
            if emotion is None:
                continue
            stem = name.zfill(5) if name.isdigit() else Path(name).stem
            samples.append(clip_sample(root, find_clip(clip_dir, stem), emotion))
    return Samples(samples, excluded)


def _split_file(root: Path, part: str, fold: int) -> Path:
    """``EmoLabel_DataSplit/<part>(single-labeled)/set_<fold>.csv`` (the README spells it single_labeled too)."""
    split_dir = root / "EmoLabel_DataSplit"
    wanted = f"{part}(single-labeled)"
    folders = [d for d in split_dir.iterdir() if d.is_dir() and d.name.lower().replace("_", "-") == wanted] \
        if split_dir.is_dir() else []
    for d in folders:
        if (d / f"set_{fold}.csv").is_file():
            return d / f"set_{fold}.csv"
    raise FileNotFoundError(f"{split_dir / wanted / f'set_{fold}.csv'} not found (DFEW layout: "
                            "EmoLabel_DataSplit/{train,test}(single-labeled)/set_1.csv … set_5.csv + Clip/)")


def _clip_folder(root: Path, clips: str) -> Path:
    if clips:
        folder = root / clips
        if not folder.is_dir():
            raise FileNotFoundError(f"DFEW clip folder {folder} not found")
        return folder
    for rel in CLIP_FOLDERS:
        if (root / rel).is_dir():
            return root / rel
    raise FileNotFoundError(f"no DFEW clips under {root}: expected one of {', '.join(CLIP_FOLDERS)}")

"""AFEW (Acted Facial Expressions in the Wild, the EmotiW video challenge), in its released layout::

    Train_AFEW/Angry/000046280.avi …    one folder per emotion: Angry, Disgust, Fear, Happy, Neutral, Sad, Surprise
    Val_AFEW/Happy/…avi

(``Train/`` and ``Val/`` are read too.) The seven emotions are the basic seven, so no clip is left out;
other folders beside them (``AlignedFaces_LBPTOP_Points``…) are not clips and are ignored. ``split`` is
train or val: the test set's labels were never released.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from facescan import taxonomy
from facescan.datasets.base import CLIP_SUFFIXES, Samples, basic_emotion, clip_sample

_FOLDERS = {"train": ("Train_AFEW", "Train", "train"), "val": ("Val_AFEW", "Val", "val")}


def read_afew(root: Path, split: str) -> Samples:
    """The clips of the train or val folder, labelled by their emotion folder."""
    root = Path(root)
    if split not in _FOLDERS:
        raise ValueError(f"AFEW split must be train or val (the test labels are not public), not {split!r}")
    folder = next((root / d for d in _FOLDERS[split] if (root / d).is_dir()), None)
    if folder is None:
        raise FileNotFoundError(f"no {' or '.join(_FOLDERS[split])} folder in {root} "
                                "(AFEW layout: Train_AFEW/<Emotion>/*.avi, Val_AFEW/<Emotion>/*.avi)")
    emotions = taxonomy.CLIP_EMOTIONS["afew"]
    classes = [d for d in sorted(folder.iterdir()) if d.is_dir() and d.name.lower() in
               {e.lower() for e in emotions.labels}]
    if not classes:
        raise ValueError(f"{folder} has no emotion folders ({', '.join(emotions.labels)})")
    excluded: Counter = Counter()
    samples = []
    for class_dir in classes:
        emotion = basic_emotion("afew", class_dir.name, excluded)
        for clip in sorted(class_dir.iterdir()):
            if emotion is not None and clip.is_file() and clip.suffix.lower() in CLIP_SUFFIXES:
                samples.append(clip_sample(root, clip, emotion))
    return Samples(samples, excluded)

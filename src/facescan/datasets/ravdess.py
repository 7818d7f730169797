"""RAVDESS (the Ryerson Audio-Visual Database of Emotional Speech and Song), labels in file names::

    Actor_01/01-01-03-02-01-01-01.mp4 …    MM-VC-EE-II-SS-RR-AA (every part two digits)

MM modality (01 full-AV, 02 video-only, 03 audio-only), VC vocal channel (01 speech, 02 song), EE emotion
(01 neutral, 02 calm, 03 happy, 04 sad, 05 angry, 06 fearful, 07 disgust, 08 surprised), II intensity,
SS statement, RR repetition, AA actor (01-24; odd-numbered actors are male, even-numbered female, which
gives each clip a ``gender`` label too).

What is left out, and counted: audio-only files (nothing to see); the video-only copy (02) of a recording
that also has its full-AV file (01): both hold the same frames, so each recording is evaluated once;
calm, which is not one of the 7 basic emotions (see :data:`facescan.taxonomy.CLIP_EMOTIONS`). RAVDESS has
no official split: ``all`` reads every file under the root, another ``split`` names a subfolder (``Actor_01``).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from facescan import taxonomy
from facescan.datasets.base import CLIP_SUFFIXES, Samples, basic_emotion, clip_sample

_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)\.[A-Za-z0-9]+$")
AUDIO_ONLY = "RAVDESS audio-only files (modality 03): no video to analyze"
SAME_FRAMES = "RAVDESS video-only copies (modality 02) of full-AV clips (01): the same frames, evaluated once"


def read_ravdess(root: Path, split: str) -> Samples:
    """One clip per recording (full-AV preferred), labelled with its basic emotion and the actor's gender."""
    root = Path(root)
    folder = root if split in ("all", "") else root / split
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} not found (RAVDESS has no official split: --split all reads every "
                                "Actor_XX folder, or name one)")
    excluded: Counter = Counter()
    recordings: dict[str, dict[str, Path]] = {}
    for path in sorted(p for p in folder.rglob("*") if _NAME.match(p.name) and p.is_file()):
        modality, *rest = _NAME.match(path.name).groups()
        if modality == "03":
            excluded[AUDIO_ONLY] += 1
        elif modality in ("01", "02") and path.suffix.lower() in CLIP_SUFFIXES:
            recordings.setdefault("-".join(rest), {})[modality] = path
        elif modality not in ("01", "02"):
            raise ValueError(f"{path}: modality {modality} is not 01 (full-AV), 02 (video-only) or 03 (audio-only)")
    emotions = taxonomy.CLIP_EMOTIONS["ravdess"]
    samples = []
    for key, files in recordings.items():
        if len(files) > 1:
            excluded[SAME_FRAMES] += len(files) - 1
        path = files.get("01") or files["02"]
        _, code, _, _, _, actor = key.split("-")
        try:
            label = emotions.by_code(int(code))
            if not 1 <= int(actor) <= 24:
                raise ValueError(f"actor {actor} is not 01-24")
        except ValueError as e:
            raise ValueError(f"{path}: not a RAVDESS file name ({e})") from None
        emotion = basic_emotion("ravdess", label, excluded)
        if emotion is not None:
            samples.append(clip_sample(root, path, emotion, gender="male" if int(actor) % 2 else "female"))
    samples.sort(key=lambda s: s.id)
    return Samples(samples, excluded)

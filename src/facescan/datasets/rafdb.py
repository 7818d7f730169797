"""RAF-DB basic: ``EmoLabel/list_patition_label.txt`` (``train_00001.jpg 5``) + ``Image/aligned/``.

Labels 1-7 are surprise, fear, disgust, happy, sad, angry, neutral; ``split`` is train or test
(the file-name prefix).
"""

from __future__ import annotations

from pathlib import Path

from facescan import taxonomy
from facescan.datasets.base import Sample


def read_rafdb(root: Path, split: str) -> list[Sample]:
    """Samples of one split, reading the aligned images (``*_aligned.jpg``)."""
    root = Path(root)
    labels_path = root / "EmoLabel" / "list_patition_label.txt"
    if not labels_path.exists():
        raise FileNotFoundError(f"{labels_path} not found (RAF-DB basic layout: EmoLabel/ + Image/aligned/)")
    split = {"val": "test"}.get(split, split)
    samples = []
    for line_no, line in enumerate(labels_path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            name, code = line.split()
            label = taxonomy.EMOTION_RAFDB7.labels[int(code) - 1]
        except (ValueError, IndexError):
            raise ValueError(f"{labels_path}:{line_no}: expected 'FILE LABEL(1-7)', got {line!r}") from None
        if not name.startswith(split + "_"):
            continue
        stem = name.rsplit(".", 1)[0]
        samples.append(Sample(id=name, path=root / "Image" / "aligned" / f"{stem}_aligned.jpg",
                              labels={"emotion": label}, label_sets={"emotion": "rafdb7"}))
    return samples

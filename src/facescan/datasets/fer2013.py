"""FER2013 in the one-folder-per-class image layout: ``<split>/<emotion>/*.png|jpg``."""

from __future__ import annotations

from pathlib import Path

from facescan.datasets.base import Sample, _check_label

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}


def read_fer2013(root: Path, split: str) -> list[Sample]:
    """Samples of one split folder; class folder names are FER2013 emotion names."""
    split_dir = Path(root) / split
    if not split_dir.is_dir():
        raise FileNotFoundError(f"{split_dir} not found (FER2013 layout: <root>/<split>/<emotion>/<image>)")
    samples = []
    for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        label = _check_label("emotion", "fer7", class_dir.name, str(class_dir))
        for img in sorted(class_dir.iterdir()):
            if img.suffix.lower() in _IMAGE_SUFFIXES:
                samples.append(
                    Sample(id=f"{class_dir.name}/{img.name}", path=img, labels={"emotion": label},
                           label_sets={"emotion": "fer7"})
                )
    return samples

"""Instruction data for fine-tuning VLMs: (image, question, answer) records from any eval dataset,
and ExpLLM-style chain-of-thought targets for expressions built from measured action units.

Records are JSON lines (``{split}.jsonl``) that ``datasets.load_dataset("json", …)`` reads;
:func:`load_records` returns them as a ``datasets.Dataset`` with the image column decoded.
"""

from __future__ import annotations

import json
import random
import tomllib
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from facescan import taxonomy
from facescan.explain import chain_of_thought

RECORD_FIELDS = ("id", "image", "question", "answer", "attribute", "label", "label_set", "kind")


@dataclass(frozen=True)
class InstructionRecord:
    """One training example; ``kind`` is "answer" or "cot" (chain of thought)."""

    id: str
    image: str
    question: str
    answer: str
    attribute: str
    label: str
    label_set: str
    kind: str = "answer"


def phrasings() -> dict:
    path = Path(str(resources.files("facescan") / "prompts" / "instructions" / "phrasings.toml"))
    return tomllib.loads(path.read_text())


def question(attribute: str, label_set: str, k: int = 0) -> str:
    """Phrasing ``k`` (0 = the evaluation phrasing) of the question about ``attribute``."""
    ls = taxonomy.label_set(label_set)
    options = ", ".join(ls.pretty(lab) for lab in ls.labels)
    return phrasings()[attribute][k].format(options=options)


def answer_text(label: str, label_set: str) -> str:
    return taxonomy.label_set(label_set).pretty(label)


def build_records(dataset: str, split: str, out: Path, attributes: list[str] | None = None,
                  phrasings_per_item: int = 1, cot: bool = False, limit: int | None = None,
                  seed: int = 0, progress: bool = True) -> Path:
    """Write ``out/{split}.jsonl`` of instruction records (and chain-of-thought records for emotion
    when ``cot``); images the dataset holds as pixels or boxes are written under ``out/images``."""
    from PIL import Image

    from facescan.datasets import open_dataset

    samples = open_dataset(dataset, split, limit=limit, seed=seed)
    rng = random.Random(seed)
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    mesh = None
    if cot:
        from facescan.explain.aus import FaceMesh

        mesh = FaceMesh()
    n_phrasings = {a: len(v) for a, v in phrasings().items() if isinstance(v, list)}
    path = out / f"{split}.jsonl"
    items = samples
    if progress:
        from rich.progress import track

        items = track(samples, description=f"instruction records ({split})", transient=True)
    with path.open("w", encoding="utf-8") as f:
        for s in items:
            image = str(Path(s.path).resolve())
            if s.pixels is not None or s.box is not None:
                pixels = s.source  # the dataset's own pixels, or the face cut around its box
                safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in s.id)
                image = str((out / "images" / f"{safe}.png").resolve())
                Image.fromarray(pixels).save(image)
            for attr in attributes or list(s.labels):
                if attr not in s.labels:
                    continue
                set_name = s.label_sets[attr]
                extra = min(phrasings_per_item - 1, n_phrasings[attr] - 1)
                for k in [0, *rng.sample(range(1, n_phrasings[attr]), extra)]:
                    rec = InstructionRecord(s.id, image, question(attr, set_name, k),
                                            answer_text(s.labels[attr], set_name), attr, s.labels[attr], set_name)
                    f.write(json.dumps(asdict(rec)) + "\n")
                if cot and attr == "emotion":
                    from facescan.explain.aus import intensities
                    from facescan.imageio import load_image

                    points = mesh.landmarks(load_image(image).pixels)
                    if points is None:
                        continue  # no geometry, no chain of thought for this face
                    ls = taxonomy.label_set(set_name)
                    q = phrasings()["explain_emotion"].format(options=", ".join(ls.pretty(x) for x in ls.labels))
                    rec = InstructionRecord(s.id, image, q, chain_of_thought(intensities(points), s.labels[attr],
                                                                              set_name), attr, s.labels[attr],
                                            set_name, kind="cot")
                    f.write(json.dumps(asdict(rec)) + "\n")
    if mesh:
        mesh.close()
    return path


def load_records(path: Path):
    """The records of a JSONL file as a ``datasets.Dataset`` (image column decoded with PIL)."""
    from datasets import Image, load_dataset

    ds = load_dataset("json", data_files=str(path), split="train")
    return ds.cast_column("image", Image())

"""Runs side by side, and the paper-style table (backends × race, gender, age group, emotion)."""

from __future__ import annotations

import json
from pathlib import Path

from facescan import taxonomy

PAPER_COLUMNS = ("race", "gender", "age", "emotion")


def load_run(folder: Path) -> dict:
    path = Path(folder) / "metrics.json"
    if not path.exists():
        raise FileNotFoundError(f"{folder} is not a finished facescan eval run (no metrics.json)")
    return json.loads(path.read_text())


def compare_markdown(folders: list[Path]) -> str:
    """Markdown: one row per run, then one row per backend with its best-known number per attribute."""
    runs = [(Path(f), load_run(f)) for f in folders]
    lines = ["## Runs", "", "| run | backend | dataset | split | attribute | label set | n | accuracy | macro-F1 | "
             "invalid | largest group gap |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    paper: dict[str, dict[str, str]] = {}
    for folder, m in runs:
        ident = m["meta"]["identity"]
        for attr, a in m["attributes"].items():
            if not a.get("n"):
                continue
            gaps = [f["largest_gap"] for f in a["fairness"].values()]
            gap = f"{max(gaps):.3f}" if gaps else "–"
            lines.append(f"| {folder.name} | {ident['backend']} | {ident['dataset'].split(':')[0]} | {ident['split']} "
                         f"| {attr} | {a['label_set']} | {a['n']} | {a['accuracy']:.3f} | {a['macro_f1']:.3f} | "
                         f"{a['invalid_rate']:.3f} | {gap} |")
            cell = f"{100 * a['accuracy']:.1f} ({a['label_set']}, {ident['dataset'].split(':')[0]})"
            paper.setdefault(ident["backend"], {}).setdefault(attr, cell)
    lines += ["", "## Paper-style table (accuracy %, label set and dataset in brackets)", "",
              "| backend | " + " | ".join(taxonomy.label_set(c).attribute.replace("age", "age group")
                                          for c in PAPER_COLUMNS) + " |", "|---" * (len(PAPER_COLUMNS) + 1) + "|"]
    for backend, cells in paper.items():
        lines.append(f"| {backend} | " + " | ".join(cells.get(c, "–") for c in PAPER_COLUMNS) + " |")
    return "\n".join(lines) + "\n"

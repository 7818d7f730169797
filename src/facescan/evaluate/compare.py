"""Runs side by side, and the paper-style table (backends × race, gender, age group, emotion)."""

from __future__ import annotations

import json
from pathlib import Path

from facescan import taxonomy
from facescan.evaluate.report import fmt_number

PAPER_COLUMNS = ("race", "gender", "age", "emotion")


def load_run(folder: Path) -> dict:
    """A finished run's metrics; FileNotFoundError when there are none, ValueError when they cannot be read."""
    path = Path(folder) / "metrics.json"
    if not path.exists():
        raise FileNotFoundError(f"{folder} is not a finished facescan eval run (no metrics.json)")
    try:
        metrics = json.loads(path.read_text())
        ok = isinstance(metrics.get("attributes"), dict) and "backend" in metrics["meta"]["identity"]
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        ok, why = False, f"{type(e).__name__}: {e}"
    else:
        why = "not a facescan eval metrics file"
    if not ok:
        raise ValueError(f"{path} cannot be read ({why}); run facescan eval on {folder} again")
    return metrics


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
            gaps = [f["largest_gap"] for f in (a.get("fairness") or {}).values() if f.get("largest_gap") is not None]
            gap = fmt_number(max(gaps, default=None))
            kind = ident["dataset"].split(":")[0]
            lines.append(f"| {folder.name} | {ident['backend']} | {kind} | {ident['split']} | {attr} | "
                         f"{a['label_set']} | {a['n']} | {fmt_number(a.get('accuracy'))} | "
                         f"{fmt_number(a.get('macro_f1'))} | {fmt_number(a.get('invalid_rate'))} | {gap} |")
            cell = f"{fmt_number(100 * (a.get('accuracy') or 0), '.1f')} ({a['label_set']}, {kind})"
            paper.setdefault(ident["backend"], {}).setdefault(attr, cell)
    lines += ["", "## Paper-style table (accuracy %, label set and dataset in brackets)", "",
              "| backend | " + " | ".join(taxonomy.label_set(c).attribute.replace("age", "age group")
                                          for c in PAPER_COLUMNS) + " |", "|---" * (len(PAPER_COLUMNS) + 1) + "|"]
    for backend, cells in paper.items():
        lines.append(f"| {backend} | " + " | ".join(cells.get(c, "–") for c in PAPER_COLUMNS) + " |")
    return "\n".join(lines) + "\n"

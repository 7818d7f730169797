"""Runs side by side, and the paper-style table (backends × race, gender, age group, emotion)."""

from __future__ import annotations

import json
from pathlib import Path

from facescan import taxonomy
from facescan.evaluate.report import fmt_number, md_cell, widest

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


def cross_dataset_lines(runs: list[tuple[Path, dict]]) -> list[str]:
    """Trained on A, tested on B: a row per backend and attribute with the datasets its model was trained on,
    a column per dataset and split tested; accuracy % in the label set compared (UTKFace's five races are a
    coarser view of FairFace's seven), and the age error in years where the data has exact ages.
    A cell in bold is a test on a dataset the model was trained on (another split of it)."""
    columns: list[str] = []
    rows: dict[tuple[str, str], dict] = {}
    for _, m in runs:
        ident = m["meta"]["identity"]
        kind = str(ident.get("dataset") or "").split(":")[0] or "–"
        column = f"{kind} {ident.get('split') or ''}".strip()
        trained = (m["meta"].get("trained_on") or {})
        for attr, a in m["attributes"].items():
            if not a.get("n") or a.get("accuracy") is None:
                continue
            if column not in columns:
                columns.append(column)
            row = rows.setdefault((md_cell(ident.get("backend")), attr), {"trained": None, "cells": {}})
            row["trained"] = row["trained"] or trained.get(attr)
            cell = fmt_number(100 * a["accuracy"], ".1f")
            if a.get("mae_years") is not None:
                # a run scored before facescan measured the reported age took the group's middle year
                how = "" if "mae_years_midpoint" in a else " (group middles)"
                cell += f", MAE {a['mae_years']:.1f} y{how}"
            if kind in (trained.get(attr) or []):
                cell = f"**{cell}**"
            # two runs on one dataset and split (two models of one backend name, say): both are shown
            row["cells"].setdefault(column, []).append(f"{cell} ({md_cell(a.get('label_set'))}, n={a['n']})")
    if not rows:
        return []
    lines = ["", "## Cross-dataset: trained on → tested on (accuracy %; age MAE in years where ages are exact)", "",
             "| backend | attribute | trained on | " + " | ".join(columns) + " |", "|---" * (len(columns) + 3) + "|"]
    for (backend, attr), row in rows.items():
        trained = ", ".join(row["trained"]) if row["trained"] else "not known"
        lines.append(f"| {backend} | {attr} | {md_cell(trained)} | "
                     + " | ".join("; ".join(row["cells"].get(c, ["–"])) for c in columns) + " |")
    lines += ["", "Bold: tested on a dataset the model was trained on: another split of it, or, in a train column, "
              "largely the very images it learned from. The rest are tests on data from elsewhere. The age MAE is "
              "that of the age in years each face is reported with (`age_years`)."]
    return lines


def compare_markdown(folders: list[Path]) -> str:
    """Markdown: one row per run, then one row per backend with its best-known number per attribute.

    A run's largest group gap and equalized-odds difference are its largest over groupings, with their
    bootstrap intervals and the groups they cover: only groups of at least the run's minimum size count.
    """
    runs = [(Path(f), load_run(f)) for f in folders]
    lines = ["## Runs", "", "| run | backend | dataset | split | attribute | label set | n | accuracy | macro-F1 | "
             "invalid | largest group gap (95% CI) | equalized-odds diff. (95% CI) |", "|---" * 12 + "|"]
    paper: dict[str, dict[str, str]] = {}
    min_ns: set = set()
    for folder, m in runs:
        ident = m["meta"]["identity"]
        for attr, a in m["attributes"].items():
            if not a.get("n"):
                continue
            fairness = a.get("fairness") or {}
            min_ns |= {f["min_n"] for f in fairness.values() if f.get("min_n") is not None}
            kind = str(ident.get("dataset") or "").split(":")[0] or "–"
            lines.append(f"| {md_cell(folder.name)} | {md_cell(ident.get('backend'))} | {md_cell(kind)} | "
                         f"{md_cell(ident.get('split'))} | {md_cell(attr)} | {md_cell(a.get('label_set'))} | "
                         f"{a['n']} | {fmt_number(a.get('accuracy'))} | {fmt_number(a.get('macro_f1'))} | "
                         f"{fmt_number(a.get('invalid_rate'))} | {md_cell(widest(fairness))} | "
                         f"{md_cell(widest(fairness, 'equalized_odds_difference'))} |")
            accuracy = a.get("accuracy")
            percent = fmt_number(None if accuracy is None else 100 * accuracy, ".1f")
            cell = f"{percent} ({md_cell(a.get('label_set'))}, {md_cell(kind)})"
            paper.setdefault(md_cell(ident.get("backend")), {}).setdefault(attr, cell)
    if min_ns:
        lines += ["", "Gaps and equalized-odds differences cover only groups with at least "
                  + " / ".join(str(n) for n in sorted(min_ns)) + " items (each run's minimum); smaller groups "
                  "are too few to compare. In brackets: the grouping, and how many of its groups are compared."]
    lines += cross_dataset_lines(runs)
    lines += ["", "## Paper-style table (accuracy %, label set and dataset in brackets)", "",
              "| backend | " + " | ".join(taxonomy.label_set(c).attribute.replace("age", "age group")
                                          for c in PAPER_COLUMNS) + " |", "|---" * (len(PAPER_COLUMNS) + 1) + "|"]
    for backend, cells in paper.items():
        lines.append(f"| {backend} | " + " | ".join(cells.get(c, "–") for c in PAPER_COLUMNS) + " |")
    return "\n".join(lines) + "\n"

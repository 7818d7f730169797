"""Accuracy of the built-in backend on FairFace val and FER2013 val, with per-group breakdowns.

    python benchmarks/accuracy_builtin.py --data ../shared/data [--out results.json]

Runs the same pipeline as ``facescan analyze --crops`` over every val image. Prints accuracy
and macro-F1 per attribute, age within ±1 group, accuracy per race × gender group (and the
largest gap between groups), and per-class recall for emotion. Development numbers: part of
each evaluation split is held aside by the maintainers.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score, recall_score

from facescan import taxonomy
from facescan.datasets import open_dataset
from facescan.pipeline import Analyzer


def predict(spec: str, attributes: str, crop_padding: float, backend: str = "builtin"):
    samples = open_dataset(spec, "val")
    analyzer = Analyzer(backend=backend, attributes=attributes, crops=True, crop_padding=crop_padding)
    t0 = time.perf_counter()
    results = list(analyzer.analyze_many([s.path for s in samples], workers=2))
    seconds = time.perf_counter() - t0
    failed = [r for r in results if not r.ok]
    if failed:
        raise SystemExit(f"{len(failed)} images failed, e.g. {failed[0].error}")
    return samples, results, seconds


def attribute_scores(samples, results, attr: str) -> dict:
    ls = taxonomy.label_set(samples[0].label_sets[attr])
    y_true = np.array([ls.index(s.labels[attr]) for s in samples])
    y_pred = np.array([ls.index(r.faces[0].attributes[attr].label) for r in results])
    out = {
        "n": len(samples),
        "accuracy": float((y_true == y_pred).mean()),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro")),
        "recall_per_class": dict(zip(ls.labels, map(float, recall_score(y_true, y_pred, average=None,
                                                                         labels=range(len(ls)), zero_division=0)))),
    }
    if attr == "age":
        out["within_one_group"] = float((np.abs(y_true - y_pred) <= 1).mean())
    return out, y_true == y_pred


def group_table(samples, correct_by_attr: dict) -> dict:
    """Accuracy of each attribute per race × gender group (true labels), with the largest gap."""
    groups = defaultdict(list)
    for i, s in enumerate(samples):
        groups[(s.labels["race"], s.labels["gender"])].append(i)
    table = {}
    for (race, gender), idx in sorted(groups.items()):
        table[f"{race}/{gender}"] = {"n": len(idx), **{a: float(c[idx].mean()) for a, c in correct_by_attr.items()}}
    gaps = {}
    for a in correct_by_attr:
        vals = [row[a] for row in table.values()]
        gaps[a] = {"min": min(vals), "max": max(vals), "gap": max(vals) - min(vals)}
    return {"groups": table, "gaps": gaps}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--backend", default="builtin", help="builtin, or builtin:FOLDER for models being trained")
    args = ap.parse_args()
    data = Path(args.data)
    report = {}

    samples, results, secs = predict(f"fairface:{data / 'fairface'}", "age,gender,race", 0.25, args.backend)
    ff = {"seconds": secs}
    correct = {}
    for attr in ("race", "gender", "age"):
        ff[attr], correct[attr] = attribute_scores(samples, results, attr)
    ff["by_race_gender"] = group_table(samples, correct)
    report["fairface_val"] = ff

    samples, results, secs = predict(f"fer2013:{data / 'fer2013'}", "emotion", 0.25, args.backend)
    report["fer2013_val"] = {"seconds": secs}
    report["fer2013_val"]["emotion"], _ = attribute_scores(samples, results, "emotion")

    print(f"## FairFace val (n={ff['race']['n']}, {ff['seconds']:.1f} s)")
    print("| attribute | accuracy | macro-F1 | ±1 group |")
    print("|---|---|---|---|")
    for attr in ("race", "gender", "age"):
        r = ff[attr]
        pm1 = f"{r['within_one_group']:.3f}" if "within_one_group" in r else "–"
        print(f"| {attr} | {r['accuracy']:.3f} | {r['macro_f1']:.3f} | {pm1} |")
    for attr in ("race", "gender", "age"):
        recall = ", ".join(f"{k} {v:.3f}" for k, v in ff[attr]["recall_per_class"].items())
        print(f"recall per class, {attr}: {recall}")
    print("\n### accuracy per race × gender (true labels)")
    print("| group | n | race | gender | age |")
    print("|---|---|---|---|---|")
    for g, row in ff["by_race_gender"]["groups"].items():
        print(f"| {g} | {row['n']} | {row['race']:.3f} | {row['gender']:.3f} | {row['age']:.3f} |")
    for a, gap in ff["by_race_gender"]["gaps"].items():
        print(f"largest gap, {a}: {gap['gap']:.3f} (min {gap['min']:.3f}, max {gap['max']:.3f})")
    emo = report["fer2013_val"]["emotion"]
    print(f"\n## FER2013 val (n={emo['n']}, {report['fer2013_val']['seconds']:.1f} s)")
    print(f"emotion accuracy {emo['accuracy']:.3f}, macro-F1 {emo['macro_f1']:.3f}")
    print("recall per class: " + ", ".join(f"{k} {v:.3f}" for k, v in emo["recall_per_class"].items()))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

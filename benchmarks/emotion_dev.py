"""Expression accuracy of built-in emotion models, before and after, on the same faces in one run.

    python benchmarks/emotion_dev.py --data ../shared/data --backends builtin,builtin:/path/to/new/models

For each backend spec: accuracy, macro-F1 and recall per class on FER2013 val (PublicTest, all of it) and on
RAF-DB's development split: the 10 % of RAF-DB basic's train split that ``facescan train builtin … --also
rafdb:…`` keeps out of training (``facescan.train.builtin.development_split``: the same seeded permutation).
Every face runs through the pipeline as ``facescan analyze --crops`` does. Development numbers: RAF-DB's test
split and part of FER2013's are kept aside by the maintainers.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score, recall_score

from facescan import taxonomy
from facescan.datasets import open_dataset
from facescan.evaluate.metrics import expected_calibration_error
from facescan.pipeline import Analyzer
from facescan.train.builtin import development_split


def splits(data: Path) -> dict[str, list]:
    """The evaluated samples by name: FER2013 val, and RAF-DB's development part of its train split."""
    raf = open_dataset(f"rafdb:{data / 'rafdb' / 'basic'}", "train")
    dev, _ = development_split(len(raf))
    return {"fer2013 val": open_dataset(f"fer2013:{data / 'fer2013'}", "val"),
            "rafdb dev": [raf[i] for i in dev]}


def score(samples, results) -> dict:
    """Accuracy, macro-F1, recall per class and expected calibration error, in the model's label set (the
    data's labels mapped onto it)."""
    predicted = results[0].faces[0].attributes["emotion"].label_set
    labels = taxonomy.label_set(predicted).labels
    y_true = np.array([labels.index(taxonomy.map_label(s.labels["emotion"], s.label_sets["emotion"], predicted))
                       for s in samples])
    y_pred = np.array([labels.index(r.faces[0].attributes["emotion"].label) for r in results])
    recall = recall_score(y_true, y_pred, average=None, labels=range(len(labels)), zero_division=0)
    confidence = [r.faces[0].attributes["emotion"].probabilities[r.faces[0].attributes["emotion"].label]
                  for r in results]
    return {"n": len(samples), "accuracy": float((y_true == y_pred).mean()),
            "macro_f1": float(f1_score(y_true, y_pred, average="macro")),
            "ece": expected_calibration_error(confidence, y_true == y_pred),
            "recall": dict(zip(labels, map(float, recall)))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data", type=Path)
    ap.add_argument("--backends", default="builtin", help="comma-separated backend specs (builtin:FOLDER for "
                    "models being trained)")
    ap.add_argument("--out", type=Path, help="write the numbers as JSON")
    args = ap.parse_args()
    evaluated = splits(args.data)
    report: dict = {}
    for spec in args.backends.split(","):
        analyzer = Analyzer(backend=spec, attributes="emotion", crops=True)
        report[spec] = {}
        for name, samples in evaluated.items():
            t0 = time.perf_counter()
            results = list(analyzer.analyze_many([s.path for s in samples], workers=2))
            failed = [r for r in results if not r.ok]
            if failed:
                raise SystemExit(f"{spec}: {len(failed)} images failed, e.g. {failed[0].error}")
            report[spec][name] = {**score(samples, results), "seconds": round(time.perf_counter() - t0, 1)}
    names = list(evaluated)
    print("| backend | " + " | ".join(f"{n} accuracy | macro-F1 | ECE" for n in names) + " |")
    print("|---|" + "---|---|---|" * len(names))
    for spec, rows in report.items():
        cells = [f"{rows[n]['accuracy']:.3f} | {rows[n]['macro_f1']:.3f} | {rows[n]['ece']:.3f}" for n in names]
        print(f"| {spec} | " + " | ".join(cells) + " |")
    for spec, rows in report.items():
        for n in names:
            recall = ", ".join(f"{k} {v:.3f}" for k, v in rows[n]["recall"].items())
            print(f"recall per class, {spec}, {n} (n={rows[n]['n']}): {recall}")
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

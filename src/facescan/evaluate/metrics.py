"""Metrics of one attribute: accuracy, macro-F1, balanced accuracy, per-class precision/recall,
confusion matrix, age ±1 group and MAE, the invalid-answer rate, and bootstrap 95% intervals.

Invalid answers (no label) count as wrong everywhere: they are predictions of a class
``invalid`` that no item has, so they lower accuracy and recall and never raise precision.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from facescan import taxonomy

INVALID = "invalid"


def _encode(y_pred: Sequence[str | None]) -> list[str]:
    return [INVALID if p is None else p for p in y_pred]


def bootstrap_ci(values_fn, n: int, n_resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Percentile 95% interval of ``values_fn(indices)`` over ``n_resamples`` resamples of range(n)."""
    rng = np.random.default_rng(seed)
    stats = [values_fn(rng.integers(0, n, n)) for _ in range(n_resamples)]
    lo, hi = np.percentile(stats, [2.5, 97.5])
    return float(lo), float(hi)


def attribute_metrics(y_true: Sequence[str], y_pred: Sequence[str | None], label_set: str,
                      exact_ages: Sequence[float | None] | None = None, n_resamples: int = 1000,
                      seed: int = 0) -> dict:
    """Every metric of one attribute; labels are canonical labels of ``label_set``."""
    ls = taxonomy.label_set(label_set)
    labels = list(ls.labels)
    yt, yp = list(y_true), _encode(y_pred)
    n = len(yt)
    if n == 0:
        raise ValueError("no items to score")
    correct = np.array([t == p for t, p in zip(yt, yp)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred has classes not in y_true" (invalid) is expected
        balanced = balanced_accuracy_score(yt, yp)
    precision, recall, f1, support = precision_recall_fscore_support(yt, yp, labels=labels, zero_division=0)
    yt_arr, yp_arr = np.array(yt), np.array(yp)

    def macro_f1(idx):
        return f1_score(yt_arr[idx], yp_arr[idx], labels=labels, average="macro", zero_division=0)

    out = {
        "label_set": ls.name,
        "n": n,
        "accuracy": float(accuracy_score(yt, yp)),
        "accuracy_ci95": bootstrap_ci(lambda idx: correct[idx].mean(), n, n_resamples, seed),
        "macro_f1": float(f1_score(yt, yp, labels=labels, average="macro", zero_division=0)),
        "macro_f1_ci95": bootstrap_ci(macro_f1, n, min(n_resamples, 300), seed),
        "balanced_accuracy": float(balanced),
        "invalid_rate": float(np.mean([p == INVALID for p in yp])),
        "per_class": {lab: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                      for lab, p, r, f, s in zip(labels, precision, recall, f1, support)},
        "confusion": {"labels": labels + [INVALID],
                      "matrix": confusion_matrix(yt, yp, labels=labels + [INVALID]).tolist()},
    }
    if ls.attribute == "age" and ls.name in ("age9", "age5"):
        index = {lab: i for i, lab in enumerate(labels)}
        near = np.array([p != INVALID and abs(index[t] - index[p]) <= 1 for t, p in zip(yt, yp)])
        out["within_one_group"] = float(near.mean())
        if exact_ages is not None and any(a is not None for a in exact_ages):
            errors = [abs(taxonomy.age_group_midpoint(p, ls) - a) for p, a in zip(yp, exact_ages)
                      if p != INVALID and a is not None]
            out["mae_years"] = float(np.mean(errors)) if errors else None
    return out

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


def bootstrap_ci(statistic, n: int, n_resamples: int = 1000, seed: int = 0,
                 block: int = 200) -> tuple[float, float]:
    """Percentile 95% interval of a statistic over ``n_resamples`` resamples of ``range(n)``.

    ``statistic`` takes a (resamples, n) matrix of indices and returns one value per row, so the
    resamples are computed together (in blocks, to bound memory).
    """
    rng = np.random.default_rng(seed)
    stats = np.concatenate([statistic(rng.integers(0, n, (min(block, n_resamples - k), n)))
                            for k in range(0, n_resamples, block)])
    lo, hi = np.percentile(stats, [2.5, 97.5])
    return float(lo), float(hi)


def _macro_f1_rows(t: np.ndarray, p: np.ndarray, k: int) -> np.ndarray:
    """Macro-F1 of each row of integer-coded true/predicted matrices (classes 0..k-1; k = invalid).

    The bootstrap needs it for hundreds of resamples at once, which sklearn's f1_score does one
    call at a time; the point estimate itself comes from sklearn.
    """
    f1 = np.zeros(t.shape[0])
    for c in range(k):
        tp = ((t == c) & (p == c)).sum(1)
        fp = ((t != c) & (p == c)).sum(1)
        fn = ((t == c) & (p != c)).sum(1)
        denom = 2 * tp + fp + fn
        f1 += np.divide(2 * tp, denom, out=np.zeros(len(tp)), where=denom > 0)
    return f1 / k


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
    code = {lab: i for i, lab in enumerate(labels)}
    yt_int = np.array([code[t] for t in yt])
    yp_int = np.array([code.get(p, len(labels)) for p in yp])

    out = {
        "label_set": ls.name,
        "n": n,
        "accuracy": float(accuracy_score(yt, yp)),
        "accuracy_ci95": bootstrap_ci(lambda idx: correct[idx].mean(1), n, n_resamples, seed),
        "macro_f1": float(f1_score(yt, yp, labels=labels, average="macro", zero_division=0)),
        "macro_f1_ci95": bootstrap_ci(lambda idx: _macro_f1_rows(yt_int[idx], yp_int[idx], len(labels)), n,
                                      n_resamples, seed),
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

"""Accuracy per demographic group, the gaps between groups, and equalized-odds differences.

Groups come from the dataset's true labels: per race, per gender, per age group and per
race × gender. For a multi-class attribute the equalized-odds difference is the largest, over
classes, of the spread across groups of the one-vs-rest true-positive rate or false-positive
rate (fairlearn's binary definition, applied to each class).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import multilabel_confusion_matrix

from facescan.evaluate.metrics import INVALID, bootstrap_ci

GROUPINGS = (("race",), ("gender",), ("age",), ("race", "gender"))


def groupings_for(ground_truth: Sequence[dict[str, str]]) -> list[tuple[str, ...]]:
    """The groupings every item of the dataset is labelled for."""
    return [g for g in GROUPINGS if all(all(k in t for k in g) for t in ground_truth)]


def group_accuracy(y_true: Sequence[str], y_pred: Sequence[str | None], groups: Sequence[str],
                   labels: Sequence[str], n_resamples: int = 1000, seed: int = 0, min_group: int = 1,
                   order: Sequence[str] | None = None) -> dict:
    """Accuracy (with a bootstrap 95% interval) per group, the largest gap, the min/max ratio,
    and the equalized-odds difference. Groups are listed in ``order`` (default: sorted)."""
    yt = np.array(y_true)
    yp = np.array([INVALID if p is None else p for p in y_pred])
    g = np.array(groups)
    correct = yt == yp
    table = {}
    present = set(g)
    for name in [n for n in order if n in present] if order else sorted(present):
        idx = np.flatnonzero(g == name)
        if len(idx) < min_group:
            continue
        c = correct[idx]
        table[name] = {"n": int(len(idx)), "accuracy": float(c.mean()),
                       "ci95": bootstrap_ci(lambda i, c=c: c[i].mean(1), len(idx), n_resamples, seed)}
    accs = [row["accuracy"] for row in table.values()]
    worst = min(table, key=lambda k: table[k]["accuracy"])
    best = max(table, key=lambda k: table[k]["accuracy"])
    return {
        "groups": table,
        "largest_gap": float(max(accs) - min(accs)),
        "min_max_ratio": float(min(accs) / max(accs)) if max(accs) > 0 else None,
        "worst_group": worst,
        "best_group": best,
        "equalized_odds_difference": equalized_odds_difference(yt, yp, g, labels),
    }


def equalized_odds_difference(y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray,
                              labels: Sequence[str]) -> float:
    """max over classes of max(TPR spread, FPR spread) across groups (one-vs-rest)."""
    worst = 0.0
    names = sorted(set(groups))
    rates = {}
    for name in names:
        idx = groups == name
        mcm = multilabel_confusion_matrix(y_true[idx], y_pred[idx], labels=list(labels))
        tn, fp, fn, tp = mcm[:, 0, 0], mcm[:, 0, 1], mcm[:, 1, 0], mcm[:, 1, 1]
        with np.errstate(invalid="ignore", divide="ignore"):
            rates[name] = (tp / (tp + fn), fp / (fp + tn))  # NaN where a group has no positives/negatives
    for k in range(len(labels)):
        for which in (0, 1):
            vals = [rates[n][which][k] for n in names if not np.isnan(rates[n][which][k])]
            if len(vals) >= 2:
                worst = max(worst, float(max(vals) - min(vals)))
    return worst

"""Accuracy per demographic group, the gaps between groups, and equalized-odds differences.

Groups come from the dataset's true labels: per race, per gender, per age group and per
race × gender. For a multi-class attribute the equalized-odds difference is the largest, over
classes, of the spread across groups of the one-vs-rest true-positive rate or false-positive
rate (fairlearn's binary definition, applied to each class).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from facescan.evaluate.metrics import INVALID, accuracy_ci

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
                       "ci95": accuracy_ci(int(c.sum()), len(c), n_resamples, seed)}
    accs = [row["accuracy"] for row in table.values()] or [float("nan")]  # no group: every number undefined
    worst = min(table, key=lambda k: table[k]["accuracy"], default=None)
    best = max(table, key=lambda k: table[k]["accuracy"], default=None)
    return {
        "groups": table,
        "largest_gap": float(max(accs) - min(accs)) if table else None,
        "min_max_ratio": float(min(accs) / max(accs)) if table and max(accs) > 0 else None,  # None: all 0
        "worst_group": worst,
        "best_group": best,
        "equalized_odds_difference": equalized_odds_difference(yt, yp, g, labels),
    }


def equalized_odds_difference(y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray,
                              labels: Sequence[str]) -> float:
    """max over classes of max(TPR spread, FPR spread) across groups (one-vs-rest)."""
    labels = list(labels)
    k = len(labels)
    code = {lab: i for i, lab in enumerate(labels)}  # anything else (invalid) is class k
    t = np.array([code.get(v, k) for v in y_true])
    p = np.array([code.get(v, k) for v in y_pred])
    tprs, fprs = [], []
    for name in sorted(set(groups)):
        idx = groups == name
        # np.bincount rather than sklearn's confusion_matrix: the same counts, without input
        # validation that costs more than the counting when repeated for every group.
        conf = np.bincount(t[idx] * (k + 1) + p[idx], minlength=(k + 1) ** 2).reshape(k + 1, k + 1)
        tp = np.diagonal(conf)[:k]
        fn = conf.sum(1)[:k] - tp
        fp = conf.sum(0)[:k] - tp
        tn = int(idx.sum()) - tp - fn - fp
        with np.errstate(invalid="ignore", divide="ignore"):
            tprs.append(tp / (tp + fn))  # NaN where a group has no positives of that class
            fprs.append(fp / (fp + tn))
    worst = 0.0
    if not tprs:  # no group
        return worst
    for rates in (np.array(tprs), np.array(fprs)):
        for c in range(k):
            vals = rates[:, c][~np.isnan(rates[:, c])]
            if len(vals) >= 2:
                worst = max(worst, float(vals.max() - vals.min()))
    return worst

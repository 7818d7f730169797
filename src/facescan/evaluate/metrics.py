"""Metrics of one attribute: accuracy, macro-F1, balanced accuracy, per-class precision/recall,
confusion matrix, age ±1 group and MAE, the invalid-answer rate, calibration (expected calibration
error), and bootstrap 95% intervals (None for a single item, which has nothing to resample).

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


def bootstrap_ci(statistic, counts: Sequence[int], n_resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Percentile 95% interval of a statistic over ``n_resamples`` bootstrap resamples.

    A statistic of classification results depends only on how many items fall in each cell
    (e.g. each (true, predicted) pair), and resampling ``n`` items with replacement gives cell
    counts distributed ``Multinomial(n, counts / n)``: drawing those counts directly is the same
    bootstrap as drawing item indices, at a cost independent of ``n``. ``statistic`` takes a
    (resamples, cells) matrix of counts and returns one value per row.
    """
    counts = np.asarray(counts, dtype=np.int64)
    n = int(counts.sum())
    if n == 0:
        raise ValueError("bootstrap of an empty sample")
    draws = np.random.default_rng(seed).multinomial(n, counts / n, size=n_resamples)
    lo, hi = np.percentile(statistic(draws), [2.5, 97.5])
    return float(lo), float(hi)


def accuracy_ci(n_correct: int, n: int, n_resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Bootstrap 95% interval of an accuracy of ``n_correct`` out of ``n``."""
    return bootstrap_ci(lambda d: d[:, 0] / n, [n_correct, n - n_correct], n_resamples, seed)


def macro_f1_of_confusions(conf: np.ndarray, k: int) -> np.ndarray:
    """Macro-F1 over classes ``0..k-1`` of each confusion matrix in a (resamples, m, m) stack
    (rows true, columns predicted; classes at index ≥ k, such as invalid, never count as a class).

    The bootstrap needs it for a thousand resamples at once, which sklearn's f1_score does one
    call at a time; the point estimate itself comes from sklearn.
    """
    tp = np.diagonal(conf, axis1=1, axis2=2)[:, :k]
    fp = conf.sum(1)[:, :k] - tp
    fn = conf.sum(2)[:, :k] - tp
    denom = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denom, out=np.zeros(tp.shape), where=denom > 0)
    return f1.mean(1)


CALIBRATION_BINS = 15


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[bool],
                               bins: int = CALIBRATION_BINS) -> float:
    """How far stated confidence is from accuracy: the mean over equal-width confidence bins of
    |accuracy − mean confidence|, weighted by the bin's share of items (Guo et al., 2017). 0 is perfectly
    calibrated. Written here: scikit-learn has calibration curves but not this summary of them."""
    conf = np.asarray(confidences, dtype=float)
    right = np.asarray(correct, dtype=float)
    if len(conf) == 0:
        raise ValueError("no confidences to score")
    which = np.minimum((conf * bins).astype(int), bins - 1)
    total = 0.0
    for b in np.unique(which):
        inside = which == b
        total += inside.sum() * abs(right[inside].mean() - conf[inside].mean())
    return float(total / len(conf))


def attribute_metrics(y_true: Sequence[str], y_pred: Sequence[str | None], label_set: str,
                      exact_ages: Sequence[float | None] | None = None, n_resamples: int = 1000,
                      seed: int = 0, predicted_years: Sequence[float | None] | None = None,
                      confidences: Sequence[float | None] | None = None) -> dict:
    """Every metric of one attribute; labels are canonical labels of ``label_set``.

    ``confidences`` (the probability each prediction gave its label, None where it gave none) adds ``ece``,
    the expected calibration error over the predictions that have one, and their ``mean_confidence``.

    Against ``exact_ages``: ``mae_years`` is the error of ``predicted_years`` (the age in years a face is
    reported with, where given), else of the predicted group's middle year; ``mae_years_midpoint`` is
    always the latter."""
    ls = taxonomy.label_set(label_set)
    labels = list(ls.labels)
    yt, yp = list(y_true), _encode(y_pred)
    n = len(yt)
    if n == 0:
        raise ValueError("no items to score")
    # Integer codes (invalid = len(labels)) for sklearn: the same results as the strings, without
    # sorting and comparing thousands of strings in every call.
    code = {lab: i for i, lab in enumerate(labels)}
    k = len(labels)
    t_int = np.array([code[t] for t in yt])
    p_int = np.array([code.get(p, k) for p in yp])
    correct = t_int == p_int
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred has classes not in y_true" (invalid) is expected
        balanced = balanced_accuracy_score(t_int, p_int)
    precision, recall, f1, support = precision_recall_fscore_support(t_int, p_int, labels=range(k), zero_division=0)
    confusion = confusion_matrix(t_int, p_int, labels=range(k + 1))
    m = k + 1

    out = {
        "label_set": ls.name,
        "n": n,
        "accuracy": float(accuracy_score(t_int, p_int)),
        # one item has no spread to resample: no interval rather than a [0, 0] or [1, 1] that looks certain
        "accuracy_ci95": accuracy_ci(int(correct.sum()), n, n_resamples, seed) if n >= 2 else None,
        "macro_f1": float(f1_score(t_int, p_int, labels=range(k), average="macro", zero_division=0)),
        "macro_f1_ci95": bootstrap_ci(
            lambda d: macro_f1_of_confusions(d.reshape(-1, m, m), k), confusion.ravel(), n_resamples, seed)
        if n >= 2 else None,
        "balanced_accuracy": float(balanced),
        "invalid_rate": float(np.mean([p == INVALID for p in yp])),
        "per_class": {lab: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                      for lab, p, r, f, s in zip(labels, precision, recall, f1, support)},
        "confusion": {"labels": labels + [INVALID],
                      "matrix": confusion.tolist()},
    }
    if confidences is not None:
        stated = [(c, ok) for c, ok in zip(confidences, correct) if c is not None]
        if stated:
            out["ece"] = expected_calibration_error([c for c, _ in stated], [ok for _, ok in stated])
            out["mean_confidence"] = float(np.mean([c for c, _ in stated]))
    if ls.attribute == "age" and ls.name in ("age9", "age5"):
        index = {lab: i for i, lab in enumerate(labels)}
        near = np.array([p != INVALID and abs(index[t] - index[p]) <= 1 for t, p in zip(yt, yp)])
        out["within_one_group"] = float(near.mean())
        if exact_ages is not None and any(a is not None for a in exact_ages):
            errors = [abs(taxonomy.age_group_midpoint(p, ls) - a) for p, a in zip(yp, exact_ages)
                      if p != INVALID and a is not None]
            out["mae_years_midpoint"] = float(np.mean(errors)) if errors else None
            out["mae_years"] = out["mae_years_midpoint"]
            if predicted_years is not None:
                errors = [abs(y - a) for p, y, a in zip(yp, predicted_years, exact_ages)
                          if p != INVALID and a is not None and y is not None]
                out["mae_years"] = float(np.mean(errors)) if errors else None
    return out

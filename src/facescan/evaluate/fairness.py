"""Accuracy per demographic group, the gaps between groups, and equalized-odds differences.

Groups come from the dataset's true labels: per race, per gender, per age group and per
race × gender. For a multi-class attribute the equalized-odds difference is the largest, over
classes, of the spread across groups of the one-vs-rest true-positive rate or false-positive
rate (fairlearn's binary definition, applied to each class).

Small groups mislead: a group of 6 people has an accuracy of 0.5 or 1.0 by chance alone. Every group
is listed with its size ``n``, but only groups of at least :data:`MIN_GROUP_N` items are compared:
smaller ones are flagged (``"small": True``) and left out of the largest gap, the min/max ratio and
the equalized-odds difference. The same minimum applies to each rate of the equalized-odds difference:
a class's true-positive rate in a group counts when the group has that many items of the class, its
false-positive rate when it has that many of other classes. When fewer than two groups (or rates) are
large enough, those numbers are None ("not enough data to compare groups"). The largest gap and the
equalized-odds difference come with a bootstrap 95% interval that resamples items within each compared
group (:func:`_gap_and_eod_intervals`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from facescan.evaluate.metrics import accuracy_ci

GROUPINGS = (("race",), ("gender",), ("age",), ("race", "gender"))

MIN_GROUP_N = 30
"""The fewest items a group needs to be compared with others (in gaps, ratios and equalized odds).

Below 30 items a group's accuracy is uncertain by about ±0.15 (the 95% interval of an accuracy of 0.8
over 30 items spans 0.66-0.94), as much as the gaps worth reporting; ``facescan eval --min-group-n``
changes it."""

NOT_ENOUGH = "not enough data to compare groups"


def groupings_for(ground_truth: Sequence[dict[str, str]]) -> list[tuple[str, ...]]:
    """The groupings every item of the dataset is labelled for."""
    return [g for g in GROUPINGS if all(all(k in t for k in g) for t in ground_truth)]


def group_accuracy(y_true: Sequence[str], y_pred: Sequence[str | None], groups: Sequence[str],
                   labels: Sequence[str], n_resamples: int = 1000, seed: int = 0, min_n: int = MIN_GROUP_N,
                   order: Sequence[str] | None = None, display: Mapping[str, str] | None = None) -> dict:
    """Accuracy per group with its size ``n`` and bootstrap 95% interval (None below 2 items), and over
    the groups of at least ``min_n`` items only: the largest gap and the equalized-odds difference (over
    rates of at least ``min_n`` items), each with a bootstrap 95% interval, the min/max ratio, and the
    worst and best group.

    Groups are listed in ``order`` (default: sorted); ``display`` gives a group's name as a report
    prints it (``"label"`` of its row; default: the group itself). ``compared`` and ``small`` list the
    groups that are and are not compared; gaps are None when fewer than two groups are compared.
    """
    labels = list(labels)
    k = len(labels)
    code = {lab: i for i, lab in enumerate(labels)}  # anything else (invalid) is class k
    t = np.array([code.get(v, k) for v in y_true], dtype=np.int64)
    p = np.array([k if v is None else code.get(v, k) for v in y_pred], dtype=np.int64)
    g = np.array(groups)
    correct = (t == p) & (t < k)
    present = set(g.tolist())
    names = [n for n in order if n in present] if order else sorted(present)
    table: dict[str, dict] = {}
    confusions = {}
    for name in names:
        idx = np.flatnonzero(g == name)
        c = correct[idx]
        n = int(len(idx))
        table[name] = {"label": (display or {}).get(name, name), "n": n, "accuracy": float(c.mean()),
                       "ci95": accuracy_ci(int(c.sum()), n, n_resamples, seed) if n >= 2 else None,
                       "small": n < min_n}
        confusions[name] = np.bincount(t[idx] * (k + 1) + p[idx], minlength=(k + 1) ** 2)
    compared = [n for n in names if not table[n]["small"]]
    out = {"min_n": int(min_n), "groups": table, "compared": compared,
           "small": [n for n in names if table[n]["small"]],
           "largest_gap": None, "largest_gap_ci95": None, "min_max_ratio": None, "worst_group": None,
           "best_group": None, "equalized_odds_difference": None, "equalized_odds_ci95": None}
    if len(compared) < 2:
        return out
    accs = {n: table[n]["accuracy"] for n in compared}
    worst, best = min(accs, key=accs.get), max(accs, key=accs.get)
    conf = np.stack([confusions[n] for n in compared])  # (groups, cells)
    gap, eod = _gap_and_eod(conf, k, min_n)
    out.update(largest_gap=gap, worst_group=worst, best_group=best,
               min_max_ratio=float(accs[worst] / accs[best]) if accs[best] > 0 else None,  # None: all 0
               equalized_odds_difference=eod)
    if n_resamples > 0:
        gap_ci, eod_ci = _gap_and_eod_intervals(conf, k, n_resamples, seed, min_n)
        out["largest_gap_ci95"] = gap_ci
        out["equalized_odds_ci95"] = eod_ci if eod is not None else None
    return out


def _indicators(k: int) -> np.ndarray:
    """(cells, 1 + 3k) 0/1 matrix from a confusion cell (true × predicted, (k + 1)² of them, class k
    invalid) to the counts the gaps need: correct, then per class true positives, positives, predicted."""
    m = k + 1
    t, p = np.divmod(np.arange(m * m), m)
    classes = np.arange(k)
    return np.concatenate([((t == p) & (t < k))[:, None], (t[:, None] == classes) & (p[:, None] == classes),
                           t[:, None] == classes, p[:, None] == classes], 1).astype(float)


def _rates(counts: np.ndarray, n: np.ndarray, k: int, min_n: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Accuracy (…, groups) and one-vs-rest TPR and FPR (…, groups, classes) of the (…, groups, 1 + 3k)
    counts of :func:`_indicators` over ``n`` (…, groups) items each; a rate over fewer than ``min_n``
    items (at least 1) is NaN: left out."""
    tp, pos, predicted = counts[..., 1 : 1 + k], counts[..., 1 + k : 1 + 2 * k], counts[..., 1 + 2 * k :]
    neg = n[..., None] - pos
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = np.where(pos >= max(min_n, 1), tp / pos, np.nan)
        fpr = np.where(neg >= max(min_n, 1), (predicted - tp) / neg, np.nan)
        return counts[..., 0] / n, tpr, fpr


def _resample_within_groups(conf: np.ndarray, k: int, n_resamples: int, seed: int) -> np.ndarray:
    """The :func:`_indicators` counts (resamples, groups, 1 + 3k) of ``n_resamples`` bootstrap resamples of
    each group's items, from the groups' confusion counts (groups, cells).

    Drawing a group's ``n`` items with replacement gives cell counts ``Multinomial(n, counts / n)``
    (see :func:`~facescan.evaluate.metrics.bootstrap_ci`): the same bootstrap, at a cost independent of
    ``n``; only the cells some item is in are drawn.
    """
    rng = np.random.default_rng(seed)
    ind = _indicators(k)
    out = np.empty((n_resamples, len(conf), ind.shape[1]))
    for i, cells in enumerate(conf):
        nz = np.flatnonzero(cells)
        n = int(cells.sum())
        out[:, i] = rng.multinomial(n, cells[nz] / n, size=n_resamples) @ ind[nz]
    return out


def _spread(top: np.ndarray, bottom: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """max of ``top`` − min of ``bottom`` over groups (axis -2) where ``valid``, at least 0; 0 where fewer
    than two groups are valid."""
    hi = np.where(valid, top, -np.inf).max(-2)
    lo = np.where(valid, bottom, np.inf).min(-2)
    return np.where(valid.sum(-2) >= 2, np.maximum(hi - lo, 0.0), 0.0)


def _gap_and_eod(conf: np.ndarray, k: int, min_n: int = 1) -> tuple[float, float | None]:
    """The largest accuracy gap and the equalized-odds difference of per-group confusion counts (groups, cells);
    the latter over the rates of at least ``min_n`` items, None when no rate is defined in two groups."""
    acc, tpr, fpr = _rates(conf @ _indicators(k), conf.sum(1).astype(float), k, min_n)
    rates = np.stack([tpr, fpr])
    valid = ~np.isnan(rates)
    eod = float(_spread(rates, rates, valid).max()) if (valid.sum(-2) >= 2).any() else None
    return float(acc.max() - acc.min()), eod


def _largest_difference_interval(point: np.ndarray, boot: np.ndarray, count: np.ndarray,
                                 level: float = 0.95) -> tuple[float, float]:
    """Interval of the largest |difference| between two groups' proportions, over several sets of them.

    ``point`` (sets, groups) are the proportions (NaN: undefined for that group, left out), ``boot``
    (resamples, sets, groups) their bootstrap values, ``count`` (sets, groups) how many items each is
    over. Every difference ``d`` of two groups within a set gets an interval ``d ± c · se`` and all of
    them hold at once with probability ``level`` (bootstrap max-t): ``se`` is the binomial standard
    error of the difference, each proportion taken at (x + 1) / (n + 2) so that one of 0 or 1 still has
    a width, and ``c`` the ``level`` quantile over resamples of the largest |bootstrap − observed| / se.
    The largest |difference| lies between the largest lower and the largest upper bound of the |d|.
    """
    i, j = np.triu_indices(point.shape[-1], 1)
    d = point[:, i] - point[:, j]  # (sets, pairs); NaN where a group has no such proportion
    ok = ~np.isnan(d)
    if not ok.any():
        return 0.0, 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        shrunk = (point * count + 1) / (count + 2)
        var = shrunk * (1 - shrunk) / count
        se = np.sqrt(var[:, i] + var[:, j])
        dev = (boot - point).astype(np.float32)  # float32 and in place: the largest array of a run's scoring
        t = dev[:, :, i]
        t -= dev[:, :, j]
        np.abs(t, out=t)
        t *= (1 / se).astype(np.float32)
        t = np.fmax.reduce(t.reshape(len(t), -1), axis=1)  # fmax skips NaN (a rate no resample defines)
    c = float(np.nanpercentile(t, 100 * level)) if np.isfinite(t).any() else 0.0
    lo, hi = (d - c * se)[ok], (d + c * se)[ok]
    smallest = np.where(lo > 0, lo, np.where(hi < 0, -hi, 0.0))  # of |d|: 0 when the interval spans 0
    return float(min(smallest.max(), 1.0)), float(min(np.maximum(-lo, hi).max(), 1.0))


def _gap_and_eod_intervals(conf: np.ndarray, k: int, n_resamples: int, seed: int, min_n: int = 1):
    """95% intervals of the largest accuracy gap and of the equalized-odds difference of per-group
    confusion counts (groups, cells), from bootstrap resamples within each group.

    The bootstrap distribution of a max − min over groups sits above the observed one (the largest of
    several noisy gaps is always picked), so its percentiles would exclude a true gap of 0. Instead the
    differences between every two groups get intervals that hold simultaneously
    (:func:`_largest_difference_interval`): the gap's interval always contains the observed gap, starts
    at 0 when the gap is within the noise, and holds with about 95% probability or more; with two groups
    it is the bootstrap-t interval of their difference.
    """
    n = conf.sum(1).astype(float)
    counts = conf @ _indicators(k)
    acc, tpr, fpr = _rates(counts, n, k, min_n)  # a rate left out here is left out of every resample
    b_acc, b_tpr, b_fpr = _rates(_resample_within_groups(conf, k, n_resamples, seed), n, k)
    gap = _largest_difference_interval(acc[None], b_acc[:, None], n[None])
    if not k:
        return gap, (0.0, 0.0)
    pos = counts[:, 1 + k : 1 + 2 * k]
    eod = _largest_difference_interval(  # one set per class and rate: (2k, groups)
        np.concatenate([tpr.T, fpr.T]), np.concatenate([b_tpr.transpose(0, 2, 1), b_fpr.transpose(0, 2, 1)], 1),
        np.concatenate([pos.T, (n[:, None] - pos).T]))
    return gap, eod


def equalized_odds_difference(y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray,
                              labels: Sequence[str]) -> float:
    """max over classes of max(TPR spread, FPR spread) across groups (one-vs-rest); every group counts."""
    labels = list(labels)
    k = len(labels)
    code = {lab: i for i, lab in enumerate(labels)}  # anything else (invalid) is class k
    t = np.array([code.get(v, k) for v in y_true], dtype=np.int64)
    p = np.array([code.get(v, k) for v in y_pred], dtype=np.int64)
    groups = np.asarray(groups)
    names = sorted(set(groups.tolist()))
    if not names:  # no group
        return 0.0
    conf = np.stack([np.bincount(t[groups == name] * (k + 1) + p[groups == name], minlength=(k + 1) ** 2)
                     for name in names])
    return _gap_and_eod(conf, k)[1] or 0.0

"""Metrics and fairness numbers checked against plain-Python computations on fixed predictions."""

import pytest

from facescan.evaluate.fairness import equalized_odds_difference, group_accuracy
from facescan.evaluate.metrics import attribute_metrics, expected_calibration_error

pytest.importorskip("sklearn", reason="metrics need the eval extra (scikit-learn)")

# 12 items, FairFace age groups; None = an invalid answer
TRUE = ["20-29", "20-29", "30-39", "30-39", "40-49", "0-2", "3-9", "70+", "70+", "20-29", "50-59", "60-69"]
PRED = ["20-29", "30-39", "30-39", None, "20-29", "0-2", "10-19", "60-69", "70+", "20-29", "50-59", "70+"]
AGES = [25, 21, 33, 38, 44, 1, 7, 75, 80, 29, 55, 64]
GROUP = ["a", "a", "a", "b", "b", "b", "a", "b", "a", "b", "a", "b"]
LABELS = ["0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70+"]
MID = {"0-2": 1, "3-9": 6, "10-19": 14.5, "20-29": 24.5, "30-39": 34.5, "40-49": 44.5, "50-59": 54.5,
       "60-69": 64.5, "70+": 75}


def _by_hand():
    n = len(TRUE)
    correct = [t == p for t, p in zip(TRUE, PRED)]
    per_class = {}
    for c in LABELS:
        tp = sum(t == c and p == c for t, p in zip(TRUE, PRED))
        fp = sum(t != c and p == c for t, p in zip(TRUE, PRED))
        fn = sum(t == c and p != c for t, p in zip(TRUE, PRED))
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per_class[c] = (prec, rec, f1, tp + fn)
    present = [c for c in LABELS if per_class[c][3] > 0]
    return {
        "accuracy": sum(correct) / n,
        "macro_f1": sum(per_class[c][2] for c in LABELS) / len(LABELS),
        "balanced": sum(per_class[c][1] for c in present) / len(present),
        "per_class": per_class,
        "pm1": sum(p is not None and abs(LABELS.index(t) - LABELS.index(p)) <= 1 for t, p in zip(TRUE, PRED)) / n,
        "mae": sum(abs(MID[p] - a) for p, a in zip(PRED, AGES) if p is not None) / sum(p is not None for p in PRED),
        "invalid": sum(p is None for p in PRED) / n,
    }


def test_attribute_metrics_match_a_hand_computation():
    m = attribute_metrics(TRUE, PRED, "age9", AGES, n_resamples=200)
    ref = _by_hand()
    assert m["accuracy"] == pytest.approx(ref["accuracy"])
    assert m["macro_f1"] == pytest.approx(ref["macro_f1"])
    assert m["balanced_accuracy"] == pytest.approx(ref["balanced"])
    assert m["within_one_group"] == pytest.approx(ref["pm1"])
    assert m["mae_years"] == pytest.approx(ref["mae"])
    assert m["invalid_rate"] == pytest.approx(ref["invalid"])
    for c, (prec, rec, f1, support) in ref["per_class"].items():
        row = m["per_class"][c]
        assert (row["precision"], row["recall"], row["f1"], row["support"]) == pytest.approx((prec, rec, f1, support))
    conf = m["confusion"]
    assert conf["labels"][-1] == "invalid"
    assert conf["matrix"][LABELS.index("30-39")][-1] == 1  # the invalid answer on a 30-39 face
    assert sum(map(sum, conf["matrix"])) == len(TRUE)
    lo, hi = m["accuracy_ci95"]
    assert 0 <= lo <= m["accuracy"] <= hi <= 1
    assert m["accuracy_ci95"] == attribute_metrics(TRUE, PRED, "age9", AGES, n_resamples=200)["accuracy_ci95"]


def test_group_accuracy_gaps_and_equalized_odds_match_a_hand_computation():
    fair = group_accuracy(TRUE, PRED, GROUP, LABELS, n_resamples=200, min_n=1)  # groups of 6: compared anyway
    acc = {}
    for g in ("a", "b"):
        idx = [i for i, x in enumerate(GROUP) if x == g]
        acc[g] = sum(TRUE[i] == PRED[i] for i in idx) / len(idx)
        assert fair["groups"][g]["accuracy"] == pytest.approx(acc[g])
        assert fair["groups"][g]["n"] == len(idx)
    assert fair["largest_gap"] == pytest.approx(abs(acc["a"] - acc["b"]))
    assert fair["min_max_ratio"] == pytest.approx(min(acc.values()) / max(acc.values()))
    assert fair["worst_group"] == min(acc, key=acc.get)

    # equalized odds by hand: per class, spread across groups of TPR and of FPR
    def rates(g, c):
        idx = [i for i, x in enumerate(GROUP) if x == g]
        pos = [i for i in idx if TRUE[i] == c]
        neg = [i for i in idx if TRUE[i] != c]
        tpr = sum(PRED[i] == c for i in pos) / len(pos) if pos else None
        fpr = sum(PRED[i] == c for i in neg) / len(neg) if neg else None
        return tpr, fpr

    worst = 0.0
    for c in LABELS:
        for k in (0, 1):
            vals = [rates(g, c)[k] for g in ("a", "b") if rates(g, c)[k] is not None]
            if len(vals) == 2:
                worst = max(worst, max(vals) - min(vals))
    assert fair["equalized_odds_difference"] == pytest.approx(worst)
    for key, ci in (("largest_gap", "largest_gap_ci95"), ("equalized_odds_difference", "equalized_odds_ci95")):
        lo, hi = fair[ci]
        assert 0 <= lo <= fair[key] <= hi <= 1


def test_equalized_odds_is_zero_for_identical_behaviour_across_groups():
    import numpy as np

    yt = np.array(["m", "f", "m", "f"])
    yp = np.array(["m", "m", "m", "m"])
    assert equalized_odds_difference(yt, yp, np.array(["a", "a", "b", "b"]), ["m", "f"]) == 0.0


def test_perfect_and_all_invalid_predictions():
    perfect = attribute_metrics(["male", "female"] * 5, ["male", "female"] * 5, "gender", n_resamples=50)
    assert perfect["accuracy"] == 1.0 and perfect["macro_f1"] == 1.0 and perfect["accuracy_ci95"] == (1.0, 1.0)
    invalid = attribute_metrics(["male", "female"] * 5, [None] * 10, "gender", n_resamples=50)
    assert invalid["accuracy"] == 0.0 and invalid["invalid_rate"] == 1.0 and invalid["macro_f1"] == 0.0


def test_bootstrap_macro_f1_of_confusions_equals_sklearn_on_each_resample():
    import numpy as np
    from sklearn.metrics import confusion_matrix, f1_score

    from facescan.evaluate.metrics import macro_f1_of_confusions

    rng = np.random.default_rng(3)
    t = rng.integers(0, 4, (20, 50))
    p = rng.integers(0, 5, (20, 50))  # 4 = invalid
    conf = np.stack([confusion_matrix(t[r], p[r], labels=range(5)) for r in range(20)])
    ours = macro_f1_of_confusions(conf, 4)
    for row in range(20):
        ref = f1_score(t[row], p[row], labels=[0, 1, 2, 3], average="macro", zero_division=0)
        assert ours[row] == pytest.approx(ref)


def test_count_bootstrap_matches_an_index_bootstrap():
    """Drawing cell counts from a multinomial is the same bootstrap as resampling item indices."""
    import numpy as np

    from facescan.evaluate.metrics import accuracy_ci

    rng = np.random.default_rng(0)
    correct = rng.random(400) < 0.7
    idx = rng.integers(0, 400, (20000, 400))
    by_index = np.percentile(correct[idx].mean(1), [2.5, 97.5])
    lo, hi = accuracy_ci(int(correct.sum()), 400, n_resamples=20000, seed=1)
    assert lo == pytest.approx(by_index[0], abs=0.006) and hi == pytest.approx(by_index[1], abs=0.006)
    assert lo < correct.mean() < hi


def test_age_error_is_that_of_the_reported_age_in_years_and_the_midpoint_one_is_kept():
    truth, pred, ages = ["20-29", "30-39", "60-69"], ["20-29", "40-49", None], [22.0, 35.0, 64.0]
    m = attribute_metrics(truth, pred, "age9", ages, n_resamples=50, predicted_years=[24.0, 41.0, 60.0])
    assert m["mae_years"] == pytest.approx((2 + 6) / 2)  # the invalid answer is not scored
    assert m["mae_years_midpoint"] == pytest.approx((abs(24.5 - 22) + abs(44.5 - 35)) / 2)
    assert attribute_metrics(truth, pred, "age9", ages, n_resamples=50)["mae_years"] == m["mae_years_midpoint"]


def test_expected_calibration_error_matches_a_hand_computation():
    # bin [0.6, 0.667): confidences 0.6, 0.6 and one right -> |0.5 - 0.6| ; bin [0.933, 1]: 0.95, 0.95, both right
    assert expected_calibration_error([0.6, 0.6, 0.95, 0.95], [True, False, True, True]) == pytest.approx(
        (2 * 0.1 + 2 * 0.05) / 4)
    assert expected_calibration_error([0.8] * 5, [True] * 4 + [False]) == pytest.approx(0.0)


def test_metrics_report_calibration_only_over_answers_that_stated_a_probability():
    m = attribute_metrics(["male", "female", "male", "female"], ["male", "male", "male", None], "gender",
                          n_resamples=10, confidences=[0.9, 0.9, 0.9, None])
    # three stated 0.9, two of them right: |2/3 - 0.9|
    assert m["ece"] == pytest.approx(0.9 - 2 / 3)
    assert m["mean_confidence"] == pytest.approx(0.9)
    assert "ece" not in attribute_metrics(["male"], ["male"], "gender", n_resamples=10)

"""Small groups are flagged and left out of the gaps; gaps carry bootstrap intervals; reports show "–" for a
missing value, no interval for one item, and every label as its label set spells it."""

import json
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="eval needs the eval extra (scikit-learn)")

from facescan import taxonomy  # noqa: E402
from facescan.evaluate.compare import compare_markdown  # noqa: E402
from facescan.evaluate.fairness import MIN_GROUP_N, NOT_ENOUGH, group_accuracy  # noqa: E402
from facescan.evaluate.metrics import attribute_metrics  # noqa: E402
from facescan.evaluate.report import summary_rows, write_report  # noqa: E402
from facescan.evaluate.runner import _score_attribute  # noqa: E402

GENDERS = ["male", "female"]


def _flip(label: str) -> str:
    return "female" if label == "male" else "male"


def _group(name: str, n: int, n_correct: int) -> tuple[list[str], list[str], list[str]]:
    """``n`` items of group ``name`` (alternating genders), the first ``n_correct`` predicted right."""
    y_true = [GENDERS[i % 2] for i in range(n)]
    y_pred = [t if i < n_correct else _flip(t) for i, t in enumerate(y_true)]
    return y_true, y_pred, [name] * n


def _join(*parts):
    return tuple(sum((list(p[i]) for p in parts), []) for i in range(3))


def _metrics(fair: dict, y_true, y_pred, **identity) -> dict:
    m = attribute_metrics(y_true, y_pred, "gender", n_resamples=100)
    m["failed_images"] = 0
    m["fairness"] = {"race": fair}
    ident = {"backend": "fake", "dataset": "fake:x", "split": "val", "limit": None, "seed": 0, "stratify": None,
             **identity}
    return {"meta": {"identity": ident, "n_items": len(y_true)}, "attributes": {"gender": m}}


def test_the_default_minimum_is_documented():
    assert MIN_GROUP_N == 30
    assert NOT_ENOUGH == "not enough data to compare groups"


def test_one_big_group_and_a_group_of_6_give_no_gap_and_the_flag(tmp_path):
    y_true, y_pred, groups = _join(_group("big", 200, 180), _group("tiny", 6, 0))
    fair = group_accuracy(y_true, y_pred, groups, GENDERS, n_resamples=200)
    assert fair["groups"]["big"] | {"ci95": None} == {"label": "big", "n": 200, "accuracy": 0.9, "ci95": None,
                                                      "small": False}
    assert fair["groups"]["tiny"]["n"] == 6 and fair["groups"]["tiny"]["small"] is True
    assert fair["compared"] == ["big"] and fair["small"] == ["tiny"] and fair["min_n"] == 30
    # a 0.9 gap between the two, but a group of 6 is not compared
    for key in ("largest_gap", "largest_gap_ci95", "min_max_ratio", "worst_group", "best_group",
                "equalized_odds_difference", "equalized_odds_ci95"):
        assert fair[key] is None, key

    metrics = _metrics(fair, y_true, y_pred)
    md_path, html_path = write_report(metrics, tmp_path)
    md = md_path.read_text()
    assert "| tiny † | 6 | 0.000 |" in md and "| big | 200 | 0.900 |" in md
    assert "Not enough data to compare groups: fewer than two groups have n ≥ 30." in md
    assert "† n < 30: too few to compare; left out of the gap" in md
    assert "1.000" not in md.split("### gender accuracy per race", 1)[1].split("|")[0]  # no gap stated
    assert "not enough data to compare groups" in html_path.read_text()
    assert summary_rows(metrics)[0][-1] == NOT_ENOUGH
    svg = (tmp_path / "figures" / "groups.svg").read_text()
    ET.fromstring(svg)
    assert "tiny † (n=6)" in svg and "big (n=200)" in svg and "n &lt; 30: too few to compare" in svg
    assert 'fill-opacity="0.35"' in svg  # the small group's bar is pale


def test_two_big_groups_give_a_gap_whose_interval_contains_the_true_difference(tmp_path):
    rng = np.random.default_rng(7)
    truth = {"a": 0.90, "b": 0.75}  # the true accuracies: a gap of 0.15
    parts = []
    for name, p in truth.items():
        y_true = [GENDERS[i % 2] for i in range(400)]
        parts.append((y_true, [t if rng.random() < p else _flip(t) for t in y_true], [name] * 400))
    y_true, y_pred, groups = _join(*parts)
    fair = group_accuracy(y_true, y_pred, groups, GENDERS, n_resamples=1000, seed=3)
    observed = fair["groups"]["a"]["accuracy"] - fair["groups"]["b"]["accuracy"]
    assert fair["largest_gap"] == pytest.approx(observed)
    lo, hi = fair["largest_gap_ci95"]
    assert 0 < lo < 0.15 < hi < 0.3 and lo <= fair["largest_gap"] <= hi
    assert hi - lo < 0.15  # an interval, not [0, 1]
    e_lo, e_hi = fair["equalized_odds_ci95"]
    assert 0 < e_lo <= fair["equalized_odds_difference"] <= e_hi
    assert fair["compared"] == ["a", "b"] and fair["worst_group"] == "b" and fair["best_group"] == "a"
    # seeded: the same interval again
    assert group_accuracy(y_true, y_pred, groups, GENDERS, n_resamples=1000, seed=3)["largest_gap_ci95"] == (lo, hi)

    md = write_report(_metrics(fair, y_true, y_pred), tmp_path)[0].read_text()
    gap = f"{fair['largest_gap']:.3f} [{lo:.3f}, {hi:.3f}]"
    assert f"Largest gap {gap} (b vs a)" in md
    assert "They cover the 2 groups with n ≥ 30." in md and "†" not in md
    assert f"| {gap} (race: 2 of 2 groups, n ≥ 30) |" in md  # the summary table


def test_the_gap_interval_starts_at_zero_when_equal_groups_differ_by_chance():
    rng = np.random.default_rng(0)
    parts = []
    for name in "abcdefgh":  # 8 groups of 60, all truly at 0.8: the largest observed gap is noise
        y_true = [GENDERS[i % 2] for i in range(60)]
        parts.append((y_true, [t if rng.random() < 0.8 else _flip(t) for t in y_true], [name] * 60))
    fair = group_accuracy(*_join(*parts), GENDERS, n_resamples=1000)
    assert fair["largest_gap"] > 0.1
    lo, hi = fair["largest_gap_ci95"]
    assert lo == 0.0 and hi >= fair["largest_gap"]


def test_small_groups_are_left_out_of_the_gap_and_named(tmp_path):
    y_true, y_pred, groups = _join(_group("a", 100, 90), _group("b", 50, 40), _group("c", 9, 0))
    fair = group_accuracy(y_true, y_pred, groups, GENDERS, n_resamples=200)
    assert fair["largest_gap"] == pytest.approx(0.1)  # c (accuracy 0) is not compared
    assert fair["worst_group"] == "b" and fair["compared"] == ["a", "b"] and fair["small"] == ["c"]
    md = write_report(_metrics(fair, y_true, y_pred), tmp_path)[0].read_text()
    assert "They cover the 2 groups with n ≥ 30; left out (†): c." in md
    assert "| c † | 9 | 0.000 |" in md
    # a smaller minimum compares them all
    every = group_accuracy(y_true, y_pred, groups, GENDERS, n_resamples=200, min_n=5)
    assert every["largest_gap"] == pytest.approx(0.9) and every["small"] == []


def test_one_item_gets_no_interval(tmp_path):
    y_true, y_pred, groups = _join(_group("a", 40, 30), _group("one", 1, 1))
    fair = group_accuracy(y_true, y_pred, groups, GENDERS, n_resamples=100)
    assert fair["groups"]["one"]["ci95"] is None and fair["groups"]["a"]["ci95"] is not None
    assert attribute_metrics(["male"], ["male"], "gender")["accuracy_ci95"] is None
    md = write_report(_metrics(fair, y_true, y_pred), tmp_path)[0].read_text()
    assert "| one † | 1 | 1.000 | – |" in md


def test_no_none_text_in_a_report_with_missing_values(tmp_path):
    y_true, y_pred, groups = _join(_group("a", 40, 30), _group("b", 40, 20))
    fair = group_accuracy(y_true, y_pred, groups, GENDERS, n_resamples=100)
    metrics = _metrics(fair, y_true, y_pred, split=None, stratify=None, limit=None)
    m = metrics["attributes"]["gender"]
    m.update(label_set=None, macro_f1=None, accuracy_ci95=None, balanced_accuracy=None)
    fair["groups"]["a"].update(n=None, ci95=None, label=None)
    fair.update(worst_group=None, min_max_ratio=None, equalized_odds_ci95=None)
    metrics["meta"].update(model=None, started=None, finished=None, facescan_version=None)
    metrics["attributes"]["age"] = {"n": 0, "failed_images": 2, "errors": {}}
    md_path, html_path = write_report(metrics, tmp_path)
    for text in (md_path.read_text(), html_path.read_text(), (tmp_path / "figures" / "groups.svg").read_text()):
        assert not re.search(r"\bNone\b", text), text
    md = md_path.read_text()
    assert "| limit / seed / stratify | – / 0 / – |" in md and "| model | – |" in md
    assert all("None" not in cell for row in summary_rows(metrics) for cell in row)

    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps(metrics))
    assert "None" not in compare_markdown([run])


def _scored(n_per_race: int) -> dict:
    """The race attribute of a run scored as the runner does, over FairFace's 7 races."""
    rows = []
    for r, race in enumerate(taxonomy.RACE_FAIRFACE7.labels):
        for i in range(n_per_race):
            gender = GENDERS[i % 2]
            label = race if i % 4 else taxonomy.RACE_FAIRFACE7.labels[(r + 1) % 7]
            rows.append(({"id": f"{race}{i}", "labels": {"race": race, "gender": gender}, "exact_age": None},
                         {"label": label, "label_set": "race7", "probabilities": {}, "error": None}))
    return _score_attribute("race", rows, {"race": "race7", "gender": "gender"}, n_resamples=100, seed=0)


def test_race_labels_are_spelled_one_way(tmp_path):
    m = _scored(n_per_race=20)  # race × gender groups of 10: flagged
    assert m["fairness"]["race × gender"]["groups"]["latino_hispanic/male"]["label"] == "Latino/Hispanic × male"
    assert m["fairness"]["race"]["groups"]["east_asian"]["label"] == "East Asian"
    metrics = {"meta": {"identity": {"backend": "fake", "dataset": "fairface:x", "split": "val", "limit": None,
                                     "seed": 0, "stratify": None}, "n_items": 140}, "attributes": {"race": m}}
    md_path, html_path = write_report(metrics, tmp_path)
    texts = [md_path.read_text(), html_path.read_text(), (tmp_path / "figures" / "groups.svg").read_text(),
             (tmp_path / "figures" / "confusion_race.svg").read_text()]
    for text in texts:
        assert not re.search(r"latino.hispanic|east.asian|middle.eastern", text), text
        assert "Latino/Hispanic" in text and "East Asian" in text
    md = texts[0]
    assert "| Latino/Hispanic × male † | 10 |" in md  # the per-group table
    assert "| Latino/Hispanic | " in md  # the per-class table, spelled the same


def test_compare_carries_the_interval_and_the_groups_it_covers(tmp_path):
    folders = []
    for name, n in (("big", 60), ("small", 8)):  # small: every group (gender too) under 30
        m = _scored(n_per_race=n)
        metrics = {"meta": {"identity": {"backend": name, "dataset": "fairface:x", "split": "val"}},
                   "attributes": {"race": m}}
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps(metrics))
        folders.append(tmp_path / name)
    text = compare_markdown(folders)
    big = next(line for line in text.splitlines() if line.startswith("| big |"))
    small = next(line for line in text.splitlines() if line.startswith("| small |"))
    assert re.search(r"\| \d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\] \([a-z ×]+: (\d+) of \1 groups, n ≥ 30\) \|", big), big
    assert f"| {NOT_ENOUGH} | {NOT_ENOUGH} |" in small
    assert "cover only groups with at least 30 items" in text


def test_cli_min_group_n_rescores_a_finished_run(tmp_path):
    from typer.testing import CliRunner

    from facescan.cli import app

    from .dataset_layouts import write_fairface

    data = write_fairface(tmp_path / "ff", n=21)
    out = tmp_path / "run"
    args = ["eval", "--dataset", f"fairface:{data}", "--out", str(out), "-q", "-a", "gender"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    fair = json.loads((out / "metrics.json").read_text())["attributes"]["gender"]["fairness"]["gender"]
    assert fair["min_n"] == 30 and fair["largest_gap"] is None  # 11 and 10 items
    assert NOT_ENOUGH in r.output
    r = CliRunner().invoke(app, [*args, "--min-group-n", "5"])  # the same run, scored again
    assert r.exit_code == 0, r.output
    fair = json.loads((out / "metrics.json").read_text())["attributes"]["gender"]["fairness"]["gender"]
    assert fair["min_n"] == 5 and fair["compared"] == ["male", "female"] and fair["largest_gap"] is not None

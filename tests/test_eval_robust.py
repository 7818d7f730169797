"""facescan eval on degenerate runs: reports that cannot crash, exit statuses, refused folders and stores."""

import json
import math
import os
import re
import shutil
import sqlite3
import uuid
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from typer.testing import CliRunner

from facescan import taxonomy
from facescan.backends.base import BACKENDS
from facescan.cli import app
from facescan.schema import AttributePrediction

from .conftest import shared
from .dataset_layouts import write_fairface

pytest.importorskip("sklearn", reason="eval needs the eval extra (scikit-learn)")

from facescan.evaluate import run_eval  # noqa: E402
from facescan.evaluate.fairness import group_accuracy  # noqa: E402
from facescan.evaluate.lock import run_lock  # noqa: E402
from facescan.evaluate.metrics import attribute_metrics  # noqa: E402
from facescan.evaluate.report import summary_rows, write_report  # noqa: E402
from facescan.evaluate.runner import EXIT_DEGRADED  # noqa: E402
from facescan.evaluate.store import RunStore  # noqa: E402

SETS = {"age": "age9", "gender": "gender", "race": "race7"}


class FakeBackend:
    """Deterministic made-up answers; ``invalid(i, attribute)`` says which answers (by face number) are invalid,
    ``fail`` makes every call raise, as an API with a wrong key does."""

    name = "fake"

    def __init__(self, invalid=lambda i, a: False, fail: str | None = None):
        self.invalid, self.fail, self.seen = invalid, fail, 0

    def supported_attributes(self):
        return tuple(SETS)

    def predict(self, faces, attributes):
        if self.fail:
            raise RuntimeError(self.fail)
        out = []
        for _ in faces:
            i, self.seen = self.seen, self.seen + 1
            rng = np.random.default_rng(i)
            out.append({a: AttributePrediction.invalid(a, SETS[a], self.name, "fake-1", "401: invalid API key")
                        if self.invalid(i, a) else AttributePrediction.from_probabilities(
                            a, SETS[a], rng.dirichlet(np.ones(len(taxonomy.label_set(SETS[a]).labels))),
                            self.name, "fake-1") for a in attributes})
        return out


@pytest.fixture
def register():
    """``register(**FakeBackend options)`` registers a fake backend kind for the test and returns its name."""
    kinds = []

    def _register(**options):
        kind = f"fake-{uuid.uuid4().hex[:8]}"
        BACKENDS.register(kind, lambda target, **o: FakeBackend(**options), "test backend", tuple(SETS))
        kinds.append(kind)
        return kind

    yield _register
    for kind in kinds:
        BACKENDS._entries.pop(kind, None)


@pytest.fixture(scope="module")
def fairface(tmp_path_factory):
    return f"fairface:{write_fairface(tmp_path_factory.mktemp('ff'), n=21)}"


def _eval(dataset, out, *extra):
    return CliRunner().invoke(app, ["eval", "--dataset", dataset, "--out", str(out), "-q", *extra])


def _assert_report(out):
    """Every file of a report is there, the SVGs are well-formed and no NaN or None leaked into the text."""
    metrics = json.loads((out / "metrics.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in json"))
    md = (out / "report.md").read_text()
    assert (out / "report.html").read_text().startswith("<!doctype html>")
    for svg in (out / "figures").glob("*.svg"):
        ET.fromstring(svg.read_text())
    assert not re.search(r"\b(nan|None|inf)\b", md), md  # the header's settings too (limit: –)
    return metrics, md


# -- reports of degenerate numbers -------------------------------------------------------------------

def _attribute(y_true, y_pred, groups=None, **extra):
    m = attribute_metrics(y_true, y_pred, "gender", n_resamples=20)
    m["failed_images"] = 0
    m["fairness"] = {} if groups is None else {
        "race": group_accuracy(y_true, y_pred, groups, ["male", "female"], n_resamples=20, min_n=1)}
    return {**m, **extra}


def _identity():
    return {"identity": {"backend": "fake", "dataset": "fake:x", "split": "val", "limit": 5, "seed": 0,
                         "stratify": None}, "n_items": 4}


def _degenerate(case: str) -> dict:
    """Per-attribute metrics of a degenerate run."""
    if case == "zero accuracy in every group":
        return {"gender": _attribute(["male", "female"] * 2, ["female", "male"] * 2, ["a", "a", "b", "b"])}
    if case == "every answer invalid":
        return {"gender": _attribute(["male", "female"] * 2, [None] * 4, ["a", "b", "a", "b"])}
    if case == "one group":
        return {"gender": _attribute(["male", "female"], ["male", "male"], ["a", "a"])}
    if case == "one item":
        return {"gender": _attribute(["male"], ["female"], ["a"])}
    if case == "NaN and None intervals":
        m = _attribute(["male", "female"], ["male", "female"], ["a", "b"], accuracy_ci95=[math.nan, math.nan],
                       macro_f1_ci95=None, balanced_accuracy=math.nan)
        m["fairness"]["race"]["groups"]["a"]["ci95"] = None
        m["fairness"]["race"]["groups"]["b"]["ci95"] = [math.nan, 0.5]
        return {"gender": m}
    if case == "groups too small to compare":
        m = _attribute(["male", "female"] * 3, ["male"] * 6, ["a", "b", "c"] * 2)
        m["fairness"]["race"] = group_accuracy(["male", "female"] * 3, ["male"] * 6, ["a", "b", "c"] * 2,
                                               ["male", "female"], n_resamples=20)
        return {"gender": m}
    if case == "no scored item":
        return {"gender": {"n": 0, "failed_images": 4, "errors": {"image: decode failed": 4}}}
    if case == "no attribute":
        return {}
    assert case == "groupings that differ between attributes"
    other = _attribute(["male", "female"], [None, "female"])
    other["fairness"] = {"age": group_accuracy(["male", "female"], [None, "female"], ["x", "y"], ["male", "female"],
                                               n_resamples=20)}
    return {"gender": _attribute(["male", "female"], ["male", "female"], ["a", "b"]), "race": other}


DEGENERATE = ["zero accuracy in every group", "every answer invalid", "one group", "one item", "NaN and None intervals",
              "groups too small to compare", "no scored item", "no attribute",
              "groupings that differ between attributes"]


@pytest.mark.parametrize("case", DEGENERATE)
def test_the_report_is_written_whatever_the_numbers(tmp_path, case):
    attributes = _degenerate(case)
    metrics = {"meta": _identity(), "attributes": attributes, "problems": ["gender: every image failed"]}
    md_path, html_path = write_report(metrics, tmp_path)
    assert md_path.exists() and html_path.exists()
    md = md_path.read_text()
    assert not re.search(r"\b(nan|None)\b", md), md
    assert "## Problems" in md and "every image failed" in html_path.read_text()
    for svg in (tmp_path / "figures").glob("*.svg"):
        ET.fromstring(svg.read_text())
    assert len(summary_rows(metrics)) == len(attributes)


def test_fairness_of_zero_accuracy_everywhere_has_no_ratio():
    fair = group_accuracy(["male", "female"], [None, None], ["a", "b"], ["male", "female"], n_resamples=10, min_n=1)
    assert fair["min_max_ratio"] is None and fair["largest_gap"] == 0.0
    empty = group_accuracy([], [], [], ["male", "female"], n_resamples=10)
    assert empty["groups"] == {} and empty["largest_gap"] is None and empty["worst_group"] is None


# -- exit statuses ---------------------------------------------------------------------------------------

def test_limit_5_writes_every_report_file_and_exits_0(tmp_path, fairface):
    r = _eval(fairface, tmp_path / "run", "--limit", "5")
    assert r.exit_code == 0, r.output
    metrics, _ = _assert_report(tmp_path / "run")
    assert metrics["attributes"]["gender"]["n"] == 5 and metrics["problems"] == []
    assert {p.name for p in (tmp_path / "run" / "figures").iterdir()} == {
        "groups.svg", "confusion_age.svg", "confusion_gender.svg", "confusion_race.svg"}


@pytest.mark.data
def test_limit_5_on_fairface_val(tmp_path):
    r = _eval(f"fairface:{shared('fairface')}", tmp_path / "run", "--split", "val", "--limit", "5")
    assert r.exit_code == 0, r.output
    _assert_report(tmp_path / "run")


def test_a_run_whose_every_answer_is_invalid_exits_3_with_its_report(tmp_path, fairface, register):
    r = _eval(fairface, tmp_path / "run", "--backend", register(invalid=lambda i, a: True))
    assert r.exit_code == EXIT_DEGRADED == 3, r.output
    assert "gender: 21 of 21 answers are invalid (most often: 401: invalid API key)" in r.output
    assert "Traceback" not in r.output
    metrics, md = _assert_report(tmp_path / "run")
    assert metrics["attributes"]["gender"]["accuracy"] == 0.0
    assert metrics["attributes"]["gender"]["fairness"]["race"]["min_max_ratio"] is None
    assert metrics["mean_accuracy"] == 0.0 and len(metrics["problems"]) == 3
    assert "## Problems" in md and "21 × 401: invalid API key" in md


def test_a_run_whose_every_image_fails_exits_3(tmp_path, fairface, register):
    r = _eval(fairface, tmp_path / "run", "--backend", register(fail="401 Unauthorized: invalid API key"))
    assert r.exit_code == 3, r.output
    assert "gender: every image failed (most often: image: backend fake failed: 401 Unauthorized" in r.output
    metrics, md = _assert_report(tmp_path / "run")
    assert metrics["mean_accuracy"] is None and metrics["attributes"]["race"] == {
        "n": 0, "failed_images": 21, "errors": {"image: backend fake failed: 401 Unauthorized: invalid API key": 21}}
    assert "No race answer could be scored: 21 image(s) could not be analyzed." in md


@pytest.mark.parametrize(("every", "status"), [(2, 3), (3, 0)])
def test_more_than_half_invalid_for_one_attribute_exits_3(tmp_path, fairface, register, every, status):
    kind = register(invalid=lambda i, a: a == "age" and i % every == 0)  # 11 of 21, or 7 of 21
    r = _eval(fairface, tmp_path / "run", "--backend", kind)
    assert r.exit_code == status, r.output
    problems = json.loads((tmp_path / "run" / "metrics.json").read_text())["problems"]
    assert problems == (["age: 11 of 21 answers are invalid (most often: 401: invalid API key)"] if status else [])


# -- refused folders and stores -------------------------------------------------------------------------

def _one_line(output: str) -> str:
    lines = output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in output, output
    return lines[0]


@pytest.mark.parametrize("damage", ["garbage", "half-written", "another database", "empty file"])
def test_an_unreadable_store_is_refused_in_one_line(tmp_path, fairface, register, damage):
    kind = register()
    good = tmp_path / "good"
    assert _eval(fairface, good, "--backend", kind).exit_code == 0
    with sqlite3.connect(good / "predictions.sqlite") as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db = tmp_path / "run" / "predictions.sqlite"
    db.parent.mkdir()
    if damage == "garbage":
        db.write_bytes(os.urandom(3000))
    elif damage == "half-written":
        whole = (good / "predictions.sqlite").read_bytes()
        db.write_bytes(whole[: len(whole) // 2])
    elif damage == "another database":
        with sqlite3.connect(db) as con:
            con.execute("CREATE TABLE predictions (id INTEGER, answer TEXT)")
    else:
        db.write_bytes(b"")
    r = _eval(fairface, tmp_path / "run", "--backend", kind)
    if damage == "empty file":  # SQLite's own empty database: a fresh run
        assert r.exit_code == 0, r.output
        return
    assert r.exit_code == 2, r.output
    line = _one_line(r.output)
    assert str(db) in line and "remove it or choose another --out" in line


def test_a_folder_being_written_is_refused_at_once_naming_the_writer(tmp_path, fairface, register):
    with run_lock(tmp_path / "run"):
        r = _eval(fairface, tmp_path / "run", "--backend", register())
    assert r.exit_code == 2
    assert _one_line(r.output) == (f"facescan eval: {tmp_path / 'run'} is being written by another facescan eval "
                                   f"(pid {os.getpid()}); wait for it to finish or choose another --out folder")
    assert not (tmp_path / "run" / "predictions.sqlite").exists()
    assert _eval(fairface, tmp_path / "run", "--backend", register()).exit_code == 0  # released


def test_a_folder_of_another_run_is_refused_naming_both_settings(tmp_path, fairface, register):
    kind = register()
    assert _eval(fairface, tmp_path / "run", "--backend", kind, "--attributes", "gender").exit_code == 0
    r = _eval(fairface, tmp_path / "run", "--backend", kind)
    assert r.exit_code == 2
    assert "holds another run; its settings: attributes ['gender'] (this run: ['age', 'gender', 'race'])" in r.output
    with sqlite3.connect(tmp_path / "run" / "predictions.sqlite") as con:
        assert con.execute("SELECT DISTINCT attribute FROM predictions").fetchall() == [("gender",)]


def test_a_changed_dataset_is_not_mixed_into_a_run(tmp_path, register):
    kind = register()
    data = tmp_path / "ff"
    assert _eval(f"fairface:{write_fairface(data, n=14)}", tmp_path / "run", "--backend", kind).exit_code == 0
    r = _eval(f"fairface:{write_fairface(data, n=21)}", tmp_path / "run", "--backend", kind)
    assert r.exit_code == 2 and "same settings on other items (7 new, 0 gone" in r.output


def test_an_unreadable_metrics_json_is_refused_by_compare(tmp_path, fairface, register):
    assert _eval(fairface, tmp_path / "run", "--backend", register()).exit_code == 0
    (tmp_path / "run" / "metrics.json").write_text('{"attributes": {"gender": {"n": ')
    r = CliRunner().invoke(app, ["eval", "compare", str(tmp_path / "run")])
    assert r.exit_code == 2 and "metrics.json cannot be read" in _one_line(r.output)


def test_a_run_set_up_by_an_older_facescan_in_two_steps_is_completed(tmp_path, fairface, register):
    """Before set-up was one transaction, a crash could leave an identity without items: a rerun that
    scored 0 items (NaN) and exited 0. Such a store now gets its items, and the run its real numbers."""
    kind = register()
    clean = run_eval(fairface, "val", kind, tmp_path / "clean", progress=False, n_resamples=50)
    shutil.copytree(tmp_path / "clean", tmp_path / "old")
    with sqlite3.connect(tmp_path / "old" / "predictions.sqlite") as con:
        con.execute("DELETE FROM items")
        con.execute("DELETE FROM predictions")
    again = run_eval(fairface, "val", kind, tmp_path / "old", progress=False, n_resamples=50)
    assert again["n_items"] == 21 and again["attributes"] == clean["attributes"]


def test_metrics_json_holds_no_nan(tmp_path, fairface, register):
    m = run_eval(fairface, "val", register(fail="down"), tmp_path / "run", progress=False, n_resamples=50)
    assert m["mean_accuracy"] is None
    json.loads((tmp_path / "run" / "metrics.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    store = RunStore(tmp_path / "run" / "predictions.sqlite")
    assert store.meta()["n_items"] == 21 and store.count() == 63
    store.close()

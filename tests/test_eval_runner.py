"""facescan eval end to end: stored predictions, resume after SIGKILL, report, compare."""

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import types
import uuid

import numpy as np
import pytest
from typer.testing import CliRunner

from facescan import taxonomy
from facescan.backends.base import BACKENDS
from facescan.cli import app
from facescan.evaluate import run_eval
from facescan.schema import AttributePrediction

from .conftest import shared
from .dataset_layouts import write_fairface, write_fer2013_folders, write_rafdb, write_utkface

pytest.importorskip("sklearn", reason="eval needs the eval extra (scikit-learn, matplotlib)")
pytest.importorskip("matplotlib", reason="eval needs the eval extra (scikit-learn, matplotlib)")

# A builtin backend slowed down so that a run can be killed in the middle; registered in the child process.
SLOW_RUN = textwrap.dedent("""
    import sys, time
    from facescan.backends.base import BACKENDS
    from facescan.backends.builtin import BuiltinBackend

    class Slow(BuiltinBackend):
        def predict(self, faces, attributes):
            time.sleep(0.25)
            return super().predict(faces, attributes)

    BACKENDS.register("slowbuiltin", lambda target, **options: Slow(), "test", ("age", "gender", "race"))
    from facescan.evaluate import run_eval
    run_eval(sys.argv[1], "val", "slowbuiltin", sys.argv[2], batch_size=6, progress=False, n_resamples=100)
""")


def _count(db):
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db) as con:
            return con.execute("SELECT COUNT(*) FROM predictions").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def _child(dataset, out):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-c", SLOW_RUN, dataset, str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_sigkill_halfway_then_resume_holds_each_item_once_with_the_same_metrics(tmp_path):
    data = write_fairface(tmp_path / "ff", n=60)
    dataset = f"fairface:{data}"
    total = 60 * 3
    db = tmp_path / "killed" / "predictions.sqlite"
    proc = _child(dataset, tmp_path / "killed")
    deadline = time.time() + 120
    while _count(db) < total // 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = _count(db)
    assert 0 < partial < total, f"kill landed at {partial}/{total} rows"
    assert not (tmp_path / "killed" / "metrics.json").exists()

    resumed = _child(dataset, tmp_path / "killed")
    assert resumed.wait(timeout=180) == 0, resumed.stderr.read().decode()
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT item_id, attribute FROM predictions").fetchall()
    assert len(rows) == total and len(set(rows)) == total

    clean = _child(dataset, tmp_path / "clean")
    assert clean.wait(timeout=180) == 0
    a = json.loads((tmp_path / "killed" / "metrics.json").read_text())
    b = json.loads((tmp_path / "clean" / "metrics.json").read_text())
    assert a["attributes"] == b["attributes"]


def test_run_writes_the_report(tmp_path):
    data = write_fairface(tmp_path / "ff", n=28)
    out = tmp_path / "run"
    m = run_eval(f"fairface:{data}", "val", "builtin", out, progress=False, n_resamples=100)
    assert set(m["attributes"]) == {"age", "gender", "race"}  # what FairFace labels and builtin predicts
    assert m["attributes"]["gender"]["n"] == 28
    assert set(m["attributes"]["race"]["fairness"]) == {"race", "gender", "age", "race × gender"}
    html = (out / "report.html").read_text()
    assert html.count("data:image/svg+xml;base64,") == 4  # 3 confusion matrices + accuracy per group
    assert "http://" not in html and "https://" not in html
    md = (out / "report.md").read_text()
    assert "accuracy per race × gender" in md and "builtin" in md
    svg = (out / "figures" / "confusion_race.svg").read_text()
    assert "<svg" in svg and ">Latino/Hispanic<" in svg  # labels stay text
    groups = (out / "figures" / "groups.svg").read_text()  # group names spelled as in the confusion matrix
    assert ">Middle Eastern × female † (n=2)<" in groups and "middle eastern" not in groups
    with pytest.raises(ValueError, match="another run"):
        run_eval(f"fairface:{data}", "val", "builtin", out, attributes=["gender"], progress=False)


_FAIRFACE_SETS = {"age": "age9", "gender": "gender", "race": "race7"}


def _fingerprint(face) -> str:
    return hashlib.sha1(np.ascontiguousarray(face.chip).tobytes()).hexdigest()


class CountingBackend:
    """Made-up but deterministic predictions (a function of the chip's pixels); records the faces of each
    ``predict`` call in ``log.calls``, and raises KeyboardInterrupt once ``log.interrupt_after`` calls are done."""

    name = "counting"

    def __init__(self, log: types.SimpleNamespace):
        self.log = log

    def supported_attributes(self) -> tuple[str, ...]:
        return tuple(_FAIRFACE_SETS)

    def predict(self, faces, attributes):
        if self.log.interrupt_after is not None and len(self.log.calls) >= self.log.interrupt_after:
            raise KeyboardInterrupt  # not an Exception: the pipeline would store it as the batch's error
        self.log.calls.append([_fingerprint(f) for f in faces])
        out = []
        for face in faces:
            rng = np.random.default_rng(int(_fingerprint(face)[:8], 16))
            out.append({a: AttributePrediction.from_probabilities(
                a, _FAIRFACE_SETS[a], rng.dirichlet(np.ones(len(taxonomy.label_set(_FAIRFACE_SETS[a]).labels))),
                self.name, "counting-test") for a in attributes})
        return out


@pytest.fixture
def counting():
    """A registered ``CountingBackend`` kind (unique to the test, removed after it) and its call log."""
    kind = f"counting-test-{uuid.uuid4().hex[:8]}"
    log = types.SimpleNamespace(calls=[], interrupt_after=None)
    BACKENDS.register(kind, lambda target, **options: CountingBackend(log), "test backend", tuple(_FAIRFACE_SETS))
    yield kind, log
    BACKENDS._entries.pop(kind, None)


def _scores(m: dict) -> dict:
    return {k: v for k, v in m.items() if k != "meta"}  # meta holds the start and finish times


def test_a_rerun_predicts_nothing_and_a_resumed_run_predicts_only_the_rest(tmp_path, counting):
    kind, log = counting
    dataset = f"fairface:{write_fairface(tmp_path / 'ff', n=28)}"
    run = dict(batch_size=6, progress=False, n_resamples=100)
    first = run_eval(dataset, "val", kind, tmp_path / "run", **run)
    assert [len(c) for c in log.calls] == [6, 6, 6, 6, 4]  # one predict call per batch
    everything = [fp for c in log.calls for fp in c]
    assert len(set(everything)) == 28  # every item once (the 28 generated images all differ)
    assert first["attributes"]["gender"]["n"] == 28

    log.calls.clear()
    again = run_eval(dataset, "val", kind, tmp_path / "run", **run)
    assert log.calls == []
    assert _scores(again) == _scores(first)

    log.interrupt_after = 2  # Ctrl-C during the third batch: two batches are stored
    with pytest.raises(KeyboardInterrupt):
        run_eval(dataset, "val", kind, tmp_path / "resumed", **run)
    before = [fp for c in log.calls for fp in c]
    assert len(before) == 12 and not (tmp_path / "resumed" / "metrics.json").exists()
    log.calls.clear()
    log.interrupt_after = None
    resumed = run_eval(dataset, "val", kind, tmp_path / "resumed", **run)
    after = [fp for c in log.calls for fp in c]
    assert [len(c) for c in log.calls] == [6, 6, 4]
    assert sorted(after) == sorted(set(everything) - set(before))  # exactly the rest, each once
    assert _scores(resumed) == _scores(first)


def test_cli_eval_and_compare(tmp_path):
    runner = CliRunner()
    ff = write_fairface(tmp_path / "ff", n=21)
    fer = write_fer2013_folders(tmp_path / "fer")
    r1 = runner.invoke(app, ["eval", "--dataset", f"fairface:{ff}", "--out", str(tmp_path / "a"), "-q"])
    assert r1.exit_code == 0, r1.output
    r2 = runner.invoke(app, ["eval", "--dataset", f"fer2013:{fer}", "--out", str(tmp_path / "b"), "-q"])
    assert r2.exit_code == 0, r2.output
    res = runner.invoke(app, ["eval", "compare", str(tmp_path / "a"), str(tmp_path / "b"),
                              "--out", str(tmp_path / "cmp.md")])
    assert res.exit_code == 0, res.output
    table = (tmp_path / "cmp.md").read_text()
    paper = table.split("## Paper-style table")[1]
    row = next(line for line in paper.splitlines() if line.startswith("| builtin |"))
    assert row.count("fairface") == 3 and "fer2013" in row  # race, gender, age from FairFace; emotion from FER
    bad = runner.invoke(app, ["eval", "--dataset", f"fer2013:{fer}", "--attributes", "race",
                              "--out", str(tmp_path / "c")])
    assert bad.exit_code == 2 and "no race labels" in bad.output
    assert runner.invoke(app, ["eval", "compare", str(tmp_path / "nothing")]).exit_code == 2


@pytest.mark.slow
def test_fairface_val_sample_on_shared_data(tmp_path):
    root = shared("fairface")
    m = run_eval(f"fairface:{root}", "val", "builtin", tmp_path / "run", limit=300, stratify="race",
                 progress=False, n_resamples=100)
    assert m["attributes"]["gender"]["accuracy"] > 0.8
    assert m["attributes"]["race"]["fairness"]["race"]["largest_gap"] > 0


def test_compare_crosses_the_datasets_a_model_was_trained_on_with_those_it_was_tested_on(tmp_path):
    runner = CliRunner()
    utk, _ = write_utkface(tmp_path / "utk")
    layouts = {"ff": f"fairface:{write_fairface(tmp_path / 'ff', n=21)}", "utk": f"utkface:{utk}",
               "fer": f"fer2013:{write_fer2013_folders(tmp_path / 'fer')}",
               "raf": f"rafdb:{write_rafdb(tmp_path / 'raf')}"}
    splits = {"utk": "all", "raf": "test"}
    for name, dataset in layouts.items():
        r = runner.invoke(app, ["eval", "--dataset", dataset, "--split", splits.get(name, "val"),
                                "--out", str(tmp_path / name), "-q"])
        assert r.exit_code == 0, r.output
        assert json.loads((tmp_path / name / "metrics.json").read_text())["meta"]["trained_on"]["emotion"] == \
            ["fer2013", "rafdb"]
    res = runner.invoke(app, ["eval", "compare", *(str(tmp_path / n) for n in layouts), "--out",
                              str(tmp_path / "cmp.md")])
    assert res.exit_code == 0, res.output
    cross = (tmp_path / "cmp.md").read_text().split("## Cross-dataset")[1].split("## Paper-style")[0]
    lines = cross.splitlines()
    header = next(line for line in lines if line.startswith("| backend |"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert columns == ["backend", "attribute", "trained on", "fairface val", "utkface all", "fer2013 val",
                       "rafdb test"]
    cells = {c[1]: dict(zip(columns, c)) for c in ([x.strip() for x in line.strip("|").split("|")]
                                                   for line in lines if line.startswith("| builtin |"))}
    assert set(cells) == {"age", "gender", "race", "emotion"}
    assert cells["emotion"]["trained on"] == "fer2013, rafdb" and cells["age"]["trained on"] == "fairface"
    assert cells["emotion"]["fer2013 val"].startswith("**")  # in-domain: bold
    assert cells["emotion"]["rafdb test"].startswith("**")  # another split of a dataset it was trained on
    assert cells["emotion"]["rafdb test"].endswith("(rafdb7, n=2)")
    assert not cells["age"]["utkface all"].startswith("**")  # the age model never saw UTKFace
    assert cells["age"]["fairface val"].startswith("**") and "MAE" not in cells["age"]["fairface val"]
    # the sixth UTKFace file has no race field and is skipped
    assert ", MAE " in cells["age"]["utkface all"] and cells["age"]["utkface all"].endswith("(age9, n=5)")
    assert cells["emotion"]["fairface val"] == "–" and cells["race"]["rafdb test"] == "–"
    assert cells["race"]["utkface all"].endswith("(race5_utk, n=5)")  # compared in UTKFace's coarser races


def test_a_store_from_before_predictions_had_a_value_opens_and_gains_the_column(tmp_path):
    from facescan.evaluate.store import RunStore

    path = tmp_path / "predictions.sqlite"
    with sqlite3.connect(path) as con:
        con.executescript(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
            "CREATE TABLE items (id TEXT PRIMARY KEY, position INTEGER NOT NULL, labels TEXT NOT NULL, exact_age REAL);"
            "CREATE TABLE predictions (item_id TEXT NOT NULL, attribute TEXT NOT NULL, backend TEXT NOT NULL, "
            "label TEXT, label_set TEXT NOT NULL, probabilities TEXT NOT NULL, raw TEXT, error TEXT, model TEXT, "
            "mode TEXT, prompt TEXT, PRIMARY KEY (item_id, attribute, backend));"
            "INSERT INTO predictions VALUES ('a', 'age', 'b', '20-29', 'age9', '{}', NULL, NULL, 'm', NULL, NULL);")
    store = RunStore(path)
    assert store.predictions("b")[("a", "age")]["value"] is None
    store.add_predictions([{"item_id": "c", "attribute": "age", "backend": "b", "label": "30-39", "label_set": "age9",
                            "probabilities": {}, "raw": None, "error": None, "model": "m", "mode": None,
                            "prompt": None, "value": 33.5}])
    assert store.predictions("b")[("c", "age")]["value"] == 33.5
    store.close()


def test_training_metadata_that_facescan_did_not_write_means_not_known():
    from facescan.backends.builtin import _training_datasets

    assert _training_datasets('{"config": {"task": "fairface"}}') == ("fairface",)
    assert _training_datasets('{"datasets": ["fer2013", "rafdb"], "config": {"task": "fer2013"}}') == \
        ("fer2013", "rafdb")
    for text in (None, "", "[]", "null", "5", '"x"', "{", '{"datasets": "fairface"}', '{"config": {"task": null}}',
                 '{"datasets": ["a", 3]}', '{"config": []}'):
        assert _training_datasets(text) == ()


def test_cross_dataset_cells_take_each_runs_own_training_and_show_every_run():
    from pathlib import Path

    from facescan.evaluate.compare import cross_dataset_lines

    def run(dataset, split, trained, age):
        return (Path(dataset), {"meta": {"identity": {"backend": "builtin", "dataset": f"{dataset}:/x", "split": split},
                                         **({"trained_on": trained} if trained else {})},
                                "attributes": {"age": {"n": 10, "label_set": "age9", **age}}})

    old = run("utkface", "all", None, {"accuracy": 0.5, "mae_years": 7.7})  # scored before the median, no record
    new = run("utkface", "all", {"age": ["fairface", "utkface"]},
              {"accuracy": 0.6, "mae_years": 5.1, "mae_years_midpoint": 6.0})
    line = next(x for x in cross_dataset_lines([old, new]) if x.startswith("| builtin | age"))
    assert line == ("| builtin | age | fairface, utkface | 50.0, MAE 7.7 y (group middles) (age9, n=10); "
                    "**60.0, MAE 5.1 y** (age9, n=10) |")


def test_calibration_counts_only_answers_that_state_a_probability():
    from facescan.evaluate.runner import _to_set

    generated = {"label": "female", "label_set": "gender", "probabilities": {"male": 0.0, "female": 1.0}}
    scored = {"label": "female", "label_set": "gender", "probabilities": {"male": 0.3, "female": 0.7}}
    assert _to_set(generated, "gender") == ("female", None)
    assert _to_set(scored, "gender") == ("female", 0.7)
    ages = {f"{a}": 0.0 for a in ("0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70+")}
    ages.update({"20-29": 0.4, "30-39": 0.35, "3-9": 0.25})
    label, confidence = _to_set({"label": "20-29", "label_set": "age9", "probabilities": ages}, "age5")
    assert confidence == pytest.approx(0.75) and label is not None  # 20-29 and 30-39 share one of the five groups
    assert _to_set({"label": None, "label_set": "gender", "probabilities": {}}, "gender") == (None, None)

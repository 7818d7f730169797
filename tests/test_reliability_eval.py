"""facescan eval killed at any point: inside its set-up, while predicting, while scoring. Every rerun
resumes to the numbers of an uninterrupted run, with each item once; a killed run never blocks the
next; two runs on one folder never merge. (benchmarks/eval_kills.py does the same at scale on FairFace.)"""

import contextlib
import json
import os
import random
import select
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from facescan.backends.base import BACKENDS

from .dataset_layouts import write_fairface

pytest.importorskip("sklearn", reason="eval needs the eval extra (scikit-learn)")

from facescan.evaluate import run_eval  # noqa: E402
from facescan.evaluate.store import RunStore  # noqa: E402

# A deterministic backend (answers are a function of the chip's pixels), slowed down by SLEEP seconds a call.
BACKEND = textwrap.dedent("""
    import hashlib, time
    import numpy as np
    from facescan import taxonomy
    from facescan.schema import AttributePrediction

    SETS = {"age": "age9", "gender": "gender", "race": "race7"}

    class Slow:
        name = "slow"

        def __init__(self, sleep):
            self.sleep = sleep

        def supported_attributes(self):
            return tuple(SETS)

        def predict(self, faces, attributes):
            time.sleep(self.sleep)
            out = []
            for face in faces:
                seed = int(hashlib.sha1(np.ascontiguousarray(face.chip).tobytes()).hexdigest()[:8], 16)
                rng = np.random.default_rng(seed)
                out.append({a: AttributePrediction.from_probabilities(
                    a, SETS[a], rng.dirichlet(np.ones(len(taxonomy.label_set(SETS[a]).labels))), "slow", "slow-1")
                    for a in attributes})
            return out
""")

# The child: argv is SLEEP PAUSE facescan-eval-arguments…; PAUSE 1 holds the set-up transaction open
# (between writing the run's identity and its items) until the child is killed.
CHILD = BACKEND + textwrap.dedent("""
    import sys
    import facescan.evaluate.runner  # the slow imports (scikit-learn) before READY
    from facescan.backends.base import BACKENDS
    from facescan.evaluate.store import RunStore

    sleep, pause = float(sys.argv[1]), sys.argv[2] == "1"
    BACKENDS.register("slow", lambda target, **options: Slow(sleep), "test", tuple(SETS))
    if pause:
        def paused(self, items, original=RunStore._write_items):
            print("IN-SET-UP", flush=True)
            time.sleep(60)
            original(self, items)
        RunStore._write_items = paused
    print("READY", flush=True)
    from facescan.cli import main
    sys.argv = ["facescan", "eval", *sys.argv[3:]]
    main()
""")

N = 48
TOTAL = N * 3


def _child(dataset, out, sleep=0.08, pause=False, *extra):
    args = [sys.executable, "-c", CHILD, str(sleep), "1" if pause else "0", "--dataset", dataset, "--out", str(out),
            "--backend", "slow", "--batch-size", "4", "-q", *extra]
    return subprocess.Popen(args, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(proc, marker: str, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], max(deadline - time.time(), 0))
        line = proc.stdout.readline() if ready else ""
        if line.strip() == marker:
            return
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"no {marker} from the child: {proc.stderr.read() if proc.poll() is not None else ''}")


def _state(out) -> dict:
    """What a killed run left: its phase, whether the set-up is whole or absent, rows and duplicates."""
    db = out / "predictions.sqlite"
    if not db.exists():
        return {"phase": "set-up", "rows": 0}
    with contextlib.closing(sqlite3.connect(db)) as con:
        if not con.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchall():
            return {"phase": "set-up", "rows": 0}  # killed before the store's tables were made
        meta = dict(con.execute("SELECT key, value FROM meta"))
        items = con.execute("SELECT COUNT(*) FROM items").fetchone()[0]
        rows = con.execute("SELECT COUNT(*) FROM predictions").fetchone()[0]
        twice = con.execute("SELECT COUNT(*) FROM (SELECT 1 FROM predictions GROUP BY item_id, attribute "
                            "HAVING COUNT(*) > 1)").fetchone()[0]
    assert ("identity" in meta) == (items > 0), "a half set-up: identity without items or items without identity"
    assert "identity" not in meta or (json.loads(meta["n_items"]) == items == N and "label_sets" in meta)
    assert twice == 0
    phase = "set-up" if "identity" not in meta else "predicting" if rows < TOTAL else "scoring"
    if (out / "metrics.json").exists():
        json.loads((out / "metrics.json").read_text())  # never half a file
    return {"phase": phase, "rows": rows}


def _kill(proc) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    proc.stderr.close()


@pytest.fixture
def slow_backend():
    namespace: dict = {}
    exec(BACKEND, namespace)
    BACKENDS.register("slow", lambda target, **options: namespace["Slow"](0.0), "test", tuple(namespace["SETS"]))
    yield "slow"
    BACKENDS._entries.pop("slow", None)


def _scores(m: dict) -> dict:
    return {k: v for k, v in m.items() if k != "meta"}  # meta holds the start and finish times


@pytest.mark.slow
def test_kills_inside_set_up_and_at_random_points_then_a_rerun_equals_an_uninterrupted_run(tmp_path, slow_backend):
    dataset = f"fairface:{write_fairface(tmp_path / 'ff', n=N)}"
    out = tmp_path / "killed"
    phases = []

    proc = _child(dataset, out, 0.08, True)  # killed between the set-up's two writes
    _wait_for(proc, "IN-SET-UP")
    _kill(proc)
    phases.append(_state(out)["phase"])
    assert phases == ["set-up"] and (out / "predictions.sqlite").exists()
    assert (out / ".lock").read_text().strip() == str(proc.pid)  # the dead writer's pid stays: it blocks nothing

    rng = random.Random(13)
    for delay in [rng.uniform(0, 0.3), rng.uniform(0, 1.5)]:
        proc = _child(dataset, out)
        _wait_for(proc, "READY")
        time.sleep(delay)
        _kill(proc)
        phases.append(_state(out)["phase"])

    proc = _child(dataset, out)  # and once surely in the middle of predicting
    _wait_for(proc, "READY")
    start_rows = _state(out)["rows"]
    while _state(out)["rows"] < min(start_rows + 12, TOTAL - 12) and proc.poll() is None:
        time.sleep(0.01)
    _kill(proc)
    phases.append(_state(out)["phase"])
    assert "predicting" in phases, phases

    proc = _child(dataset, out)
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    assert _state(out) == {"phase": "scoring", "rows": TOTAL}
    clean = run_eval(dataset, "val", slow_backend, tmp_path / "clean", batch_size=4, progress=False)
    assert _scores(json.loads((out / "metrics.json").read_text())) == _scores(clean)


@pytest.mark.parametrize("after_items", [False, True])
def test_a_crash_inside_the_set_up_transaction_leaves_nothing_and_the_rerun_is_clean(tmp_path, slow_backend,
                                                                                    monkeypatch, after_items):
    dataset = f"fairface:{write_fairface(tmp_path / 'ff', n=12)}"
    original = RunStore._write_items

    def crash(self, items):
        if after_items:
            original(self, items)
        raise RuntimeError("crash between set-up steps")

    monkeypatch.setattr(RunStore, "_write_items", crash)
    with pytest.raises(RuntimeError, match="between set-up steps"):
        run_eval(dataset, "val", slow_backend, tmp_path / "run", progress=False, n_resamples=50)
    with contextlib.closing(sqlite3.connect(tmp_path / "run" / "predictions.sqlite")) as con:
        assert [con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("meta", "items", "predictions")] \
            == [0, 0, 0]
    monkeypatch.undo()
    rerun = run_eval(dataset, "val", slow_backend, tmp_path / "run", progress=False, n_resamples=50)
    clean = run_eval(dataset, "val", slow_backend, tmp_path / "clean", progress=False, n_resamples=50)
    assert rerun["n_items"] == 12 and rerun["attributes"]["gender"]["n"] == 12
    assert _scores(rerun) == _scores(clean)


@pytest.mark.slow
def test_two_runs_with_different_settings_started_together_on_one_folder_never_merge(tmp_path):
    dataset = f"fairface:{write_fairface(tmp_path / 'ff', n=N)}"
    out = tmp_path / "run"
    procs = [_child(dataset, out, 0.15, False, "--attributes", attrs) for attrs in ("gender", "age,race")]
    codes = [p.wait(timeout=120) for p in procs]
    errors = [p.stderr.read() for p in procs]
    assert sorted(codes) == [0, 2], errors
    winner, loser = (0, 1) if codes[0] == 0 else (1, 0)
    refusal = errors[loser]
    assert (f"is being written by another facescan eval (pid {procs[winner].pid})" in refusal
            or "holds another run; its settings: attributes" in refusal), refusal
    assert "Traceback" not in refusal
    with contextlib.closing(sqlite3.connect(out / "predictions.sqlite")) as con:
        stored = sorted(r[0] for r in con.execute("SELECT DISTINCT attribute FROM predictions"))
    assert stored == (["gender"] if winner == 0 else ["age", "race"])

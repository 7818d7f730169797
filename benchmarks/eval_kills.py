"""``facescan eval`` killed with SIGKILL at random points, rerun each time, compared with an uninterrupted run.

    python benchmarks/eval_kills.py --data ../shared/data [--limit 600] [--kills 12] [--seed 0]

Runs the real command (a subprocess, the builtin backend, FairFace val crops) once without
interruption, timing its phases, then in trials on fresh run folders: each trial kills the command
at a few seeded random moments, chosen to land in every phase:

* ``lock+U(0,a)``: a random delay after the run took its folder's lock (``<out>/.lock`` holds its pid),
  i.e. from loading the backend and opening the store through the set-up transaction into the first batches;
* ``start+U(0,T)``: anywhere in the uninterrupted run's duration T, counted from the process start;
* ``rows+U(0,p)``: after the run stored its first batch, within the uninterrupted run's predicting time p;
* ``done+U(0,s)``: once the run holds the folder and every prediction is stored, within the uninterrupted
  run's time s for scoring and writing the report.

After each kill the run folder is checked (a set-up is stored whole or not at all; no prediction twice;
metrics.json, if any, is whole JSON) and the phase the kill hit is read from it: start-up (the run had not
taken the folder), set-up (no committed set-up), predicting (some predictions missing), scoring (all
stored). Each trial then reruns the command to completion and compares: items lost, items duplicated
(rows per (item, attribute) in the store), and metrics.json (accuracy, macro-F1, fairness, bootstrap
intervals: everything but the start/finish times) against the uninterrupted run's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def facescan_command() -> list[str]:
    script = Path(sys.executable).with_name("facescan")
    return [str(script)] if script.exists() else [sys.executable, "-m", "facescan.cli"]


def store_state(out: Path, n: int, attributes: int) -> dict:
    """Rows, duplicates and the phase a run folder is in; raises AssertionError on a broken invariant."""
    db = out / "predictions.sqlite"
    state = {"identity": False, "items": 0, "rows": 0, "complete": 0, "duplicated": 0}
    if db.exists():
        with contextlib.closing(sqlite3.connect(db, timeout=30)) as con:
            if con.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchall():
                meta = dict(con.execute("SELECT key, value FROM meta"))
                state["identity"] = "identity" in meta
                state["items"] = con.execute("SELECT COUNT(*) FROM items").fetchone()[0]
                state["rows"] = con.execute("SELECT COUNT(*) FROM predictions").fetchone()[0]
                state["complete"] = con.execute(
                    "SELECT COUNT(*) FROM (SELECT item_id FROM predictions GROUP BY item_id HAVING COUNT(*) = ?)",
                    [attributes]).fetchone()[0]
                state["duplicated"] = con.execute(
                    "SELECT COUNT(*) FROM (SELECT 1 FROM predictions GROUP BY item_id, attribute "
                    "HAVING COUNT(*) > 1)").fetchone()[0]
                whole = not state["identity"] or (json.loads(meta["n_items"]) == state["items"] == n
                                                  and "label_sets" in meta)
                assert whole and state["identity"] == (state["items"] > 0), f"half a set-up in {db}: {state}"
    assert state["duplicated"] == 0, f"{state['duplicated']} (item, attribute) pairs stored twice"
    if (out / "metrics.json").exists():
        json.loads((out / "metrics.json").read_text())  # whole, never half written
    return state


def lock_pid(out: Path) -> str:
    try:
        return (out / ".lock").read_text().strip()
    except OSError:
        return ""


def run_to_end(cmd: list[str], rows: int, timeout: float = 900) -> tuple[int, float, dict]:
    """Run the command to completion; its exit status, duration, and when (seconds from its start) it took
    the folder, committed its set-up and stored its last prediction (``rows`` in all)."""
    out = Path(cmd[cmd.index("--out") + 1])
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    marks: dict[str, float] = {}
    while proc.poll() is None and time.perf_counter() - t0 < timeout:
        now = time.perf_counter() - t0
        if "took the folder" not in marks and lock_pid(out) == str(proc.pid):
            marks["took the folder"] = now
        elif "took the folder" in marks and "set-up committed" not in marks and _has_identity(out):
            marks["set-up committed"] = now
        elif "set-up committed" in marks and "predicted" not in marks and _rows(out) >= rows:
            marks["predicted"] = now
        elif "predicted" in marks and "released the folder" not in marks and not lock_pid(out):
            marks["released the folder"] = now  # report and metrics.json written
        time.sleep(0.01)
    code = proc.wait()
    if code:
        print(proc.stderr.read(), file=sys.stderr)
    return code, time.perf_counter() - t0, marks


def _has_identity(out: Path) -> bool:
    try:
        with contextlib.closing(sqlite3.connect(out / "predictions.sqlite", timeout=30)) as con:
            return bool(con.execute("SELECT 1 FROM meta WHERE key = 'identity'").fetchall())
    except sqlite3.Error:
        return False


def _rows(out: Path) -> int:
    try:
        with contextlib.closing(sqlite3.connect(out / "predictions.sqlite", timeout=30)) as con:
            return con.execute("SELECT COUNT(*) FROM predictions").fetchone()[0]
    except sqlite3.Error:
        return 0


def kill_once(cmd: list[str], out: Path, trigger: str, delay: float, n: int, attributes: int) -> dict:
    """Start the command, SIGKILL it ``delay`` seconds after ``trigger``, and say what the kill hit."""
    before = store_state(out, n, attributes)["rows"]
    started = time.time()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = t0 + 600
    while proc.poll() is None and time.perf_counter() < deadline:  # wait for the trigger
        holds = lock_pid(out) == str(proc.pid)
        if trigger == "start" or (trigger == "lock" and holds) or (trigger == "rows" and _rows(out) > before) or (
                trigger == "done" and holds and _rows(out) >= n * attributes):
            break
        time.sleep(0.002 if trigger == "lock" else 0.01)
    fired = time.perf_counter()
    while proc.poll() is None and time.perf_counter() < fired + delay:
        time.sleep(0.001)
    finished = proc.poll() is not None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    at = time.perf_counter() - t0
    state = store_state(out, n, attributes)
    metrics = out / "metrics.json"
    if finished or (lock_pid(out) != str(proc.pid) and metrics.exists() and metrics.stat().st_mtime >= started):
        phase = "after the run was written (missed)"
    elif lock_pid(out) != str(proc.pid):
        phase = "start-up (before taking the folder)"
    elif not state["identity"]:
        phase = "set-up"
    elif state["complete"] < n:
        phase = "predicting"
    else:
        phase = "scoring / report"
    return {"trigger": f"{trigger}+{delay:.3f}s", "at": at, "phase": phase, "rows": (before, state["rows"])}


def scores(path: Path) -> dict:
    metrics = json.loads(path.read_text())
    metrics.pop("meta")  # start and finish times
    return metrics


TRIGGERS = ("lock", "start", "rows", "done")


def plan(rng: random.Random, kills: int, total: float, predicting: float, scoring: float) -> list[list]:
    """Trials of (trigger, delay) kills, each trial's kills in the order a run meets them."""
    counts = [max(kills // 4, 1), max(kills // 6, 1), max(kills // 6, 1), max(kills // 6, 1)]
    pools = [[("lock", rng.uniform(0, 0.3)) for _ in range(counts[0])],  # set-up
             [("lock", rng.uniform(0, 1.5)) for _ in range(counts[1])],  # set-up or the first batches
             [("start", rng.uniform(0, total)) for _ in range(counts[2])],  # anywhere
             [("rows", rng.uniform(0, predicting)) for _ in range(counts[3])],  # while predicting
             [("done", rng.uniform(0, scoring)) for _ in range(max(kills - sum(counts), 1))]]  # while scoring
    trials = []
    while any(pools):
        trial = [pool.pop() for pool in pools if pool and rng.random() < 0.6]
        if trial:
            trials.append(sorted(trial, key=lambda k: (TRIGGERS.index(k[0]), k[1])))
    return trials


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--limit", type=int, default=600)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--kills", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    fairface = Path(args.data) / "fairface"
    if not (fairface / "fairface_label_val.csv").exists():
        sys.exit(f"no FairFace val crops in {fairface}")
    work = Path(tempfile.mkdtemp(prefix="eval_kills_"))
    base = facescan_command() + ["eval", "--dataset", f"fairface:{fairface}", "--split", "val", "--backend", "builtin",
                                 "--limit", str(args.limit), "--batch-size", str(args.batch_size), "-q"]
    attributes = 3  # FairFace labels age, gender and race; the builtin backend predicts all three
    try:
        code, total, marks = run_to_end(base + ["--out", str(work / "clean")], args.limit * attributes)
        assert code == 0, f"the uninterrupted run exited {code}"
        clean = scores(work / "clean" / "metrics.json")
        predicting = marks.get("predicted", total) - marks.get("set-up committed", 0)
        # scoring and writing the report: from the last prediction stored to the folder released
        scoring = max(marks.get("released the folder", total) - marks.get("predicted", total), 0.2)
        print(f"uninterrupted run: {total:.2f} s; " + ", ".join(f"{k} at {v:.2f} s" for k, v in marks.items()))
        trials = plan(random.Random(args.seed), args.kills, total, predicting, scoring)
        _trials(base, work, trials, args.limit, attributes, clean)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _trials(base: list[str], work: Path, trials: list, n: int, attributes: int, clean: dict) -> None:
    print(f"{'kill':>4}  {'trial':>5}  {'trigger':<16} {'killed at':>9}  {'rows before → after':<20} phase hit")
    kills, phases, lost, duplicated, equal = 0, {}, 0, 0, 0
    for t, trial in enumerate(trials, 1):
        out = work / f"trial{t}"
        cmd = base + ["--out", str(out)]
        for trigger, delay in trial:
            k = kill_once(cmd, out, trigger, delay, n, attributes)
            kills += 1
            phases[k["phase"]] = phases.get(k["phase"], 0) + 1
            print(f"{kills:>4}  {t:>5}  {k['trigger']:<16} {k['at']:>8.2f}s  "
                  f"{k['rows'][0]:>5} → {k['rows'][1]:<11}  {k['phase']}")
        code, _, _ = run_to_end(cmd, n * attributes)
        state = store_state(out, n, attributes)
        lost += n - state["complete"]
        duplicated += state["duplicated"]
        same = code == 0 and scores(out / "metrics.json") == clean
        equal += same
        print(f"      trial {t}: rerun exit {code}, {state['items']} items, {state['rows']} rows, "
              f"metrics {'equal to' if same else 'DIFFERENT from'} the uninterrupted run's")
    print()
    print(f"kills made: {kills} in {len(trials)} trials")
    print("phases hit: " + ", ".join(f"{p} {c}" for p, c in sorted(phases.items())))
    print(f"items lost: {lost}")
    print(f"items duplicated: {duplicated}")
    print(f"metrics equal to the uninterrupted run's (accuracy, macro-F1, fairness, bootstrap CIs): "
          f"{equal} of {len(trials)} trials")
    for attr, m in clean["attributes"].items():
        gaps = ", ".join(f"{g} {f['largest_gap']:.3f}" if f.get("largest_gap") is not None else f"{g} –"
                         for g, f in m.get("fairness", {}).items())
        print(f"  {attr}: accuracy {m['accuracy']:.4f} {m['accuracy_ci95']}, macro-F1 {m['macro_f1']:.4f}; "
              f"largest gaps: {gaps}")
    if lost or duplicated or equal < len(trials):
        sys.exit(1)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()

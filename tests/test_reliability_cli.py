"""facescan analyze's outputs: checked before work starts, written as results come, resumable,
and never silently overwritten or dropped."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from facescan.cli import app


def _images(folder, n, size=40, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        path = folder / f"img{i:05d}.png"
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def _run(*args):
    return CliRunner().invoke(app, ["analyze", *map(str, args)])


def test_outputs_are_checked_before_any_work(tmp_path, monkeypatch):
    from facescan import pipeline

    images = _images(tmp_path / "in", 3)
    started = []
    monkeypatch.setattr(pipeline.Analyzer, "iter_analyzed", lambda *a, **k: started.append(1) or iter(()))
    r = _run(tmp_path / "in", "--crops", "--json", tmp_path)  # a folder
    assert r.exit_code == 2 and "is a folder" in r.output and not started
    long_name = tmp_path / "in2" / ("x" * 245 + ".png")
    long_name.parent.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(long_name)
    r = _run(images[0], long_name, "--crops", "--annotate", tmp_path / "drawn")
    assert r.exit_code == 2 and "255 bytes" in r.output and not started
    r = _run(tmp_path / "in", "--crops", "--resume")
    assert r.exit_code == 2 and "--resume needs an output" in r.output


def test_missing_output_folders_are_made_and_colliding_pictures_kept_apart(tmp_path):
    a, b = _images(tmp_path / "a", 1), _images(tmp_path / "b", 1, seed=1)
    c = tmp_path / "c" / "img00000.jpg"
    c.parent.mkdir()
    Image.open(a[0]).convert("RGB").save(c)
    out = tmp_path / "new" / "deeper" / "r.csv"
    r = _run(a[0], b[0], c, "--crops", "-a", "gender", "--csv", out, "--annotate", tmp_path / "drawn")
    assert r.exit_code == 0, r.output
    assert len(list(csv.DictReader(out.open()))) == 3
    drawn = sorted(p.name for p in (tmp_path / "drawn").iterdir())
    assert drawn == ["img00000-2.annotated.jpg", "img00000-3.annotated.jpg", "img00000.annotated.jpg"]


def test_every_format_round_trips_and_resume_adds_only_the_rest(tmp_path):
    images = _images(tmp_path / "in", 6)
    outs = {fmt: tmp_path / f"r.{fmt}" for fmt in ("json", "jsonl", "csv", "parquet")}
    flags = [x for fmt, p in outs.items() for x in (f"--{fmt}", p)]
    r = _run(*images[:4], "--crops", "-a", "gender", *flags)
    assert r.exit_code == 0, r.output
    r = _run(*images, "--crops", "-a", "gender", *flags, "--resume")
    assert r.exit_code == 0, r.output
    assert "4 of 6 input(s) are already in the outputs" in r.output and "2 image(s)" in r.output
    import pyarrow.parquet as pq

    sources = {
        "json": [d["source"] for d in json.loads(outs["json"].read_text())],
        "jsonl": [json.loads(line)["source"] for line in outs["jsonl"].read_text().splitlines()],
        "csv": [row["source"] for row in csv.DictReader(outs["csv"].open())],
        "parquet": pq.read_table(outs["parquet"]).column("source").to_pylist(),
    }
    for fmt, got in sources.items():
        assert sorted(got) == sorted(map(str, images)), fmt  # each image once, none lost


@pytest.mark.slow
def test_a_killed_run_keeps_what_it_finished_and_resume_completes_it(tmp_path):
    images = _images(tmp_path / "in", 1500, size=24)
    jsonl, table = tmp_path / "r.jsonl", tmp_path / "r.csv"
    cmd = [sys.executable, "-m", "facescan.cli", "analyze", str(tmp_path / "in"), "--crops", "-a", "gender",
           "-q", "--jsonl", str(jsonl), "--csv", str(table)]
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not jsonl.exists() or jsonl.read_text().count("\n") < 64):
        time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    kept = [json.loads(line)["source"] for line in jsonl.read_text().splitlines()]  # every line whole
    assert 64 <= len(kept) < len(images)
    done = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line)["source"] for line in jsonl.read_text().splitlines()]
    assert sorted(lines) == sorted(map(str, images))
    assert sorted(row["source"] for row in csv.DictReader(table.open())) == sorted(map(str, images))


def test_resume_reports_earlier_failures_and_cuts_a_torn_last_line(tmp_path):
    images = _images(tmp_path / "in", 3)
    (tmp_path / "in" / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "r.jsonl"
    r = _run(tmp_path / "in", "--crops", "-a", "gender", "--jsonl", out)
    assert r.exit_code == 1
    whole = out.read_text()
    out.write_text(whole + whole.splitlines()[0][:50])  # a line torn by a kill mid-write
    r = _run(tmp_path / "in", "--crops", "-a", "gender", "--jsonl", out, "--resume")
    assert r.exit_code == 1, r.output  # the earlier failure still counts
    assert "1 input(s) had failed in the resumed run" in r.output and "broken.png" in r.output
    assert out.read_text() == whole  # the torn line is gone, nothing else changed
    assert len(images) == 3

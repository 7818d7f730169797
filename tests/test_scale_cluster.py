"""`facescan analyze --engine ray` and `facescan eval --engine ray` on a two-node Ray cluster started on
this machine (two `ray start` nodes of 1 CPU each, their own temporary folders and free ports), over
FairFace val's 2,500 crops: the rows equal the single-process CLI's, and a node killed mid-run
loses nothing and duplicates nothing.

Slow (marked ``slow``; ``-m "not slow"`` leaves them out): 3.6 minutes together on this machine's two
shared cores when little else runs (cluster start 17 s, the 2,500 crops on the CLI then on Ray 78 s,
the eval pair 47 s, the shared request rate 10 s, the killed node's run of 1,000 crops 58 s), up to
about 9 minutes when other work loads the machine. They skip with a reason without Ray
(``pip install 'facescan[ray]'``) or ../shared/data.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from .conftest import ROOT, shared

pytest.importorskip("ray.data", reason="--engine ray needs Ray: pip install 'facescan[ray]'")
pytestmark = [pytest.mark.slow, pytest.mark.data]

ATTRIBUTES = "age,gender,race,emotion"
#: Two actors of 0.75 CPU on two 1-CPU nodes: one actor per node (two do not fit on one), a quarter CPU
#: beside each for eval's read tasks (analyze --crops runs none: its actors read the crops); one
#: onnxruntime thread per actor.
ACTORS = ["--actors", "2", "--actor-cpus", "0.75", "--task-cpus", "0.25"]
RUN_TIMEOUT_S = 600
#: The run whose node is killed analyzes the first 1,000 crops (the other test runs all 2,500).
KILL_RUN_CROPS = 1000


def _facescan(*args: str) -> list[str]:
    return [sys.executable, "-m", "facescan.cli", *args]


@pytest.fixture(scope="module")
def val() -> Path:
    return shared("fairface", "val")


@pytest.fixture(scope="module")
def reference(val, tmp_path_factory):
    """The single-process CLI's Parquet of the 2,500 crops: started before the cluster, so it runs while the
    nodes start; ``reference()`` waits for it (once) and returns its rows."""
    out = tmp_path_factory.mktemp("reference") / "ref.parquet"
    proc = subprocess.Popen(_facescan("analyze", "--crops", str(val), "-a", ATTRIBUTES, "--parquet", str(out), "-q"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT / "src")})

    def rows():
        if proc.returncode is None:
            output, _ = proc.communicate(timeout=RUN_TIMEOUT_S)
            assert proc.returncode == 0, output
        return _frame(out)

    yield rows
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def cluster(reference, tmp_path_factory):
    from facescan.scale.localcluster import LocalCluster

    with LocalCluster(tmp_path_factory.mktemp("ray"), cpus=[1, 1], env={"PYTHONPATH": str(ROOT / "src")}) as c:
        yield c


def _frame(path: Path):
    import pyarrow.parquet as pq

    from facescan.scale import read_results

    table = read_results(str(path)) if path.is_dir() else pq.read_table(path)
    return table.to_pandas()


def _run(cluster, *args: str, timeout: float = RUN_TIMEOUT_S) -> subprocess.CompletedProcess:
    return subprocess.run(_facescan(*args), env=cluster.env, capture_output=True, text=True,
                          timeout=timeout)


def _assert_same_rows(got, want) -> None:
    """Same sources, each once; same columns; same labels; probabilities and boxes equal to 1e-6."""
    assert Counter(got.source).most_common(1)[0][1] == 1, "an input has rows twice"
    assert set(got.source) == set(want.source) and len(got) == len(want)
    assert set(got.columns) == set(want.columns)
    got = got.set_index("source").sort_index()[[c for c in want.columns if c != "source"]]
    want = want.set_index("source").sort_index()
    for column in want.columns:
        a, b = want[column], got[column]
        if a.dtype.kind in "fi" and b.dtype.kind in "fi":
            np.testing.assert_allclose(b.to_numpy(float), a.to_numpy(float), atol=1e-6, rtol=0, err_msg=column)
        else:
            assert (a.fillna("∅").astype(str) == b.fillna("∅").astype(str)).all(), column


def test_ray_rows_equal_the_single_process_cli(cluster, reference, val, tmp_path):
    # the reference first: two onnxruntime thread pools fighting over two cores slow each other down 3×
    want = reference()
    out = tmp_path / "shards"
    done = _run(cluster, "analyze", "--engine", "ray", "--address", cluster.address, "--crops", str(val),
                "-a", ATTRIBUTES, "--parquet", str(out), *ACTORS, "-q")
    assert done.returncode == 0, done.stderr
    assert "2500 input(s), 2500 face(s), 0 failed" in done.stderr and "on 2 actor(s)" in done.stderr
    _assert_same_rows(_frame(out), want)


def test_eval_on_ray_stores_the_local_run(cluster, tmp_path):
    import json

    from facescan.evaluate.store import RunStore

    data = shared("fairface")
    common = ["eval", "-d", f"fairface:{data}", "--limit", "300", "-q"]
    on_ray = _run(cluster, *common, "--out", str(tmp_path / "ray"), "--engine", "ray", "--address", cluster.address,
                  *ACTORS)
    assert on_ray.returncode == 0, on_ray.stderr
    local = _run(cluster, *common, "--out", str(tmp_path / "local"))
    assert local.returncode == 0, local.stderr
    stores = [RunStore(tmp_path / name / "predictions.sqlite") for name in ("ray", "local")]
    assert stores[0].predictions("builtin") == stores[1].predictions("builtin")
    assert len(stores[0].predictions("builtin")) == 300 * 3  # age, gender, race
    for store in stores:
        store.close()
    metrics = [json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("ray", "local")]
    assert metrics[0]["attributes"] == metrics[1]["attributes"]
    compared = _run(cluster, "eval", "compare", str(tmp_path / "ray"), str(tmp_path / "local"))
    assert compared.returncode == 0, compared.stderr
    rerun = _run(cluster, *common, "--out", str(tmp_path / "ray"), "--engine", "ray", "--address", cluster.address)
    assert rerun.returncode == 0, rerun.stderr  # resumed: everything is stored, nothing is asked of the cluster


def test_one_request_rate_for_every_actor(cluster):
    """The named token-bucket actor, asked by three actors on both nodes: 30 requests at 20/s (bursts of 1)
    take about 1.45 s in all (three buckets of their own would let them through in 0.45 s)."""
    code = """
import sys, time, ray
from facescan.scale import cluster
from facescan.scale.ratelimit import shared_limiter
cluster.connect(sys.argv[1])
name = shared_limiter(20, burst=1)

@ray.remote(num_cpus=0.25, scheduling_strategy="SPREAD")
class Client:  # an actor's API backend: request() is its one network call
    def __init__(self, name):
        from facescan.scale.ratelimit import limit_requests
        limit_requests(self, name)
    def request(self):
        return time.monotonic()
    def ready(self):
        return True
    def run(self, n):
        return [self.request() for _ in range(n)]

clients = [Client.remote(name) for _ in range(3)]
ray.get([c.ready.remote() for c in clients])
times = sorted(t for ts in ray.get([c.run.remote(10) for c in clients]) for t in ts)
print(times[-1] - times[0])
"""
    done = subprocess.run([sys.executable, "-c", code, cluster.address], env=cluster.env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    spread = float(done.stdout.strip().splitlines()[-1])
    assert 29 / 20 * 0.9 <= spread <= 29 / 20 + 1.0, spread


def test_a_node_killed_mid_run_loses_and_duplicates_nothing(cluster, reference, val, tmp_path):
    crops = sorted(val.glob("*.jpg"))[:KILL_RUN_CROPS]
    listing = tmp_path / "crops.txt"  # a list of inputs, as a cluster run is often given
    listing.write_text("\n".join(map(str, crops)) + "\n")
    out = tmp_path / "shards"
    args = ["analyze", "--engine", "ray", "--address", cluster.address, "--crops", str(listing), "-a", ATTRIBUTES,
            "--parquet", str(out), *ACTORS, "--shard-rows", "100", "-q"]
    driver = subprocess.Popen(_facescan(*args), env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while len(list(out.glob("part-*.parquet"))) < 4:  # ~400 of 1,000 rows written: mid-run
            assert driver.poll() is None, driver.communicate()[1]
            assert time.monotonic() < deadline, "the run made no progress"
            time.sleep(0.2)
        cluster.kill_node(1)  # the worker node: its raylet, actor and tasks die at once
        _, stderr = driver.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    assert driver.returncode == 0, stderr
    assert f"{KILL_RUN_CROPS} input(s), {KILL_RUN_CROPS} face(s), 0 failed" in stderr
    got = _frame(out)
    counts = Counter(got.source)
    lost = {str(p) for p in crops} - set(counts)
    duplicated = [s for s, n in counts.items() if n > 1]
    assert (len(lost), len(duplicated)) == (0, 0)
    want = reference()
    _assert_same_rows(got, want[want.source.isin(counts)].reset_index(drop=True))
    # a rerun on the folder finds every input there and writes nothing
    shards = sorted(out.glob("part-*.parquet"))
    again = _run(cluster, *args)
    assert again.returncode == 0, again.stderr
    assert f"{KILL_RUN_CROPS} of {KILL_RUN_CROPS} input(s) are already in" in again.stderr
    assert sorted(out.glob("part-*.parquet")) == shards

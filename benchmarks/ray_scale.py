"""`facescan analyze --engine ray` on this machine: throughput with 1 and 2 actors, and the Ray run's
overhead against the single-process CLI at equal cores, on FairFace val's crops.

    python benchmarks/ray_scale.py --data ../shared/data [--images 2500] [--repeats 1]

A one-node Ray cluster of 2 logical CPUs is started here (``ray start`` with free ports and its own
temporary folder; stopped at the end). Every run is the whole command, timed from outside as a
user sees it (Python start, listing, connecting, actors starting, Parquet written):

- ``cli``: ``facescan analyze --crops VAL --parquet …`` in one process (onnxruntime on both cores);
- ``ray ×1`` / ``ray ×2``: ``facescan analyze --engine ray --address … --actors N --actor-cpus 1`` (each
  actor one onnxruntime thread, ``builtin?threads=1``; with ``--crops`` the actors read and decode the
  crops, no task runs).

It prints a table: seconds, seconds to the first rows (actors starting, models loading), images per
second end to end and after the first rows, the speed-up of 2 actors over 1, and the overhead of
``ray ×2`` against ``cli`` (both on the machine's 2 cores). The machine is shared, so ``--repeats N``
runs each configuration N times, interleaved, and reports the fastest.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ATTRIBUTES = "age,gender,race,emotion"


def run(cmd: list[str], env: dict) -> tuple[float, str]:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds, done.stderr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--images", type=int, default=2500, help="the first N crops of FairFace val (default: all)")
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from facescan.scale.localcluster import LocalCluster

    val = Path(args.data) / "fairface" / "val"
    if not val.is_dir():
        raise SystemExit(f"needs {val}")
    crops = sorted(val.glob("*.jpg"), key=lambda p: int(p.stem) if p.stem.isdigit() else p.stem)[: args.images]
    with tempfile.TemporaryDirectory(prefix="fs-ray-bench-") as tmp:
        listing = Path(tmp) / "crops.txt"
        listing.write_text("\n".join(str(p) for p in crops) + "\n")
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        facescan = [sys.executable, "-m", "facescan.cli", "analyze", "--crops", "-a", ATTRIBUTES, "-q"]
        t0 = time.perf_counter()
        with LocalCluster(Path(tmp) / "ray", cpus=[2], env={"PYTHONPATH": str(ROOT / "src")}) as cluster:
            started = time.perf_counter() - t0
            env = cluster.env
            # all of val: both read the folder; fewer: the CLI is given the files, Ray the list of them
            inputs = [str(val)] if len(crops) == sum(1 for _ in val.glob("*.jpg")) else None
            ray_run = [*facescan, "--engine", "ray", "--address", cluster.address, "--actor-cpus", "1",
                       *(inputs or [str(listing)])]
            configs = {
                "cli": lambda k: [*facescan, *(inputs or map(str, crops)), "--parquet", f"{tmp}/cli{k}.parquet"],
                "ray ×1": lambda k: [*ray_run, "--actors", "1", "--parquet", f"{tmp}/r1-{k}"],
                "ray ×2": lambda k: [*ray_run, "--actors", "2", "--parquet", f"{tmp}/r2-{k}"],
            }
            best: dict[str, tuple[float, float, float]] = {}  # seconds, pipeline seconds, first rows after
            for k in range(args.repeats):
                for name, command in configs.items():
                    seconds, stderr = run(command(k), env)
                    found = re.search(r"\(([\d.]+) inputs/s; first rows after ([\d.]+) s\)", stderr)
                    pipeline, first = (len(crops) / float(found.group(1)), float(found.group(2))) if found else \
                        (seconds, 0.0)
                    print(f"  {name} run {k + 1}: {seconds:.1f} s (load average {os.getloadavg()[0]:.1f})",
                          file=sys.stderr, flush=True)
                    if name not in best or seconds < best[name][0]:
                        best[name] = (seconds, pipeline, first)
    n = len(crops)
    print(f"\n{n} FairFace val crops, {ATTRIBUTES}; Ray {_ray_version()}, a 1-node cluster of 2 CPUs "
          f"(started in {started:.1f} s, not counted); {os.cpu_count()} cores; best of {args.repeats}\n")
    print("| run | actors × threads | seconds | to first rows (s) | images/s end to end | images/s after first rows |")
    print("|---|---|---:|---:|---:|---:|")
    shape = {"cli": "1 process × 2 threads", "ray ×1": "1 × 1", "ray ×2": "2 × 1"}
    steady = {}
    for name, (seconds, pipeline, first) in best.items():
        steady[name] = n / (pipeline - first) if name != "cli" else n / seconds
        print(f"| {name} | {shape[name]} | {seconds:.1f} | {first:.1f} | {n / seconds:.1f} | "
              f"{steady[name]:.1f} |" if name != "cli" else
              f"| {name} | {shape[name]} | {seconds:.1f} | – | {n / seconds:.1f} | – |")
    one, two, cli = best["ray ×1"][0], best["ray ×2"][0], best["cli"][0]
    print(f"\nspeed-up, 2 actors over 1: {steady['ray ×2'] / steady['ray ×1']:.2f}× after the first rows, "
          f"{one / two:.2f}× end to end (floor: 1.6×)")
    print(f"overhead of `--engine ray` (2 actors) against the single-process CLI on the same 2 cores: "
          f"{(two / cli - 1) * 100:+.1f} % end to end (ceiling: +25 %)")


def _ray_version() -> str:
    import ray

    return ray.__version__


if __name__ == "__main__":
    main()

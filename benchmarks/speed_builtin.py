"""Speed of the built-in backend on this machine.

    python benchmarks/speed_builtin.py --data ../shared/data [--backends builtin,builtin?tta=0]

Prints (1) face crops per second for all four attributes, batched (preprocessing included,
JPEG decoding excluded); (2) p50/p90 latency of analyzing multi_face.jpg (decode + detect +
five faces, all attributes) after warm-up; (3) wall time of the CLI
``facescan analyze --crops`` over the FairFace val folder (process start and model loading included).
Each for every backend spec of ``--backends`` (default: the shipped default and ``tta=0``, which skips the
mirror-image view). The CPU's model and vector extensions are printed first: int8 convolutions run
several times faster where the CPU has AVX-512 VNNI, so numbers from different machines differ.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from facescan.backends.base import FaceInput, load_backend
from facescan.imageio import load_image
from facescan.pipeline import Analyzer

ALL = ("age", "gender", "race", "emotion")


def crops_per_second(data: Path, spec: str, n: int = 1024, batch: int = 64) -> float:
    files = sorted((data / "fairface" / "val").glob("*.jpg"))[:n]
    chips = [load_image(f).pixels for f in files]
    faces = [FaceInput(chip=c, padding=0.25) for c in chips]
    backend = load_backend(spec)
    backend.predict(faces[:batch], ALL)  # warm-up
    t0 = time.perf_counter()
    for i in range(0, len(faces), batch):
        backend.predict(faces[i : i + batch], ALL)
    return len(faces) / (time.perf_counter() - t0)


def photo_latency(photo: Path, spec: str, runs: int = 30) -> tuple[float, float, int]:
    analyzer = Analyzer(backend=spec, attributes=ALL)
    for _ in range(3):
        result = analyzer.analyze(photo)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        result = analyzer.analyze(photo)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), float(np.percentile(times, 90)), len(result.faces)


def cli_crops_wall(data: Path, spec: str) -> tuple[float, str]:
    cmd = [sys.executable, "-m", "facescan.cli", "analyze", "--crops", "-q", "-a", ",".join(ALL), "--workers", "2",
           "-b", spec, str(data / "fairface" / "val")]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "COLUMNS": "120"})
    wall = time.perf_counter() - t0
    return wall, proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--backends", default="builtin,builtin?tta=0", help="comma-separated backend specs")
    args = ap.parse_args()
    data = Path(args.data)
    print(f"cpu: {os.cpu_count()} cores, {cpu_description()}")
    for spec in args.backends.split(","):
        print(f"\n{spec}")
        print(f"  batched crops/s (all 4 attributes, batch 64): {crops_per_second(data, spec):.0f}")
        p50, p90, n = photo_latency(data / "photos" / "multi_face.jpg", spec)
        print(f"  analyze multi_face.jpg ({n} faces, all attributes): p50 {p50 * 1000:.1f} ms, p90 {p90 * 1000:.1f} ms")
        wall, summary = cli_crops_wall(data, spec)
        print(f"  facescan analyze --crops fairface/val: {wall:.1f} s wall ({summary})")


def cpu_description() -> str:
    """The CPU's model name and its AVX-512/VNNI/AMX extensions (Linux; "unknown CPU" elsewhere)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown CPU"
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    wide = sorted(f for f in flags if f.startswith(("avx512", "amx")) or "vnni" in f) or \
        [f for f in ("avx2",) if f in flags]
    return f"{model} ({' '.join(wide) or 'no AVX2'})"


if __name__ == "__main__":
    main()

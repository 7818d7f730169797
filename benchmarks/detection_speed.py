"""End-to-end latency of one photo per detector: decode, detect, all four attributes.

    python benchmarks/detection_speed.py --data ../shared/data [--detectors mediapipe,fused] [--runs 30]

Prints, per detector, p50 and p90 wall time of ``Analyzer.analyze(path)`` after warm-up, the
detection part alone, and the process CPU time (which a busy shared machine inflates less than
wall time), plus the 1-minute load average so numbers from a shared machine can be read.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from facescan.imageio import load_image
from facescan.pipeline import Analyzer


def measure(detector: str, path: Path, runs: int) -> dict[str, float]:
    analyzer = Analyzer(attributes="age,gender,race,emotion", detector=detector)
    pixels = load_image(path).pixels
    for _ in range(3):
        analyzer.analyze(path)
    wall, cpu, det = [], [], []
    for _ in range(runs):
        w, c = time.perf_counter(), time.process_time()
        result = analyzer.analyze(path)
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
        d = time.perf_counter()
        analyzer.detector.detect(pixels)
        det.append(time.perf_counter() - d)
    q = statistics.quantiles(wall, n=10)
    return {"faces": len(result.faces), "p50_ms": 1000 * statistics.median(wall), "p90_ms": 1000 * q[-1],
            "cpu_p50_ms": 1000 * statistics.median(cpu), "detect_p50_ms": 1000 * statistics.median(det)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--photo", default="multi_face.jpg")
    ap.add_argument("--detectors", default="mediapipe,fused")
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    path = args.data / "photos" / args.photo
    for spec in args.detectors.split(","):
        r = measure(spec, path, args.runs)
        print(f"{spec:24s} faces={r['faces']}  p50 {r['p50_ms']:.0f} ms  p90 {r['p90_ms']:.0f} ms  "
              f"cpu p50 {r['cpu_p50_ms']:.0f} ms  detection alone p50 {r['detect_p50_ms']:.0f} ms  "
              f"(load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()

"""Per-face latency of the hf backend, closed-set scoring vs generation, on tiny random-weight VLMs (CPU).

    python benchmarks/speed_vlm_modes.py [--faces 8] [--max-new-tokens 8]

Builds a tiny model of each family (no download), then times the four attributes per face in
both modes. Generation is capped at ``--max-new-tokens`` (random weights never stop early; real
models answer a label in a few tokens), so the ratio is conservative for real models whose
answers are longer. Numbers depend on the machine; the ratio is what matters.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from facescan.backends.base import FaceInput
from facescan.backends.hf import HFBackend
from facescan.backends.tiny import FAMILIES, build_tiny_vlm

ATTRIBUTES = ["age", "gender", "race", "emotion"]


def per_face_seconds(backend: HFBackend, faces: list[FaceInput]) -> float:
    backend.predict(faces[:1], ATTRIBUTES)  # warm-up
    t0 = time.perf_counter()
    backend.predict(faces, ATTRIBUTES)
    return (time.perf_counter() - t0) / len(faces)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=8)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    faces = [FaceInput(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), 0.25) for _ in range(args.faces)]
    print(f"per-face latency, 4 attributes, {args.faces} faces, generation capped at {args.max_new_tokens} tokens")
    print("| family | scoring ms/face | generation ms/face | generation / scoring |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for family in FAMILIES:
            folder = build_tiny_vlm(family, Path(tmp) / family)
            scoring = HFBackend(f"{folder}?mode=scoring")
            generation = HFBackend(f"{folder}?mode=generation&max_new_tokens={args.max_new_tokens}",
                                   model=scoring.model, processor=scoring.processor)
            s, g = per_face_seconds(scoring, faces), per_face_seconds(generation, faces)
            print(f"| {family} | {s * 1000:.1f} | {g * 1000:.1f} | {g / s:.2f}x |", flush=True)


if __name__ == "__main__":
    main()

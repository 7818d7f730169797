"""Per-face latency of the hf backend, closed-set scoring vs generation, on tiny random-weight VLMs (CPU).

    python benchmarks/speed_vlm_modes.py [--faces 8] [--answer-tokens 4]

Builds a tiny model of each family (no download), then times the four attributes per face in
both modes, both batched the same way. Random weights answer at random lengths (some stop at
once), so generation is made to produce exactly ``--answer-tokens`` tokens per answer — a short
label answer such as "Southeast Asian" plus its end token; real answers with explanations or
JSON are longer, which only widens the gap. Best of three timings per mode.
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
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        backend.predict(faces, ATTRIBUTES)
        best = min(best, time.perf_counter() - t0)
    return best / len(faces)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=int, default=8)
    ap.add_argument("--answer-tokens", type=int, default=4)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    faces = [FaceInput(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), 0.25) for _ in range(args.faces)]
    n = args.answer_tokens
    print(f"per-face latency, 4 attributes, {args.faces} faces per batch, answers of {n} tokens in generation mode")
    print("| family | scoring ms/face | generation ms/face | generation / scoring |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for family in FAMILIES:
            folder = build_tiny_vlm(family, Path(tmp) / family)
            scoring = HFBackend(f"{folder}?mode=scoring")
            generation = HFBackend(f"{folder}?mode=generation&max_new_tokens={n}&min_new_tokens={n}",
                                   model=scoring.model, processor=scoring.processor)
            s, g = per_face_seconds(scoring, faces), per_face_seconds(generation, faces)
            print(f"| {family} | {s * 1000:.1f} | {g * 1000:.1f} | {g / s:.2f}x |", flush=True)


if __name__ == "__main__":
    main()

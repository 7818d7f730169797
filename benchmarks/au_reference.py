"""Reference statistics of the face-mesh AU ratios, and mean AU intensity per emotion class.

    python benchmarks/au_reference.py --data ../shared/data [--per-class 300] [--split train]

Prints, per AU ratio, the median over neutral faces and the spread (median absolute deviation
× 1.4826) over all faces — the values of ``facescan.explain.aus.REFERENCE`` — then the mean
intensity of each AU per emotion class and how many faces the mesh found.
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np

from facescan.datasets import open_dataset
from facescan.explain.aus import AUS, FaceMesh, intensities, raw_ratios
from facescan.imageio import load_image


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--split", default="train")
    ap.add_argument("--per-class", type=int, default=300)
    args = ap.parse_args()
    samples = open_dataset(f"fer2013:{args.data}/fer2013", args.split)
    by_class = defaultdict(list)
    for s in samples:
        by_class[s.labels["emotion"]].append(s)
    rng = np.random.default_rng(0)
    mesh = FaceMesh()
    ratios, levels, tried, found = defaultdict(list), defaultdict(list), 0, 0
    for emotion, items in sorted(by_class.items()):
        for i in rng.permutation(len(items))[: args.per_class]:
            tried += 1
            points = mesh.landmarks(load_image(items[i].path).pixels)
            if points is None:
                continue
            found += 1
            ratios[emotion].append(raw_ratios(points))
            levels[emotion].append({r.au: r.intensity for r in intensities(points)})
    print(f"face mesh found {found} of {tried} faces ({100 * found / tried:.1f}%), {args.split} split")
    print("\nreference (neutral median, spread over all):")
    for au in AUS:
        neutral = np.array([r[au] for r in ratios["neutral"]])
        every = np.array([r[au] for rs in ratios.values() for r in rs])
        mad = np.median(np.abs(every - np.median(every))) * 1.4826
        print(f"  {au:6s} median {np.median(neutral):.3f}  spread {mad:.3f}")
    print("\nmean intensity (0-5) per emotion class:")
    print("| emotion | n | " + " | ".join(AUS) + " |")
    print("|---|---|" + "---|" * len(AUS))
    for emotion, rows in sorted(levels.items()):
        means = [np.mean([r[au] for r in rows]) for au in AUS]
        print(f"| {emotion} | {len(rows)} | " + " | ".join(f"{m:.2f}" for m in means) + " |")


if __name__ == "__main__":
    main()

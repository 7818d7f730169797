"""Does the quality record say which faces to trust? Attribute accuracy of FairFace val faces, by quality.

    python benchmarks/quality_accuracy.py --data ../shared/data [--faces 600] [--detector mediapipe]

Each FairFace val crop (which no shipped model was trained on) is placed on a plain canvas as it is,
shrunk to a face of 48, 32, 24 or 16 px, blurred, and cut by the canvas edge, then analyzed end to end
(detect, align, predict). Every found face is matched to its true box, and its quality record (size,
sharpness, yaw, share outside) is binned. Printed per bin: faces, how many were found, age / gender /
race accuracy and the mean top-label score, so one can see whether weak faces are less accurate while
looking as confident. The last rows compare faces under ``facescan.ask.answer.CAUTION`` (the floor
`ask` cautions about) with the rest.
"""

from __future__ import annotations

import argparse
import csv
import warnings
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
from rich.progress import track

from facescan import taxonomy
from facescan.ask.answer import CAUTION
from facescan.detect.boxes import iou
from facescan.pipeline import Analyzer

ATTRIBUTES = ("age", "gender", "race")
CANVAS = 320
#: (name, face side in px on the canvas, Gaussian blur sigma, share of the face box cut by the left edge)
DEGRADATIONS = [("as is", 110, 0, 0.0), ("48 px", 48, 0, 0.0), ("32 px", 32, 0, 0.0), ("24 px", 24, 0, 0.0),
                ("16 px", 16, 0, 0.0), ("blur σ2", 110, 2, 0.0), ("blur σ4", 110, 4, 0.0),
                ("cut 20 %", 110, 0, 0.2), ("cut 40 %", 110, 0, 0.4)]


def read_labels(root: Path) -> list[tuple[Path, dict]]:
    """FairFace val crops and their labels in facescan's label sets."""
    rows = []
    with (root / "fairface_label_val.csv").open() as f:
        for r in csv.DictReader(f):
            labels = {"age": taxonomy.canonical(taxonomy.label_set("age9"), r["age"]),
                      "gender": taxonomy.canonical(taxonomy.label_set("gender"), r["gender"]),
                      "race": taxonomy.canonical(taxonomy.label_set("race7"), r["race"])}
            rows.append((root / r["file"], labels))
    return rows


def compose(crop: np.ndarray, face: int, sigma: float, cut: float, rng: np.random.Generator):
    """The crop on a grey-noise canvas with its face square ``face`` px wide; the true face box."""
    scale = face / (crop.shape[0] * 2 / 3)  # a FairFace crop is 1.5 face widths
    side = max(3, round(crop.shape[0] * scale))
    chip = cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    if sigma:
        chip = cv2.GaussianBlur(chip, (0, 0), sigma)
    canvas = np.clip(rng.normal(128, 20, (CANVAS, CANVAS, 3)), 0, 255).astype(np.uint8)
    canvas = cv2.GaussianBlur(canvas, (0, 0), 3)
    fx = (CANVAS - face) / 2 if not cut else -cut * face  # the face square's left edge
    x0, y0 = round(fx - (side - face) / 2), round((CANVAS - side) / 2)
    sx, sy = max(0, -x0), max(0, -y0)
    ex, ey = min(side, CANVAS - x0), min(side, CANVAS - y0)
    canvas[y0 + sy: y0 + ey, x0 + sx: x0 + ex] = chip[sy:ey, sx:ex]
    return canvas, (x0 + (side - face) / 2, y0 + (side - face) / 2, face, face)


BIN_ORDER = ("< 24", "24–32", "32–48", "48–64", "≥ 64", "< 20", "20–40", "40–100", "≥ 100", "0", "≤ 0.3", "> 0.3",
             "≤ 30°", "30–60°", "> 60°", "unknown", "over", "under (weak)")


def bins(quality) -> dict[str, str]:
    """The bins one face's quality record falls in."""
    q = quality
    size = next(label for bound, label in ((24, "< 24"), (32, "24–32"), (48, "32–48"), (64, "48–64"),
                                           (1e9, "≥ 64")) if q.size < bound)
    blur = next(label for bound, label in ((20, "< 20"), (40, "20–40"), (100, "40–100"), (1e9, "≥ 100"))
                if q.blur < bound)
    outside = "0" if q.outside <= 0 else ("≤ 0.3" if q.outside <= 0.3 else "> 0.3")
    yaw = "unknown" if q.yaw is None else ("≤ 30°" if abs(q.yaw) <= 30 else ("30–60°" if abs(q.yaw) <= 60
                                                                             else "> 60°"))
    return {"size px": size, "sharpness": blur, "outside": outside, "|yaw|": yaw,
            "caution floor": "under (weak)" if CAUTION.failures(q) else "over"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--faces", type=int, default=600, help="FairFace val faces (seeded sample)")
    ap.add_argument("--detector", default="mediapipe")
    ap.add_argument("--seed", type=int, default=16)
    args = ap.parse_args()
    warnings.simplefilter("ignore", UserWarning)  # a face on the grey-noise canvas can look blue-tinted (BGR)
    rng = np.random.default_rng(args.seed)
    rows = read_labels(args.data / "fairface")
    rows = [rows[i] for i in sorted(rng.choice(len(rows), min(args.faces, len(rows)), replace=False))]
    analyzer = Analyzer(attributes=",".join(ATTRIBUTES), detector=args.detector)
    # tallies[(grouping, bin)] = [faces, correct per attribute..., top score sums...]
    tally: dict = defaultdict(lambda: np.zeros(1 + 2 * len(ATTRIBUTES)))
    found = defaultdict(lambda: [0, 0])
    for path, truth in track(rows, description="faces"):
        crop = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        for name, face, sigma, cut in DEGRADATIONS:
            canvas, box = compose(crop, face, sigma, cut, rng)
            result = analyzer.analyze(canvas)
            match = max(result.faces, key=lambda f: iou((f.box.x, f.box.y, f.box.width, f.box.height), box),
                        default=None)
            hit = match is not None and iou((match.box.x, match.box.y, match.box.width, match.box.height), box) > 0.3
            found[name][0] += 1
            found[name][1] += hit
            if not hit:
                continue
            row = [1.0]
            row += [float(match.attributes[a].label == truth[a]) for a in ATTRIBUTES]
            row += [float(match.attributes[a].score) for a in ATTRIBUTES]
            for grouping, label in {"made as": name, **bins(match.quality)}.items():
                tally[(grouping, label)] += row
    print(f"detector {args.detector}, {len(rows)} FairFace val faces, seed {args.seed}\n")
    print("| made as | faces | found |")
    print("|---|---:|---:|")
    for name, *_ in DEGRADATIONS:
        n, hit = found[name]
        print(f"| {name} | {n} | {hit / n:.1%} |")
    print("\n| grouping | bin | faces found | age acc. | gender acc. | race acc. | age score | gender score | "
          "race score |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    order = [name for name, *_ in DEGRADATIONS] + list(BIN_ORDER)
    for (grouping, label), t in sorted(tally.items(), key=lambda kv: (kv[0][0] != "made as", kv[0][0],
                                                                       order.index(kv[0][1]))):
        n = t[0]
        acc = " | ".join(f"{v / n:.3f}" for v in t[1 : 1 + len(ATTRIBUTES)])
        score = " | ".join(f"{v / n:.2f}" for v in t[1 + len(ATTRIBUTES):])
        print(f"| {grouping} | {label} | {int(n)} | {acc} | {score} |")


if __name__ == "__main__":
    main()

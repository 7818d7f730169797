"""How often `facescan ask` resolves a reference to the right face, on synthetic group photos.

    python benchmarks/ask_synthetic.py --data ../shared/data [--photos 300] [--seed 0]

Each photo is a grid of 2-6 FairFace val faces (known gender and age group) on a plain
background: one row for 2-3 faces, two rows for 4-6. Per photo it asks position questions
("the second person from the left" on one-row grids, "the person at the top right" on two-row
grids, "the leftmost person") and, where the truth makes them unambiguous, attribute questions
("the only woman", "the only man", "the oldest person" when one face is at least two age
groups older than the rest). A question counts as right when the face chosen sits in the cell
of the intended face; unanswered questions count as wrong. The faces are detected, not given.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import numpy as np
from rich.progress import track

from facescan import taxonomy
from facescan.ask import resolve
from facescan.datasets import open_dataset
from facescan.imageio import load_image
from facescan.pipeline import Analyzer

CELL, GAP = 200, 40
ORDINAL_WORDS = {1: "first", 2: "second", 3: "third"}


def build_photo(faces: list[np.ndarray], rows: int, background: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Faces (square RGB) on a plain background in ``rows`` rows; returns the photo and each face's cell."""
    import cv2

    cols = int(np.ceil(len(faces) / rows))
    photo = np.full((rows * CELL + (rows + 1) * GAP, cols * CELL + (cols + 1) * GAP, 3), background, np.uint8)
    cells = []
    for k, face in enumerate(faces):
        r, c = divmod(k, cols)
        y, x = GAP + r * (CELL + GAP), GAP + c * (CELL + GAP)
        photo[y : y + CELL, x : x + CELL] = cv2.resize(face, (CELL, CELL), interpolation=cv2.INTER_AREA)
        cells.append((r, c))
    return photo, cells


def questions(labels: list[dict], cells: list[tuple[int, int]], rows: int) -> list[tuple[str, str, int]]:
    """(kind, question, index of the intended face) for one photo."""
    cols = max(c for _, c in cells) + 1
    at = {cell: k for k, cell in enumerate(cells)}
    out = []
    if rows == 1:
        n = len(cells)
        out.append(("position", "the leftmost person", at[(0, 0)]))
        out.append(("position", "the rightmost person", at[(0, n - 1)]))
        for k in range(2, n + 1):
            if k in ORDINAL_WORDS and k < n:
                out.append(("position", f"the {ORDINAL_WORDS[k]} person from the left", at[(0, k - 1)]))
    else:
        out.append(("position", "the person at the top left", at[(0, 0)]))
        out.append(("position", "the person at the top right", at[(0, cols - 1)]))
        if (1, 0) in at:
            out.append(("position", "the person at the bottom left", at[(1, 0)]))
    genders = [lab["gender"] for lab in labels]
    for gender, word in (("female", "woman"), ("male", "man")):
        if genders.count(gender) == 1:
            out.append(("attribute", f"the only {word}", genders.index(gender)))
    ages = [taxonomy.AGE_FAIRFACE9.index(lab["age"]) for lab in labels]
    order = np.argsort(ages)
    if ages[order[-1]] - ages[order[-2]] >= 2:
        out.append(("attribute", "the oldest person", int(order[-1])))
    if ages[order[1]] - ages[order[0]] >= 2:
        out.append(("attribute", "the youngest person", int(order[0])))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--photos", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    samples = open_dataset(f"fairface:{args.data}/fairface", "val")
    rng = np.random.default_rng(args.seed)
    analyzer = Analyzer(attributes="age,gender")
    right, asked = defaultdict(int), defaultdict(int)
    per_question = defaultdict(lambda: [0, 0])
    faces_total = faces_found = 0
    started = time.perf_counter()
    for _ in track(range(args.photos), description="synthetic group photos"):
        n = int(rng.integers(2, 7))
        rows = 1 if n <= 3 else 2
        picked = [samples[i] for i in rng.choice(len(samples), n, replace=False)]
        photo, cells = build_photo([load_image(s.path).pixels for s in picked], rows, int(rng.integers(40, 220)))
        result = analyzer.analyze(photo)
        faces_total += n
        # which cell each detected face is in (by its centre)
        cell_of = {}
        for face in result.faces:
            cx, cy = face.box.x + face.box.width / 2, face.box.y + face.box.height / 2
            cell_of[face.index] = (int((cy - GAP / 2) // (CELL + GAP)), int((cx - GAP / 2) // (CELL + GAP)))
        faces_found += len(set(cell_of.values()) & set(cells))
        for kind, question, target in questions([s.labels for s in picked], cells, rows):
            answer = resolve(question, result.faces)
            ok = answer.status == "answered" and cell_of.get(answer.face) == cells[target]
            right[kind] += ok
            asked[kind] += 1
            key = question.replace(" person", "").replace("the ", "")
            per_question[key][0] += ok
            per_question[key][1] += 1
    seconds = time.perf_counter() - started
    print(f"{args.photos} synthetic photos of 2-6 FairFace val faces; faces detected in their cells: "
          f"{faces_found}/{faces_total} ({faces_found / faces_total:.1%}); {seconds:.0f} s")
    for kind in ("position", "attribute"):
        print(f"{kind} questions: {right[kind]}/{asked[kind]} resolved to the right face "
              f"({right[kind] / max(asked[kind], 1):.1%})")
    for key, (ok, n) in sorted(per_question.items()):
        print(f"  {key:<22} {ok:>4}/{n:<4} {ok / n:.1%}")


if __name__ == "__main__":
    main()

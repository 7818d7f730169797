"""Face detection benchmark: recall and false positives on composed scenes, FairFace val crops and real photos.

    python benchmarks/detection.py --data ../shared/data [--scenes 30] [--detectors mediapipe,fused]

Scenes (``detection_scenes.py``): real face crops of FairFace (train), UTKFace and RAF-DB pasted on
varied backgrounds, seeded, ``--scenes`` per condition: plain, crowds of 15-40 faces, small (16-32 px)
and large (45-80 % of the frame) faces, faces partly hidden by other faces and by objects (20-45 % of
the face box), cut by the frame edge (20-50 % outside), turned (yaw: FairFace profiles picked by
keypoints, and horizontal squeezing to 0.55-0.8 as a weak proxy), rolled in the image plane
(within +-60 degrees), whole scenes turned by 90/180/270 degrees, blur, low light, JPEG at quality
5-20, and grayscale.

Truth: the face square each crop was framed around (for FairFace, whose crops have padding 0.25,
the crop's central 2/3: the crop is 1.5 face widths; see ``detection_scenes.FACE_SQUARE``), clipped
to the image. A detection is a hit at IoU >= 0.4 with an unmatched truth box (each truth matches one
detection, best score first). Any other detection is a false positive, except one on a face that is
less than half visible (such faces are not required either). Real photos: hand-checked boxes in
``photo_boxes.json`` (the same framing), each photo also turned by 90, 180 and 270 degrees.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))

from detection_scenes import CONDITIONS, Faces, Scene, compose  # noqa: E402
from facescan.detect import create_detector  # noqa: E402
from facescan.detect.boxes import iou_matrix  # noqa: E402
from facescan.imageio import load_image  # noqa: E402

IOU = 0.4
HERE = Path(__file__).parent


@dataclass
class Tally:
    """Hits, required faces, false positives, images, IoUs of hits and detection seconds."""

    hits: int = 0
    faces: int = 0
    false: int = 0
    images: int = 0
    ious: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        self.hits += other.hits
        self.faces += other.faces
        self.false += other.false
        self.images += other.images
        self.ious += other.ious
        self.seconds += other.seconds

    @property
    def recall(self) -> float:
        return self.hits / self.faces if self.faces else float("nan")


def score(boxes: list, truth: list, ignore: list) -> Tally:
    """Match detections (best first) to truth boxes at IoU >= 0.4."""
    t = Tally(faces=len(truth), images=1)
    det = np.array(boxes, float).reshape(-1, 4)
    if not len(det):
        return t
    m = iou_matrix(det, np.array(truth, float).reshape(-1, 4))
    ig = iou_matrix(det, np.array(ignore, float).reshape(-1, 4))
    used = set()
    for i in range(len(det)):
        cand = [j for j in np.argsort(-m[i]) if m[i, j] >= IOU and j not in used] if m.shape[1] else []
        if cand:
            used.add(cand[0])
            t.hits += 1
            t.ious.append(float(m[i, cand[0]]))
        elif not (ig.shape[1] and ig[i].max() >= IOU):
            t.false += 1
    return t


def detect(detector, image: np.ndarray, tally: Tally) -> list:
    start = time.perf_counter()
    faces = detector.detect(image)
    tally.seconds.append(time.perf_counter() - start)
    return [f.box for f in faces]


def run_scenes(detectors: dict, scenes: list[Scene], progress: Progress) -> dict[str, dict[str, Tally]]:
    out = {name: {c: Tally() for c in CONDITIONS} for name in detectors}
    task = progress.add_task("scenes", total=len(scenes) * len(detectors))
    for name, det in detectors.items():
        for s in scenes:
            timing = Tally()
            t = score(detect(det, s.image, timing), s.boxes, s.ignore)
            t.seconds = timing.seconds
            out[name][s.condition].add(t)
            progress.advance(task)
    return out


def run_val(detectors: dict, data: Path, n: int, progress: Progress) -> dict[str, tuple[float, float]]:
    """Share of FairFace val crops with a face found, and with the crop's face found at IoU >= 0.4."""
    files = sorted((data / "fairface" / "val").glob("*.jpg"), key=lambda p: int(p.stem))[:n]
    out = {}
    task = progress.add_task("FairFace val", total=len(files) * len(detectors))
    images = [load_image(f).pixels for f in files]
    for name, det in detectors.items():
        any_face = hit = 0
        for img in images:
            side = img.shape[0]
            boxes = [f.box for f in det.detect(img)]
            any_face += bool(boxes)
            hit += score(boxes, [(side / 6, side / 6, side * 2 / 3, side * 2 / 3)], []).hits
            progress.advance(task)
        out[name] = (any_face / len(files), hit / len(files))
    return out


def run_photos(detectors: dict, data: Path, truth_file: Path, progress: Progress) -> dict[str, dict]:
    """Hits and false positives on the hand-checked photos, upright and turned 90/180/270 degrees."""
    truth = json.loads(truth_file.read_text())["photos"]
    out: dict[str, dict] = {name: {} for name in detectors}
    task = progress.add_task("photos", total=len(truth) * 4 * len(detectors))
    for photo, spec in truth.items():
        img = load_image(data / "photos" / photo).pixels
        for k in range(4):
            turned, boxes, ignore = _turn(img, spec["faces"], spec.get("ignore", []), k)
            for name, det in detectors.items():
                t = Tally()
                found = detect(det, turned, t)
                r = score(found, boxes, ignore)
                r.seconds = t.seconds
                out[name][(photo, k * 90)] = r
                progress.advance(task)
    return out


def _turn(img: np.ndarray, boxes: list, ignore: list, k: int) -> tuple[np.ndarray, list, list]:
    from detection_scenes import _turn_box

    h, w = img.shape[:2]
    if k == 0:
        return img, [tuple(b) for b in boxes], [tuple(b) for b in ignore]
    return (np.ascontiguousarray(np.rot90(img, k)), [_turn_box(b, k, w, h) for b in boxes],
            [_turn_box(b, k, w, h) for b in ignore])


def make_scenes(data: Path, per_condition: int, seed: int, conditions: list[str], progress: Progress) -> list[Scene]:
    profiles = profile_pool(data) if "yaw" in conditions else []
    faces = Faces(data, profiles)
    photo = cv2.cvtColor(cv2.imread(str(data / "photos" / "no_face.jpg")), cv2.COLOR_BGR2RGB)
    scenes = []
    task = progress.add_task("compose", total=per_condition * len(conditions))
    for condition in conditions:
        rng = np.random.default_rng([seed, CONDITIONS.index(condition)])  # independent of the other conditions
        for _ in range(per_condition):
            scenes.append(compose(condition, rng, faces, photo))
            progress.advance(task)
    return scenes


def profile_pool(data: Path, n: int = 2000, min_yaw: float = 45.0) -> list[Path]:
    """FairFace train crops (of the first ``n``) whose keypoints say the head is turned >= ``min_yaw``.

    Both BlazeFace models and MTCNN look at each crop (with a border); a crop joins when any of them
    finds it turned that far (so the pool holds only profiles one of them can find alone). Cached."""
    cache = Path.home() / ".cache" / "facescan" / f"detection_profiles_{n}_{int(min_yaw)}.json"
    if cache.exists():
        return [data / "fairface" / "train" / name for name in json.loads(cache.read_text())]
    from facescan.detect.quality import yaw_degrees

    dets = [create_detector("mediapipe:full"), create_detector("mediapipe:short")]
    try:
        dets.append(create_detector("mtcnn?min_size=30"))
    except ImportError:
        pass
    names = []
    for path in sorted((data / "fairface" / "train").glob("*.jpg"), key=lambda p: int(p.stem))[:n]:
        img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        b = img.shape[0] // 3
        img = np.ascontiguousarray(cv2.copyMakeBorder(img, b, b, b, b, cv2.BORDER_REPLICATE))
        yaws = [yaw_degrees(f.keypoints) for d in dets for f in d.detect(img)[:1]]
        if any(y is not None and abs(y) >= min_yaw for y in yaws):
            names.append(path.name)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(names))
    return [data / "fairface" / "train" / name for name in names]


def report(console: Console, name: str, scenes: dict[str, Tally], val, photos: dict | None) -> None:
    """One table per detector."""
    table = Table(title=f"detector {name}", show_lines=False)
    for col in ("set", "faces", "recall", "FP/image", "mean IoU", "ms/image p50"):
        table.add_column(col, justify="left" if col == "set" else "right")
    total = Tally()
    for cond, t in scenes.items():
        if t.images:
            table.add_row(cond, *_cells(t))
            total.add(t)
    table.add_row("[b]all scenes[/b]", *_cells(total))
    if photos:
        for angle in (0, 90, 180, 270):
            t = Tally()
            for (_, a), r in photos.items():
                if a == angle:
                    t.add(r)
            table.add_row(f"photos turned {angle}", *_cells(t))
    if val:
        table.add_row("FairFace val crops", f"{val[2]}", f"{val[0]:.1%} found", "", f"{val[1]:.1%} at IoU>=0.4", "")
    console.print(table)


def _cells(t: Tally) -> list[str]:
    ms = f"{1000 * float(np.median(t.seconds)):.0f}" if t.seconds else ""
    iou = f"{np.mean(t.ious):.2f}" if t.ious else ""
    return [str(t.faces), f"{t.recall:.3f}", f"{t.false / max(1, t.images):.2f}", iou, ms]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--detectors", default="mediapipe,fused", help="comma-separated detector specs")
    ap.add_argument("--scenes", type=int, default=30, help="scenes per condition")
    ap.add_argument("--conditions", default=",".join(CONDITIONS))
    ap.add_argument("--val", type=int, default=2500, help="FairFace val crops (0: skip)")
    ap.add_argument("--no-photos", action="store_true")
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    args = ap.parse_args(argv)
    console = Console()
    detectors = {spec: _build(spec) for spec in args.detectors.split(",")}
    for det in detectors.values():  # start-up outside the timings
        det.detect(np.zeros((256, 256, 3), np.uint8))
    with Progress(console=console, transient=True) as progress:
        scenes = make_scenes(args.data, args.scenes, args.seed, args.conditions.split(","), progress)
        by_scene = run_scenes(detectors, scenes, progress)
        photos = None if args.no_photos else run_photos(detectors, args.data, HERE / "photo_boxes.json", progress)
        val = run_val(detectors, args.data, args.val, progress) if args.val else {}
    for name in detectors:
        v = (*val[name], min(args.val, 2500)) if name in val else None
        report(console, name, by_scene[name], v, photos[name] if photos else None)
    if args.json:
        args.json.write_text(json.dumps(_as_json(by_scene, val, photos), indent=1))


def _build(spec: str):
    if spec.startswith("candidate:"):
        from detection_candidates import create_candidate

        return create_candidate(spec.partition(":")[2])
    return create_detector(spec)


def _as_json(by_scene: dict, val: dict, photos: dict | None) -> dict:
    out = {}
    for name, conds in by_scene.items():
        out[name] = {c: {"faces": t.faces, "recall": t.recall, "fp_per_image": t.false / max(1, t.images)}
                     for c, t in conds.items() if t.images}
        if name in val:
            out[name]["fairface_val_found"] = val[name][0]
        if photos:
            out[name]["photos"] = {f"{p}@{a}": {"hits": r.hits, "faces": r.faces, "false": r.false}
                                   for (p, a), r in photos[name].items()}
    return out


if __name__ == "__main__":
    main()

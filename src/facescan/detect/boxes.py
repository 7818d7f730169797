"""Box geometry shared by the detectors: IoU, non-maximum suppression, weighted box fusion, rotation."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from facescan.detect.base import Detection


def iou(a: tuple, b: tuple) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw, ih = max(0.0, min(ax1, bx1) - max(a[0], b[0])), max(0.0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter + 1e-9)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (N, 4) and (M, 4) arrays of (x, y, w, h) boxes."""
    a, b = np.asarray(a, float).reshape(-1, 4), np.asarray(b, float).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 0] + a[:, None, 2], b[None, :, 0] + b[None, :, 2])
    y1 = np.minimum(a[:, None, 1] + a[:, None, 3], b[None, :, 1] + b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None, :] - inter
    return inter / np.maximum(union, 1e-9)


def nms(faces: list[Detection], threshold: float) -> list[Detection]:
    """Greedy non-maximum suppression: the best-scored face of each overlapping group."""
    kept: list[Detection] = []
    for f in sorted(faces, key=lambda f: -f.score):
        if all(iou(f.box, k.box) < threshold for k in kept):
            kept.append(f)
    return kept


def fuse(groups: list[list[Detection]], weights: list[float], threshold: float = 0.45,
         combine: Callable[[list[float]], float] | None = None) -> list[Detection]:
    """Weighted box fusion across detectors (Solovyev et al., 2021).

    Faces whose boxes overlap by ``threshold`` IoU form a cluster (at most one face per detector);
    the fused box and keypoints are the score x weight means of the cluster's. The fused score is
    ``combine(scores)``, ``scores[i]`` being detector i's score in the cluster (0 when it has none);
    by default the weighted mean, so a face every detector finds keeps its score and one a single
    detector finds is discounted.
    """
    items = [(f, i) for i, faces in enumerate(groups) for f in faces]
    items.sort(key=lambda t: -t[0].score * weights[t[1]])
    clusters: list[list[tuple[Detection, int]]] = []
    for f, i in items:
        for c in clusters:
            if iou(f.box, _mean_box(c)) >= threshold and all(j != i for _, j in c):
                c.append((f, i))
                break
        else:
            clusters.append([(f, i)])
    total = float(sum(weights))
    combine = combine or (lambda scores: sum(s * wt for s, wt in zip(scores, weights)) / total)
    out = []
    for c in clusters:
        w = np.array([f.score * weights[i] for f, i in c])
        box = tuple(float(v) for v in (np.array([f.box for f, _ in c]) * w[:, None]).sum(0) / w.sum())
        kps = [(f.keypoints[:4], wi) for (f, _), wi in zip(c, w) if f.keypoints is not None]
        keypoints = None
        if kps:
            keypoints = (sum(k * wi for k, wi in kps) / sum(wi for _, wi in kps)).astype(np.float32)
        scores = [0.0] * len(groups)
        for f, i in c:
            scores[i] = f.score
        score = combine(scores)
        out.append(Detection(box=box, score=float(score), keypoints=keypoints))
    return sorted(out, key=lambda f: -f.score)


def _mean_box(cluster: list[tuple[Detection, int]]) -> tuple:
    w = np.array([f.score for f, _ in cluster])
    return tuple((np.array([f.box for f, _ in cluster]) * w[:, None]).sum(0) / w.sum())


_CV2_TURNS = {1: cv2.ROTATE_90_COUNTERCLOCKWISE, 2: cv2.ROTATE_180, 3: cv2.ROTATE_90_CLOCKWISE}


def rotate_image(image: np.ndarray, quarter_turns: int) -> np.ndarray:
    """The image turned counter-clockwise by ``quarter_turns`` x 90 degrees (as ``np.rot90``; OpenCV's
    copy is about ten times faster than a contiguous copy of numpy's view on a 1080p photo)."""
    k = quarter_turns % 4
    return np.ascontiguousarray(image) if k == 0 else cv2.rotate(np.ascontiguousarray(image), _CV2_TURNS[k])


def unrotate_points(points: np.ndarray, quarter_turns: int, shape: tuple[int, ...]) -> np.ndarray:
    """Map (x, y) points found in ``rotate_image(image, k)`` back to ``image`` (of ``shape`` H x W)."""
    h, w = shape[:2]
    p = np.asarray(points, np.float32).reshape(-1, 2)
    x, y = p[:, 0], p[:, 1]
    k = quarter_turns % 4
    if k == 0:
        out = np.stack([x, y], 1)
    elif k == 1:  # rotated is W x H: (x', y') = (y, w - x)
        out = np.stack([w - y, x], 1)
    elif k == 2:
        out = np.stack([w - x, h - y], 1)
    else:  # (x', y') = (h - y, x)
        out = np.stack([y, h - x], 1)
    return out.astype(np.float32)


def unrotate(face: Detection, quarter_turns: int, shape: tuple[int, ...]) -> Detection:
    """A face found in ``rotate_image(image, k)`` in the coordinates of ``image``."""
    x, y, w, h = face.box
    corners = unrotate_points(np.array([[x, y], [x + w, y + h]]), quarter_turns, shape)
    (x0, y0), (x1, y1) = corners.min(0), corners.max(0)
    kps = None if face.keypoints is None else unrotate_points(face.keypoints, quarter_turns, shape)
    roll = None if face.roll is None else (face.roll + 90.0 * (quarter_turns % 4) + 180.0) % 360.0 - 180.0
    return Detection(box=(float(x0), float(y0), float(x1 - x0), float(y1 - y0)), score=face.score, keypoints=kps,
                     outside=face.outside, roll=roll)


def roll_degrees(keypoints: np.ndarray | None) -> float | None:
    """In-plane rotation of a face from its eyes (0 upright, positive clockwise in the image), or None."""
    if keypoints is None or len(keypoints) < 2:
        return None
    (rx, ry), (lx, ly) = np.asarray(keypoints[:2], float)
    # upright, the subject's right eye is left of the left eye in the image
    return float(np.degrees(np.arctan2(ly - ry, lx - rx)))


def clip_box(box: tuple, shape: tuple[int, ...]) -> tuple[tuple[float, float, float, float], float]:
    """``box`` clipped to an image of ``shape``, and the fraction of its area that was outside."""
    h, w = shape[:2]
    x, y, bw, bh = box
    x0, y0 = max(0.0, x), max(0.0, y)
    x1, y1 = min(float(w), x + bw), min(float(h), y + bh)
    inside = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    outside = 1.0 - inside / max(bw * bh, 1e-9)
    return (x0, y0, max(0.0, x1 - x0), max(0.0, y1 - y0)), float(min(1.0, max(0.0, outside)))


def is_upright(face: Detection) -> bool:
    """Whether a face's eyes are level within 45 degrees (a face of a photo the right way up)."""
    roll = roll_degrees(face.keypoints)
    return roll is not None and abs(roll) < 45


def upright_evidence(faces: list[Detection], min_score: float = 0.6) -> float:
    """How much upright face a detector sees: the sum of the scores >= ``min_score`` of upright faces
    (overlapping finds, as of two models, count once)."""
    return float(sum(f.score for f in nms([f for f in faces if f.score >= min_score and is_upright(f)], 0.3)))


def quarter_turn(faces: list[Detection], turned_faces, confident: float = 0.8, enough: float = 0.6) -> int:
    """The quarter turn (counter-clockwise, 1-3) in which a photo shows more upright face than as it is,
    or 0. ``faces``: what was found in the photo as it is; ``turned_faces(k)``: what is found in it turned
    by k quarters (called only when ``faces`` holds no upright face scoring ``confident``, so photos the
    right way up pay nothing). A turn wins with an upright face scoring ``confident`` and more upright
    evidence (:func:`upright_evidence`) than the photo as it is: BlazeFace sees faces of 0.6-0.78 in
    turned copies of photos with no face or with upright faces, and 0.85-0.95 in a turned group photo."""

    def best(found: list[Detection]) -> float:
        return max((f.score for f in found if is_upright(f)), default=0.0)

    if best(faces) >= confident:
        return 0
    here = upright_evidence(faces, enough)
    turned = {k: turned_faces(k) for k in (1, 3, 2)}
    evidence = {k: upright_evidence(found, enough) if best(found) >= confident else 0.0 for k, found in turned.items()}
    k = max(evidence, key=evidence.get)
    return k if evidence[k] > here else 0


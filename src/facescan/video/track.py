"""Stable person ids across video frames: norfair's Kalman-filtered IoU tracker over face boxes.

Why norfair and not supervision's ByteTrack: supervision 0.27 and later moved its trackers to the
separate ``trackers`` package, which needs numpy 2, while mediapipe 0.10.21 (our face detector)
needs numpy < 2. Norfair (BSD-3-Clause) works with numpy 1, tracks arbitrary points (a box is two)
with a Kalman filter, and has a vectorised IoU distance.

Matching: a detection goes to the track whose predicted box it overlaps (1 - IoU), or, when the
boxes no longer overlap (fast motion at low sampling rates), whose predicted centre is nearest in
face sizes, plus a penalty for a change of size; below ``MAX_DISTANCE`` either way (at 3 fps on the
benchmark clip: 15 tracks for its 3 people instead of IoU's 25; at 5 fps and more both give 6, the
people hiding each other for over a second). Fast faces are not followed below about 3 fps.

Tuning, in seconds of video so that it holds at any sampling rate:

* a track survives ``max_gap_s`` (1 s) without a matching detection, its box moving on with the
  Kalman filter's velocity: short occlusions and missed detections keep the id;
* a track is confirmed after ``confirm_s`` (0.4 s, at least one and at most three analyzed frames)
  of consecutive detections, so a one-frame false detection never becomes a person;
* a person who leaves the picture for longer than ``max_gap_s`` and comes back gets a new id
  (there is no appearance re-identification).

Frames come out ``lag`` analyzed frames late: a face's id is only known once its track is confirmed.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Generic, TypeVar

import numpy as np

MAX_GAP_S = 1.0
CONFIRM_S = 0.4
#: Kalman process noise. Norfair's default (0.1) trusts constant velocity so much that a face turning
#: between two frames analyzed at 5 fps drifts out of its predicted box: 13 tracks instead of 6 for
#: the benchmark clip's 3 wandering people; 1 to 4 give 6 at 5, 10 and 25 fps.
KALMAN_Q = 2.0
#: Match when IoU > 1 - this, or when the centre moved less than this many face sizes (same size).
MAX_DISTANCE = 0.9

T = TypeVar("T")


class FaceTracker(Generic[T]):
    """Assigns track ids to the face boxes of consecutive analyzed frames.

    ``push(item, boxes)`` takes one frame (any object, and its (x, y, w, h) boxes) and returns the
    frames that are ready as ``(item, ids)`` pairs, ``ids[i]`` the track of ``boxes[i]`` or None for
    a detection that never became a confirmed track. ``flush()`` returns the rest at the end.
    """

    def __init__(self, rate: float, max_gap_s: float = MAX_GAP_S, confirm_s: float = CONFIRM_S):
        """``rate``: analyzed frames per second of video."""
        from norfair import Tracker
        from norfair.distances import VectorizedDistance
        from norfair.filter import OptimizedKalmanFilterFactory

        confirm = min(3, max(1, round(confirm_s * rate)))
        self.lag = confirm - 1
        hit_counter_max = max(self.lag + 2, math.ceil(max_gap_s * rate))
        self._tracker = Tracker(distance_function="iou", distance_threshold=MAX_DISTANCE,
                                hit_counter_max=hit_counter_max, initialization_delay=self.lag,
                                filter_factory=OptimizedKalmanFilterFactory(Q=KALMAN_Q))
        # Tracker() takes vectorised distances by name only; ours goes in as the same kind of object
        self._tracker.distance_function = VectorizedDistance(box_distance)
        self._pending: deque[tuple[T, list]] = deque()

    def push(self, item: T, boxes: Sequence[tuple[float, float, float, float]]) -> list[tuple[T, list[int | None]]]:
        """Track one frame's boxes; returns the frames whose ids are now known."""
        from norfair import Detection

        detections = [Detection(points=np.array([[x, y], [x + w, y + h]], dtype=np.float64), data=i)
                      for i, (x, y, w, h) in enumerate(boxes)]
        self._tracker.update(detections=detections)
        objects: list = [None] * len(detections)
        for obj in self._tracker.tracked_objects:
            last = obj.last_detection
            if last.data is not None and last.data < len(detections) and last is detections[last.data]:
                objects[last.data] = obj
        self._pending.append((item, objects))
        ready = []
        while len(self._pending) > self.lag:
            ready.append(self._release())
        return ready

    def flush(self) -> list[tuple[T, list[int | None]]]:
        """The frames still waiting for their tracks' confirmation, with the ids known now."""
        return [self._release() for _ in range(len(self._pending))]

    def _release(self) -> tuple[T, list[int | None]]:
        item, objects = self._pending.popleft()
        return item, [None if obj is None else obj.id for obj in objects]


def box_distance(candidates: np.ndarray, objects: np.ndarray) -> np.ndarray:
    """(N, K) distances between detected and predicted boxes, rows ``[x0, y0, x1, y1]``: 1 - IoU, or
    the centre displacement in face sizes plus the log size ratio, whichever is smaller."""
    from norfair.distances import iou

    size_c, size_o = _size(candidates), _size(objects)
    centre_c, centre_o = (candidates[:, :2] + candidates[:, 2:]) / 2, (objects[:, :2] + objects[:, 2:]) / 2
    moved = np.linalg.norm(centre_c[:, None, :] - centre_o[None, :, :], axis=2) / size_o[None, :]
    resized = np.abs(np.log(size_c[:, None] / size_o[None, :]))
    return np.minimum(iou(candidates, objects), moved + resized)


def _size(boxes: np.ndarray) -> np.ndarray:
    """Geometric mean of width and height (at least a pixel: a predicted box can degenerate)."""
    return np.sqrt(np.clip(boxes[:, 2] - boxes[:, 0], 1, None) * np.clip(boxes[:, 3] - boxes[:, 1], 1, None))

"""The face detector for video frames: MediaPipe's full- and short-range models, merged, no tiles.

The photo detector (``mediapipe``, range auto) falls back to a tiled search with the short-range
model when neither model finds a face: worth it for the tiny faces of large photos, wrong for video.
On a frame without faces it costs about 100 ms (six times the detection itself) and, over a clip's
hundreds of empty frames, it finds "faces" in lettering (the title of ``no_face.mp4``), which then
become tracks. Video gets the two models without the tiles.
"""

from __future__ import annotations

import threading

import numpy as np

from facescan.detect import Detection


class VideoDetector:
    """Faces of the full-range model plus the short-range model's faces that are none of them.

    Each model misses faces the other finds (on FairFace faces pasted in 640×360 and 1280×720
    frames, full-range alone found 83-93 %, short-range 95-100 %, either 98-100 %). Both run on every
    frame by default. ``full_every=N`` runs the full-range one (10 ms a frame here, the short-range
    one 4 ms) on every N-th call of a thread and whenever the short-range model finds fewer faces
    than that thread's last frame had; with several detection threads which frames those are
    depends on scheduling, so results are then not exactly reproducible: off by default.
    """

    name = "mediapipe:video"

    def __init__(self, min_score: float = 0.5, full_every: int = 1):
        from facescan.detect.mediapipe import MediaPipeDetector

        # no quarter-turn search per frame: a clip's orientation is its container's (PyAV applies it), and a
        # frame without faces would pay six more passes
        self.full = MediaPipeDetector("full", min_score, rotate="off")
        self.short = MediaPipeDetector("short", min_score, rotate="off")
        self.full_every = max(1, full_every)
        self._local = threading.local()  # per worker thread: its frame count and last face count

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in an RGB uint8 frame, highest score first."""
        state = self._local.__dict__
        calls, last = state.get("calls", 0), state.get("last", 0)
        short = self.short.detect(image)
        run_full = calls % self.full_every == 0 or len(short) < last
        kept = self.full.detect(image) if run_full else []
        state["calls"] = calls + 1
        for face in short:
            # the two models frame a face differently: the same face when either centre is inside the other box
            if not any(_inside(_centre(face.box), k.box) or _inside(_centre(k.box), face.box) for k in kept):
                kept.append(face)
        state["last"] = len(kept)
        return sorted(kept, key=lambda f: -f.score)


def _centre(box) -> tuple[float, float]:
    return box[0] + box[2] / 2, box[1] + box[3] / 2


def _inside(point, box) -> bool:
    return box[0] <= point[0] <= box[0] + box[2] and box[1] <= point[1] <= box[1] + box[3]

"""MediaPipe face detection (BlazeFace), whose models ship inside the mediapipe 0.10.x wheels."""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import sys
import threading
import types

import numpy as np

from facescan.detect import boxes
from facescan.detect.base import Detection

_MODELS = {"short": 0, "full": 1}
#: Longer side of the copy the quarter-turn search looks at.
SEARCH_SIDE = 640
_STARTUP_LOCK = threading.Lock()  # the stderr redirection during start-up is process-wide
_IMPORT_LOCK = threading.Lock()


class _PyplotOnFirstUse(types.ModuleType):
    """Stands in for ``matplotlib.pyplot`` until one of its names is used, then loads it.

    mediapipe's drawing helpers import pyplot when mediapipe is imported, about a quarter of a second of
    a one-photo command (matplotlib itself included), and facescan never draws with them.
    ``importlib.util.LazyLoader`` cannot do this: the import statement reads ``__spec__``, and on a lazy
    module that read loads it."""

    def __getattr__(self, name: str):
        if name.startswith("__"):  # introspection (pickling, doctest, help) does not load pyplot
            raise AttributeError(name)
        if sys.modules.get("matplotlib.pyplot") is self:
            del sys.modules["matplotlib.pyplot"]
        real = importlib.import_module("matplotlib.pyplot")
        self.__dict__.update(real.__dict__)  # whoever holds the placeholder (mediapipe's `plt`) now sees pyplot
        return getattr(real, name)


def import_mediapipe():
    """``import mediapipe`` without the parts facescan never uses loaded at import time: ``matplotlib``
    (loaded on first use of mediapipe's ``plt``) and ``sounddevice`` (mediapipe's audio recorder, which
    takes its absence as it is meant to: recording is then unavailable).

    The stand-ins are in ``sys.modules`` for the length of the import (about a second, once per process): a
    thread importing matplotlib itself in that window would get the stand-in."""
    with _IMPORT_LOCK:
        if "mediapipe" in sys.modules:
            return sys.modules["mediapipe"]
        stand_ins = {}
        pyplot = None
        if "matplotlib.pyplot" not in sys.modules:
            pyplot = _PyplotOnFirstUse("matplotlib.pyplot")
            stand_ins["matplotlib.pyplot"] = pyplot
            if "matplotlib" in sys.modules:
                sys.modules["matplotlib"].pyplot = pyplot
            else:  # `import matplotlib.pyplot as plt` only needs a parent that has the attribute
                parent = types.ModuleType("matplotlib")
                parent.pyplot = pyplot
                stand_ins["matplotlib"] = parent
        if "sounddevice" not in sys.modules:
            stand_ins["sounddevice"] = None  # an ImportError for mediapipe, which catches it
        sys.modules.update(stand_ins)
        try:
            import mediapipe
        finally:
            for name, stand_in in stand_ins.items():
                # the real modules are imported by whoever asks for them later; mediapipe keeps its `plt` stand-in
                if name in sys.modules and sys.modules[name] is stand_in:
                    del sys.modules[name]
            real = sys.modules.get("matplotlib")
            if pyplot is not None and real is not None and getattr(real, "pyplot", None) is pyplot:
                del real.pyplot  # `from matplotlib import pyplot` then imports the real one
        return mediapipe


@contextlib.contextmanager
def _native_stderr_silenced():
    """Hide the TFLite/absl start-up chatter that MediaPipe's C++ writes straight to fd 2.

    Python's logging cannot reach it (it bypasses sys.stderr), so the descriptor is
    redirected for the duration of graph start-up only.
    """
    # descriptor 2 itself: native code writes there even where sys.stderr is another file (a Jupyter
    # kernel's stderr is a copy of it, a test runner's a buffer)
    fd = 2
    try:
        os.fstat(fd)
    except OSError:
        yield
        return
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


class MediaPipeDetector:
    """BlazeFace short- or full-range model, with six keypoints per face.

    ``range="auto"`` (default) runs both models and merges their faces: the full-range model finds
    the small faces of group photos, the short-range one close-ups it misses; short-range tiles are
    the last resort for a face too small for either.

    ``rotate="auto"`` (default): a photo turned by 90, 180 or 270 degrees without EXIF. When no face
    of the photo as it is is both confident and upright, both models look at the three turned copies;
    if one shows more upright face, the faces are found there and mapped back (keypoints included,
    so the aligned chips come out upright). A photo the right way up with a clear face pays nothing.
    """

    @classmethod
    def from_spec(cls, range: str = "", min_score: str | float = 0.5, rotate: str = "auto") -> MediaPipeDetector:
        """The registry's factory: ``mediapipe[:auto|short|full][?min_score=0.5&rotate=auto|off]``."""
        return cls(range or "auto", float(min_score), rotate)

    def __init__(self, range: str = "auto", min_score: float = 0.5, rotate: str = "auto"):
        if range not in ("auto", "short", "full"):
            raise ValueError(f"mediapipe detector range must be auto, short or full, not {range!r}")
        if rotate not in ("auto", "off"):
            raise ValueError(f"mediapipe detector rotate must be auto or off, not {rotate!r}")
        mp = import_mediapipe()

        self.name = f"mediapipe:{range}"
        self.range = range
        self.rotate = rotate
        self.min_score = min_score
        self._mp = mp
        # A MediaPipe graph processes one image at a time: each thread gets its own graphs, so
        # images of a batch are detected in parallel (the analyzer's --workers, the service's batches).
        self._local = threading.local()

    def _run(self, which: str, image: np.ndarray) -> list[Detection]:
        graphs = self._local.__dict__.setdefault("graphs", {})
        if which not in graphs:
            with _STARTUP_LOCK, _native_stderr_silenced():
                graph = self._mp.solutions.face_detection.FaceDetection(
                    model_selection=_MODELS[which], min_detection_confidence=self.min_score
                )
                graph.process(np.zeros((64, 64, 3), np.uint8))  # start-up happens on the first frame
            graphs[which] = graph
        result = graphs[which].process(image)
        h, w = image.shape[:2]
        faces = []
        for d in result.detections or []:
            bb = d.location_data.relative_bounding_box
            box, outside = boxes.clip_box((bb.xmin * w, bb.ymin * h, bb.width * w, bb.height * h), image.shape)
            if box[2] < 2 or box[3] < 2:
                continue
            kps = np.array([[k.x * w, k.y * h] for k in d.location_data.relative_keypoints], np.float32)
            faces.append(Detection(box=box, score=float(d.score[0]), keypoints=kps, outside=outside))
        return faces

    def _run_tiles(self, image: np.ndarray) -> list[Detection]:
        """Short-range model over overlapping half-size tiles: finds a face that fills too little of a
        large photo for either model, or is turned too far for the full-range one."""
        h, w = image.shape[:2]
        tile = min(h, w) // 2
        if tile < 200:
            return []
        stride = tile // 2
        faces = []
        for y0 in sorted({*range(0, h - tile + 1, stride), h - tile}):
            for x0 in sorted({*range(0, w - tile + 1, stride), w - tile}):
                for d in self._run("short", np.ascontiguousarray(image[y0 : y0 + tile, x0 : x0 + tile])):
                    x, y, bw, bh = d.box
                    d.box = (x + x0, y + y0, bw, bh)
                    if 0 < x0 + x and 0 < y0 + y and x0 + x + bw < w and y0 + y + bh < h:
                        d.outside = 0.0  # cut by the tile's edge, not the photo's
                    d.keypoints = d.keypoints + np.array([x0, y0], np.float32)
                    faces.append(d)
        return boxes.nms(faces, 0.3)

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in an RGB uint8 image, highest score first."""
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError("MediaPipe wants an RGB image (H x W x 3)")
        image = np.ascontiguousarray(image)
        faces = self._models(image)
        if self.rotate == "auto":
            # the search looks at a smaller copy (made only if it runs): the models see a 128 or 192 px square
            # of it either way
            search = functools.cache(lambda: _shrunk(image, SEARCH_SIDE))
            turn = boxes.quarter_turn(faces, lambda k: self._models(boxes.rotate_image(search(), k), tiles=False))
            if turn:
                found = self._models(boxes.rotate_image(image, turn))
                if boxes.upright_evidence(found) > boxes.upright_evidence(faces):  # the full-size pass agrees
                    faces = [boxes.unrotate(f, turn, image.shape) for f in found]
        return sorted(faces, key=lambda f: -f.score)

    def _models(self, image: np.ndarray, tiles: bool = True) -> list[Detection]:
        if self.range != "auto":
            return self._run(self.range, image)
        # Both models, merged: the full-range one finds the small faces of group photos, the
        # short-range one the large faces (close-ups, grids of portraits) the full-range one misses.
        faces = _merge(self._run("full", image), self._run("short", image))
        return faces or (self._run_tiles(image) if tiles else [])


def _shrunk(image: np.ndarray, side: int) -> np.ndarray:
    """``image`` with its longer side at most ``side`` pixels."""
    h, w = image.shape[:2]
    scale = side / max(h, w)
    if scale >= 1:
        return image
    import cv2

    size = (max(1, round(w * scale)), max(1, round(h * scale)))  # a 3000 x 2 strip stays at least 1 px high
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _merge(first: list[Detection], second: list[Detection]) -> list[Detection]:
    """``first`` plus the faces of ``second`` that are none of them. The two models frame a face
    differently (the short-range box of a small face is larger and offset), so a face counts as
    the same when either box's centre lies inside the other, not by overlap alone."""

    def inside(p, box):
        return box[0] <= p[0] <= box[0] + box[2] and box[1] <= p[1] <= box[1] + box[3]

    def centre(box):
        return box[0] + box[2] / 2, box[1] + box[3] / 2

    kept = list(first)
    for face in second:
        if not any(inside(centre(face.box), k.box) or inside(centre(k.box), face.box) for k in kept):
            kept.append(face)
    return kept

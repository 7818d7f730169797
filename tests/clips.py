"""Synthetic video clips for the video tests and benchmark: FairFace faces moving over a background.

Each person follows a known path, so a clip comes with its ground truth: where every face is in
every frame (or that it is off-screen or hidden). Clips are encoded with PyAV (H.264).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

Path_ = Callable[[float], "tuple[float, float] | None"]  # time → top-left corner of the face image, or None


def load_faces(folder: Path, ids: Sequence[int], size: int) -> list[np.ndarray]:
    """FairFace val crops ``ids`` as ``size``×``size`` RGB arrays (the face is the middle half)."""
    from PIL import Image

    return [np.asarray(Image.open(folder / f"{i}.jpg").convert("RGB").resize((size, size), Image.LANCZOS))
            for i in ids]


def background(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A soft vertical gradient with a little texture (something for the encoder, nothing face-like)."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(70, 150, height, dtype=np.float32)[:, None, None]
    tint = np.array([1.0, 0.95, 0.85], np.float32)
    noise = rng.normal(0, 4, (height // 8 + 1, width // 8 + 1, 1)).repeat(8, 0).repeat(8, 1)[:height, :width]
    return np.clip(ramp * tint + noise, 0, 255).astype(np.uint8)


def linear(x0: float, y0: float, x1: float, y1: float, t0: float, t1: float) -> Path_:
    """From (x0, y0) at t0 to (x1, y1) at t1, absent outside [t0, t1]."""

    def at(t: float):
        if t < t0 or t > t1:
            return None
        a = (t - t0) / (t1 - t0) if t1 > t0 else 0.0
        return x0 + a * (x1 - x0), y0 + a * (y1 - y0)

    return at


def chain(*paths: Path_) -> Path_:
    """The first path that places the face at time t."""

    def at(t: float):
        return next((p for p in (path(t) for path in paths) if p is not None), None)

    return at


@dataclass
class Person:
    face: np.ndarray
    path: Path_


@dataclass
class Occluder:
    """A grey block drawn over everything between t0 and t1."""

    box: tuple[int, int, int, int]  # x, y, w, h
    t0: float
    t1: float


def render(bg: np.ndarray, people: Sequence[Person], t: float,
           occluders: Sequence[Occluder] = ()) -> tuple[np.ndarray, list[tuple[float, float, float, float] | None]]:
    """One frame at time ``t`` and each person's visible face box (x, y, w, h) or None.

    People are drawn in order (later ones in front); a face box is the middle half of the face image
    (FairFace crops have padding 0.25). A face counts as hidden when less than half of it shows.
    """
    frame = bg.copy()
    height, width = bg.shape[:2]
    boxes: list = []
    for person in people:
        pos = person.path(t)
        if pos is None:
            boxes.append(None)
            continue
        x, y = int(round(pos[0])), int(round(pos[1]))
        size = person.face.shape[0]
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + size, width), min(y + size, height)
        if x1 > x0 and y1 > y0:
            frame[y0:y1, x0:x1] = person.face[y0 - y : y1 - y, x0 - x : x1 - x]
        face = (x + size / 4, y + size / 4, size / 2, size / 2)
        # whoever is drawn now covers the faces drawn before
        boxes = [None if b is not None and _overlap(b, (x, y, size, size)) > 0.5 else b for b in boxes]
        boxes.append(face if _overlap(face, (0, 0, width, height)) > 0.5 else None)
    for occ in occluders:
        if occ.t0 <= t <= occ.t1:
            ox, oy, ow, oh = occ.box
            frame[oy : oy + oh, ox : ox + ow] = 128
            boxes = [None if b is not None and _overlap(b, occ.box) > 0.5 else b for b in boxes]
    return frame, boxes


def _overlap(box, other) -> float:
    """Fraction of ``box`` inside ``other``."""
    x, y, w, h = box
    ox, oy, ow, oh = other
    iw = max(0.0, min(x + w, ox + ow) - max(x, ox))
    ih = max(0.0, min(y + h, oy + oh) - max(y, oy))
    return iw * ih / (w * h)


def write_clip(path: Path, frames: Iterable[np.ndarray], fps: float = 25, times: Sequence[float] | None = None,
               rotation: int | None = None, codec: str = "libx264", options: dict | None = None) -> Path:
    """Encode RGB frames; ``times`` (seconds) gives irregular timestamps (variable frame rate),
    ``rotation`` sets the display matrix (degrees counter-clockwise, as PyAV reads it back)."""
    import av

    with av.open(str(path), "w", options=options or {}) as container:
        stream = None
        for i, pixels in enumerate(frames):
            if stream is None:
                stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000),
                                              options={"preset": "ultrafast", "crf": "18"} if "264" in codec else {})
                stream.height, stream.width = pixels.shape[:2]
                stream.pix_fmt = "yuv420p"
                if times is not None:
                    stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
                if rotation is not None:
                    stream.set_display_rotation(rotation)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
            if times is not None:
                frame.pts, frame.time_base = round(times[i] * 1000), Fraction(1, 1000)
            container.mux(stream.encode(frame))
        if stream is not None:
            container.mux(stream.encode(None))
    return path


def scene_clip(path: Path, people: Sequence[Person], duration: float, fps: float = 25, size=(640, 360),
               occluders: Sequence[Occluder] = (), seed: int = 0) -> list[list]:
    """Write a clip of ``people`` moving for ``duration`` seconds; returns each frame's true face boxes."""
    bg = background(size[0], size[1], seed)
    truth: list[list] = []

    def frames():
        for i in range(int(round(duration * fps))):
            frame, boxes = render(bg, people, i / fps, occluders)
            truth.append(boxes)
            yield frame

    write_clip(path, frames(), fps=fps)
    return truth


class StubBackend:
    """A fast stand-in backend (fixed distributions), for tests about frames and tracks, not attributes."""

    name = "stub"

    def __init__(self):
        self.faces_seen = 0
        self.predict_calls = 0

    def supported_attributes(self) -> tuple[str, ...]:
        return ("age", "gender", "race", "emotion")

    def predict(self, faces, attributes):
        from facescan import taxonomy
        from facescan.schema import AttributePrediction

        self.predict_calls += 1
        self.faces_seen += len(faces)
        sets = {"age": "age9", "gender": "gender", "race": "race7", "emotion": "fer7"}
        out = []
        for _ in faces:
            preds = {}
            for a in attributes:
                n = len(taxonomy.label_set(sets[a]).labels)
                probs = [2.0 if i == 0 else 1.0 for i in range(n)]
                preds[a] = AttributePrediction.from_probabilities(a, sets[a], probs, self.name, "stub-1")
            out.append(preds)
        return out


class StubVLM(StubBackend):
    """A stand-in VLM: answers per face at a cost (it has ``ask_image``)."""

    name = "stub-vlm"

    def ask_image(self, image, prompt: str, max_new_tokens: int | None = None) -> str:
        return "a face"

"""Result records (image → faces → attributes) and their JSON, JSONL, CSV and Parquet writers."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator

from facescan import taxonomy


class AttributePrediction(BaseModel):
    """One attribute of one face: a distribution over a label set, and its top label.

    ``label`` is None when the prediction is invalid (a VLM answer that maps to no label,
    or a backend error); ``error`` then says why. Probabilities always cover every label
    of ``label_set`` and sum to 1 when valid.
    """

    attribute: str
    label: str | None
    label_set: str
    probabilities: dict[str, float] = Field(default_factory=dict)
    backend: str
    model: str
    raw: str | None = None
    error: str | None = None
    mode: str | None = None  # VLM backends: "scoring" or "generation"
    prompt: str | None = None  # VLM backends: the prompt preset
    # a number the attribute is also given as, from a model that predicts it (age: years, the median of the
    # model's distribution over whole years) with its central 80 % interval
    value: float | None = None
    interval: tuple[float, float] | None = None

    @property
    def valid(self) -> bool:
        return self.label is not None

    @property
    def score(self) -> float | None:
        """Probability of the top label."""
        return self.probabilities.get(self.label) if self.label is not None else None

    @classmethod
    def from_probabilities(cls, attribute: str, label_set: str, probs: Sequence[float], backend: str, model: str,
                           raw: str | None = None, mode: str | None = None,
                           prompt: str | None = None) -> AttributePrediction:
        """Build from a probability vector ordered like the label set."""
        labels = taxonomy.label_set(label_set).labels
        if len(probs) != len(labels):
            raise ValueError(f"{len(probs)} probabilities for {len(labels)} labels of {label_set}")
        total = float(sum(probs))
        dist = {lab: float(p) / total for lab, p in zip(labels, probs)}
        top = max(dist, key=dist.__getitem__)
        # every field is built and type-correct here; skipping validation matters on the hot path
        return cls.model_construct(attribute=attribute, label=top, label_set=label_set, probabilities=dist,
                                   backend=backend, model=model, raw=raw, error=None, mode=mode, prompt=prompt)

    @classmethod
    def invalid(cls, attribute: str, label_set: str, backend: str, model: str, error: str,
                raw: str | None = None, mode: str | None = None, prompt: str | None = None) -> AttributePrediction:
        """A prediction that produced no label."""
        return cls(attribute=attribute, label=None, label_set=label_set, backend=backend, model=model, raw=raw,
                   error=error, mode=mode, prompt=prompt)


class Box(BaseModel):
    """Axis-aligned face box in original-image pixels (to 0.01 px: detectors are not finer)."""

    x: float
    y: float
    width: float
    height: float

    @field_validator("x", "y", "width", "height")
    @classmethod
    def _hundredths(cls, v: float) -> float:
        return round(float(v), 2)


class FaceQuality(BaseModel):
    """What makes a face's attributes more or less trustworthy, to weigh or filter weak detections.

    ``size``: the shorter side of the face box in the photo's pixels; ``yaw``: a rough head turn in
    degrees from the keypoints (0 frontal, positive when the nose points to the image's right; None
    without keypoints); ``roll``: the in-plane tilt in degrees (clockwise; the chip the model sees is
    turned upright); ``blur``: the variance of the Laplacian of the grey face chip at 112 px (lower is
    blurrier: under ~40 is soft, a sharp face is in the hundreds); ``outside``: the fraction of the face
    box outside the photo (a face the frame cuts)."""

    size: float
    yaw: float | None = None
    roll: float | None = None
    blur: float
    outside: float = 0.0


class Face(BaseModel):
    """One detected (or given) face."""

    index: int
    box: Box
    score: float
    keypoints: list[tuple[float, float]] | None = None
    attributes: dict[str, AttributePrediction] = Field(default_factory=dict)
    action_units: dict[str, float] | None = None  # --explain: AU intensities 0-5 from the face mesh
    explanation: str | None = None  # --explain: observations → interpretation → final label
    description: dict[str, Any] | None = None  # --describe: clothing, hair, eyewear, beard, head pose, posture
    track_id: int | None = None  # video: the person's id across frames (None: not confirmed as a track)
    quality: FaceQuality | None = None  # size, head turn, tilt, sharpness, how much the frame cuts off
    weak: list[str] | None = None  # --min-quality: why the face fell under it (its attributes were not predicted)


class ImageResult(BaseModel):
    """Everything facescan found in one input; ``error`` is set when the input could not be analyzed."""

    source: str
    width: int | None = None
    height: int | None = None
    faces: list[Face] = Field(default_factory=list)
    error: str | None = None
    detector: str | None = None
    backend: str | None = None
    seconds: float | None = None
    warnings: list[str] = Field(default_factory=list)  # results that stand but may be wrong (e.g. BGR input)

    @property
    def ok(self) -> bool:
        return self.error is None


def read_jsonl(path: str | Path) -> list[ImageResult]:
    """Read results written by :func:`write_jsonl`."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [ImageResult.model_validate_json(line) for line in lines if line.strip()]


def read_json(path: str | Path) -> list[ImageResult]:
    """Read results written by :func:`write_json`."""
    return [ImageResult.model_validate(d) for d in json.loads(Path(path).read_text(encoding="utf-8"))]


# ------------------------------------------------------------------------------- video
class FrameFaces(BaseModel):
    """The faces of one analyzed video frame; ``time_s`` from the start of the clip."""

    frame: int
    time_s: float
    faces: list[Face] = Field(default_factory=list)


class EmotionPoint(BaseModel):
    """One point of a person's smoothed emotion timeline."""

    time_s: float
    label: str
    probabilities: dict[str, float] = Field(default_factory=dict)


class Track(BaseModel):
    """One person followed across frames: attributes from the mean distribution over their frames."""

    track_id: int
    first_frame: int
    last_frame: int
    first_time_s: float
    last_time_s: float
    n_frames: int
    attributes: dict[str, AttributePrediction] = Field(default_factory=dict)
    emotion_timeline: list[EmotionPoint] = Field(default_factory=list)
    dominant_emotion: str | None = None
    emotion_shares: dict[str, float] = Field(default_factory=dict)
    keyframes: list[int] | None = None  # VLM backends: the frames whose faces the model saw


class VideoSampling(BaseModel):
    """Which frames were analyzed: ``fps`` per second or ``every`` n-th, between ``start`` and ``end`` seconds."""

    fps: float | None = None
    every: int | None = None
    start: float | None = None
    end: float | None = None
    person_fps: float | None = None  # age, gender and race per second of video (None: on every analyzed frame)


class VideoResult(BaseModel):
    """Everything facescan found in one video; ``error`` is set when it could not be analyzed."""

    source: str
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    duration_s: float | None = None
    frames_decoded: int = 0
    frames_analyzed: int = 0
    sampling: VideoSampling = Field(default_factory=VideoSampling)
    backend: str | None = None
    detector: str | None = None
    attributes: list[str] = Field(default_factory=list)
    frames: list[FrameFaces] = Field(default_factory=list)
    tracks: list[Track] = Field(default_factory=list)
    faces_sent: int = 0  # faces the backend saw (every face of every frame; keyframes only with a VLM)
    model_calls: int = 0  # the backend's own request counter where it has one, else faces_sent × attributes
    seconds: float | None = None
    error: str | None = None
    warnings: list[str] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

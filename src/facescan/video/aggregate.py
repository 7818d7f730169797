"""Per-person results from per-frame predictions: mean distributions and a smoothed emotion timeline.

A track's attribute is the argmax of its predictions' mean probability distribution (not a vote
of per-frame labels): confident frames weigh more than hesitant ones, and the result is a full
distribution. Where one label wins most frames clearly the two agree (tests check it).

The emotion timeline is a centred moving average of the per-frame emotion distributions over a
window in seconds (not frames, so it means the same at any sampling rate); each point's label is
the smoothed argmax. A label's share is the time it holds, each point standing for the time to the
next one (capped at twice the track's usual step, so a gap in detections counts for nothing).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from facescan import taxonomy
from facescan.schema import AttributePrediction, EmotionPoint, Face, Track


@dataclass
class _Sums:
    """Running sum of one attribute's valid distributions, per label set, and what produced them."""

    totals: dict[str, np.ndarray] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    source: AttributePrediction | None = None  # the first valid prediction: backend, model, mode, prompt
    invalid: AttributePrediction | None = None  # the last invalid one

    def add(self, p: AttributePrediction) -> None:
        if not p.valid:
            self.invalid = p
            return
        labels = taxonomy.label_set(p.label_set).labels
        vector = np.array([p.probabilities.get(lab, 0.0) for lab in labels], dtype=np.float64)
        self.totals[p.label_set] = self.totals.get(p.label_set, 0.0) + vector
        self.counts[p.label_set] += 1
        self.source = self.source or p

    def mean(self, attribute: str) -> AttributePrediction:
        if not self.totals:
            bad = self.invalid
            return AttributePrediction.invalid(attribute, bad.label_set, bad.backend, bad.model,
                                               f"no valid prediction in any frame (last: {bad.error})")
        label_set = max(self.counts, key=self.counts.__getitem__)
        s = self.source
        mean = self.totals[label_set] / self.counts[label_set]
        return AttributePrediction.from_probabilities(attribute, label_set, mean.tolist(), s.backend, s.model,
                                                      mode=s.mode, prompt=s.prompt)


class TrackStats:
    """What is kept of one person while the clip streams: extent, sums, emotion points (no pixels)."""

    def __init__(self, track_id: int, frame: int, time_s: float):
        self.track_id = track_id
        self.first_frame = self.last_frame = frame
        self.first_time = self.last_time = time_s
        self.n_frames = 0
        self.sums: dict[str, _Sums] = defaultdict(_Sums)
        self.emotion: list[tuple[float, str, dict[str, float]]] = []
        self.keyframes: list[int] | None = None

    def add_face(self, frame: int, time_s: float, face: Face) -> None:
        """One appearance of the person, with the face's predictions when it has any."""
        self.last_frame, self.last_time = frame, time_s
        self.n_frames += 1
        self.add_predictions(time_s, face.attributes)

    def add_predictions(self, time_s: float, predictions: dict[str, AttributePrediction]) -> None:
        for name, p in predictions.items():
            self.sums[name].add(p)
            if name == "emotion" and p.valid:
                self.emotion.append((time_s, p.label_set, p.probabilities))

    def build(self, attributes: list[str] | tuple[str, ...], smooth: float) -> Track:
        """The person's :class:`Track`: mean-distribution attributes and the smoothed emotion timeline."""
        track = Track(track_id=self.track_id, first_frame=self.first_frame, last_frame=self.last_frame,
                      first_time_s=self.first_time, last_time_s=self.last_time, n_frames=self.n_frames,
                      keyframes=self.keyframes)
        track.attributes = {a: self.sums[a].mean(a) for a in attributes if a in self.sums}
        if self.emotion:
            track.emotion_timeline = smooth_timeline(self.emotion, smooth)
            track.emotion_shares = label_shares(track.emotion_timeline, _label_set_of(self.emotion))
            track.dominant_emotion = max(track.emotion_shares, key=track.emotion_shares.__getitem__)
        return track


def _label_set_of(points: list[tuple[float, str, dict[str, float]]]) -> str:
    names = [p[1] for p in points]
    return max(set(names), key=names.count)


def smooth_timeline(points: list[tuple[float, str, dict[str, float]]], window_s: float) -> list[EmotionPoint]:
    """Centred moving average of (time, label set, distribution) points over ``window_s`` seconds."""
    label_set = _label_set_of(points)
    labels = taxonomy.label_set(label_set).labels
    kept = sorted((t, probs) for t, name, probs in points if name == label_set)
    times = np.array([t for t, _ in kept])
    probs = np.array([[p.get(lab, 0.0) for lab in labels] for _, p in kept], dtype=np.float64)
    if window_s > 0:
        lo = np.searchsorted(times, times - window_s / 2 - 1e-9, side="left")
        hi = np.searchsorted(times, times + window_s / 2 + 1e-9, side="right")
        cumulative = np.vstack([np.zeros(len(labels)), np.cumsum(probs, axis=0)])
        probs = (cumulative[hi] - cumulative[lo]) / (hi - lo)[:, None]
    return [EmotionPoint(time_s=float(t), label=labels[int(np.argmax(row))],
                         probabilities={lab: round(float(v), 4) for lab, v in zip(labels, row)})
            for t, row in zip(times, probs)]


def label_shares(timeline: list[EmotionPoint], label_set: str) -> dict[str, float]:
    """Share of the track's time spent in each label (every label of the set, summing to 1)."""
    labels = taxonomy.label_set(label_set).labels
    times = np.array([p.time_s for p in timeline])
    gaps = np.diff(times)
    step = float(np.median(gaps)) if len(gaps) and np.median(gaps) > 0 else 1.0
    weights = np.append(np.minimum(gaps, 2 * step), step)
    totals = dict.fromkeys(labels, 0.0)
    for point, w in zip(timeline, weights):
        totals[point.label] += float(w)
    whole = sum(totals.values()) or 1.0
    return {lab: round(v / whole, 4) for lab, v in totals.items()}

"""Results as tables: one row per face (or per frame × face, or per person of a video), and DataFrames.

The same rows feed the CSV and Parquet outputs and :func:`to_dataframe`, so the columns are the
same everywhere. Column names are identifier-safe (``age_p_20_29``, ``age_p_70_plus``: usable as
``df.age_p_20_29``); boxes are rounded to 0.1 px and probabilities to 4 decimals.

Per face: ``source``, ``face``, ``x``/``y``/``w``/``h``, ``face_score``, the detector's named
keypoints (``kp_right_eye_x`` …), the quality record (``quality_size`` …) and, under ``--min-quality``,
``weak`` (why the face has no attributes), then per attribute its ``label``, ``_score``, ``_model`` and one
``_p_<label>`` column per label; for age also ``age_years`` (the median of the predicted distribution, or an
exact-age model's own) with ``age_years_low``/``age_years_high`` (its central 80 % interval); with
``--explain`` the action units (``au4``, ``au1_2`` … intensities 0-5) and ``explanation``; with
``--describe`` the head pose (``head_yaw``/``head_pitch``/``head_roll``, degrees) and the
person's descriptors (``clothing_colours``, ``hair_colour``, ``hair_length``, ``eyewear``,
``beard``, ``posture_<name>``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np

from facescan import taxonomy
from facescan.schema import AttributePrediction, Face, ImageResult, VideoResult

#: The central share of the age distribution that ``age_years_low``/``age_years_high`` cover.
AGE_INTERVAL = 0.8
#: Years spanned by an open top age group (``70+``) when spreading its probability over ages.
OPEN_AGE_GROUP_SPAN = 20

_IMAGE_ONLY = ("image_width", "image_height", "error", "detector", "backend")


def safe_name(text: str) -> str:
    """An identifier-safe column name part: ``20-29`` → ``20_29``, ``70+`` → ``70_plus``, ``AU1+2`` → ``au1_2``."""
    text = str(text).strip().lower()
    text = re.sub(r"\+$", "_plus", text)
    return re.sub(r"[^0-9a-z]+", "_", text).strip("_")


def result_rows(results: Iterable[ImageResult]) -> list[dict]:
    """One row per face (one row per image without faces, so nothing is lost)."""
    rows = []
    for r in results:
        base = {"source": r.source, "image_width": r.width, "image_height": r.height, "error": r.error,
                "detector": r.detector, "backend": r.backend}
        if not r.faces:
            rows.append({**base, "face": None})
            continue
        for f in r.faces:
            rows.append({**base, **face_columns(f, r.detector)})
    return rows


def face_columns(f: Face, detector: str | None = None) -> dict:
    """One face's columns (box, keypoints, attributes, action units, pose and descriptors)."""
    row = {"face": f.index, "x": round(f.box.x, 1), "y": round(f.box.y, 1), "w": round(f.box.width, 1),
           "h": round(f.box.height, 1), "face_score": round(f.score, 4)}
    if f.keypoints:
        names = taxonomy.keypoint_names(detector, len(f.keypoints))
        for name, (x, y) in zip(names, f.keypoints):
            row[f"kp_{name}_x"], row[f"kp_{name}_y"] = round(x, 1), round(y, 1)
    if f.quality is not None:
        row.update((f"quality_{k}", v) for k, v in f.quality.model_dump().items())
    if f.weak:
        row["weak"] = "; ".join(f.weak)
    for name, a in f.attributes.items():
        row.update(attribute_columns(name, a))
    if f.action_units is not None:
        row.update((safe_name(au), round(v, 3)) for au, v in f.action_units.items())
    if f.explanation is not None:
        row["explanation"] = f.explanation
    if f.description:
        row.update(description_columns(f.description))
    return row


def attribute_columns(name: str, a: AttributePrediction) -> dict:
    """``name``, ``name_score``, ``name_model`` (mode, prompt, error, raw when set), ``name_p_<label>``…"""
    row: dict = {name: a.label, f"{name}_score": None if a.score is None else round(a.score, 4),
                 f"{name}_model": a.model}
    if a.mode:
        row[f"{name}_mode"], row[f"{name}_prompt"] = a.mode, a.prompt
    if a.error:
        row[f"{name}_error"] = a.error
    if a.raw is not None:
        row[f"{name}_raw"] = a.raw
    for label, p in a.probabilities.items():
        row[f"{name}_p_{safe_name(label)}"] = round(p, 4)
    if name == "age" and a.valid and a.value is not None and a.interval is not None:  # an exact-age model's
        row["age_years"], (row["age_years_low"], row["age_years_high"]) = a.value, a.interval
    elif name == "age" and a.valid and a.label_set in ("age9", "age5") and sum(a.probabilities.values()) > 0:
        row["age_years"], row["age_years_low"], row["age_years_high"] = age_in_years(a.probabilities, a.label_set)
    return row


def age_in_years(probabilities: dict[str, float], label_set: str = "age9") -> tuple[float, float, float]:
    """An age in years and its central :data:`AGE_INTERVAL` interval, from an age-group distribution.

    Each group's probability is spread evenly over its years (the open top group over
    :data:`OPEN_AGE_GROUP_SPAN` years), so the answer is a property of the distribution, not a
    second model. The age is the distribution's median, the estimate with the least expected error
    in years (on UTKFace: 7.2 years off, against 8.4 for the mean and 7.7 for the top group's middle);
    where the median falls in a gap between groups, the gap's middle: two groups at 0.5 each give an
    age between them and a wide interval.
    """
    labels = taxonomy.label_set(label_set).labels
    edges = []
    for label in labels:
        low, high = taxonomy.age_group_range(label, label_set)
        edges.append((low, (high + 1) if high is not None else low + OPEN_AGE_GROUP_SPAN))
    p = np.array([probabilities.get(label, 0.0) for label in labels], dtype=np.float64)
    p = p / p.sum()
    bounds = np.array([edges[0][0], *[hi for _, hi in edges]], dtype=np.float64)
    return _median_and_interval(p, bounds)


def age_from_years(probabilities: Sequence[float]) -> tuple[float, float, float]:
    """An age in years and its central :data:`AGE_INTERVAL` interval from a distribution over whole years
    0 … ``taxonomy.AGE_YEARS_TOP`` (an exact-age model's): each year's probability spread over that year."""
    p = np.asarray(probabilities, dtype=np.float64)
    bounds = np.arange(len(p) + 1, dtype=np.float64)
    bounds[-1] = len(p) - 1 + OPEN_AGE_GROUP_SPAN / 2  # the last bin is "that age or older"
    return _median_and_interval(p / p.sum(), bounds)


def _median_and_interval(p: np.ndarray, bounds: np.ndarray) -> tuple[float, float, float]:
    """Median and central :data:`AGE_INTERVAL` interval of probabilities ``p`` spread evenly over the bins
    ``bounds[i] … bounds[i + 1]``."""
    cumulative = np.concatenate([[0.0], np.cumsum(p)])

    def quantile(q: float, middle: bool = False) -> float:
        # the inverse of the piecewise-linear distribution function; where it is flat at q (no probability
        # between two groups' years), its first year, or for the median (``middle``) the stretch's middle
        first = int(np.searchsorted(cumulative, q - 1e-9, side="left"))
        last = int(np.searchsorted(cumulative, q + 1e-9, side="right")) - 1
        if first <= last:  # q is reached exactly at bounds[first..last]
            return float(bounds[first] + bounds[last]) / 2 if middle else float(bounds[first])
        i = min(max(first, 1), len(bounds) - 1)
        share = (q - cumulative[i - 1]) / max(cumulative[i] - cumulative[i - 1], 1e-12)
        return float(bounds[i - 1] + share * (bounds[i] - bounds[i - 1]))

    tail = (1 - AGE_INTERVAL) / 2
    return round(quantile(0.5, middle=True), 1), round(quantile(tail), 1), round(quantile(1 - tail), 1)


def description_columns(d: dict) -> dict:
    """``--describe``'s descriptors as flat columns (lists joined with ``;``)."""
    row: dict = {}
    if d.get("error"):
        row["describe_error"] = d["error"]
    pose = d.get("head_pose") or {}
    for k in ("yaw", "pitch", "roll"):
        if k in pose:
            row[f"head_{k}"] = round(pose[k], 1)
    if "clothing_colours" in d:
        row["clothing_colours"] = ";".join(d.get("clothing_colours") or [])
    for k in ("clothing_texture", "hair_colour", "hair_length", "eyewear", "beard"):
        if k in d:
            row[k] = d[k]
    for k, v in (d.get("posture") or {}).items():
        row[f"posture_{safe_name(k)}"] = v
    return row


def video_frame_rows(video: VideoResult) -> list[dict]:
    """One row per analyzed frame × face (frames without faces have none; a failed video has one row)."""
    if video.error or not video.frames:
        return [{"source": video.source, "frame": None, "error": video.error}] if video.error else []
    rows = []
    for ff in video.frames:
        for face in ff.faces:
            row = {"source": video.source, "frame": ff.frame, "time_s": round(ff.time_s, 4),
                   "track_id": face.track_id}
            row.update(face_columns(face, video.detector))
            rows.append(row)
    return rows


def video_track_rows(video: VideoResult) -> list[dict]:
    """One row per person: aggregated labels and probabilities, dominant emotion and its shares, extent."""
    rows = []
    for t in video.tracks:
        row = {"source": video.source, "track_id": t.track_id, "n_frames": t.n_frames, "first_frame": t.first_frame,
               "last_frame": t.last_frame, "first_time_s": t.first_time_s, "last_time_s": t.last_time_s}
        for name, a in t.attributes.items():
            row.update(attribute_columns(name, a))
        if t.emotion_shares:
            row["dominant_emotion"] = t.dominant_emotion
            row.update((f"emotion_share_{safe_name(label)}", share) for label, share in t.emotion_shares.items())
        if t.keyframes is not None:
            row["keyframes"] = ";".join(map(str, t.keyframes))
        rows.append(row)
    return rows


def to_dataframe(results: ImageResult | VideoResult | Iterable[ImageResult | VideoResult], *,
                 per: str = "face"):
    """A pandas DataFrame of results: one row per face (photos) or per frame × face (videos);
    ``per="person"`` gives one row per person of the videos instead.

    Labels are ordered categoricals (age groups sort by age), counts and indices nullable
    integers, text columns strings; the frame round-trips through Parquet unchanged.
    """
    import pandas as pd

    if isinstance(results, (ImageResult, VideoResult)):
        results = [results]
    if per not in ("face", "person"):
        raise ValueError(f"per must be 'face' or 'person', not {per!r}")
    rows: list[dict] = []
    attributes: dict[str, str] = {}
    for r in results:
        if isinstance(r, VideoResult):
            rows.extend(video_frame_rows(r) if per == "face" else video_track_rows(r))
            attributes.update(_label_sets(f.attributes for ff in r.frames for f in ff.faces))
            attributes.update(_label_sets(t.attributes for t in r.tracks))
        elif per == "face":
            rows.extend(result_rows([r]))
            attributes.update(_label_sets(f.attributes for f in r.faces))
    frame = pd.DataFrame(rows)
    return _typed(frame, attributes)


def _label_sets(attribute_maps: Iterable[dict[str, AttributePrediction]]) -> dict[str, str]:
    found: dict[str, str] = {}
    for attributes in attribute_maps:
        for name, a in attributes.items():
            found.setdefault(name, a.label_set)
    return found


_INTEGERS = ("face", "frame", "track_id", "image_width", "image_height", "n_frames", "first_frame", "last_frame")
_TEXT = ("source", "error", "detector", "backend", "explanation", "clothing_colours", "keyframes")


def _typed(frame, attributes: dict[str, str]):
    import pandas as pd

    for column in frame.columns:
        if column in _INTEGERS:
            frame[column] = frame[column].astype("Int64")
        elif column in _TEXT or column.endswith(("_model", "_error", "_raw", "_mode", "_prompt")):
            frame[column] = frame[column].astype("string")
    for name, label_set in attributes.items():
        labels = list(taxonomy.label_set(label_set).labels)
        for column in (name, "dominant_emotion" if name == "emotion" else None):
            if column in frame.columns:
                frame[column] = pd.Categorical(frame[column], categories=labels, ordered=name == "age")
    return frame


def columns_for(attributes: Sequence[str]) -> list[str]:
    """The label and probability columns of ``attributes`` with their default label sets (for docs and checks)."""
    out = []
    for name in attributes:
        labels = taxonomy.DEFAULT_LABEL_SETS[name].labels
        out += [name, f"{name}_score", *(f"{name}_p_{safe_name(lab)}" for lab in labels)]
    return out

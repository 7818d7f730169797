"""Evaluation on clips (DFEW, AFEW, RAVDESS, MAFW): one prediction per clip, from its main track.

Each clip is analyzed by :func:`facescan.video.analyze_video` (frames sampled at ``fps``, faces
detected and followed across frames, each person's attributes aggregated over their frames). The
clip's prediction is its **main track**'s: the person seen in the most sampled frames (a tie goes to
the larger mean face, then to the earlier track), i.e. the person on screen the longest, whose
expression a clip-labelled dataset labels. A track's attribute is the argmax of the mean of its
per-frame distributions (:mod:`facescan.video.aggregate`), with that mean as its probabilities.

- A clip with no track (no face followed for :data:`facescan.video.run.MIN_PERSON_S`) is an invalid
  prediction of every attribute, counted in the invalid rate like a VLM answer that names no label.
- A clip that cannot be read (missing, corrupt, not a video) gets error rows (``clip: …``), left out
  of the metrics and counted as failed; the run goes on with the next clip.
- A clip given as a folder of frames (DFEW's ``clip_224x224``) is played at :data:`FRAME_FOLDER_RATE`
  frames per second (its images in natural name order), then sampled like a video file.
"""

from __future__ import annotations

import io
import json
import re
from fractions import Fraction
from pathlib import Path

DEFAULT_FPS = 5.0
"""Frames per second sampled from each clip unless ``fps`` says otherwise."""
FRAME_FOLDER_RATE = 25.0
"""The frame rate a folder of frames is played at (its frames carry no time of their own)."""
_FRAME_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def clip_analyzer(model, attributes: list[str]):
    """The analyzer clips go through: ``model`` behind the video face detector."""
    from facescan.pipeline import Analyzer
    from facescan.video import VideoDetector

    return Analyzer(backend=model, attributes=attributes, detector=VideoDetector())


def predict_clip(analyzer, sample, backend: str, attributes: list[str], fps: float) -> list[dict]:
    """One clip's prediction rows (one per attribute), from its main track; never raises for a bad clip."""
    from facescan.video import analyze_video

    base = {"item_id": sample.id, "backend": backend}
    try:
        source = frames_video(sample.path) if Path(sample.path).is_dir() else sample.path
        video = analyze_video(source, analyzer, fps=fps, keep_frames=True)
    except Exception as e:  # noqa: BLE001 - whatever fails with this clip is this clip's error
        return _rows(base, attributes, error=f"clip: {type(e).__name__}: {e}")
    if video.error:
        error = video.error.removeprefix(f"{video.source}: ").removeprefix(f"{sample.path}: ")
        return _rows(base, attributes, error=f"clip: {error}")
    track = main_track(video)
    if track is None:
        from facescan.video.run import MIN_PERSON_S

        return _rows(base, attributes, error=f"no person in the clip: no face was followed for {MIN_PERSON_S} s",
                     raw=json.dumps(_summary(video, None)))
    raw = json.dumps(_summary(video, track))
    rows = []
    for a in attributes:
        p = track.attributes.get(a)
        if p is None:
            rows += _rows(base, [a], error=f"the main track has no {a} prediction", raw=raw)
            continue
        rows.append({**base, "attribute": a, "label": p.label, "label_set": p.label_set,
                     "probabilities": p.probabilities if p.label is not None else {}, "raw": raw, "error": p.error,
                     "model": p.model, "mode": p.mode, "prompt": p.prompt, "value": p.value})
    return rows


def main_track(video):
    """The track seen in the most analyzed frames; ties: the larger mean face area, then the lower track id.
    None when the clip has no track."""
    if not video.tracks:
        return None
    areas: dict[int, list[float]] = {}
    for frame in video.frames:
        for face in frame.faces:
            if face.track_id is not None:
                areas.setdefault(face.track_id, []).append(face.box.width * face.box.height)

    def mean_area(track) -> float:
        values = areas.get(track.track_id) or [0.0]
        return sum(values) / len(values)

    return min(video.tracks, key=lambda t: (-t.n_frames, -mean_area(t), t.track_id))


def _summary(video, track) -> dict:
    """What the stored ``raw`` of a clip's rows says: the clip, its tracks and the one chosen."""
    out = {"clip": {"duration_s": video.duration_s, "frames_analyzed": video.frames_analyzed,
                    "tracks": len(video.tracks)}}
    if track is not None:
        out["main_track"] = {"track_id": track.track_id, "n_frames": track.n_frames,
                             "first_time_s": track.first_time_s, "last_time_s": track.last_time_s,
                             "dominant_emotion": track.dominant_emotion}
    return out


def _rows(base: dict, attributes: list[str], error: str, raw: str | None = None) -> list[dict]:
    return [{**base, "attribute": a, "label": None, "label_set": "", "probabilities": {}, "raw": raw,
             "error": error, "model": None, "mode": None, "prompt": None} for a in attributes]


def _natural_key(path: Path) -> list:
    """``00001_2.jpg`` before ``00001_10.jpg``: digit runs compare as numbers."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def frames_video(folder: Path, rate: float = FRAME_FOLDER_RATE) -> bytes:
    """A folder of one clip's frames as an in-memory MP4 at ``rate`` frames per second (frames that
    cannot be read are skipped; ValueError when none can)."""
    import av
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    files = sorted((p for p in Path(folder).iterdir() if p.suffix.lower() in _FRAME_SUFFIXES), key=_natural_key)
    buffer = io.BytesIO()
    written = 0
    with av.open(buffer, "w", format="mp4") as container:
        stream = None
        for path in files:
            try:
                with Image.open(path) as img:
                    pixels = img.convert("RGB")
            except (OSError, UnidentifiedImageError, ValueError):
                continue
            if stream is None:
                codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
                stream = container.add_stream(codec, rate=Fraction(rate).limit_denominator(1000),
                                              options={"preset": "ultrafast", "crf": "18"} if codec == "libx264"
                                              else {})
                stream.width, stream.height = max(2, pixels.width // 2 * 2), max(2, pixels.height // 2 * 2)
                stream.pix_fmt = "yuv420p"
            if pixels.size != (stream.width, stream.height):
                pixels = pixels.resize((stream.width, stream.height))
            frame = av.VideoFrame.from_ndarray(np.asarray(pixels), format="rgb24")
            container.mux(stream.encode(frame))
            written += 1
        if stream is not None:
            container.mux(stream.encode(None))
    if not written:
        raise ValueError(f"{folder}: no readable frame image in the folder")
    return buffer.getvalue()

"""Video results as table rows (CSV, Parquet), with the same attribute columns as ``schema.result_rows``."""

from __future__ import annotations

from facescan.schema import ImageResult, VideoResult, result_rows

_IMAGE_ONLY = ("image_width", "image_height", "error", "detector", "backend")


def video_frame_rows(video: VideoResult) -> list[dict]:
    """One row per analyzed frame × face (frames without faces have none; a failed video has one row)."""
    if video.error or not video.frames:
        return [{"source": video.source, "frame": None, "error": video.error}] if video.error else []
    rows = []
    for ff in video.frames:
        if not ff.faces:
            continue
        image_rows = result_rows([ImageResult(source=video.source, faces=ff.faces)])
        for face, image_row in zip(ff.faces, image_rows):
            row = {"source": video.source, "frame": ff.frame, "time_s": ff.time_s, "track_id": face.track_id}
            row.update((k, v) for k, v in image_row.items() if k != "source" and k not in _IMAGE_ONLY)
            rows.append(row)
    return rows


def video_track_rows(video: VideoResult) -> list[dict]:
    """One row per person: aggregated labels and probabilities, dominant emotion and its shares, extent."""
    rows = []
    for t in video.tracks:
        row = {"source": video.source, "track_id": t.track_id, "n_frames": t.n_frames, "first_frame": t.first_frame,
               "last_frame": t.last_frame, "first_time_s": t.first_time_s, "last_time_s": t.last_time_s}
        for name, a in t.attributes.items():
            row[name] = a.label
            row[f"{name}_score"] = a.score
            if a.error:
                row[f"{name}_error"] = a.error
            for label, p in a.probabilities.items():
                row[f"{name}_p_{label}"] = p
        if t.emotion_shares:
            row["dominant_emotion"] = t.dominant_emotion
            row.update((f"emotion_share_{label}", share) for label, share in t.emotion_shares.items())
        if t.keyframes is not None:
            row["keyframes"] = ";".join(map(str, t.keyframes))
        rows.append(row)
    return rows

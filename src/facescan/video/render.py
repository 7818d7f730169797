"""Pictures of a video's analysis: the clip with each person boxed and labelled, and emotion charts.

``render_video`` decodes the clip a second time (every frame between the analysis's start and end)
and draws, on each frame, the faces of the latest analyzed frame at or before it, held for at most
two sampling steps (so a clip analyzed at 5 fps shows steady boxes at 25 fps, and a face no longer
found disappears). Each tracked face shows its person number, the person's aggregated attributes
and the smoothed emotion at that moment; a face whose track was too short to be a person is a thin
grey box. The sound track is not copied.
"""

from __future__ import annotations

import bisect
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from facescan import taxonomy
from facescan.annotate import COLOURS, draw_captions
from facescan.schema import EmotionPoint, FrameFaces, Track, VideoResult
from facescan.video.decode import MAX_SIDE, VideoReader, VideoSource

#: Output codecs by container suffix, best first (the first this FFmpeg build can encode is used).
CODECS = {".webm": ("libvpx-vp9", "libvpx"), ".mkv": ("libx264", "h264", "mpeg4"),
          ".avi": ("mpeg4", "libx264"), ".mov": ("libx264", "h264", "mpeg4"), ".mp4": ("libx264", "h264", "mpeg4"),
          ".m4v": ("libx264", "h264", "mpeg4")}


def render_video(video: VideoResult, source: VideoSource, out: str | Path, max_side: int | None = MAX_SIDE,
                 progress: bool = False) -> Path:
    """Write ``source`` with ``video``'s faces drawn to ``out`` (its suffix names the container).

    Needs ``video.frames`` (analyze with ``keep_frames=True``); frames are written at most
    ``max_side`` pixels on their longer side. Raises ``ValueError`` for an unknown suffix and
    :class:`~facescan.video.VideoLoadError` when the clip cannot be read again.
    """
    import av

    out = Path(out)
    codec = _codec(out.suffix.lower())
    tracks = {t.track_id: t for t in video.tracks}
    shown = _Shown(video)
    sampling = video.sampling
    out.parent.mkdir(parents=True, exist_ok=True)
    with VideoReader(source, start=sampling.start, end=sampling.end, max_side=max_side) as reader, \
            av.open(str(out), "w") as container, _progress(progress, out.name, video) as advance:
        stream = None
        for frame in reader:
            if stream is None:
                stream = _stream(container, codec, frame.pixels.shape, reader.info.fps)
            pixels = _even(frame.pixels)
            drawn = draw_frame(pixels, shown.at(frame.time_s), tracks, frame.scale, frame.time_s)
            encoded = av.VideoFrame.from_ndarray(drawn, format="rgb24")
            encoded.pts, encoded.time_base = round(frame.time_s * 1000), Fraction(1, 1000)
            container.mux(stream.encode(encoded))
            advance()
        if stream is not None:
            container.mux(stream.encode(None))
    return out


def draw_frame(pixels: np.ndarray, frame_faces: FrameFaces | None, tracks: dict[int, Track], scale: float,
               time_s: float) -> np.ndarray:
    """``pixels`` (RGB, ``scale`` × the original size) with the faces of ``frame_faces`` drawn."""
    img = Image.fromarray(pixels)
    if frame_faces is None or not frame_faces.faces:
        return np.asarray(img)
    draw = ImageDraw.Draw(img)
    width = max(2, max(img.size) // 400)
    boxes, captions, colours = [], [], []
    for face in frame_faces.faces:
        b = face.box
        box = (b.x * scale, b.y * scale, b.width * scale, b.height * scale)
        x, y, w, h = box
        track = tracks.get(face.track_id) if face.track_id is not None else None
        if track is None:
            draw.rectangle([x, y, x + w, y + h], outline=(170, 170, 170), width=1)
            continue
        colour = COLOURS[track.track_id % len(COLOURS)]
        draw.rectangle([x, y, x + w, y + h], outline=colour, width=width)
        boxes.append(box)
        captions.append([f"person {track.track_id}", *track_caption(track, time_s)])
        colours.append(colour)
    draw_captions(draw, boxes, captions, colours, width, img.size)
    return np.asarray(img)


def track_caption(track: Track, time_s: float) -> list[str]:
    """The person's aggregated attributes (but the emotion) and the smoothed emotion at ``time_s``."""
    lines = []
    for name, a in track.attributes.items():
        if name == "emotion" and track.emotion_timeline:
            continue
        lines.append(taxonomy.label_set(a.label_set).pretty(a.label) if a.valid else f"{name}: invalid")
    point = emotion_at(track.emotion_timeline, time_s)
    if point is not None:
        lines.append(f"{point.label} {point.probabilities.get(point.label, 0.0):.2f}")
    return lines


def emotion_at(timeline: list[EmotionPoint], time_s: float) -> EmotionPoint | None:
    """The timeline's point nearest ``time_s`` (None for an empty timeline)."""
    if not timeline:
        return None
    times = [p.time_s for p in timeline]
    i = bisect.bisect_left(times, time_s)
    near = [j for j in (i - 1, i) if 0 <= j < len(timeline)]
    return timeline[min(near, key=lambda j: abs(times[j] - time_s))]


def plot_emotions(video: VideoResult, out: str | Path) -> Path:
    """Save one chart per person, stacked: the smoothed emotion probabilities over time (PNG, SVG or PDF)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tracks = [t for t in video.tracks if t.emotion_timeline]
    if not tracks:
        raise ValueError("no person with an emotion timeline to plot")
    labels = list(tracks[0].emotion_timeline[0].probabilities)
    colours = plt.get_cmap("tab10").colors
    fig, axes = plt.subplots(len(tracks), 1, figsize=(9, 1.2 + 1.6 * len(tracks)), sharex=True, squeeze=False)
    for ax, track in zip(axes[:, 0], tracks):
        times = [p.time_s for p in track.emotion_timeline]
        stacked = [[p.probabilities.get(lab, 0.0) for p in track.emotion_timeline] for lab in labels]
        ax.stackplot(times, stacked, labels=labels, colors=colours[: len(labels)], step="mid" if len(times) < 3
                     else None)
        share = track.emotion_shares.get(track.dominant_emotion or "", 0.0)
        ax.set_title(f"person {track.track_id}: {track.first_time_s:.1f}–{track.last_time_s:.1f} s, mostly "
                     f"{track.dominant_emotion} ({share:.0%})", fontsize=9, loc="left")
        ax.set_ylim(0, 1)
        ax.set_ylabel("probability", fontsize=8)
        ax.set_xlim(0, max(video.duration_s or 0.0, track.last_time_s) or 1.0)
    axes[-1, 0].set_xlabel("time (s)")
    axes[0, 0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.suptitle(f"{Path(video.source).name}: emotion over time (smoothed)", fontsize=10)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


class _Shown:
    """The analyzed frame whose faces a rendered frame shows: the latest at or before it, if recent."""

    def __init__(self, video: VideoResult):
        self.frames = sorted(video.frames, key=lambda ff: ff.time_s)
        self.times = [ff.time_s for ff in self.frames]
        gaps = np.diff(self.times)
        step = float(np.median(gaps)) if len(gaps) else 1.0
        self.hold = 2 * step + 1e-3

    def at(self, time_s: float) -> FrameFaces | None:
        i = bisect.bisect_right(self.times, time_s + 1e-6) - 1
        if i < 0 or time_s - self.times[i] > self.hold:
            return None
        return self.frames[i]


def _codec(suffix: str) -> str:
    import av

    for name in CODECS.get(suffix, ()):
        try:
            av.codec.Codec(name, "w")
        except Exception:  # noqa: BLE001 - not in this FFmpeg build: try the next
            continue
        return name
    raise ValueError(f"cannot write a {suffix or 'suffix-less'} video; name an .mp4, .mov, .mkv, .avi or .webm file")


def _stream(container, codec: str, shape: tuple, fps: float | None):
    stream = container.add_stream(codec, rate=Fraction(fps or 25).limit_denominator(1000),
                                  options={"preset": "veryfast", "crf": "20"} if "264" in codec else {})
    stream.height, stream.width = shape[0] // 2 * 2, shape[1] // 2 * 2
    stream.pix_fmt = "yuv420p"
    stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)  # frames keep their own times (VFR)
    return stream


def _even(pixels: np.ndarray) -> np.ndarray:
    """yuv420p needs even sides: drop a last odd row or column."""
    h, w = pixels.shape[:2]
    return np.ascontiguousarray(pixels[: h // 2 * 2, : w // 2 * 2])


class _progress:
    """A rich progress bar over the frames being written, or nothing."""

    def __init__(self, show: bool, name: str, video: VideoResult):
        self.show, self.name = show, name
        duration = (video.sampling.end or video.duration_s or 0) - (video.sampling.start or 0)
        self.total = round(duration * video.fps) if duration > 0 and video.fps else None

    def __enter__(self):
        if not self.show:
            return lambda: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("drawing {task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeRemainingColumn(), console=Console(stderr=True))
        self.bar.__enter__()
        task = self.bar.add_task(self.name, total=self.total)
        return lambda: self.bar.advance(task)

    def __exit__(self, *exc) -> None:
        if self.show:
            self.bar.__exit__(*exc)

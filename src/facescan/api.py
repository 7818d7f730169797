"""``facescan.analyze``: photos and videos, one at a time or by folder, through one call."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from facescan.imageio import ImageSource, expand_inputs
from facescan.pipeline import Analyzer, names_many
from facescan.schema import ImageResult, VideoResult
from facescan.video import VideoDetector, analyze_video, is_video


def video_analyzer(analyzer: Analyzer) -> Analyzer:
    """An analyzer for video frames sharing ``analyzer``'s backend: BlazeFace without the photo
    detector's tiles (see :class:`~facescan.video.VideoDetector`) unless another detector is chosen."""
    detector = analyzer.detector
    if detector is None or detector.name.startswith("mediapipe"):
        detector = VideoDetector()
    elif getattr(detector, "rotate", "off") != "off" and hasattr(detector, "without_rotation"):
        detector = detector.without_rotation()  # no quarter-turn search per frame (see VideoDetector)
    return Analyzer(backend=analyzer.backend, detector=detector, attributes=analyzer.attributes)


def analyze(images: ImageSource | Sequence[ImageSource], attributes: str | Sequence[str] | None = None,
            backend: str = "builtin", detector: str = "mediapipe", crops: bool = False,
            workers: int = 1, explain: bool = False, describe: bool = False, channels: str = "rgb",
            **video_options) -> ImageResult | VideoResult | list[ImageResult | VideoResult]:
    """Analyze one input (an :class:`ImageResult`, or a :class:`VideoResult` for a video file), or a
    list, a folder or a glob pattern of them (a list, in input order; folders may mix photos and
    videos, and their other files are skipped). A photo is a path, an http(s) URL, bytes, base64
    text or a data URI, a binary file object, a PIL image or a numpy array (``channels="bgr"`` for
    OpenCV's arrays). ``video_options`` go to :func:`~facescan.video.analyze_video` (``fps``,
    ``every``, ``start``, ``end``, ``person_fps``…)."""
    analyzer = Analyzer(backend=backend, detector=detector, attributes=attributes, crops=crops, explain=explain,
                        describe=describe, channels=channels)
    many = isinstance(images, (list, tuple)) or names_many(images)
    sources = list(images) if isinstance(images, (list, tuple)) else expand_inputs([images], skipped=[]) \
        if many else [images]
    clips = [isinstance(s, (str, Path)) and is_video(s) for s in sources]
    frames = video_analyzer(analyzer) if any(clips) else None
    photos = iter(analyzer.analyze_many([s for s, clip in zip(sources, clips) if not clip], workers=workers))
    results = [analyze_video(s, frames, **video_options) if clip else next(photos) for s, clip in zip(sources, clips)]
    return results if many else results[0]

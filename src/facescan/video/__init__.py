"""facescan on video: people tracked across frames, attributes per frame and per person, emotion timelines.

``analyze_video(path)`` streams a clip's (sampled) frames through the same :class:`~facescan.pipeline.Analyzer`
as photos, tracks each person's face across frames, and aggregates attributes per person. With a
VLM backend (one with ``ask_image``) the frames are only detected and tracked, and the model sees a
few keyframes per person instead of every face of every frame.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from facescan.schema import FrameFaces, Track, VideoResult, VideoSampling
from facescan.video.decode import (
    MAX_SIDE,
    VIDEO_SUFFIXES,
    Frame,
    VideoInfo,
    VideoLoadError,
    VideoReader,
    VideoSource,
    describe_video,
    is_video,
    iter_frames,
)
from facescan.video.detect import VideoDetector
from facescan.video.rows import video_frame_rows, video_track_rows

__all__ = ["VIDEO_SUFFIXES", "Frame", "FrameFaces", "Track", "VideoDetector", "VideoInfo", "VideoLoadError",
           "VideoReader", "VideoResult", "analyze_video", "is_video", "iter_frames", "video_frame_rows",
           "video_track_rows"]


def analyze_video(source: VideoSource, analyzer=None, *, fps: float | None = None, every: int | None = None,
                  start: float | None = None, end: float | None = None, smooth: float = 1.0, keyframes: int = 3,
                  on_frame: Callable[[FrameFaces], None] | None = None, progress: bool = False,
                  keep_frames: bool = True, workers: int = 1, max_side: int = MAX_SIDE,
                  **analyzer_kwargs) -> VideoResult:
    """Analyze one video; a file that cannot be read gives a result with ``error`` set, never an exception.

    ``fps``/``every``/``start``/``end`` choose the frames (see :class:`VideoReader`); ``smooth`` is
    the emotion timeline's moving-average window in seconds; ``keyframes`` the faces per person a
    VLM backend sees; ``on_frame`` receives each analyzed frame's faces (with track ids) as the
    clip streams; ``keep_frames=False`` keeps only the tracks in the result (constant memory but
    the emotion timelines). Without ``analyzer`` one is built from ``analyzer_kwargs``, with the
    :class:`VideoDetector` unless another detector is named.
    Invalid arguments raise ``ValueError``.
    """
    from facescan.video.run import VideoRun

    started = time.perf_counter()
    if analyzer is None:
        from facescan.pipeline import Analyzer

        if analyzer_kwargs.get("detector", "mediapipe") == "mediapipe":
            analyzer_kwargs["detector"] = VideoDetector()
        analyzer = Analyzer(**analyzer_kwargs)
    elif analyzer_kwargs:
        raise ValueError(f"give an analyzer or analyzer options, not both ({', '.join(analyzer_kwargs)})")
    if smooth < 0 or keyframes < 1:
        raise ValueError("smooth must be ≥ 0 seconds and keyframes ≥ 1")
    result = VideoResult(source=describe_video(source), sampling=VideoSampling(fps=fps, every=every, start=start,
                                                                                 end=end),
                         backend=analyzer.backend.name, detector=getattr(analyzer.detector, "name", None),
                         attributes=list(analyzer.attributes))
    try:
        reader = VideoReader(source, fps=fps, every=every, start=start, end=end, max_side=max_side)
    except VideoLoadError as e:
        result.error = str(e)
    else:
        with reader:
            VideoRun(analyzer, reader, result, smooth=smooth, keyframes=keyframes, on_frame=on_frame,
                     keep_frames=keep_frames).run(progress=progress, workers=workers)
    result.seconds = round(time.perf_counter() - started, 3)
    return result

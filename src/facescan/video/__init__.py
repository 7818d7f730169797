"""facescan on video: people tracked across frames, attributes per frame and per person, emotion timelines.

``analyze_video(path)`` streams a clip's (sampled) frames through the same :class:`~facescan.pipeline.Analyzer`
as photos, tracks each person's face across frames, and aggregates attributes per person. With a
VLM backend (one with ``ask_image``) the frames are only detected and tracked, and the model sees a
few keyframes per person instead of every face of every frame.
"""

from __future__ import annotations

import os
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

#: Age, gender and race are predicted this many times per second of video by default (the emotion
#: on every analyzed frame): they describe the person, who does not change within a clip.
PERSON_FPS = 1.0

__all__ = ["VIDEO_SUFFIXES", "Frame", "FrameFaces", "Track", "VideoDetector", "VideoInfo", "VideoLoadError",
           "VideoReader", "VideoResult", "analyze_video", "is_video", "iter_frames", "video_frame_rows",
           "video_track_rows"]


def analyze_video(source: VideoSource, analyzer=None, *, fps: float | None = None, every: int | None = None,
                  start: float | None = None, end: float | None = None, smooth: float = 1.0, keyframes: int = 3,
                  on_frame: Callable[[FrameFaces], None] | None = None, progress: bool = False,
                  keep_frames: bool = True, workers: int | None = None, max_side: int = MAX_SIDE,
                  person_fps: float | None = PERSON_FPS, **analyzer_kwargs) -> VideoResult:
    """Analyze one video; a file that cannot be read gives a result with ``error`` set, never an exception.

    ``fps``/``every``/``start``/``end`` choose the frames (see :class:`VideoReader`); ``person_fps``
    how often age, gender and race are predicted (per second of video; ``None``: on every analyzed
    frame, as the emotion always is; a person seen only between two such frames is asked once, on
    their largest face), so per-frame rows carry them on those frames only; ``smooth`` is
    the emotion timeline's moving-average window in seconds; ``keyframes`` the faces per person a
    VLM backend sees; ``on_frame`` receives each analyzed frame's faces (with track ids) as the
    clip streams; ``keep_frames=False`` keeps only the tracks in the result (constant memory but
    the emotion timelines); ``workers`` frames are detected at a time (default: two where there are
    two cores: decoding, detection and prediction then overlap). Without ``analyzer`` one is built
    from ``analyzer_kwargs``, with the :class:`VideoDetector` unless another detector is named.
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
    if getattr(analyzer, "min_quality", None) is not None:
        raise ValueError("min_quality is for photos; a video's tracks choose their own keyframes "
                         "(analyze the video without it)")
    workers = workers or min(2, os.cpu_count() or 1)
    if smooth < 0 or keyframes < 1 or (person_fps is not None and person_fps <= 0):
        raise ValueError("smooth must be ≥ 0 seconds, keyframes ≥ 1 and person_fps > 0 (or None: every frame)")
    sampling = VideoSampling(fps=fps, every=every, start=start, end=end, person_fps=person_fps)
    result = VideoResult(source=describe_video(source), sampling=sampling,
                         backend=analyzer.backend.name, detector=getattr(analyzer.detector, "name", None),
                         attributes=list(analyzer.attributes))
    try:
        reader = VideoReader(source, fps=fps, every=every, start=start, end=end, max_side=max_side)
    except VideoLoadError as e:
        result.error = str(e)
    else:
        with reader:
            VideoRun(analyzer, reader, result, smooth=smooth, keyframes=keyframes, on_frame=on_frame,
                     keep_frames=keep_frames, person_fps=person_fps).run(progress=progress, workers=workers)
    result.seconds = round(time.perf_counter() - started, 3)
    return result

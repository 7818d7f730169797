"""Clips on ``POST /v1/analyze``: telling a clip from a photo, the clip limits, and one clip's analysis.

A clip is recognized by its first bytes (an MP4/MOV ``ftyp`` box that is not a HEIF/AVIF photo's,
Matroska/WebM's EBML header, RIFF AVI) or by its file name's suffix, as ``facescan.video.is_video``
tells (``.mp4 .mov .avi .mkv .webm .m4v``), or by a ``video/*`` content type.

A clip is analyzed from the uploaded bytes in memory (PyAV reads them through a ``BytesIO``, so
nothing of it reaches the disk) on the :class:`ClipRunner`'s threads, never on the event loop:
``video_jobs`` at a time, ``max_video_queue`` more waiting, 429 beyond. Before any frame is
analyzed the clip is opened once to check its declared duration and frame size against the limits
and to choose the sampling (the server's ``video_fps``, lowered so the frames fit
``max_video_frames``, unless the request asks for a rate: then a rate over the limit is refused).
While it is analyzed, every analyzed frame checks the limits again (a container may understate its
duration) and whether the request gave up (its deadline passed), and stops the analysis if so.
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import PurePath

from facescan.schema import FrameFaces, VideoResult
from facescan.serve.batching import QueueFull
from facescan.serve.config import ServeConfig
from facescan.serve.requests import Upload, image_status, upload_message

#: ``ftyp`` brands of photos (HEIF, AVIF): an ISO-BMFF file with one of these is an image, not a clip.
IMAGE_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1",
                b"avif", b"avis"}
#: Frames of one clip detected at a time (decoding, detection and prediction overlap on two cores).
DETECT_WORKERS = min(2, os.cpu_count() or 1)


def is_clip(upload: Upload) -> bool:
    """Whether an upload is a clip: by its first bytes, its file name's suffix or its content type."""
    from facescan.video import is_video

    head = upload.data[:12]
    if head[4:8] == b"ftyp":
        return head[8:12] not in IMAGE_BRANDS
    if head[:4] == b"\x1a\x45\xdf\xa3" or (head[:4] == b"RIFF" and head[8:12] == b"AVI "):
        return True
    name = PurePath(upload.filename or "").name
    return bool(name and is_video(name)) or (upload.content_type or "").lower().startswith("video/")


class ClipRefused(Exception):
    """A clip the service does not analyze: the HTTP ``status`` and a ``detail`` naming why."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


@dataclass
class ClipOptions:
    """A request's sampling of its clip (None: not asked)."""

    fps: float | None = None
    every: int | None = None
    start: float | None = None
    end: float | None = None

    def check(self) -> None:
        """422 for contradictory options (each value's own range is checked with the request's fields)."""
        if self.fps is not None and self.every is not None:
            raise ClipRefused(422, "give fps or every, not both")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ClipRefused(422, f"end ({self.end:g} s) must be after start ({self.start:g} s)")


class _Stop(Exception):
    """Raised from the per-frame callback to end an analysis (VideoRun turns it into the result's error)."""


class ClipRunner:
    """The threads clips are analyzed on, and how many may wait for them (``QueueFull`` beyond)."""

    def __init__(self, jobs: int, queue: int):
        if jobs < 1 or queue < 0:
            raise ValueError("video_jobs must be at least 1 and max_video_queue at least 0")
        self.jobs, self.limit = jobs, jobs + queue
        self.active = 0  # submitted and not finished: running or waiting
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._cancels: set[threading.Event] = set()

    def submit(self, fn, cancel: threading.Event) -> Future:
        """Run ``fn()`` on a clip thread; ``cancel`` is the event its analysis watches (set by :meth:`close`)."""
        with self._lock:
            if self.active >= self.limit:
                raise QueueFull(f"{self.active} clip(s) are already being analyzed or waiting")
            if self._pool is None:  # (re)created on demand: an ASGI lifespan may close it and the app go on
                self._pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="facescan-clip")
            self.active += 1
            self._cancels.add(cancel)
            future = self._pool.submit(fn)
        future.add_done_callback(lambda _: self._done(cancel))
        return future

    def _done(self, cancel: threading.Event) -> None:
        with self._lock:
            self.active -= 1
            self._cancels.discard(cancel)

    def close(self) -> None:
        """Stop the running analyses (at their next frame) and drop the waiting ones."""
        with self._lock:
            pool, self._pool = self._pool, None
            for cancel in self._cancels:
                cancel.set()
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def plan_sampling(info, config: ServeConfig, options: ClipOptions) -> tuple[float | None, int | None]:
    """The (fps, every) to analyze a clip with, after checking its declared duration and frame size."""
    if info.width * info.height > config.max_pixels:
        raise ClipRefused(413, f"{info.width}x{info.height} frames = {info.width * info.height:,} pixels are over "
                               f"the {config.max_pixels:,} pixel limit")
    duration = info.duration_s or (info.frames / info.fps if info.frames and info.fps else None)
    if duration and duration > config.max_video_seconds + 1e-6:
        raise ClipRefused(413, f"the clip is {duration:.1f} s long, over the {config.max_video_seconds:g} s "
                               "limit for clips")
    start = options.start or 0.0
    if duration and start >= duration:
        raise ClipRefused(422, f"start ({start:g} s) is at or after the clip's end ({duration:.2f} s)")
    span = (min(options.end or duration, duration) - start) if duration else None
    limit = config.max_video_frames
    if options.fps is None and options.every is None:
        fps = config.video_fps
        if span and span * fps > limit:  # a long clip: fewer frames per second, never more frames
            fps = math.floor(limit / span * 1000) / 1000
        return fps, None
    if span:
        rate = options.fps or (info.fps or 25.0) / options.every
        if info.fps:
            rate = min(rate, info.fps)  # a rate over the clip's own gives every frame
        expected = math.ceil(span * rate - 1e-6)
        if expected > limit:
            asked = f"fps {options.fps:g}" if options.fps else f"every {options.every}"
            raise ClipRefused(413, f"{asked} over {span:.1f} s of video would analyze about {expected} frames, over "
                                   f"the {limit} frame limit for clips; ask for fewer frames per second")
    return options.fps, options.every


def analyze_clip(analyzer, data: bytes, config: ServeConfig, options: ClipOptions,
                 cancel: threading.Event) -> VideoResult:
    """One clip's :class:`VideoResult` (run on a :class:`ClipRunner` thread); :class:`ClipRefused` for a clip
    over a limit (413), one that cannot be read (422) or a contradictory request (422)."""
    from facescan.video import VideoLoadError, VideoReader, analyze_video

    options.check()
    if cancel.is_set():  # the request gave up while the clip waited for its turn
        raise ClipRefused(503, "the request gave up before its clip's turn")
    try:
        with VideoReader(data, max_side=None) as reader:  # the declared duration and size; decodes one frame
            info = reader.info
    except VideoLoadError as e:
        message = upload_message(str(e))
        raise ClipRefused(image_status(message), message) from None
    fps, every = plan_sampling(info, config, options)

    stop: list[tuple[int, str]] = []
    analyzed = 0

    def check(frame: FrameFaces) -> None:
        nonlocal analyzed
        analyzed += 1
        if cancel.is_set():
            stop.append((503, "the request gave up, or the server is stopping"))
        elif analyzed > config.max_video_frames:
            stop.append((413, f"the clip has more frames than it declared: over the {config.max_video_frames} "
                              "frame limit for clips"))
        elif frame.time_s > config.max_video_seconds + 1e-6:
            stop.append((413, f"the clip is longer than it declared: over the {config.max_video_seconds:g} s "
                              "limit for clips"))
        if stop:
            raise _Stop(stop[0][1])

    try:
        result = analyze_video(data, analyzer, fps=fps, every=every, start=options.start, end=options.end,
                               on_frame=check, workers=DETECT_WORKERS)
    except ValueError as e:  # sampling analyze_video refuses
        raise ClipRefused(422, str(e)) from None
    if stop:
        raise ClipRefused(*stop[0])
    result.source = "upload"
    if result.error:
        message = upload_message(result.error)
        if "video analysis failed" in message:  # not the clip's fault: VideoRun's report of a crash
            raise RuntimeError(message)
        raise ClipRefused(image_status(message), message)
    result.warnings = [upload_message(w) for w in result.warnings]
    return result

"""Streaming video decoding through PyAV: sampled, upright, downscaled RGB frames, or a clear error.

Memory stays bounded: frames are decoded one packet at a time and only the sampled ones are
converted to RGB. Every failure to read a file is a :class:`VideoLoadError` naming it.

Damaged files: a packet the decoder rejects is skipped (its frames are missing, and a warning
says how many); a container that cannot be read further (a truncated file, garbage after some
valid data) ends the clip there with a warning, as long as at least one frame was decoded.
When not a single frame can be decoded, the file gets a :class:`VideoLoadError`.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np

from facescan.imageio import VIDEO_SUFFIXES, ImageLoadError

#: Frames are downscaled so their longest side is at most this for detection (boxes are reported unscaled).
MAX_SIDE = 1280
#: Refuse videos whose frames have more pixels than this (8K UHD is 33.2 million).
MAX_FRAME_PIXELS = 40_000_000
#: Refuse videos declared longer than this; decoding also stops there if the declaration lied.
MAX_DURATION_S = 6 * 3600
#: Give up on a file when this many packets in a row fail to decode and no frame came out of them.
MAX_BAD_PACKETS = 64

VideoSource = Union[str, Path, bytes, bytearray, BinaryIO]


class VideoLoadError(ImageLoadError):
    """A video could not be read; the message names the file and the problem."""


@dataclass
class Frame:
    """One decoded, sampled frame: upright RGB ``pixels`` at ``scale`` × the original size."""

    index: int  # the frame's number in the stream, counted from its first frame
    time_s: float  # presentation time from the start of the stream
    pixels: np.ndarray  # H x W x 3 uint8 RGB, longest side ≤ max_side
    scale: float  # analysis pixels per original pixel (< 1 when downscaled)
    original_size: tuple[int, int]  # (width, height) as displayed, after rotation


@dataclass
class VideoInfo:
    """What the container declares about its video stream (``width``/``height`` as displayed)."""

    width: int
    height: int
    fps: float | None
    duration_s: float | None
    frames: int | None
    codec: str
    rotation: int = 0  # degrees counter-clockwise applied to the stored frames to display them upright


def is_video(path: str | Path) -> bool:
    """True when ``path`` has a video file suffix (by name only; the file is not opened)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def describe_video(source: VideoSource) -> str:
    """A short name for a video input, for messages and results."""
    if isinstance(source, (str, Path)):
        return str(source)
    if isinstance(source, (bytes, bytearray)):
        return f"<{len(source)} bytes>"
    return f"<{getattr(source, 'name', type(source).__name__)}>"


def _check_file(path: Path, name: str) -> None:
    """Refuse what is not a non-empty regular file without opening it (a FIFO would block FFmpeg)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        problem = "broken link" if os.path.islink(path) else "file not found"
        raise VideoLoadError(name, problem) from None
    except PermissionError:
        raise VideoLoadError(name, "permission denied") from None
    except (OSError, ValueError) as e:
        raise VideoLoadError(name, f"cannot read file ({e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise VideoLoadError(name, "is a folder, not a video file")
    if not stat.S_ISREG(st.st_mode):
        raise VideoLoadError(name, "not a regular file (FIFO, socket or device); only regular files are read")
    if st.st_size == 0:
        raise VideoLoadError(name, "file is empty")


def _short(e: BaseException, limit: int = 200) -> str:
    """An exception as one short line (FFmpeg's errors without their errno and file name)."""
    text = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


_SIGNATURES = ((4, b"ftyp", "MP4/MOV"), (0, b"\x1a\x45\xdf\xa3", "Matroska/WebM"), (8, b"AVI ", "AVI"))


def _container_kind(source: VideoSource) -> str | None:
    """The container a file's first bytes announce (so a truncated MP4 is not called "not a video")."""
    try:
        if isinstance(source, (str, Path)):
            with open(source, "rb") as f:
                head = f.read(12)
        elif isinstance(source, (bytes, bytearray)):
            head = bytes(source[:12])
        else:
            return None
    except OSError:
        return None
    return next((kind for at, magic, kind in _SIGNATURES if head[at : at + len(magic)] == magic), None)


def _check_pixels(name: str, width: int, height: int) -> None:
    if width * height > MAX_FRAME_PIXELS:
        raise VideoLoadError(name, f"{width}x{height} frames are over the {MAX_FRAME_PIXELS:,} pixel limit")


def _rotated_size(width: int, height: int, rotation: int) -> tuple[int, int]:
    return (height, width) if rotation % 180 else (width, height)


class VideoReader:
    """An open video: :attr:`info` at once, then the sampled :class:`Frame` s by iterating.

    ``fps`` keeps the first frame of every 1/fps-second slot (by timestamps, so variable frame
    rates work), ``every`` every n-th decoded frame; ``start``/``end`` (seconds) bound the clip,
    ``end`` excluded. ``warnings`` lists what went wrong without stopping the clip.
    """

    def __init__(self, source: VideoSource, *, fps: float | None = None, every: int | None = None,
                 start: float | None = None, end: float | None = None, max_side: int | None = MAX_SIDE):
        _check_sampling(fps, every, start, end)
        self.name = describe_video(source)
        self.fps, self.every, self.start, self.end, self.max_side = fps, every, start, end, max_side
        self.warnings: list[str] = []
        self.frames_decoded = 0
        self.bad_packets = 0
        self._last_time = 0.0
        self._container = self._open(source)
        try:
            self._stream = self._video_stream()
            self.info = self._declared_info()
            self._packets = self._container.demux(self._stream)
            self._frames = self._decoded()
            self._first = next(self._frames, None)
            if self._first is None:
                raise VideoLoadError(self.name, "the video stream has no frames")
            first = self._first
            _check_pixels(self.name, first.width, first.height)
            self.info.rotation = round((getattr(first, "rotation", 0) or 0) / 90) * 90 % 360  # PyAV ≥ 14
            self.info.width, self.info.height = _rotated_size(first.width, first.height, self.info.rotation)
        except BaseException:
            self.close()
            raise

    def _open(self, source: VideoSource):
        import io

        import av

        if isinstance(source, (str, Path)):
            _check_file(Path(source), self.name)
            target = str(source)
        elif isinstance(source, (bytes, bytearray)):
            if not source:
                raise VideoLoadError(self.name, "no data (0 bytes)")
            target = io.BytesIO(bytes(source))
        else:
            target = source
        try:
            return av.open(target, mode="r", metadata_errors="ignore")
        except Exception as e:  # whatever FFmpeg says, the file is not a video it can read
            kind = _container_kind(source)
            problem = (f"corrupt or truncated {kind} file ({_short(e)})" if kind
                       else f"not a video file, or an unreadable one ({_short(e)})")
            raise VideoLoadError(self.name, problem) from None

    def _video_stream(self):
        streams = self._container.streams
        if not streams.video:
            others = (("audio", streams.audio), ("subtitle", streams.subtitles), ("data", streams.data))
            kinds = ", ".join(f"{len(s)} {kind} stream(s)" for kind, s in others if len(s))
            raise VideoLoadError(self.name, f"no video stream (the file has {kinds or 'no streams'})")
        stream = streams.video[0]
        stream.thread_type = "AUTO"
        _check_pixels(self.name, stream.codec_context.width, stream.codec_context.height)
        return stream

    def _declared_info(self) -> VideoInfo:
        stream = self._stream
        rate = stream.average_rate or stream.guessed_rate
        duration = None
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif self._container.duration:
            duration = self._container.duration / 1_000_000
        if duration and duration > MAX_DURATION_S:
            raise VideoLoadError(self.name, f"{duration / 3600:.1f} h long, over the {MAX_DURATION_S // 3600} h limit")
        self._origin = stream.start_time or 0
        self._step = 1 / float(rate) if rate else 1 / 25
        return VideoInfo(width=stream.codec_context.width, height=stream.codec_context.height,
                         fps=round(float(rate), 3) if rate else None,
                         duration_s=round(duration, 3) if duration else None, frames=stream.frames or None,
                         codec=stream.codec_context.name)

    def _decoded(self):
        """Decoded av frames, packet by packet; a bad packet is skipped, an unreadable container ends the clip."""
        bad_in_a_row = 0
        while True:
            try:
                packet = next(self._packets)
            except StopIteration:
                return
            except Exception as e:
                self._unreadable(e)
                return
            try:
                frames = self._stream.decode(packet)
            except Exception as e:  # one corrupt packet: its frames are lost, the clip goes on
                self.bad_packets += 1
                bad_in_a_row += 1
                if bad_in_a_row >= MAX_BAD_PACKETS and not self.frames_decoded:
                    raise VideoLoadError(self.name, f"corrupt video: no frame could be decoded ({_short(e)})") from None
                continue
            bad_in_a_row = 0 if frames else bad_in_a_row
            for frame in frames:
                self.frames_decoded += 1
                yield frame

    def _unreadable(self, e: Exception) -> None:
        if not self.frames_decoded:
            raise VideoLoadError(self.name, f"corrupt or truncated video: no frame could be decoded ({_short(e)})")
        self.warnings.append(f"{self.name}: the file could not be read past {self._last_time:.2f} s "
                             f"(truncated or corrupt: {_short(e)}); the rest of the clip is missing")

    def close(self) -> None:
        container = getattr(self, "_container", None)
        if container is not None:
            container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self) -> Iterator[Frame]:
        """The sampled frames in presentation order (each clip can be iterated once)."""
        frames, seeked = self._from_start()
        first_index = index = None
        last_slot = -1
        for frame in frames:
            t = self._time(frame)
            index = (round(t / self._step) if seeked else 0) if index is None else index + 1
            if self.start is not None and t < self.start - 1e-6:
                continue
            if (self.end is not None and t >= self.end - 1e-6) or self._too_long(t):
                break
            first_index = index if first_index is None else first_index
            if self.every and (index - first_index) % self.every:
                continue
            if self.fps:
                slot = math.floor((t - (self.start or 0.0)) * self.fps + 1e-6)
                if slot <= last_slot:
                    continue
                last_slot = slot
            yield self._convert(frame, index, t)
        else:
            self._check_complete()
        if self.bad_packets:
            self.warnings.append(f"{self.name}: {self.bad_packets} packet(s) could not be decoded (corrupt data); "
                                 "their frames are missing")

    def _check_complete(self) -> None:
        """Warn when the stream ended well before its declared duration (a truncated file)."""
        declared = self.info.duration_s
        if declared and not self.warnings and self._last_time + 2 * self._step < declared * 0.98:
            self.warnings.append(f"{self.name}: the video ends at {self._last_time:.2f} s but declares "
                                 f"{declared:.2f} s (truncated?); the rest of the clip is missing")

    def _from_start(self):
        """Decoded frames from ``start`` (after a seek to the keyframe before it) or from the first frame."""
        import itertools

        if not self.start:
            return itertools.chain([self._first], self._frames), False
        try:
            target = self._origin + int(self.start / self._stream.time_base)
            self._container.seek(target, stream=self._stream, backward=True, any_frame=False)
            self._stream.codec_context.flush_buffers()
            self._packets = self._container.demux(self._stream)
        except Exception as e:  # unseekable: decode on from where we are and drop the frames before start
            self.warnings.append(f"{self.name}: could not seek to {self.start} s ({_short(e)}); decoding up to it")
            return self._frames, False
        return self._decoded(), True

    def _time(self, frame) -> float:
        if frame.pts is None:
            t = self._last_time + self._step
        else:
            t = float((frame.pts - self._origin) * (frame.time_base or self._stream.time_base))
        self._last_time = t
        return t

    def _too_long(self, t: float) -> bool:
        if t <= MAX_DURATION_S:
            return False
        self.warnings.append(f"{self.name}: stopped at the {MAX_DURATION_S / 3600:.0f} h limit")
        return True

    def _convert(self, frame, index: int, t: float) -> Frame:
        """Upright RGB pixels, downscaled by swscale in the same pass as the colour conversion."""
        rotation = self.info.rotation
        size = _rotated_size(frame.width, frame.height, rotation)
        scale = min(1.0, self.max_side / max(size)) if self.max_side else 1.0
        if scale < 1.0:
            width, height = max(1, round(frame.width * scale)), max(1, round(frame.height * scale))
            pixels = frame.to_ndarray(width=width, height=height, format="rgb24", interpolation="AREA")
            scale = width / frame.width
        elif frame.format.name == "yuv420p" and frame.width % 2 == 0 and frame.height % 2 == 0:
            # OpenCV's I420 conversion takes under half of swscale's time on a 720p frame (colours within 3 levels)
            import cv2

            pixels = cv2.cvtColor(frame.to_ndarray(), cv2.COLOR_YUV2RGB_I420)
        else:
            pixels = frame.to_ndarray(format="rgb24")
        if rotation:
            pixels = np.ascontiguousarray(np.rot90(pixels, rotation // 90))
        return Frame(index=index, time_s=round(t, 6), pixels=pixels, scale=scale, original_size=size)


def _check_sampling(fps, every, start, end) -> None:
    if fps is not None and every is not None:
        raise ValueError("give fps or every, not both")
    if fps is not None and not (isinstance(fps, (int, float)) and fps > 0 and math.isfinite(fps)):
        raise ValueError(f"fps must be a positive number, not {fps!r}")
    if every is not None and (not isinstance(every, int) or every < 1):
        raise ValueError(f"every must be a positive whole number, not {every!r}")
    for name, value in (("start", start), ("end", end)):
        if value is not None and not (isinstance(value, (int, float)) and value >= 0 and math.isfinite(value)):
            raise ValueError(f"{name} must be a time in seconds ≥ 0, not {value!r}")
    if start is not None and end is not None and end <= start:
        raise ValueError(f"end ({end} s) must be after start ({start} s)")


def iter_frames(path: VideoSource, fps: float | None = None, every: int | None = None, start: float | None = None,
                end: float | None = None, max_side: int | None = MAX_SIDE) -> Iterator[Frame]:
    """Stream a video's sampled frames (see :class:`VideoReader`); a bad file raises :class:`VideoLoadError`."""
    with VideoReader(path, fps=fps, every=every, start=start, end=end, max_side=max_side) as reader:
        yield from reader

"""One video's analysis: frames in batches through the analyzer, tracking, per-person aggregation."""

from __future__ import annotations

import contextlib
import functools
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from facescan import taxonomy
from facescan.backends.base import FaceInput
from facescan.schema import Box, FrameFaces, VideoResult
from facescan.video.aggregate import TrackStats
from facescan.video.decode import Frame, VideoLoadError, VideoReader
from facescan.video.keyframes import Candidate, KeyframePool, face_quality
from facescan.video.track import FaceTracker

#: A person must be seen this long (seconds of video) to be reported as a track.
MIN_PERSON_S = 0.5


def is_costly(backend) -> bool:
    """Backends that answer per call at a cost (VLMs, APIs: those with ``ask_image``) see keyframes only."""
    return bool(getattr(backend, "per_call_cost", hasattr(backend, "ask_image")))


@dataclass
class _Pending:
    """An analyzed frame waiting for its faces' track ids (the chips only with a costly backend)."""

    faces: FrameFaces
    inputs: list[FaceInput] = field(default_factory=list)


class VideoRun:
    """Streams ``reader``'s frames through ``analyzer`` and fills ``result``."""

    def __init__(self, analyzer, reader: VideoReader, result: VideoResult, *, smooth: float, keyframes: int,
                 on_frame: Callable[[FrameFaces], None] | None, keep_frames: bool, person_fps: float | None = None):
        self.analyzer, self.reader, self.result = analyzer, reader, result
        self.smooth, self.keyframes, self.on_frame, self.keep_frames = smooth, keyframes, on_frame, keep_frames
        self.costly = is_costly(analyzer.backend)
        # the person's attributes on some frames only (not with a costly backend: it sees keyframes anyway)
        self.person_attributes = [a for a in analyzer.attributes if a in taxonomy.PERSON_ATTRIBUTES]
        self.person_step = 1.0 / person_fps if person_fps and self.person_attributes and not self.costly else 0.0
        self._next_person_time = float("-inf")
        self.unpredicted: dict[int, tuple] = {}  # track → (area, chip, face, time) of its largest face so far
        info = reader.info
        result.width, result.height, result.fps, result.duration_s = info.width, info.height, info.fps, info.duration_s
        self.tracker: FaceTracker[_Pending] = FaceTracker(rate=_analysis_rate(reader))
        self.stats: dict[int, TrackStats] = {}
        self.pools: dict[int, KeyframePool] = {}
        self.frame_errors: list[str] = []
        self._calls_before = getattr(analyzer.backend, "calls", None)
        self.face_batch = getattr(analyzer.backend, "batch_size", None) or 64

    def run(self, progress: bool = False, workers: int = 1) -> None:
        """Analyze every sampled frame, then build the tracks; any failure becomes ``result.error``."""
        result = self.result
        try:
            with _Progress(progress, result.source, _expected_frames(self.reader)) as advance:
                self._frames_loop(advance, workers)
            for pending, ids in self.tracker.flush():
                self._release(pending, ids)
            if self.person_step:
                self._predict_unseen_persons()
            if self.costly:
                self._predict_keyframes()
            result.tracks = [s.build(self.analyzer.attributes, self.smooth)
                             for s in sorted(self._persons(), key=lambda s: s.track_id)]
        except VideoLoadError as e:
            result.error = str(e)
        except Exception as e:  # a bug or a backend crash: this video's error, the caller's batch goes on
            result.error = f"{result.source}: video analysis failed ({type(e).__name__}: {e})"
        result.frames_decoded = self.reader.frames_decoded
        result.warnings.extend(self.reader.warnings)
        self._report_frame_errors()
        calls = getattr(self.analyzer.backend, "calls", None)
        if isinstance(calls, int) and isinstance(self._calls_before, int):
            result.model_calls = calls - self._calls_before
        else:
            result.model_calls = result.faces_sent * len(self.analyzer.attributes)

    def _persons(self) -> list:
        """The tracks seen for at least :data:`MIN_PERSON_S` (shorter ones are flickers: a false
        detection followed for a few frames); the faces of the others lose their track id."""
        step = 1.0 / _analysis_rate(self.reader)
        kept = [s for s in self.stats.values() if s.last_time - s.first_time + step >= MIN_PERSON_S]
        dropped = {s.track_id for s in self.stats.values()} - {s.track_id for s in kept}
        for ff in self.result.frames if dropped else []:
            for face in ff.faces:
                if face.track_id in dropped:
                    face.track_id = None
        return kept

    def _frames_loop(self, advance: Callable[[Frame], None], workers: int) -> None:
        """A pipeline: one thread decodes, ``workers`` threads detect (a few frames ahead), and this
        thread predicts in batches of ``batch_images`` frames or ``face_batch`` faces (whichever comes
        first: the backend then sees batches of nearly constant size, which keeps onnxruntime's memory
        arena from growing with the variety of batch shapes). Decoding, detection and prediction so
        overlap; a frame's pixels are let go once its faces are cut out."""
        prepare = functools.partial(self.analyzer.prepare, decoded=True)
        pool = ThreadPoolExecutor(max_workers=workers)
        decoder = _Decoder(iter(self.reader), ahead=2 * workers)
        window: deque = deque()  # (frame, future of its detection), in frame order
        batch: list = []
        try:
            for frame in decoder:
                window.append((frame, pool.submit(prepare, frame.pixels)))
                if len(window) > 2 * workers:
                    batch = self._detected(*window.popleft(), batch, advance)
            while window:
                batch = self._detected(*window.popleft(), batch, advance)
            self._predict_batch(batch, advance)
        finally:
            decoder.close()
            for _, future in window:
                future.cancel()
            pool.shutdown()

    def _detected(self, frame: Frame, future, batch: list, advance: Callable[[Frame], None]) -> list:
        """Add one detected frame to the batch; predict the batch when it is full (returns the new one)."""
        p = future.result()
        frame.pixels = None  # the face inputs hold the frame only for a describer (Analyzer.prepare)
        batch.append((frame, p))
        if len(batch) >= self.analyzer.batch_images or sum(len(q.inputs) for _, q in batch) >= self.face_batch:
            self._predict_batch(batch, advance)
            return []
        return batch

    def _predict_batch(self, batch: list, advance: Callable[[Frame], None]) -> None:
        if not self.costly:
            full = [p for f, p in batch if self._person_frame(f)]
            self.analyzer.predict(full)
            rest = [p for f, p in batch if not any(p is q for q in full)]
            self.analyzer.predict(rest, [a for a in self.analyzer.attributes if a not in self.person_attributes])
            self.result.faces_sent += sum(len(p.inputs) for _, p in batch)
        for frame, p in batch:
            self._analyzed(frame, p)
            advance(frame)

    def _analyzed(self, frame: Frame, prepared) -> None:
        """Map one frame's faces to original video pixels and hand them to the tracker."""
        self.result.frames_analyzed += 1
        if prepared.result.error:
            self.frame_errors.append(prepared.result.error)
        inv = 1.0 / frame.scale
        faces = prepared.result.faces
        for face in faces:
            b = face.box
            face.box = Box(x=b.x * inv, y=b.y * inv, width=b.width * inv, height=b.height * inv)
            if face.keypoints:
                face.keypoints = [(x * inv, y * inv) for x, y in face.keypoints]
        inputs = [FaceInput(chip=fi.chip, padding=fi.padding, keypoints=fi.keypoints) for fi in prepared.inputs]
        pending = _Pending(FrameFaces(frame=frame.index, time_s=frame.time_s, faces=faces),
                           inputs if self.costly or self.person_step else [])
        boxes = [(f.box.x, f.box.y, f.box.width, f.box.height) for f in faces]
        for ready, ids in self.tracker.push(pending, boxes):
            self._release(ready, ids)

    def _release(self, pending: _Pending, ids: list[int | None]) -> None:
        """A frame whose track ids are known: per-person statistics, keyframe candidates, outputs."""
        ff = pending.faces
        for i, (face, track_id) in enumerate(zip(ff.faces, ids)):
            face.track_id = track_id
            if track_id is None:
                continue
            stats = self.stats.get(track_id)
            if stats is None:
                stats = self.stats[track_id] = TrackStats(track_id, ff.frame, ff.time_s)
            stats.add_face(ff.frame, ff.time_s, face)
            if self.person_step and i < len(pending.inputs):
                self._note_person(track_id, face, pending.inputs[i], ff.time_s)
            if self.costly and i < len(pending.inputs):
                fi = pending.inputs[i]
                pool = self.pools.setdefault(track_id, KeyframePool(self.keyframes))
                pool.offer(Candidate(face_quality(fi), ff.frame, ff.time_s, fi, face))
        if self.keep_frames:
            self.result.frames.append(ff)
        if self.on_frame:
            self.on_frame(ff)

    def _person_frame(self, frame: Frame) -> bool:
        """Whether this frame's faces get the person's attributes (every frame without ``person_fps``)."""
        if not self.person_step:
            return True
        if frame.time_s + 1e-6 < self._next_person_time:
            return False
        self._next_person_time = frame.time_s + self.person_step
        return True

    def _note_person(self, track_id: int, face, face_input: FaceInput, time_s: float) -> None:
        """Keep each track's largest face until the track has the person's attributes from some frame."""
        if any(a in face.attributes for a in self.person_attributes):
            self.unpredicted[track_id] = (float("inf"), None, None, None)  # done: nothing kept
            return
        area = face.box.width * face.box.height
        if area > self.unpredicted.get(track_id, (0.0,))[0]:
            self.unpredicted[track_id] = (area, face_input, face, time_s)

    def _predict_unseen_persons(self) -> None:
        """Tracks that started and ended between two person frames: their largest face is asked now."""
        waiting = [(tid, *rest) for tid, (_, *rest) in self.unpredicted.items() if rest[0] is not None]
        self.unpredicted.clear()
        if not waiting:
            return
        self.result.faces_sent += len(waiting)
        try:
            answers = self.analyzer.backend.predict([fi for _, fi, _, _ in waiting], self.person_attributes)
        except Exception as e:  # noqa: BLE001 - these tracks stand without the person's attributes
            self.result.warnings.append(f"{self.result.source}: backend {self.analyzer.backend.name} failed on "
                                        f"the faces of {len(waiting)} short track(s): {e}")
            return
        for (tid, _, face, time_s), answer in zip(waiting, answers):
            merged = {**face.attributes, **answer}
            face.attributes = {a: merged[a] for a in self.analyzer.attributes if a in merged}
            self.stats[tid].add_predictions(time_s, answer)

    def _predict_keyframes(self) -> None:
        """One backend call with every person's keyframes; the answers aggregate like per-frame ones."""
        chosen = [(tid, c) for tid, pool in self.pools.items() for c in pool.choose()]
        for tid in self.pools:
            self.stats[tid].keyframes = [c.frame for t, c in chosen if t == tid]
        if not chosen:
            return
        backend = self.analyzer.backend
        self.result.faces_sent += len(chosen)
        try:
            answers = backend.predict([c.face_input for _, c in chosen], list(self.analyzer.attributes))
        except Exception as e:  # the tracks stand without attributes
            self.result.warnings.append(f"{self.result.source}: backend {backend.name} failed on the keyframes: {e}")
            return
        for (tid, c), answer in zip(chosen, answers):
            c.face.attributes = answer
            self.stats[tid].add_predictions(c.time_s, answer)

    def _report_frame_errors(self) -> None:
        errors = self.frame_errors
        if not errors:
            return
        result = self.result
        if len(errors) == result.frames_analyzed and not result.error:
            result.error = errors[0]
        else:
            result.warnings.append(f"{len(errors)} of {result.frames_analyzed} frame(s) failed; first: {errors[0]}")


class _Decoder:
    """Decodes ``frames`` on a thread of its own, at most ``ahead`` frames ahead of the consumer;
    an error while decoding is raised to the consumer, and :meth:`close` stops the thread."""

    _END = object()

    def __init__(self, frames: Iterator[Frame], ahead: int):
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, ahead))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(frames,), name="video-decoder", daemon=True)
        self._thread.start()

    def _run(self, frames: Iterator[Frame]) -> None:
        try:
            for frame in frames:
                if not self._put(frame):
                    return
            self._put(self._END)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which raises it
            self._put(e)

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[Frame]:
        while True:
            item = self._queue.get()
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=0.05)
        self._thread.join()


def _analysis_rate(reader: VideoReader) -> float:
    """Analyzed frames per second of video."""
    rate = reader.info.fps or 25.0
    if reader.fps:
        return min(rate, reader.fps)
    return rate / (reader.every or 1)


def _expected_frames(reader: VideoReader) -> int | None:
    info = reader.info
    duration = info.duration_s
    if not duration and info.frames and info.fps:
        duration = info.frames / info.fps
    if not duration:
        return None
    span = max(0.0, min(duration, reader.end or duration) - (reader.start or 0.0))
    return max(1, round(span * _analysis_rate(reader)))


class _Progress:
    """A rich progress bar in frames with frames/s and × real time, or nothing."""

    def __init__(self, show: bool, name: str, total: int | None):
        self.show, self.name, self.total = show, name, total
        self.started = time.perf_counter()
        self.first_time: float | None = None

    def __enter__(self) -> Callable[[Frame], None]:
        if not self.show:
            return lambda frame: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("frames {task.fields[speed]}"), TimeRemainingColumn(),
                            console=Console(stderr=True), transient=False)
        self.bar.__enter__()
        self.task = self.bar.add_task(self.name, total=self.total, speed="")
        return self._advance

    def _advance(self, frame: Frame) -> None:
        self.first_time = frame.time_s if self.first_time is None else self.first_time
        elapsed = max(1e-9, time.perf_counter() - self.started)
        done = self.bar.tasks[0].completed + 1
        realtime = (frame.time_s - self.first_time) / elapsed
        self.bar.update(self.task, advance=1, speed=f"{done / elapsed:.1f}/s, {realtime:.1f}× real time")

    def __exit__(self, *exc) -> None:
        if self.show:
            self.bar.__exit__(*exc)

"""Dynamic batching: concurrent requests are gathered into one ``Analyzer.iter_analyzed`` call.

Requests wait in a bounded queue. A worker thread takes the first one, then keeps taking more
for at most ``max_wait`` seconds or until ``max_batch`` are in hand, and analyzes them together:
the faces of every image in the batch go to the backend in one model call, and the images are
decoded and detected on ``prep_workers`` threads meanwhile (3 by default: decoding and detection
release the GIL, and on 2 cores a third thread keeps both busy while another waits on the GIL).
A request whose caller gave up (its future was cancelled on timeout) is skipped, not computed.
Each job's future resolves to an :class:`~facescan.pipeline.Analyzed`; its decoded photo is kept
only when the job asked for it (``keep_image``), so a request that needs the pixels again (the
VLM chooser's numbered boxes) does not decode the upload a second time.

One bad input never costs its batch-mates their results: when analyzing a group raises, each
of its jobs is analyzed again on its own, so only the job that fails gets the error. That error
is a :class:`BadInput` when ``probe`` (e.g. decoding the upload) fails on the job's own source
too, so the caller answers 4xx; anything else is a server fault, passed on as raised.

Written here because the ASGI server and the model runtime each batch only their own work;
batching across HTTP requests is the service's job.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace


class QueueFull(Exception):
    """The request queue is at its limit: the caller should answer 429 and retry later."""


class BadInput(ValueError):
    """A job failed because of its own input (``probe`` fails on it too): the caller answers 4xx."""


@dataclass
class Job:
    """One image to analyze with the analyzer for ``key`` (keeping its decoded photo when ``keep_image``)."""

    key: Hashable
    source: object
    keep_image: bool = False
    future: Future = field(default_factory=Future)
    enqueued: float = field(default_factory=time.monotonic)


class DynamicBatcher:
    """Batches :class:`Job` s per analyzer key; ``analyzer_for(key)`` returns the analyzer to use."""

    def __init__(self, analyzer_for: Callable[[Hashable], object], max_batch: int = 16, max_wait: float = 0.005,
                 max_queue: int = 64, prep_workers: int = 3,
                 on_batch: Callable[[int, float], None] | None = None,
                 probe: Callable[[object], None] | None = None):
        """``probe(source)`` raises when a source itself is unusable (it runs only after a failure)."""
        if max_batch < 1 or max_queue < 1:
            raise ValueError("max_batch and max_queue must be at least 1")
        self.analyzer_for = analyzer_for
        self.max_batch, self.max_wait, self.prep_workers = max_batch, max_wait, prep_workers
        self.on_batch, self.probe = on_batch, probe
        self._queue: queue.Queue[Job | None] = queue.Queue(maxsize=max_queue)
        # one long-lived pool: each of its threads keeps its own detector graphs across batches
        self._pool = ThreadPoolExecutor(max_workers=prep_workers, thread_name_prefix="facescan-prep") \
            if prep_workers > 1 else None
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._ensure_running()

    def _ensure_running(self) -> None:
        # (Re)started on demand: an ASGI lifespan may stop the worker and the app keep serving.
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="facescan-batcher", daemon=True)
                self._thread.start()

    @property
    def depth(self) -> int:
        """Requests waiting (not yet in a batch)."""
        return self._queue.qsize()

    def submit(self, key: Hashable, source, keep_image: bool = False) -> Future:
        """Queue one image; its future resolves to an ``Analyzed`` (with ``.image`` only when ``keep_image``).

        Raises :class:`QueueFull` when the queue is at its limit."""
        self._ensure_running()
        job = Job(key, source, keep_image=keep_image)
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise QueueFull(f"{self._queue.maxsize} requests are already waiting") from None
        return job.future

    def close(self) -> None:
        """Stop the worker after the jobs already queued (a later submit starts it again)."""
        with self._start_lock:
            if self._thread is not None and self._thread.is_alive():
                self._queue.put(None)
                self._thread.join(timeout=30)

    def _take_batch(self) -> list[Job] | None:
        first = self._queue.get()
        if first is None:
            return None
        batch = [first]
        deadline = time.monotonic() + self.max_wait
        while len(batch) < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                job = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                self._queue.put(None)  # stop after this batch
                break
            batch.append(job)
        return batch

    def _run(self) -> None:
        while True:
            batch = self._take_batch()
            if batch is None:
                return
            live = [job for job in batch if job.future.set_running_or_notify_cancel()]
            if self.on_batch:
                self.on_batch(len(live), time.monotonic() - min((j.enqueued for j in batch), default=0.0))
            groups: dict[Hashable, list[Job]] = {}
            for job in live:
                groups.setdefault(job.key, []).append(job)
            for key, jobs in groups.items():
                self._analyze(key, jobs)

    def _analyze(self, key: Hashable, jobs: list[Job]) -> None:
        """One ``iter_analyzed`` call for the jobs of one key; each future gets its ``Analyzed`` or its error.

        When the group's call raises, each job is analyzed alone, so only the one that fails gets an error."""
        try:
            analyzed = self._analyze_group(key, jobs)
        except Exception as e:  # noqa: BLE001 - isolate: retry each job on its own
            if len(jobs) == 1:
                jobs[0].future.set_exception(self._classify(jobs[0], e))
                return
            for job in jobs:
                self._analyze(key, [job])
            return
        for job, item in zip(jobs, analyzed):
            job.future.set_result(item if job.keep_image or item.image is None else replace(item, image=None))

    def _analyze_group(self, key: Hashable, jobs: list[Job]) -> list:
        analyzer = self.analyzer_for(key)
        pool = self._pool if len(jobs) > 1 else None
        keep = any(j.keep_image for j in jobs)  # one model batch; photos dropped by _analyze for jobs not asking
        analyzed = list(analyzer.iter_analyzed([j.source for j in jobs], executor=pool, keep_images=keep))
        if len(analyzed) != len(jobs):
            raise RuntimeError(f"the analyzer returned {len(analyzed)} results for {len(jobs)} images")
        return analyzed

    def _classify(self, job: Job, error: Exception) -> Exception:
        """``error`` as a :class:`BadInput` when the job's source fails ``probe`` too, else as raised."""
        if self.probe is None:
            return error
        try:
            self.probe(job.source)
        except Exception as bad:  # noqa: BLE001 - whatever the probe raises says the input is unusable
            return BadInput(str(bad) or type(bad).__name__)
        return error

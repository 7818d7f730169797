"""One app's state: the models (loaded once per process), the analyzers, the batcher and the metrics."""

from __future__ import annotations

import threading
from typing import NamedTuple

from facescan.serve.batching import DynamicBatcher
from facescan.serve.clips import ClipRunner
from facescan.serve.config import ServeConfig

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5)


#: Analyzers kept for reuse (they share the loaded models; a request's key picks one). Each distinct
#: ``min_quality`` a client sends makes another, so the oldest are let go beyond this many.
MAX_ANALYZERS = 32


class AnalyzerKey(NamedTuple):
    """What tells one analyzer from another: requests with equal keys share a model batch."""

    backend: str
    attributes: tuple[str, ...]
    describe: bool
    explain: bool
    min_quality: str = ""  # a QualityFloor's text ("" for none)


def decode_probe(source) -> None:
    """Raise when ``source`` cannot be decoded (the batcher asks only after an analysis raised)."""
    from facescan.imageio import load_image

    load_image(source, max_side=None)


class Metrics:
    """The Prometheus metrics of one app, in their own registry."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = r = CollectorRegistry()
        self.requests = Counter("facescan_requests", "HTTP requests by route and status", ["route", "status"],
                                registry=r)
        self.latency = Histogram("facescan_request_seconds", "Request latency", ["route"], registry=r,
                                 buckets=LATENCY_BUCKETS)
        self.batch_size = Histogram("facescan_batch_size", "Images per model batch", registry=r,
                                    buckets=BATCH_BUCKETS)
        self.queue_wait = Histogram("facescan_batch_wait_seconds", "Time from queueing to batching", registry=r,
                                    buckets=WAIT_BUCKETS)
        self.faces = Counter("facescan_faces", "Faces analyzed", registry=r)
        self.video_frames = Counter("facescan_video_frames", "Clip frames analyzed", registry=r)
        self.queue_depth = Gauge("facescan_queue_depth", "Requests waiting for a batch", registry=r)

    def batched(self, size: int, waited: float) -> None:
        self.batch_size.observe(size)
        self.queue_wait.observe(waited)

    def text(self) -> tuple[bytes, str]:
        """The metrics in Prometheus text format, and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class State:
    """Loaded backends, the detector, one shared describer / explainer, analyzers per key, metrics, batcher;
    for clips, the video detector (loaded on the first clip), their analyzers and the threads they run on."""

    def __init__(self, config: ServeConfig):
        from facescan.backends.base import load_backend
        from facescan.detect import create_detector

        self.config = config
        self.backends = {spec: load_backend(spec) for spec in config.backends}
        self.detector = create_detector("mediapipe")
        self.metrics = Metrics()
        self._describer = None
        self._explainer = None
        self._analyzers: dict[AnalyzerKey, object] = {}
        self._lock = threading.Lock()
        self.batcher = DynamicBatcher(self.analyzer_for, max_batch=config.max_batch,
                                      max_wait=config.batch_wait_ms / 1000, max_queue=config.max_queue,
                                      on_batch=self.metrics.batched, probe=decode_probe)
        self.metrics.queue_depth.set_function(lambda: self.batcher.depth)
        self.clips = ClipRunner(config.video_jobs, config.max_video_queue)
        self._video_detector = None
        self._video_analyzers: dict[AnalyzerKey, object] = {}

    def analyzer_for(self, key: AnalyzerKey):
        """One Analyzer per key, sharing the loaded backends, detector, describer and explainer."""
        from facescan.pipeline import Analyzer

        with self._lock:
            if key not in self._analyzers:
                if len(self._analyzers) >= MAX_ANALYZERS:  # clients choose floors: keep the most recent ones
                    del self._analyzers[next(iter(self._analyzers))]
                self._analyzers[key] = Analyzer(
                    backend=self.backends[key.backend], detector=self.detector, attributes=key.attributes,
                    describe=self._shared_describer() if key.describe else False,
                    explain=self._shared_explainer() if key.explain else False,
                    min_quality=key.min_quality or None)
            return self._analyzers[key]

    def video_analyzer_for(self, key: AnalyzerKey):
        """The Analyzer for clips: the loaded backend with the video detector (MediaPipe's two models, no
        tiled search: see ``facescan.video.detect``), in small batches so a stop takes effect soon."""
        from facescan.pipeline import Analyzer
        from facescan.video import VideoDetector

        with self._lock:
            if key not in self._video_analyzers:
                if self._video_detector is None:
                    self._video_detector = VideoDetector()
                self._video_analyzers[key] = Analyzer(backend=self.backends[key.backend],
                                                      detector=self._video_detector, attributes=key.attributes,
                                                      batch_images=8)
            return self._video_analyzers[key]

    def _shared_describer(self):
        if self._describer is None:
            from facescan.describe.person import PersonDescriber

            self._describer = PersonDescriber()
        return self._describer

    def _shared_explainer(self):
        if self._explainer is None:
            from facescan.explain import Explainer

            self._explainer = Explainer()
        return self._explainer

"""``facescan eval --engine ray``: an evaluation's predictions made on a Ray cluster, stored by the driver.

:func:`facescan.evaluate.run_eval` does everything it does for a local run (the lock, the run store
and its set-up, resuming, scoring, the report) and hands the items still to predict to
:class:`RayPredictions`: tasks read each item and cut its face (the item's ``source``: its file,
its dataset pixels or its box in a larger photo), an actor pool predicts them with one model per
actor, and the driver stores each block of prediction rows in ``predictions.sqlite`` as it arrives,
exactly as the local run stores its batches. So ``facescan eval`` resumes, ``facescan eval compare``
and the reports work the same whichever engine made a run's predictions. Clip datasets (DFEW, RAVDESS…)
are predicted clip by clip in the actors (:func:`facescan.evaluate.clips.predict_clip`).
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Iterator, Sequence

from facescan.evaluate.clips import clip_analyzer, predict_clip
from facescan.evaluate.runner import _rows
from facescan.pipeline import Analyzer, Prepared
from facescan.registry import parse_spec
from facescan.scale import cluster
from facescan.scale.analyze import BATCH_SIZE, GPU_KINDS, PREPARE_BATCH, _NoModel, with_threads
from facescan.schema import ImageResult

_PREPARER: list = []


def _preparer() -> Analyzer:
    if not _PREPARER:
        _PREPARER.append(Analyzer(backend=_NoModel(), crops=True, attributes=None))
    return _PREPARER[0]


def prepare_items(batch):
    """Stage 1 (a task): read each image item's face (its file, pixels or box) as the local run does;
    clips pass through. An item that cannot be read carries its error on."""
    import pyarrow as pa

    payloads = []
    for blob in batch.column("sample").to_pylist():
        sample = pickle.loads(blob)
        if getattr(sample, "video", False):
            payloads.append(b"")
            continue
        try:
            source = sample.source
        except Exception as e:  # noqa: BLE001 - the loader's error becomes that item's error
            payloads.append(pickle.dumps((None, str(e))))
            continue
        try:
            prepared = _preparer().prepare(source)
        except Exception as e:  # noqa: BLE001 - an item's failure is its rows, never the task's
            prepared = Prepared(ImageResult(source=str(sample.path), error=f"cannot analyze ({type(e).__name__}: "
                                                                           f"{e})"))
        payloads.append(pickle.dumps((prepared, None), protocol=pickle.HIGHEST_PROTOCOL))
    return pa.table({"sample": batch.column("sample"), "payload": pa.array(payloads, pa.binary())})


class EvalPredictor:
    """Stage 2 (an actor): one model; an image item's prediction rows as ``run_eval`` stores them."""

    def __init__(self, backend: str, spec: str, attributes: list[str], fps: float | None,
                 rate_limiter: str | None = None, gpu_batch: bool = False):
        from facescan.backends.base import load_backend

        self.backend, self.attributes, self.fps = backend, list(attributes), fps
        model = load_backend(spec)
        if rate_limiter:
            from facescan.scale.ratelimit import limit_requests

            limit_requests(model, rate_limiter)
        if gpu_batch:
            from facescan.scale.gpu import fit_backend_batch

            fit_backend_batch(model, self.attributes)
        self.analyzer = Analyzer(backend=model, attributes=self.attributes, crops=True)
        self.clips = clip_analyzer(model, self.attributes) if fps is not None else None

    def __call__(self, batch):
        import pyarrow as pa

        samples = [pickle.loads(b) for b in batch.column("sample").to_pylist()]
        rows: list = [None] * len(samples)
        pending: list[tuple[int, Prepared]] = []
        for k, (sample, payload) in enumerate(zip(samples, batch.column("payload").to_pylist())):
            if getattr(sample, "video", False):
                rows[k] = predict_clip(self.clips, sample, self.backend, self.attributes, self.fps)
                continue
            prepared, error = pickle.loads(payload)
            if prepared is None:  # the item could not be read: error rows, as the local run stores them
                rows[k] = _rows(sample.id, self.backend, self.attributes, None, error)
                continue
            prepared.result.backend = self.analyzer.backend.name
            pending.append((k, prepared))
        if pending:
            self.analyzer.predict([p for _, p in pending])
        for k, p in pending:
            rows[k] = _rows(samples[k].id, self.backend, self.attributes, p.result, p.result.source)
        return pa.table({"rows": pa.array([pickle.dumps(r) for r in rows], pa.binary())})


class RayPredictions:
    """Where ``run_eval(..., predictions=RayPredictions(...))`` makes its predictions: a Ray cluster.

    ``address``, ``actors``, ``actor_cpus``, ``actor_gpus``, ``task_cpus`` and ``rate`` as for
    :func:`~facescan.scale.analyze_on_ray`; ``batch_size`` items per actor call."""

    def __init__(self, address: str | None = None, actors: int | None = None, actor_cpus: float = 1.0,
                 actor_gpus: float | None = None, task_cpus: float = cluster.TASK_CPUS, batch_size: int | None = None,
                 rate: float | None = None):
        self.address, self.actors, self.actor_cpus, self.actor_gpus = address, actors, actor_cpus, actor_gpus
        self.task_cpus, self.batch_size, self.rate = task_cpus, batch_size, rate

    def _gpus(self, ray, backend: str) -> float:
        if self.actor_gpus is not None:
            return self.actor_gpus
        wanted = parse_spec(backend).kind in GPU_KINDS
        return 1.0 if wanted and ray.cluster_resources().get("GPU", 0) > 0 else 0.0

    def supported_attributes(self, backend: str) -> tuple[str, ...]:
        """What ``backend`` predicts: asked of the backend here, or of a cluster worker with the actors'
        resources for a local VLM (its model is not loaded on the driver)."""
        from facescan.backends.base import load_backend

        if parse_spec(backend).kind not in GPU_KINDS:
            return tuple(load_backend(backend).supported_attributes())
        ray = cluster.connect(self.address)
        probe = ray.remote(_supported).options(num_cpus=self.actor_cpus, num_gpus=self._gpus(ray, backend) or None)
        return tuple(ray.get(probe.remote(backend)))

    def predict(self, samples: Sequence, backend: str, attributes: list[str], fps: float | None,
                batch_size: int) -> Iterator[tuple[int, list[dict]]]:
        """``(items, rows)`` per block of items predicted on the cluster, as they arrive."""
        if not samples:
            return
        ray = cluster.connect(self.address)
        gpus = self._gpus(ray, backend)
        resources = ray.cluster_resources()
        actors = self.actors or cluster.default_actors(resources, self.actor_cpus, gpus, self.task_cpus)
        cluster.check_room(resources, actors, self.actor_cpus, gpus, self.task_cpus)
        threads = max(1, math.floor(self.actor_cpus))
        limiter = None
        if self.rate:
            from facescan.scale.ratelimit import shared_limiter

            limiter = shared_limiter(self.rate)
        blobs = [{"sample": pickle.dumps(s, protocol=pickle.HIGHEST_PROTOCOL)} for s in samples]
        ds = ray.data.from_items(blobs, override_num_blocks=max(1, math.ceil(len(blobs) / cluster.INPUTS_PER_BLOCK)))
        ds = ds.map_batches(prepare_items, batch_size=PREPARE_BATCH, batch_format="pyarrow", num_cpus=self.task_cpus)
        clips = fps is not None
        ds = ds.map_batches(EvalPredictor,
                            fn_constructor_kwargs={"backend": backend, "spec": with_threads(backend, threads),
                                                   "attributes": attributes, "fps": fps, "rate_limiter": limiter,
                                                   "gpu_batch": gpus > 0 and "batch_size" not in
                                                   parse_spec(backend).options},
                            batch_size=1 if clips else (self.batch_size or min(batch_size, BATCH_SIZE)),
                            batch_format="pyarrow", compute=cluster.actor_pool(actors), num_cpus=self.actor_cpus,
                            num_gpus=gpus or None)
        for block in ds.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=0):
            rows = [r for blob in block.column("rows").to_pylist() for r in pickle.loads(blob)]
            yield len(block), rows


def _supported(backend: str) -> list[str]:
    from facescan.backends.base import load_backend

    return list(load_backend(backend).supported_attributes())

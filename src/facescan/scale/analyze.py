"""``facescan analyze --engine ray``: photos and videos analyzed on a Ray cluster, written as Parquet shards.

The Ray Data pipeline, for inputs listed by the driver (:mod:`facescan.scale.sources`):

1. **tasks** read, decode and detect each photo (:meth:`Analyzer.prepare <facescan.pipeline.Analyzer.prepare>`
   with no model loaded), handing on the face chips; videos pass through untouched. With ``crops`` there is
   nothing to detect, and the actors read and decode the crops themselves;
2. an **actor pool** (``map_batches`` with :class:`Predictor`, a callable class holding one
   :class:`~facescan.pipeline.Analyzer`: one model per actor) predicts a batch of photos' faces in one
   backend call (:meth:`Analyzer.predict <facescan.pipeline.Analyzer.predict>`) and analyzes each video
   whole (:func:`facescan.video.analyze_video`: its faces are followed from frame to frame, so a video is
   one unit of work), and turns every result into the rows of ``facescan analyze --parquet``;
3. the **driver** streams those rows into Parquet shards (:class:`~facescan.scale.shards.ShardWriter`).

Whatever goes wrong with one input is that input's row (``error``), in tasks and actors alike: a task
or actor call fails only when its process or node dies, and then Ray runs it again (tasks are retried,
actors restarted, their calls retried). Only the driver writes, and it gets each output block once,
so a lost worker or node costs the work it had in flight and nothing is written twice; a rerun on the
same folder skips the inputs its shards hold.
"""

from __future__ import annotations

import math
import os
import pickle
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from facescan.detect.quality import QualityFloor
from facescan.imageio import ImageLoadError
from facescan.pipeline import Analyzer, Prepared, parse_attributes
from facescan.registry import parse_spec
from facescan.scale import cluster
from facescan.scale.shards import SHARD_ROWS, SHARD_SECONDS, ShardWriter
from facescan.scale.sources import download, is_uri, is_video_name, list_inputs, read_remote
from facescan.schema import ImageResult, VideoResult
from facescan.tables import result_rows, video_frame_rows, video_track_rows

#: Backend kinds that run a local VLM: their actors take a GPU where the cluster has one.
GPU_KINDS = ("hf", "facescan-paligemma")
#: Inputs per actor call (one backend call for their faces); GPU backends pick theirs from the GPU's memory.
BATCH_SIZE = 64
#: Inputs per read-decode-detect task call.
PREPARE_BATCH = 16


@dataclass(frozen=True)
class Settings:
    """What decides a run's results (stored with its shards: a folder holds one run's settings)."""

    backend: str = "builtin"
    detector: str = "mediapipe"
    attributes: tuple[str, ...] = ()
    crops: bool = False
    crop_padding: float = 0.25
    explain: bool = False
    describe: bool = False
    min_quality: str = ""  # a QualityFloor's text: faces under it get no attributes
    video: dict = field(default_factory=dict)  # analyze_video's fps, every, start, end, smooth, person_fps

    def identity(self) -> dict:
        """The settings as stored in the folder's manifest (the backend's thread count left out)."""
        out = asdict(self)
        out["backend"] = without_threads(self.backend)
        out["attributes"] = list(self.attributes)
        if not self.min_quality:  # folders written before the option existed hold the same settings
            del out["min_quality"]
        return out


@dataclass
class RunSummary:
    """What a cluster run did."""

    out: str
    inputs: int = 0  # listed inputs
    already_done: int = 0  # in the folder's shards before this run
    analyzed: int = 0  # by this run
    faces: int = 0  # in photos
    videos: int = 0
    persons: int = 0  # tracked in videos
    failed: list[str] = field(default_factory=list)  # this run's errors
    failed_before: list[str] = field(default_factory=list)  # errors of listed inputs done by an earlier run
    not_media: list[str] = field(default_factory=list)  # files in folders that are neither photos nor videos
    shards: int = 0
    seconds: float = 0.0  # the whole run, listing and cluster start included
    pipeline_seconds: float = 0.0  # from the pipeline's start to its last row
    first_row_seconds: float = 0.0  # from the pipeline's start to its first row (actors starting, models loading)
    actors: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.failed_before


def without_threads(spec: str) -> str:
    """``builtin?threads=1`` → ``builtin``: a thread count changes the speed, not the results."""
    head, sep, query = spec.partition("?")
    if not sep:
        return spec
    kept = "&".join(p for p in query.split("&") if p and not p.startswith("threads="))
    return head + (f"?{kept}" if kept else "")


def with_threads(spec: str, threads: int) -> str:
    """A builtin spec with ``threads=N`` added unless it names its own (an actor uses the cores it was given,
    not every core of its node)."""
    parsed = parse_spec(spec)
    if parsed.kind != "builtin" or "threads" in parsed.options:
        return spec
    return f"{spec}{'&' if '?' in spec else '?'}threads={max(1, int(threads))}"


def actor_batch(inputs: int, actors: int) -> int:
    """Inputs per actor call: :data:`BATCH_SIZE`, or fewer where that would leave actors without work (Ray Data
    bundles blocks up to a call's batch size, so 32 inputs in calls of 64 would all go to one actor)."""
    return max(1, min(BATCH_SIZE, math.ceil(inputs / max(1, actors))))


def wants_gpu(spec: str) -> bool:
    return parse_spec(spec).kind in GPU_KINDS


class _NoModel:
    """Stands in for the backend in the read-decode-detect tasks: they load no model."""

    name = "pending"

    def supported_attributes(self) -> tuple[str, ...]:
        from facescan import taxonomy

        return tuple(taxonomy.ATTRIBUTES)


_PREPARERS: dict = {}


def _preparer(settings: Settings) -> Analyzer:
    """This worker process's detect-only analyzer (its detector graphs are built once per process)."""
    key = (settings.detector, settings.attributes, settings.crops, settings.crop_padding, settings.min_quality)
    if key not in _PREPARERS:
        _PREPARERS[key] = Analyzer(backend=_NoModel(), detector=settings.detector, attributes=settings.attributes,
                                   crops=settings.crops, crop_padding=settings.crop_padding,
                                   min_quality=settings.min_quality or None)
    return _PREPARERS[key]


def prepare_batch(batch, settings: Settings, keep_images: bool = False):
    """Stage 1 (a task): decode and detect each photo of ``batch`` (a pyarrow table of ``source``,
    ``location``); videos pass through. Never raises for an input: its error goes on with it."""
    import pyarrow as pa

    sources = batch.column("source").to_pylist()
    locations = batch.column("location").to_pylist()
    kinds, payloads = [], []
    analyzer = None
    for source, location in zip(sources, locations):
        if is_video_name(source):
            kinds.append("video")
            payloads.append(b"")
            continue
        analyzer = analyzer or _preparer(settings)
        kinds.append("image")
        payloads.append(pickle.dumps(prepare_one(analyzer, source, location, keep_images),
                                     protocol=pickle.HIGHEST_PROTOCOL))
    return pa.table({"source": pa.array(sources, pa.string()), "location": pa.array(locations, pa.string()),
                     "kind": pa.array(kinds, pa.string()), "payload": pa.array(payloads, pa.binary())})


def prepare_one(analyzer: Analyzer, source: str, location: str, keep_image: bool = False) -> Prepared:
    """Read, decode and detect one photo (``location``: a path or a URI) under the name ``source``;
    never raises: its error goes on with it."""
    try:
        prepared = analyzer.prepare(read_remote(location) if is_uri(location) else location, keep_image=keep_image)
    except ImageLoadError as e:  # a remote file that cannot be read
        prepared = Prepared(ImageResult(source=source, error=str(e)))
    except Exception as e:  # noqa: BLE001 - an input's failure is its row, never the task's
        prepared = Prepared(ImageResult(source=source, error=f"{source}: cannot analyze ({type(e).__name__}: {e})"))
    prepared.result.source = source
    prepared.image = None  # the face inputs hold the photo where keep_image asked for it (--describe)
    return prepared


class Predictor:
    """Stage 2 (an actor): one Analyzer, its model loaded once; predicts the faces of a batch of photos
    in one backend call and analyzes videos whole; returns each input's rows."""

    def __init__(self, settings: Settings, threads: int = 1, rate_limiter: str | None = None,
                 gpu_batch: bool = False):
        self.settings = settings
        self.threads = threads
        self.analyzer = Analyzer(backend=settings.backend, detector=settings.detector,
                                 attributes=settings.attributes, crops=settings.crops,
                                 crop_padding=settings.crop_padding, explain=settings.explain,
                                 describe=settings.describe, min_quality=settings.min_quality or None)
        if rate_limiter:
            from facescan.scale.ratelimit import limit_requests

            limit_requests(self.analyzer.backend, rate_limiter)
        if gpu_batch:
            from facescan.scale.gpu import fit_backend_batch

            fit_backend_batch(self.analyzer.backend)
        self._frames: Analyzer | None = None

    def __call__(self, batch):
        import pyarrow as pa

        sources = batch.column("source").to_pylist()
        locations = batch.column("location").to_pylist()
        if "kind" in batch.column_names:  # prepared by the read-decode-detect tasks
            kinds = batch.column("kind").to_pylist()
            payloads = batch.column("payload").to_pylist()
        else:  # crops: read and decoded here (see _run)
            kinds = ["video" if is_video_name(s) else "image" for s in sources]
            payloads = [None] * len(sources)
        rows: list[bytes | None] = [None] * len(sources)
        faces = [0] * len(sources)
        errors: list[str | None] = [None] * len(sources)
        prepared: list[tuple[int, Prepared]] = []
        for i, (kind, payload) in enumerate(zip(kinds, payloads)):
            if kind == "image":
                p = pickle.loads(payload) if payload is not None else \
                    prepare_one(self.analyzer, sources[i], locations[i])
                p.result.backend = self.analyzer.backend.name
                prepared.append((i, p))
        if prepared:
            self.analyzer.predict([p for _, p in prepared])
            for i, p in prepared:
                rows[i] = pickle.dumps((result_rows([p.result]), []), protocol=pickle.HIGHEST_PROTOCOL)
                faces[i], errors[i] = len(p.result.faces), p.result.error
        for i, kind in enumerate(kinds):
            if kind == "video":
                video = self._video(sources[i], locations[i])
                frame_rows = video_frame_rows(video) or [{"source": video.source, "frame": None, "error": None}]
                rows[i] = pickle.dumps((frame_rows, video_track_rows(video)), protocol=pickle.HIGHEST_PROTOCOL)
                faces[i], errors[i] = len(video.tracks), video.error  # a video's count is its persons
        return pa.table({"source": pa.array(sources, pa.string()), "kind": pa.array(kinds, pa.string()),
                         "faces": pa.array(faces, pa.int64()), "error": pa.array(errors, pa.string()),
                         "rows": pa.array(rows, pa.binary())})

    def _video(self, source: str, location: str) -> VideoResult:
        from facescan.api import video_analyzer
        from facescan.video import analyze_video

        if self._frames is None:
            self._frames = video_analyzer(self.analyzer)
        try:
            with tempfile.TemporaryDirectory(prefix="facescan-video-") as tmp:
                path = download(location, tmp) if is_uri(location) else location
                # frames detected as `facescan analyze` detects them (two at a time where there are two cores):
                # MediaPipe follows faces from frame to frame, so the detection threads shape the boxes
                video = analyze_video(path, self._frames, **self.settings.video)
        except Exception as e:  # noqa: BLE001 - a video's failure is its row, never the actor's
            video = VideoResult(source=source, error=f"{source}: cannot analyze ({type(e).__name__}: {e})")
        if video.source != source:
            video.source = source
            video.error = video.error.replace(location, source, 1) if video.error else None
        return video


def _check_settings(settings: Settings) -> None:
    """Refuse what would fail every input, before the cluster is asked for anything."""
    from facescan.video.decode import _check_sampling

    v = settings.video
    _check_sampling(v.get("fps"), v.get("every"), v.get("start"), v.get("end"))
    if settings.describe and settings.crops:
        raise ValueError("--describe needs whole photos (people's clothing and posture), not --crops")
    parse_spec(settings.backend)
    parse_spec(settings.detector)
    QualityFloor.parse(settings.min_quality)


def analyze_on_ray(inputs: Sequence[str] | str, out: str, *, backend: str = "builtin", detector: str = "mediapipe",
                   attributes: str | Sequence[str] | None = None, crops: bool = False, crop_padding: float = 0.25,
                   explain: bool = False, describe: bool = False, min_quality: str | None = None,
                   video: dict | None = None,
                   address: str | None = None, actors: int | None = None, batch_size: int | None = None,
                   actor_cpus: float = 1.0, actor_gpus: float | None = None, task_cpus: float = cluster.TASK_CPUS,
                   rate: float | None = None, shard_rows: int = SHARD_ROWS, shard_seconds: float = SHARD_SECONDS,
                   on_input: Callable[[str, int, str | None], None] | None = None,
                   on_start: Callable[[int, int], None] | None = None) -> RunSummary:
    """Analyze ``inputs`` (files, folders, globs, lists of paths or URIs) on the Ray cluster at ``address``
    (None: ``RAY_ADDRESS``, else a Ray started here for this run) into the shard folder ``out``.

    ``actors`` predicting actors (default: as many as 80 % of the cluster's CPUs hold at ``actor_cpus`` each,
    or its GPUs at ``actor_gpus`` each for ``hf:`` backends), each with ``batch_size`` inputs per call;
    ``task_cpus`` is what a read-decode-detect task asks for; ``rate`` caps an API backend's requests
    per second, all actors together. ``on_start(total, already_done)`` is called once the inputs are
    listed and ``on_input(source, faces, error)`` per analyzed input (a video's ``faces``: its persons).
    Raises ``ValueError`` for settings that cannot run (an output folder of another run, a bad option),
    before any work."""
    started = time.perf_counter()
    settings = Settings(backend=backend, detector=detector, attributes=parse_attributes(attributes), crops=crops,
                        crop_padding=crop_padding, explain=explain, describe=describe,
                        min_quality=str(QualityFloor.parse(min_quality) or ""), video=dict(video or {}))
    _check_settings(settings)
    cluster.require()  # before anything is written
    summary = RunSummary(out=str(out))
    listed = list_inputs(inputs, skipped=summary.not_media)
    summary.inputs = len(listed)
    videos = [s for s, _ in listed if is_video_name(s)] if settings.min_quality else []
    if videos:
        more = f" and {len(videos) - 1} more" if len(videos) > 1 else ""
        raise ValueError(f"--min-quality is for photos, and {videos[0]}{more} is a video: a video's tracks "
                         "choose their own keyframes (analyze the videos without it)")
    writer = ShardWriter(str(out), settings.identity(), shard_rows=shard_rows, shard_seconds=shard_seconds)
    with cluster.folder_lock(writer):
        done, failed_before = writer.done()
        todo = [(s, loc) for s, loc in listed if s not in done]
        summary.already_done = len(listed) - len(todo)
        summary.failed_before = [failed_before[s] for s, _ in listed if s in failed_before]
        if on_start:
            on_start(len(listed), summary.already_done)
        try:
            if todo:
                _run(todo, settings, writer, summary, address=address, actors=actors, batch_size=batch_size,
                     actor_cpus=actor_cpus, actor_gpus=actor_gpus, task_cpus=task_cpus, rate=rate,
                     on_input=on_input)
        finally:  # an error or Ctrl-C still writes every row received: a rerun starts after them
            writer.close()
    summary.shards = writer.shards
    summary.seconds = round(time.perf_counter() - started, 3)
    return summary


def _run(todo, settings: Settings, writer: ShardWriter, summary: RunSummary, *, address, actors, batch_size,
         actor_cpus, actor_gpus, task_cpus, rate, on_input) -> None:
    ray = cluster.connect(address)
    resources = ray.cluster_resources()
    gpu = wants_gpu(settings.backend)
    if actor_gpus is None:
        actor_gpus = 1.0 if gpu and resources.get("GPU", 0) > 0 else 0.0
    if settings.crops:
        task_cpus = 0.0  # no read-decode-detect tasks: the actors read the crops (see below)
    if actors is None:
        actors = cluster.default_actors(resources, actor_cpus, actor_gpus, task_cpus)
    cluster.check_room(resources, actors, actor_cpus, actor_gpus, task_cpus)
    summary.actors = actors
    threads = max(1, math.floor(actor_cpus))
    actor_settings = Settings(**{**asdict(settings), "backend": with_threads(settings.backend, threads)})
    limiter = None
    if rate:
        from facescan.scale.ratelimit import shared_limiter

        limiter = shared_limiter(rate)
    ds = cluster.dataset(todo, min_blocks=actors)
    if not settings.crops:
        ds = ds.map_batches(prepare_batch, fn_kwargs={"settings": settings, "keep_images": settings.describe},
                            batch_size=PREPARE_BATCH, batch_format="pyarrow", num_cpus=task_cpus)
    # else the actors read and decode the crops themselves: with nothing to detect a task would only decode, and a
    # decoded chip (150 kB at 224 px) costs more to pickle and ship through the object store than its JPEG
    # costs to decode (about 1.5 ms against 18 ms to predict)
    ds = ds.map_batches(Predictor, fn_constructor_kwargs={"settings": actor_settings, "threads": threads,
                                                          "rate_limiter": limiter,
                                                          "gpu_batch": gpu and actor_gpus > 0
                                                          and "batch_size" not in parse_spec(settings.backend).options},
                        batch_size=batch_size or actor_batch(len(todo), actors), batch_format="pyarrow",
                        compute=cluster.actor_pool(actors),
                        num_cpus=actor_cpus, num_gpus=actor_gpus or None)
    t0 = time.perf_counter()
    # prefetch_batches=0: each block is taken as soon as it is done (prefetching held the first rows back)
    for block in ds.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=0):
        for source, kind, faces, error, rows in zip(*(block.column(c).to_pylist() for c in
                                                      ("source", "kind", "faces", "error", "rows"))):
            face_rows, track_rows = pickle.loads(rows)
            if not summary.analyzed:
                summary.first_row_seconds = round(time.perf_counter() - t0, 3)
            writer.add(face_rows, track_rows)
            summary.analyzed += 1
            if kind == "video":
                summary.videos += 1
                summary.persons += faces
            else:
                summary.faces += faces
            if error:
                summary.failed.append(error)
            if on_input:
                on_input(source, faces, error)
    summary.pipeline_seconds = round(time.perf_counter() - t0, 3)
    if os.environ.get("FACESCAN_RAY_STATS") == "1":  # Ray Data's time and throughput per stage
        print(ds.stats(), file=sys.stderr)

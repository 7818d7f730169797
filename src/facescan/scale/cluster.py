"""Connecting to a Ray cluster, and what every facescan job on it shares."""

from __future__ import annotations

import contextlib
import logging
import math
import os
from pathlib import Path

#: Rows (inputs) per block of the listed inputs: each block is one read-decode-detect task.
INPUTS_PER_BLOCK = 32


def require():
    """The ``ray`` module, or an ImportError of one line: what is missing and the command that installs it."""
    import importlib.util

    try:
        import ray
    except ImportError as e:
        from facescan.extras import missing_message

        missing = ImportError(missing_message(e, "--engine ray") or str(e))
        missing.name = e.name
        raise missing from None
    if importlib.util.find_spec("ray.data") is None or importlib.util.find_spec("pyarrow") is None:
        missing = ImportError("--engine ray needs Ray Data, which is not installed: pip install 'facescan[ray]'")
        missing.name = "ray"
        raise missing
    return ray


def connect(address: str | None = None):
    """The ``ray`` module, connected to the cluster at ``address`` (``auto``: the one started on this
    machine with ``ray start``; ``HOST:PORT``: its head's GCS), else to ``RAY_ADDRESS``, else to a Ray
    started here for this process. Ray's and Ray Data's own logging and progress bars are kept quiet
    (``FACESCAN_RAY_LOGS=1`` shows the workers' output)."""
    ray = require()

    if not ray.is_initialized():
        if os.environ.get("FACESCAN_RAY_LOGS") != "1":  # Ray's C++ warnings about its own internals
            os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
        address = address or os.environ.get("RAY_ADDRESS") or None
        options = {"include_dashboard": False} if address is None else {}
        ray.init(address=address, logging_level=logging.WARNING,
                 log_to_driver=os.environ.get("FACESCAN_RAY_LOGS") == "1", **options)
    from ray.data import DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    context.execution_options.preserve_order = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "progress bars disabled": ours show
    return ray


#: Share of a cluster's CPUs that the default actor count leaves to the read-decode-detect tasks.
TASK_SHARE = 0.2
#: CPUs a read-decode-detect task asks for (decoding is light next to a model; fewer task processes
#: starting at once also brings the first rows sooner).
TASK_CPUS = 0.5


def default_actors(resources: dict, actor_cpus: float, actor_gpus: float, task_cpus: float = TASK_CPUS) -> int:
    """As many actors as the cluster holds: one per ``actor_gpus`` GPUs, else one per ``actor_cpus`` CPUs of
    what is left once :data:`TASK_SHARE` of the CPUs (at least one task's ``task_cpus``) are kept for the
    read-decode-detect tasks (``task_cpus=0``: a pipeline without them)."""
    cpus = resources.get("CPU", 1)
    kept = max(task_cpus, TASK_SHARE * cpus) if task_cpus else 0.0
    by_cpu = max(1, math.floor((cpus - kept) / max(actor_cpus, 1e-6) + 1e-9))
    if actor_gpus:
        return max(1, min(by_cpu, math.floor(resources.get("GPU", 0) / actor_gpus)))
    return by_cpu


def check_room(resources: dict, actors: int, actor_cpus: float, actor_gpus: float, task_cpus: float) -> None:
    """Refuse a pool that would leave no CPU for the read-decode-detect tasks (or ask for GPUs that are
    not there): Ray would wait for them forever. Counts the cluster's CPUs as they are now."""
    cpus, gpus = resources.get("CPU", 0), resources.get("GPU", 0)
    if actors * actor_cpus + task_cpus > cpus + 1e-9:
        asked = f"{actors} actor(s) × {actor_cpus:g} CPU"
        if task_cpus:
            asked += f" plus {task_cpus:g} CPU for a read-decode-detect task"
        raise ValueError(f"{asked} is more than the cluster's {cpus:g} CPUs: the "
                         f"{'tasks' if task_cpus else 'actors'} would wait for ever; lower --actors or --actor-cpus")
    if actor_gpus and actors * actor_gpus > gpus + 1e-9:
        raise ValueError(f"{actors} actor(s) × {actor_gpus:g} GPU is more than the cluster's {gpus:g} GPUs; lower "
                         "--actors or --actor-gpus")


def actor_pool(actors: int):
    """Ray Data's compute strategy for a fixed pool of ``actors`` actors."""
    from ray.data import ActorPoolStrategy

    return ActorPoolStrategy(size=actors)


def dataset(todo: list[tuple[str, str]], min_blocks: int = 1):
    """The inputs (``source``, ``location``) as a Ray Dataset of :data:`INPUTS_PER_BLOCK`-row blocks, and at
    least ``min_blocks`` blocks where there are that many inputs (a few inputs still reach every actor)."""
    import ray

    items = [{"source": s, "location": loc} for s, loc in todo]
    blocks = max(1, math.ceil(len(items) / INPUTS_PER_BLOCK), min(len(items), min_blocks))
    return ray.data.from_items(items, override_num_blocks=blocks)


@contextlib.contextmanager
def folder_lock(writer):
    """One run at a time writes a local output folder (a flock, released however the run ends);
    remote folders are not locked."""
    if not writer.local:
        yield
        return
    from facescan.evaluate.lock import RunLocked, run_lock

    try:
        lock = run_lock(Path(writer.root))
        lock.__enter__()
    except RunLocked:
        raise ValueError(f"{writer.out} is being written by another facescan run; wait for it to finish or "
                         "choose another folder") from None
    try:
        yield
    finally:
        lock.__exit__(None, None, None)

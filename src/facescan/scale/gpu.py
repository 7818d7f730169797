"""GPU actors for ``hf:`` backends: one model per actor, a batch size that fits the GPU's memory.

After the model is loaded, :func:`fit_backend_batch` measures what one face costs in GPU memory (the
peak of a probe batch of two synthetic faces over the memory held before it) and sets the backend's
batch size to what the free memory holds with a margin: a 3-B VLM on an 80-GB GPU takes large
batches, the same model on a 24-GB GPU small ones. A batch that still runs out of memory is halved
and run again (:func:`halve_on_oom`), so a wrong estimate costs time, never results.
"""

from __future__ import annotations

import functools
import logging

import numpy as np

#: Share of the free GPU memory a batch may use (activations vary with answer lengths and prompts).
HEADROOM = 0.7
#: Largest batch picked (larger ones gain little throughput on one GPU and delay every result).
MAX_BATCH = 64
log = logging.getLogger(__name__)


def batch_for_memory(free_bytes: float, per_face_bytes: float, headroom: float = HEADROOM,
                     cap: int = MAX_BATCH) -> int:
    """The faces per batch that ``free_bytes`` of GPU memory hold at ``per_face_bytes`` each (1 to ``cap``)."""
    if per_face_bytes <= 0:
        return cap
    return int(max(1, min(cap, (free_bytes * headroom) // per_face_bytes)))


def fit_backend_batch(backend, attributes=None) -> int | None:
    """Set an ``hf:`` backend's ``options.batch_size`` from its GPU's free memory (see the module);
    the batch size, or None where there is no CUDA device or nothing to set."""
    options = getattr(backend, "options", None)
    if options is None or not hasattr(options, "batch_size"):
        return None
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available() or not str(getattr(backend, "device", "cuda")).startswith("cuda"):
        return None
    from facescan.backends.base import FaceInput

    chip = np.full((options.chip_size if hasattr(options, "chip_size") else 224,) * 2 + (3,), 128, np.uint8)
    attributes = list(attributes or backend.supported_attributes())[:1]
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    previous = options.batch_size
    options.batch_size = 2
    try:
        backend.predict([FaceInput(chip=chip, padding=0.25)] * 2, attributes)
    except Exception as e:  # noqa: BLE001 - the probe is a guess: the backend's own batch size stands
        options.batch_size = previous
        log.warning("GPU batch probe failed (%s); batch size stays %s", e, previous)
        return previous
    per_face = (torch.cuda.max_memory_allocated() - before) / 2
    free, _ = torch.cuda.mem_get_info()
    options.batch_size = batch_for_memory(free, per_face)
    halve_on_oom(backend)
    return options.batch_size


def halve_on_oom(backend) -> None:
    """Make ``backend.predict`` run a batch that runs out of GPU memory again in halves (down to one face)."""
    predict = backend.predict

    @functools.wraps(predict)
    def guarded(faces, attributes):
        try:
            return predict(faces, attributes)
        except Exception as e:
            if type(e).__name__ != "OutOfMemoryError" or backend.options.batch_size <= 1:
                raise
            import torch

            torch.cuda.empty_cache()
            backend.options.batch_size = max(1, backend.options.batch_size // 2)
            log.warning("GPU out of memory: batch size %s from now on", backend.options.batch_size)
            return guarded(faces, attributes)

    backend.predict = guarded

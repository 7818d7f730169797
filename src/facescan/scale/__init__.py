"""facescan on a Ray cluster: millions of photos and hours of video, analyzed and evaluated.

- :func:`analyze_on_ray` (``facescan analyze --engine ray``): a Ray Data pipeline of read-decode-detect
  tasks and an actor pool of models, written by the driver as Parquet shards
  (:mod:`facescan.scale.analyze`); :func:`read_results` reads them back as one table.
- :class:`RayPredictions` (``facescan eval --engine ray``): an evaluation's predictions made on the
  cluster and stored by the driver in the run's own store (:mod:`facescan.scale.evaluation`).
- :mod:`facescan.scale.gpu`: GPU actors' batch sizes; :mod:`facescan.scale.ratelimit`: one request rate
  shared by every actor of an API backend; :mod:`facescan.scale.localcluster`: a cluster of several
  nodes on one machine (tests, benchmarks).

Ray is the ``ray`` extra (``pip install 'facescan[ray]'``) and is imported only when a job starts. The
names below are imported when first used, so a worker that runs one stage loads only what it needs.
"""

from __future__ import annotations

import importlib

_EXPORTS = {"analyze_on_ray": "analyze", "RunSummary": "analyze", "RayPredictions": "evaluation",
            "read_results": "shards"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"facescan.scale.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'facescan.scale' has no attribute {name!r}")

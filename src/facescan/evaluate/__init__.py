"""Evaluation: run a backend over a labelled dataset, store predictions, score, report, compare.

``run_eval`` and ``score_run`` are imported when first used: the runner pulls in scikit-learn, which
the package's light modules (its run lock, used by ``--engine ray``) do not need.
"""

from __future__ import annotations

import importlib

__all__ = ["run_eval", "score_run"]


def __getattr__(name: str):
    if name in __all__:
        return getattr(importlib.import_module("facescan.evaluate.runner"), name)
    raise AttributeError(f"module 'facescan.evaluate' has no attribute {name!r}")

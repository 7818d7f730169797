"""Evaluation: run a backend over a labelled dataset, store predictions, score, report, compare."""

from facescan.evaluate.runner import run_eval, score_run

__all__ = ["run_eval", "score_run"]

"""The eval harness's own overhead on the built-in backend over FairFace val (2,500 images).

    python benchmarks/eval_overhead.py --data ../shared/data

Times a full ``facescan eval`` run (fresh run folder) and, inside it, the time spent in the
backend (loading it, and ``Backend.predict``) and in the analysis pipeline that feeds it (image decoding and
cropping, as ``facescan analyze --crops`` does). Everything else is the harness: dataset
reading, SQLite writes, progress, metrics with bootstrap intervals, and the report.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from facescan.backends import base
from facescan.evaluate import run_eval
from facescan.pipeline import Analyzer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data")
    args = ap.parse_args()
    spent = {"load": 0.0, "predict": 0.0, "pipeline": 0.0, "score": 0.0, "report": 0.0}
    original_load, original_many = base.load_backend, Analyzer.analyze_many

    def timed_backend(spec):
        t0 = time.perf_counter()
        backend = original_load(spec)
        spent["load"] += time.perf_counter() - t0
        predict = backend.predict

        def timed(faces, attributes):
            t0 = time.perf_counter()
            try:
                return predict(faces, attributes)
            finally:
                spent["predict"] += time.perf_counter() - t0

        backend.predict = timed
        return backend

    def timed_many(self, sources, *a, **k):
        iterator = original_many(self, sources, *a, **k)
        while True:
            t0 = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                spent["pipeline"] += time.perf_counter() - t0
                return
            spent["pipeline"] += time.perf_counter() - t0
            yield item

    import facescan.evaluate.report
    import facescan.evaluate.runner
    import facescan.pipeline

    def timer(module, name, key):
        original = getattr(module, name)

        def timed(*a, **k):
            t0 = time.perf_counter()
            try:
                return original(*a, **k)
            finally:
                spent[key] += time.perf_counter() - t0

        setattr(module, name, timed)

    facescan.pipeline.load_backend = timed_backend
    Analyzer.analyze_many = timed_many
    timer(facescan.evaluate.runner, "score_run", "score")
    timer(facescan.evaluate.report, "write_report", "report")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        metrics = run_eval(f"fairface:{Path(args.data) / 'fairface'}", "val", "builtin", Path(tmp) / "run",
                           progress=False)
        total = time.perf_counter() - t0
    once = spent["score"] + spent["report"]
    loop = total - once
    harness = loop - spent["pipeline"] - spent["load"]
    print(f"items: {metrics['n_items']}, attributes: {', '.join(metrics['attributes'])}")
    print(f"total wall time:                            {total:6.2f} s")
    print(f"  predicting (dataset, pipeline, storage):  {loop:6.2f} s")
    print(f"    backend load (model files, sessions):   {spent['load']:6.2f} s")
    print(f"    backend predict:                        {spent['predict']:6.2f} s")
    print(f"    image decode + crop (the pipeline):     {spent['pipeline'] - spent['predict']:6.2f} s")
    print(f"    harness (dataset, SQLite, progress):    {harness:6.2f} s  = {100 * harness / loop:.1f}% of predicting")
    print(f"  scoring (metrics, bootstrap, fairness):   {spent['score']:6.2f} s  (once per run)")
    print(f"  report (Markdown, HTML, figures):         {spent['report']:6.2f} s  (once per run)")
    share = 100 * (harness + once) / total
    print(f"time outside the backend:                   {harness + once:6.2f} s  = {share:.1f}% of the total "
          f"({'within' if share <= 10 else 'over'} the 10% bar)")


if __name__ == "__main__":
    main()

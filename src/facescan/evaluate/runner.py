"""``facescan eval``: run a backend over a labelled dataset, store every prediction, score it."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from facescan import __version__, taxonomy
from facescan.evaluate.fairness import group_accuracy, groupings_for
from facescan.evaluate.metrics import attribute_metrics
from facescan.evaluate.store import RunStore


def run_eval(dataset: str, split: str, backend: str, out: Path, attributes: Sequence[str] | None = None,
             limit: int | None = None, seed: int = 0, stratify: str | None = None, batch_size: int = 64,
             progress: bool = True, n_resamples: int = 1000) -> dict:
    """Evaluate ``backend`` on ``dataset`` (``KIND:PATH``) and write the run folder ``out``.

    The folder holds ``predictions.sqlite`` (every prediction, written batch by batch),
    ``metrics.json`` and the report. Running again on the same folder resumes: items already
    predicted are not recomputed.
    """
    from facescan.backends.base import load_backend
    from facescan.datasets import open_dataset
    from facescan.pipeline import Analyzer

    samples = open_dataset(dataset, split, limit=limit, seed=seed, stratify=stratify)
    if not samples:
        raise ValueError(f"{dataset} ({split}) has no items")
    labelled = [a for a in taxonomy.ATTRIBUTES if any(a in s.labels for s in samples)]
    model = load_backend(backend)
    wanted = list(attributes) if attributes else [a for a in labelled if a in model.supported_attributes()]
    missing = [a for a in wanted if a not in labelled]
    if missing:
        raise ValueError(f"{dataset} has no {', '.join(missing)} labels")
    if not wanted:
        raise ValueError(f"backend {backend} predicts none of the attributes {dataset} is labelled with")
    analyzer = Analyzer(backend=model, attributes=wanted, crops=True)

    store = RunStore(Path(out) / "predictions.sqlite")
    identity = {"dataset": dataset, "split": split, "backend": backend, "attributes": wanted, "limit": limit,
                "seed": seed, "stratify": stratify}
    previous = store.meta().get("identity")
    if previous is not None and previous != identity:
        raise ValueError(f"{out} holds another run ({previous}); choose another --out folder")
    label_sets = {a: next(s.label_sets[a] for s in samples if a in s.labels) for a in labelled}
    if previous is None:
        store.set_meta(identity=identity, started=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                       facescan_version=__version__, label_sets=label_sets, n_items=len(samples))
        store.add_items([(s.id, s.labels, s.exact_age) for s in samples])
    done = store.done(backend, wanted)
    todo = [s for s in samples if s.id not in done]

    with _progress(progress, f"eval {backend} on {dataset.split(':')[0]}/{split}", len(samples),
                   len(samples) - len(todo)) as advance:
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            store.add_predictions(_predict_chunk(analyzer, chunk, backend, wanted))
            advance(len(chunk))
    metrics = score_run(store, n_resamples=n_resamples, seed=seed)
    store.set_meta(finished=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    metrics["meta"] = {**store.meta(), **_described(store, backend)}
    store.close()
    (Path(out) / "metrics.json").write_text(json.dumps(metrics, indent=2))
    from facescan.evaluate.report import write_report

    write_report(metrics, Path(out))
    return metrics


@contextlib.contextmanager
def _progress(show: bool, description: str, total: int, completed: int):
    """A rich progress bar (or nothing); yields a function that advances it."""
    if not show:
        yield lambda n: None
        return
    from rich.progress import Progress

    with Progress(transient=False) as bar:
        task = bar.add_task(description, total=total, completed=completed)
        yield lambda n: bar.advance(task, n)


def _predict_chunk(analyzer, chunk: list, backend: str, wanted: list[str]) -> list[dict]:
    """Prediction rows of a chunk of samples; an item that cannot be read gets error rows."""
    sources = []
    for s in chunk:
        try:
            sources.append(s.source)
        except Exception as e:  # noqa: BLE001 - the loader's error becomes that item's error
            sources.append(e)
    results = analyzer.analyze_many([x for x in sources if not isinstance(x, Exception)])
    rows = []
    for s, src in zip(chunk, sources):
        result = None if isinstance(src, Exception) else next(results)
        rows += _rows(s.id, backend, wanted, result, src)
    return rows


def _described(store: RunStore, backend: str) -> dict:
    """The models, modes and prompt presets that produced a run's predictions."""
    return {key: ", ".join(store.distinct(backend, key)) or None for key in ("model", "mode", "prompt")}


def _rows(item_id: str, backend: str, attributes: list[str], result, source) -> list[dict]:
    base = {"item_id": item_id, "backend": backend}
    if result is None or not result.ok or not result.faces:
        error = str(source) if result is None else (result.error or "no face")
        return [{**base, "attribute": a, "label": None, "label_set": "", "probabilities": {}, "raw": None,
                 "error": f"image: {error}", "model": None, "mode": None, "prompt": None} for a in attributes]
    preds = result.faces[0].attributes
    return [{**base, "attribute": a, "label": preds[a].label, "label_set": preds[a].label_set,
             "probabilities": preds[a].probabilities, "raw": preds[a].raw, "error": preds[a].error,
             "model": preds[a].model, "mode": preds[a].mode, "prompt": preds[a].prompt} for a in attributes]


def _common_set(truth_set: str, pred_set: str) -> str:
    if truth_set == pred_set or taxonomy.has_mapping(pred_set, truth_set):
        return truth_set
    if taxonomy.has_mapping(truth_set, pred_set):
        return pred_set
    raise ValueError(f"predictions in {pred_set} cannot be compared with labels in {truth_set}")


def _to_set(pred: dict, target: str) -> str | None:
    if pred["label"] is None:
        return None
    if pred["label_set"] == target:
        return pred["label"]
    probabilities = pred["probabilities"]
    if isinstance(probabilities, str):  # left unparsed by RunStore.predictions
        probabilities = json.loads(probabilities)
    if probabilities:  # merge probability mass (e.g. 9 age groups → 5), then take the top label
        dist = taxonomy.map_distribution(probabilities, pred["label_set"], target)
        return max(dist, key=dist.get) if sum(dist.values()) > 0 else None
    return taxonomy.map_label(pred["label"], pred["label_set"], target)


def score_run(store: RunStore, n_resamples: int = 1000, seed: int = 0) -> dict:
    """Metrics and fairness breakdowns of a stored run (also used to re-score without predicting)."""
    meta = store.meta()
    identity = meta["identity"]
    items = store.items()
    preds = store.predictions(identity["backend"], parse_probabilities=False)
    out: dict = {"attributes": {}}
    for attr in identity["attributes"]:
        truth_set = meta["label_sets"][attr]
        rows = [(it, preds.get((it["id"], attr))) for it in items if attr in it["labels"]]
        failed = sum(1 for _, p in rows if p is None or (p["error"] or "").startswith("image:"))
        rows = [(it, p) for it, p in rows if p is not None and not (p["error"] or "").startswith("image:")]
        if not rows:
            out["attributes"][attr] = {"n": 0, "failed_images": failed}
            continue
        pred_set = next((p["label_set"] for _, p in rows if p["label_set"]), truth_set)
        common = _common_set(truth_set, pred_set)
        y_true, y_pred, ages, kept = [], [], [], []
        for it, p in rows:
            t = taxonomy.map_label(it["labels"][attr], truth_set, common)
            if t is None:
                continue  # this truth has no equivalent in the predictions' label set
            y_true.append(t)
            y_pred.append(_to_set(p, common))
            ages.append(it["exact_age"])
            kept.append(it)
        m = attribute_metrics(y_true, y_pred, common, ages, n_resamples=n_resamples, seed=seed)
        m["failed_images"] = failed
        m["prediction_label_set"] = pred_set
        m["fairness"] = {}
        for grouping in groupings_for([it["labels"] for it in kept]):
            groups = ["/".join(it["labels"][k] for k in grouping) for it in kept]
            sets = [taxonomy.label_set(meta["label_sets"][k]) for k in grouping]
            order = sorted(set(groups), key=lambda g: [ls.index(p) for ls, p in zip(sets, g.split("/"))])
            m["fairness"][" × ".join(grouping)] = group_accuracy(
                y_true, y_pred, groups, taxonomy.label_set(common).labels, n_resamples=n_resamples, seed=seed,
                order=order)
        out["attributes"][attr] = m
    out["n_items"] = len(items)
    out["mean_accuracy"] = float(np.mean([m["accuracy"] for m in out["attributes"].values() if m.get("n")]))
    return out

"""``facescan eval``: run a backend over a labelled dataset, store every prediction, score it."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from facescan import __version__, taxonomy
from facescan.evaluate.clips import DEFAULT_FPS, clip_analyzer, predict_clip
from facescan.evaluate.fairness import MIN_GROUP_N, group_accuracy, groupings_for
from facescan.evaluate.lock import run_lock
from facescan.evaluate.metrics import attribute_metrics
from facescan.evaluate.store import RunStore
from facescan.registry import parse_spec

EXIT_DEGRADED = 3
"""``facescan eval``'s exit status for a run that finished with too few valid answers (see :func:`run_problems`)."""


def run_eval(dataset: str, split: str, backend: str, out: Path, attributes: Sequence[str] | None = None,
             limit: int | None = None, seed: int = 0, stratify: str | None = None, batch_size: int = 64,
             progress: bool = True, n_resamples: int = 1000, fps: float | None = None,
             min_group_n: int | None = None, predictions=None) -> dict:
    """Evaluate ``backend`` on ``dataset`` (``KIND:PATH``) and write the run folder ``out``.

    The folder holds ``predictions.sqlite`` (the run's set-up in one transaction, then every prediction,
    written batch by batch), the report and, written last, ``metrics.json``. Running again on the same
    folder resumes: items already predicted are not recomputed. One run at a time writes a folder
    (:func:`~facescan.evaluate.lock.run_lock`); a folder holding a run of other settings is refused.
    Raises ``ValueError`` (``StoreError``, ``RunLocked``, ``RunMismatch`` among them) for what cannot run.

    A clip dataset (DFEW, AFEW, RAVDESS, MAFW) is evaluated clip by clip (:mod:`facescan.evaluate.clips`):
    ``fps`` frames per second of each clip are analyzed (default :data:`~facescan.evaluate.clips.DEFAULT_FPS`),
    the clip's prediction is its main track's, and each clip's rows are stored as soon as it is done.

    ``min_group_n`` (default :data:`~facescan.evaluate.fairness.MIN_GROUP_N`) is the fewest items a demographic
    group needs to be compared with others; it only changes the scoring, so a finished run is re-scored with
    another value by running it again.

    ``predictions`` makes the predictions elsewhere (e.g. :class:`facescan.scale.RayPredictions`, on a Ray
    cluster; no model is loaded here): an object with ``supported_attributes(backend)`` and
    ``predict(items, backend, attributes, fps, batch_size)``, an iterator of ``(items done, rows)`` whose rows
    this function stores as it stores its own, so the run folder is the same whichever made them.
    """
    from facescan.datasets import open_dataset

    samples = open_dataset(dataset, split, limit=limit, seed=seed, stratify=stratify)
    if not samples:
        raise ValueError(f"{dataset} ({split}) has no items")
    clips = _clip_dataset(dataset, samples, fps)
    out = Path(out)
    with run_lock(out):
        store = RunStore(out / "predictions.sqlite")  # a corrupt file is refused before the backend loads
        try:
            analyzer, wanted, label_sets = _analyzer(dataset, backend, attributes, samples, clips, predictions)
            identity = {"dataset": dataset, "split": split, "backend": backend, "attributes": wanted,
                        "limit": limit, "seed": seed, "stratify": stratify}
            if clips:
                identity["fps"] = float(fps or DEFAULT_FPS)
            store.set_up(identity, [(s.id, s.labels, s.exact_age) for s in samples], label_sets=label_sets,
                         started=_now(), facescan_version=__version__,
                         excluded=dict(getattr(samples, "excluded", {})), trained_on=_trained_on(analyzer, backend))
            done = store.done(backend, wanted)
            todo = [s for s in samples if s.id not in done]
            step = 1 if clips else batch_size  # a clip takes seconds: each one is stored when it is done
            with _progress(progress, f"eval {backend} on {dataset.split(':')[0]}/{split}", len(samples),
                           len(samples) - len(todo)) as advance:
                if predictions is not None:  # made elsewhere (a Ray cluster), stored here as they come
                    chunks = predictions.predict(todo, backend, wanted, identity.get("fps"), batch_size)
                else:
                    chunks = _local_chunks(analyzer, todo, backend, wanted, identity.get("fps"), step)
                for n, rows in chunks:
                    store.add_predictions(rows)
                    advance(n)
            metrics = score_run(store, n_resamples=n_resamples, seed=seed,
                                min_group_n=MIN_GROUP_N if min_group_n is None else min_group_n)
            store.set_meta(finished=_now())
            metrics["meta"] = {**store.meta(), **_described(store, backend)}
        finally:
            store.close()
        metrics = json_safe(metrics)
        from facescan.evaluate.report import write_report, write_text_atomic

        write_report(metrics, out)
        # Last: a folder with metrics.json holds a finished run with its whole report.
        write_text_atomic(out / "metrics.json", json.dumps(metrics, indent=2, allow_nan=False))
    return metrics


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _clip_dataset(dataset: str, samples: list, fps: float | None) -> bool:
    """Whether ``samples`` are clips (checking ``fps``, which only clips take)."""
    clips = [s for s in samples if getattr(s, "video", False)]
    if clips and len(clips) != len(samples):
        raise ValueError(f"{dataset} mixes clips and images; evaluate them as two datasets")
    if fps is not None and not clips:
        raise ValueError(f"--fps samples the frames of clips, and {dataset} holds images")
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"--fps must be a positive number of frames per second, not {fps}")
    return bool(clips)


def _analyzer(dataset: str, backend: str, attributes: Sequence[str] | None, samples: list, clips: bool = False,
              predictions=None):
    """The backend's Analyzer, the attributes to evaluate, and the label set of every attribute the data labels
    (clips: the analyzer with the video face detector; images: a face crop each, no detection). With
    ``predictions`` made elsewhere no model is loaded here and the analyzer is None."""
    from facescan.backends.base import load_backend
    from facescan.pipeline import Analyzer

    labelled = [a for a in taxonomy.ATTRIBUTES if any(a in s.labels for s in samples)]
    model = load_backend(backend) if predictions is None else None
    supported = model.supported_attributes() if model is not None else predictions.supported_attributes(backend)
    wanted = list(attributes) if attributes else [a for a in labelled if a in supported]
    if model is None and set(wanted) - set(supported):
        raise ValueError(f"backend {backend} cannot predict {', '.join(sorted(set(wanted) - set(supported)))}")
    missing = [a for a in wanted if a not in labelled]
    if missing:
        raise ValueError(f"{dataset} has no {', '.join(missing)} labels")
    if not wanted:
        raise ValueError(f"backend {backend} predicts none of the attributes {dataset} is labelled with")
    label_sets = {a: next(s.label_sets[a] for s in samples if a in s.labels) for a in labelled}
    if model is None:
        return None, wanted, label_sets
    if clips:
        return clip_analyzer(model, wanted), wanted, label_sets
    return Analyzer(backend=model, attributes=wanted, crops=True), wanted, label_sets


def json_safe(value):
    """``value`` with tuples as lists, numpy numbers as Python numbers, and NaN or infinities as None:
    what ``json.dumps(..., allow_nan=False)`` writes, and what a reread ``metrics.json`` holds."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


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


def _local_chunks(analyzer, todo: list, backend: str, wanted: list[str], fps: float | None, step: int):
    """``(items, prediction rows)`` per chunk of ``step`` items predicted in this process (clips when ``fps``)."""
    for start in range(0, len(todo), step):
        chunk = todo[start : start + step]
        if fps is not None:
            rows = [r for s in chunk for r in predict_clip(analyzer, s, backend, wanted, fps)]
        else:
            rows = _predict_chunk(analyzer, chunk, backend, wanted)
        yield len(chunk), rows


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


def _trained_on(analyzer, backend: str) -> dict[str, list[str]] | None:
    """What the backend's models were trained on, per attribute, where it says (the built-in backend does;
    a VLM's or an API's training data is not known here). Recorded when the run is set up, so a re-scored
    run keeps what made its predictions; with predictions made elsewhere (Ray) the built-in models' metadata
    is read here."""
    model = getattr(analyzer, "backend", None)
    if model is None and parse_spec(backend).kind == "builtin":
        from facescan.backends.base import load_backend

        try:
            model = load_backend(backend)
        except (OSError, ValueError):
            return None
    trained_on = getattr(model, "trained_on", None)
    return trained_on() if callable(trained_on) else None


def _described(store: RunStore, backend: str) -> dict:
    """The models, modes and prompt presets that produced a run's predictions."""
    return {key: ", ".join(store.distinct(backend, key)) or None for key in ("model", "mode", "prompt")}


def _rows(item_id: str, backend: str, attributes: list[str], result, source) -> list[dict]:
    base = {"item_id": item_id, "backend": backend}
    if result is None or not result.ok or not result.faces:
        # the row's item id names the image: the message without its path is the same for every image
        error = str(source) if result is None else (result.error or "no face").removeprefix(f"{result.source}: ")
        return [{**base, "attribute": a, "label": None, "label_set": "", "probabilities": {}, "raw": None,
                 "error": f"image: {error}", "model": None, "mode": None, "prompt": None} for a in attributes]
    preds = result.faces[0].attributes
    return [{**base, "attribute": a, "label": preds[a].label, "label_set": preds[a].label_set,
             "probabilities": preds[a].probabilities, "raw": preds[a].raw, "error": preds[a].error,
             "model": preds[a].model, "mode": preds[a].mode, "prompt": preds[a].prompt, "value": preds[a].value}
            for a in attributes]


def _common_set(truth_set: str, pred_set: str) -> str:
    if truth_set == pred_set or taxonomy.has_mapping(pred_set, truth_set):
        return truth_set
    if taxonomy.has_mapping(truth_set, pred_set):
        return pred_set
    raise ValueError(f"predictions in {pred_set} cannot be compared with labels in {truth_set}")


def _years(pred: dict) -> float | None:
    """The age in years a face's age prediction is reported with (``age_years`` of its table row: an exact-age
    model's own, else the median of its group distribution), or None."""
    from facescan.tables import age_in_years

    if pred["label"] is not None and pred.get("value") is not None:
        return float(pred["value"])
    probabilities = pred["probabilities"]
    if isinstance(probabilities, str):  # left unparsed by RunStore.predictions
        probabilities = json.loads(probabilities)
    if (pred["label"] is None or not probabilities or pred["label_set"] not in ("age9", "age5")
            or not sum(probabilities.values()) > 0):
        return None
    return age_in_years(probabilities, pred["label_set"])[0]


def _to_set(pred: dict, target: str) -> tuple[str | None, float | None]:
    """The prediction's label in ``target`` and the probability it gave that label (None: it gave none; a
    generated answer without probabilities is stored as 1 for its label and 0 for the rest, which states none)."""
    if pred["label"] is None:
        return None, None
    probabilities = pred["probabilities"]
    if isinstance(probabilities, str):  # left unparsed by RunStore.predictions
        probabilities = json.loads(probabilities)
    stated = bool(probabilities) and any(0.0 < v < 1.0 for v in probabilities.values())
    if pred["label_set"] == target:
        return pred["label"], (float(probabilities[pred["label"]]) if stated and pred["label"] in probabilities
                               else None)
    if probabilities:  # merge probability mass (e.g. 9 age groups → 5), then take the top label
        dist = taxonomy.map_distribution(probabilities, pred["label_set"], target)
        if not sum(dist.values()) > 0:
            return None, None
        label = max(dist, key=dist.get)
        return label, float(dist[label]) if stated else None
    return taxonomy.map_label(pred["label"], pred["label_set"], target), None


def score_run(store: RunStore, n_resamples: int = 1000, seed: int = 0, min_group_n: int = MIN_GROUP_N) -> dict:
    """Metrics and fairness breakdowns of a stored run (also used to re-score without predicting); groups
    of fewer than ``min_group_n`` items are flagged and not compared (:mod:`facescan.evaluate.fairness`).

    ``problems`` lists what makes the run unusable (:func:`run_problems`); ``mean_accuracy`` is None
    when no attribute could be scored.
    """
    meta = store.meta()
    identity = meta["identity"]
    items = store.items()
    preds = store.predictions(identity["backend"], parse_probabilities=False)
    out: dict = {"attributes": {}}
    for attr in identity["attributes"]:
        rows = [(it, preds.get((it["id"], attr))) for it in items if attr in it["labels"]]
        out["attributes"][attr] = _score_attribute(attr, rows, meta["label_sets"], n_resamples, seed, min_group_n)
    out["n_items"] = len(items)
    scored = [m["accuracy"] for m in out["attributes"].values() if m.get("n")]
    out["mean_accuracy"] = float(np.mean(scored)) if scored else None
    out["problems"] = run_problems(out["attributes"], unit="clip" if "fps" in identity else "image")
    return out


def _failed(p: dict | None) -> bool:
    """A prediction missing, or whose image or clip could not be analyzed (not an answer: left out, counted)."""
    return p is None or (p["error"] or "").startswith(("image:", "clip:"))


def _score_attribute(attr: str, rows: list[tuple[dict, dict | None]], label_sets: dict[str, str],
                     n_resamples: int, seed: int, min_group_n: int = MIN_GROUP_N) -> dict:
    """One attribute's metrics and fairness over its (item, stored prediction) pairs."""
    truth_set = label_sets[attr]
    errors = Counter(_short(p["error"]) if p else "no prediction stored" for _, p in rows if _failed(p))
    failed = sum(errors.values())
    rows = [(it, p) for it, p in rows if not _failed(p)]
    pred_set = next((p["label_set"] for _, p in rows if p["label_set"]), truth_set)
    common = _common_set(truth_set, pred_set) if rows else truth_set
    y_true, y_pred, ages, kept, years, confidences = [], [], [], [], [], []
    for it, p in rows:
        t = taxonomy.map_label(it["labels"][attr], truth_set, common)
        if t is None:
            continue  # this truth has no equivalent in the predictions' label set
        y_true.append(t)
        label, confidence = _to_set(p, common)
        y_pred.append(label)
        confidences.append(confidence)
        ages.append(it["exact_age"])
        years.append(_years(p) if it["exact_age"] is not None else None)
        kept.append(it)
        if y_pred[-1] is None:
            errors[_short(p["error"] or f"no {common} label for the answer {p['label']!r}")] += 1
    if not y_true:
        return {"n": 0, "failed_images": failed, "errors": _top(errors)}
    m = attribute_metrics(y_true, y_pred, common, ages, n_resamples=n_resamples, seed=seed,
                          predicted_years=years if attr == "age" else None, confidences=confidences)
    m["failed_images"] = failed
    m["errors"] = _top(errors)
    m["prediction_label_set"] = pred_set
    m["fairness"] = {}
    for grouping in groupings_for([it["labels"] for it in kept]):
        groups = ["/".join(it["labels"][k] for k in grouping) for it in kept]
        sets = [taxonomy.label_set(label_sets[k]) for k in grouping]
        order = sorted(set(groups), key=lambda g: [ls.index(p) for ls, p in zip(sets, g.split("/"))])
        # reports name a group as the label sets spell it ("Latino/Hispanic × male"), as in every other table
        display = {g: " × ".join(ls.pretty(p) for ls, p in zip(sets, g.split("/"))) for g in order}
        m["fairness"][" × ".join(grouping)] = group_accuracy(
            y_true, y_pred, groups, taxonomy.label_set(common).labels, n_resamples=n_resamples, seed=seed,
            min_n=min_group_n, order=order, display=display)
    return m


def _short(error: str, limit: int = 200) -> str:
    error = " ".join(str(error).split())
    return error if len(error) <= limit else error[: limit - 1] + "…"


def _top(errors: Counter, k: int = 3) -> dict[str, int]:
    """The ``k`` most frequent error messages of an attribute's invalid answers and failed images."""
    return dict(errors.most_common(k))


def run_problems(attributes: dict[str, dict], unit: str = "image") -> list[str]:
    """Why a finished run's numbers cannot be trusted: every image (``unit``: or clip) of an attribute failed,
    or more than half of an attribute's answers (failed images included) are invalid. Empty for a healthy run."""
    problems = []
    for attr, m in attributes.items():
        n, failed = m.get("n") or 0, m.get("failed_images") or 0
        total = n + failed
        bad = failed + round((m.get("invalid_rate") or 0) * n)
        top = next(iter(m.get("errors") or {}), None)
        why = f" (most often: {top})" if top else ""
        if total == 0:
            problems.append(f"{attr}: no item could be scored")
        elif failed == total:
            problems.append(f"{attr}: every {unit} failed{why}")
        elif 2 * bad > total:
            problems.append(f"{attr}: {bad} of {total} answers are invalid{why}")
    return problems

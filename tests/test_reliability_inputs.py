"""Issue 13: no bad input costs anyone else's result.

Every kind of the bad-input corpus (tests/badinputs.py) goes through ``Analyzer.analyze_many``,
``facescan.analyze`` and ``facescan analyze FOLDER`` mixed with good images: nothing escapes, every
input gets exactly one result, each bad one names itself and its problem, and the good ones are analyzed.
"""

from __future__ import annotations

import csv
import threading
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import facescan
from facescan.cli import app
from facescan.imageio import describe_source, expand_inputs
from facescan.pipeline import Analyzer

from .badinputs import Case, corpus, gradient

runner = CliRunner()


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> list[Case]:
    return corpus(tmp_path_factory.mktemp("corpus") / "inputs")


@pytest.fixture(scope="module")
def crops_analyzer() -> Analyzer:
    return Analyzer(attributes="gender", crops=True, batch_images=8)


def _good_inputs(folder: Path, n: int = 4) -> list:
    """Good images as a path, bytes, an array and a PIL image (in crops mode each is one face)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"good_{i}.png"
        gradient(64 + 8 * i, 64).save(p)
        paths.append(p)
    return [paths[0], paths[1].read_bytes(), np.asarray(gradient(80, 80)), gradient(72, 72), *paths[2:]]


def _within(seconds: float, fn):
    """``fn()`` on a thread, failing the test (rather than hanging the suite) if it blocks longer."""
    box = {}
    thread = threading.Thread(target=lambda: box.update(value=fn()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"blocked for over {seconds} s (a FIFO or device opened?)"
    assert "value" in box, "an exception escaped (see the thread's traceback above)"
    return box["value"]


def _interleave(bad: list, good: list) -> list:
    step = max(1, len(bad) // len(good))
    out = []
    for i, item in enumerate(bad):
        if i % step == 0 and good:
            out.append(good.pop(0))
        out.append(item)
    return out + good


def _check_results(inputs: list, results: list, cases: list[Case]) -> None:
    assert len(results) == len(inputs), "every input gets exactly one result"
    expected = {id(c.source): c for c in cases}
    wrong = []
    for source, result in zip(inputs, results):
        assert result.source == describe_source(source), "results come back in input order"
        case = expected.get(id(source))
        if case is not None and case.problem is not None:
            if not (result.error and result.error.startswith(result.source) and case.problem in result.error):
                wrong.append(f"{case.kind}: expected {case.problem!r}, got {result.error!r}")
        elif result.error or len(result.faces) != 1 or "gender" not in result.faces[0].attributes:
            wrong.append(f"{case.kind if case else result.source}: must be analyzed, got {result.error!r}")
    assert not wrong, "\n".join(wrong)


def test_corpus_has_at_least_50_kinds_of_bad_input(cases):
    bad = [c for c in cases if c.problem is not None]
    assert len(bad) >= 50 and len({c.kind for c in cases}) == len(cases)


@pytest.mark.parametrize("workers", [1, 2])
def test_analyze_many_gives_every_input_its_own_result(cases, crops_analyzer, tmp_path, workers):
    inputs = _interleave([c.source for c in cases], _good_inputs(tmp_path / "good", 8))
    results = _within(120, lambda: list(crops_analyzer.analyze_many(inputs, workers=workers)))
    _check_results(inputs, results, cases)


def test_facescan_analyze_list_goes_on_past_bad_inputs(cases, tmp_path):
    inputs = _interleave([c.source for c in cases[::3]], _good_inputs(tmp_path / "good"))
    results = _within(120, lambda: facescan.analyze(inputs, attributes="gender", crops=True))
    _check_results(inputs, results, cases)


def test_default_detector_survives_the_corpus(cases, tmp_path):
    analyzer = Analyzer(attributes="gender")
    bad = [c.source for c in cases if c.problem is not None][::4]
    good = [gradient(), np.full((50, 70, 3), 128, np.uint8), gradient(1, 1), gradient(3000, 2)]
    inputs = _interleave(bad, list(good))
    results = _within(120, lambda: list(analyzer.analyze_many(inputs)))
    assert len(results) == len(inputs)
    by_source = {id(s): r for s, r in zip(inputs, results)}
    assert all(by_source[id(s)].error for s in bad)
    assert all(by_source[id(g)].ok and by_source[id(g)].faces == [] for g in good), "no face, no error"


@pytest.mark.data
def test_real_faces_are_still_found_between_bad_inputs(cases, photos, tmp_path):
    analyzer = Analyzer(attributes="age,gender")
    bad = [c.source for c in cases if c.problem is not None][1::5]
    good = [photos / "single_face.jpg", (photos / "multi_face.jpg").read_bytes()]
    inputs = _interleave(bad, list(good))
    results = _within(120, lambda: list(analyzer.analyze_many(inputs)))
    assert len(results) == len(inputs)
    faces = [len(r.faces) for s, r in zip(inputs, results) if any(s is g for g in good)]
    assert faces == [1, 5]
    assert all(r.error for s, r in zip(inputs, results) if not any(s is g for g in good))


def _cli_csv(tmp_path: Path, *args) -> tuple[object, list[dict]]:
    out = tmp_path / "out.csv"
    res = _within(180, lambda: runner.invoke(app, ["analyze", *map(str, args), "--crops", "-a", "gender", "-q",
                                                   "--csv", str(out)]))
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    return res, list(csv.DictReader(out.open(encoding="utf-8")))


def test_cli_folder_run_completes_and_keeps_the_good_rows(cases, tmp_path):
    folder = next(c.source for c in cases if c.kind == "empty.jpg").parent
    good = tmp_path / "good"
    _good_inputs(good, 3)
    res, rows = _cli_csv(tmp_path, folder, good)
    assert res.exit_code == 1, res.output
    not_media: list = []
    listed = expand_inputs([folder, good], skipped=not_media)
    assert {r["source"] for r in rows} == {str(p) for p in listed}, "every listed entry has a row"
    # files that are no image or video by their suffix (archive.zip) are skipped and said to be, not failed
    assert not_media and f"skipped {len(not_media)} file(s)" in res.output
    assert {p.suffix for p in not_media} <= {".zip", ".txt", ".json", ".csv", ".md"}, not_media
    rows_by_source = {r["source"]: r for r in rows}
    for case in cases:
        if isinstance(case.source, Path) and case.listed and case.source not in not_media:
            row = rows_by_source[str(case.source)]
            assert bool(row["error"]) == (case.problem is not None), (case.kind, row["error"])
    for p in good.iterdir():
        assert rows_by_source[str(p)]["gender"] in ("male", "female") and not rows_by_source[str(p)]["error"]
    assert f"{sum(1 for r in rows if r['error'])} failed" in res.output


def test_cli_file_named_on_the_command_line_that_cannot_be_read_is_its_own_error(cases, tmp_path):
    good = tmp_path / "good.png"
    gradient().save(good)
    named = [c.source for c in cases if c.kind in ("fifo", "link to /dev/zero", "broken link", "missing file",
                                                   "link loop", "socket", "empty.jpg")]
    res, rows = _cli_csv(tmp_path, *named, good)
    assert res.exit_code == 1, res.output
    assert [r["source"] for r in rows] == [str(p) for p in [*named, good]]
    assert all(r["error"].startswith(r["source"]) for r in rows[:-1])
    assert rows[-1]["gender"] and not rows[-1]["error"]

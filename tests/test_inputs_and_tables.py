"""Inputs the way the ecosystem passes them, and results as DataFrames (issue 15).

The same photo as a path, an OpenCV BGR array with ``channels="bgr"``, bytes, base64 text, a data
URI, a BytesIO, a URL on a local HTTP server, stdin and a glob gives identical results; a BGR array
passed as RGB is warned about. The DataFrame has the documented, typed, identifier-safe columns,
action units / head pose / descriptors when asked, and round-trips through Parquet.
"""

from __future__ import annotations

import base64
import functools
import http.server
import io
import json
import threading
import warnings

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

import facescan
from facescan.cli import app
from facescan.imageio import ImageLoadError, load_image
from facescan.pipeline import Analyzer
from facescan.tables import age_in_years, safe_name
from tests.conftest import shared


@pytest.fixture(scope="module")
def analyzer():
    return Analyzer()


@pytest.fixture(scope="module")
def photo():
    return shared("photos", "multi_face.jpg")


@pytest.fixture(scope="module")
def server(photo):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(photo.parent))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _signature(result):
    assert result.error is None, result.error
    return [(round(f.box.x), round(f.box.y), {a: p.label for a, p in f.attributes.items()},
             round(f.attributes["age"].probabilities["20-29"], 4)) for f in result.faces]


def test_every_input_form_gives_the_same_result(analyzer, photo, server):
    data = photo.read_bytes()
    reference = _signature(analyzer.analyze(photo))
    assert len(reference) == 5
    bgr = Analyzer(channels="bgr")
    forms = {
        "str path": analyzer.analyze(str(photo)),
        "BGR array, channels='bgr'": bgr.analyze(cv2.imread(str(photo))),
        "RGB array": analyzer.analyze(np.asarray(Image.open(photo).convert("RGB"))),
        "bytes": analyzer.analyze(data),
        "base64": analyzer.analyze(base64.b64encode(data).decode()),
        "data URI": analyzer.analyze("data:image/jpeg;base64," + base64.b64encode(data).decode()),
        "BytesIO": analyzer.analyze(io.BytesIO(data)),
        "open file": analyzer.analyze(photo.open("rb")),
        "URL": analyzer.analyze(f"{server}/{photo.name}"),
        "facescan.analyze(BGR, channels='bgr')": facescan.analyze(cv2.imread(str(photo)), channels="bgr"),
    }
    for name, result in forms.items():
        assert _signature(result) == reference, name
    assert forms["URL"].source == f"{server}/{photo.name}" and forms["BytesIO"].source == "<BytesIO>"


def test_bgr_array_passed_as_rgb_is_warned_about(analyzer, photo):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = analyzer.analyze(cv2.imread(str(photo)))
    assert result.warnings and "channels='bgr'" in result.warnings[0]
    assert any("channels='bgr'" in str(w.message) for w in caught)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert not analyzer.analyze(np.asarray(Image.open(photo).convert("RGB"))).warnings
        assert not Analyzer(channels="bgr").analyze(cv2.imread(str(photo))).warnings
    with pytest.raises(ValueError, match="channels"):
        Analyzer(channels="rbg")


def test_bad_urls_base64_and_streams_are_clear_errors(analyzer, server):
    assert "HTTP 404" in analyzer.analyze(f"{server}/missing.jpg").error
    assert "download failed" in analyzer.analyze("http://127.0.0.1:9/x.jpg").error
    assert "not valid base64" in analyzer.analyze("data:image/jpeg;base64,@@@").error
    assert "text mode" in analyzer.analyze(io.StringIO("abc")).error
    with pytest.raises(ImageLoadError, match="not fetched"):
        load_image(f"{server}/x.jpg", allow_urls=False)


def test_cli_reads_stdin_globs_and_urls_and_writes_stdout(photo, server, tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["analyze", "-", "--json", "-", "-a", "gender"], input=photo.read_bytes())
    assert r.exit_code == 0, r.output
    records = json.loads(r.stdout)
    assert records[0]["source"] == "<stdin>" and len(records[0]["faces"]) == 5
    pattern = str(photo.parent / "*face.jpg")  # multi_face.jpg, no_face.jpg, single_face.jpg
    r = runner.invoke(app, ["analyze", pattern, f"{server}/{photo.name}", "--csv", "-", "-a", "gender"])
    assert r.exit_code == 0, r.output
    frame = pd.read_csv(io.StringIO(r.stdout))
    assert set(frame.source) == {str(photo.parent / n) for n in ("multi_face.jpg", "no_face.jpg",
                                                                  "single_face.jpg")} | {f"{server}/{photo.name}"}
    assert not (tmp_path / "-").exists()


def test_dataframe_columns_types_and_parquet_round_trip(analyzer, photo, tmp_path):
    results = [analyzer.analyze(photo), analyzer.analyze(shared("photos", "no_face.jpg"))]
    df = facescan.to_dataframe(results)
    assert len(df) == 6  # five faces, and one row for the photo without any
    for column in ("source", "face", "x", "y", "w", "h", "face_score", "kp_right_eye_x", "kp_nose_tip_y",
                   "age", "age_score", "age_p_0_2", "age_p_20_29", "age_p_70_plus", "age_years", "age_years_low",
                   "age_years_high", "gender", "gender_p_female", "emotion", "emotion_p_happy"):
        assert column in df.columns, column
    assert all(c.isidentifier() for c in df.columns)
    assert str(df.face.dtype) == "Int64" and str(df.source.dtype) == "string"
    assert list(df.age.cat.categories) == ["0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69",
                                           "70+"] and df.age.cat.ordered
    faces = df.dropna(subset=["face"])
    assert ((faces.age_years_low <= faces.age_years) & (faces.age_years <= faces.age_years_high)).all()
    assert (faces.x.round(1) == faces.x).all()
    df.to_parquet(tmp_path / "r.parquet")
    back = pd.read_parquet(tmp_path / "r.parquet")
    pd.testing.assert_frame_equal(back, df)


def test_dataframe_has_action_units_pose_and_descriptors_when_asked(photo):
    result = facescan.analyze(photo, explain=True, describe=True)
    df = facescan.to_dataframe(result)
    assert {"au4", "au6", "au12", "explanation", "head_yaw", "head_pitch", "head_roll", "clothing_colours",
            "hair_colour", "eyewear", "beard"} <= set(df.columns), sorted(df.columns)
    assert df.au12.notna().any() and df.head_yaw.abs().max() < 90
    plain = facescan.to_dataframe(facescan.analyze(photo))
    assert "au12" not in plain.columns and "head_yaw" not in plain.columns


def test_csv_and_dataframe_share_columns(photo, tmp_path):
    out = tmp_path / "r.csv"
    r = CliRunner().invoke(app, ["analyze", str(photo), "--csv", str(out), "-q"])
    assert r.exit_code == 0, r.output
    assert list(pd.read_csv(out).columns) == list(facescan.to_dataframe(facescan.analyze(photo)).columns)


def test_age_in_years_and_names():
    assert age_in_years({"20-29": 1.0}) == (25.0, 21.0, 29.0)
    age, low, high = age_in_years({"20-29": 0.5, "40-49": 0.5})
    assert age == 35.0 and low < 25 < 45 < high  # the middle of the gap between the two groups
    assert age_in_years({"0-2": 0.6, "3-9": 0.4})[0] == 2.5  # the median: 60 % of the mass lies below 3 years
    assert age_in_years({"20-29": 0.6, "60-69": 0.4})[0] == 28.3  # the median; the mean would say 41
    assert safe_name("70+") == "70_plus" and safe_name("AU1+2") == "au1_2" and safe_name("East Asian") == "east_asian"


def test_analyze_a_folder_of_photos_and_videos_in_order():
    folder = shared("photos")
    results = facescan.analyze(folder, fps=5)
    kinds = {r.source.rsplit("/", 1)[-1]: type(r).__name__ for r in results}
    assert kinds["single_face.mp4"] == "VideoResult" and kinds["multi_face.jpg"] == "ImageResult"
    assert [r.source for r in results] == sorted(r.source for r in results)
    assert all(r.error is None for r in results), [r.error for r in results if r.error]
    people = facescan.to_dataframe(results, per="person")
    assert len(people) == 1 and people.gender.iloc[0] == "male"


def test_plot_helpers_draw_faces_and_shares_by_group(photo, tmp_path):
    from facescan.plots import plot_shares, show_faces

    result = facescan.analyze(photo)
    picture = show_faces(result, max_side=600)
    assert max(picture.size) == 600
    df = facescan.to_dataframe(result)
    ax = plot_shares(df, "emotion", by="gender")
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert any(label.startswith("female (n=") for label in labels) and any(label.startswith("male (n=")
                                                                          for label in labels)
    ax.figure.savefig(tmp_path / "shares.png")
    with pytest.raises(ValueError, match="race"):
        plot_shares(df, "race")


def test_whole_file_outputs_keep_rows_on_disk_and_write_them_exactly(tmp_path, monkeypatch):
    import csv

    import pyarrow.parquet as pq

    from facescan import outputs
    from facescan.schema import ImageResult
    from facescan.tables import result_rows

    monkeypatch.setattr(outputs, "PARQUET_GROUP_ROWS", 3)  # several row groups; the error column is null in the first
    results = [ImageResult(source=f"p{i}.jpg", width=10 + i, height=8, error="broken" if i == 4 else None)
               for i in range(7)]
    paths = {"json": tmp_path / "r.json", "csv": tmp_path / "r.csv", "parquet": tmp_path / "r.parquet"}
    with outputs.ResultOutputs(paths) as out:
        for r in results:
            out.add(r)
        assert isinstance(out._records, outputs._Spool) and len(out._records) == 7  # not a list of dicts
    assert paths["json"].read_text() == json.dumps([r.model_dump(mode="json") for r in results], indent=2)
    rows = result_rows(results)
    with paths["csv"].open(newline="") as f:
        got = list(csv.DictReader(f))
    assert [g["source"] for g in got] == [r["source"] for r in rows] and got[4]["error"] == "broken"
    table = pq.read_table(paths["parquet"])
    assert table.num_rows == 7 and table.column("error").to_pylist() == [r["error"] for r in rows]
    assert table.column("image_width").to_pylist() == list(range(10, 17))
    empty = io.StringIO()
    outputs._write_json_array(empty, [])
    assert empty.getvalue() == "[]"

import csv

import pyarrow.parquet as pq
import pytest

from facescan import outputs, schema
from facescan.schema import AttributePrediction, Box, Face, ImageResult


def _result():
    age = AttributePrediction.from_probabilities("age", "age9", [0, 0, 0, 2, 1, 1, 0, 0, 0], "builtin", "m@1")
    emo = AttributePrediction.invalid("emotion", "fer7", "hf:x", "x", "answer maps to no label", raw="blue")
    face = Face(index=0, box=Box(x=1, y=2, width=30, height=40), score=0.9, keypoints=[(5.0, 6.0)],
                attributes={"age": age, "emotion": emo})
    return [
        ImageResult(source="a.jpg", width=100, height=80, faces=[face], detector="mediapipe:auto", backend="builtin"),
        ImageResult(source="b.jpg", width=10, height=10),
        ImageResult(source="c.jpg", error="c.jpg: file is empty"),
    ]


def test_from_probabilities_normalizes_and_picks_top():
    a = _result()[0].faces[0].attributes["age"]
    assert a.label == "20-29" and a.score == pytest.approx(0.5)
    assert sum(a.probabilities.values()) == pytest.approx(1.0)
    assert list(a.probabilities) == ["0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70+"]
    with pytest.raises(ValueError):
        AttributePrediction.from_probabilities("age", "age9", [1, 2], "b", "m")


def test_invalid_prediction_has_no_label_or_score():
    e = _result()[0].faces[0].attributes["emotion"]
    assert not e.valid and e.score is None and e.raw == "blue"


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_json_round_trip(tmp_path, fmt):
    results = _result()
    path = tmp_path / f"r.{fmt}"
    outputs.WRITERS[fmt](results, path)
    back = schema.read_json(path) if fmt == "json" else schema.read_jsonl(path)
    assert back == results
    assert not back[2].ok and back[0].faces[0].attributes["age"].label == "20-29"


def test_csv_one_row_per_face_and_no_image_lost(tmp_path):
    path = tmp_path / "r.csv"
    outputs.WRITERS["csv"](_result(), path)
    rows = list(csv.DictReader(path.open()))
    assert [r["source"] for r in rows] == ["a.jpg", "b.jpg", "c.jpg"]
    assert rows[0]["age"] == "20-29" and float(rows[0]["age_p_20_29"]) == pytest.approx(0.5)
    assert rows[0]["emotion"] == "" and rows[0]["emotion_error"] == "answer maps to no label"
    assert rows[2]["error"] == "c.jpg: file is empty" and rows[1]["face"] == ""


def test_parquet_matches_csv_rows(tmp_path):
    path = tmp_path / "r.parquet"
    outputs.WRITERS["parquet"](_result(), path)
    table = pq.read_table(path).to_pylist()
    assert len(table) == 3
    assert table[0]["age"] == "20-29" and table[0]["w"] == 30
    assert table[1]["face"] is None and table[2]["error"].endswith("file is empty")

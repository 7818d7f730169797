"""``--min-quality``: weak faces keep their box and quality record, are marked with the reasons, get no
attributes, and are not chosen by ``ask``; every entry point (Python, CLI, service) reads the same floor."""

import base64
import json

import pytest
from typer.testing import CliRunner

from facescan.ask import resolve
from facescan.ask.answer import CAUTION
from facescan.backends.builtin import BuiltinBackend
from facescan.cli import app
from facescan.detect.quality import QualityFloor
from facescan.pipeline import Analyzer
from facescan.schema import AttributePrediction, Box, Face, FaceQuality
from facescan.tables import result_rows

from .conftest import shared

runner = CliRunner()


def test_floor_text_is_read_strictly():
    floor = QualityFloor.parse(" size=32, blur=40,yaw=60 ,outside=0.3")
    assert floor == QualityFloor(size=32, blur=40, yaw=60, outside=0.3)
    assert QualityFloor.parse(str(floor)) == floor
    assert QualityFloor.parse(None) is None and QualityFloor.parse("") is None and QualityFloor.parse(" , ") is None
    for bad, says in (("sise=32", "name among size, blur, yaw, outside"), ("size", "name=value"),
                      ("size=big", "'big' is not a number"), ("outside=2", "from 0 to 1"), ("blur=-1", "from 0"),
                      ("yaw=nan", "finite number from 0"), ("yaw=200", "from 0 to 90"), ("blur=inf", "finite"),
                      ("size=32,size=40", "size is given twice"),
                      ("size=32;blur=40", "separate the parts with commas")):
        with pytest.raises(ValueError, match=says):
            QualityFloor.parse(bad)


def test_floor_names_each_failure_and_does_not_judge_an_unknown_yaw():
    floor = QualityFloor(size=32, blur=40, yaw=60, outside=0.3)
    weak = FaceQuality(size=20, yaw=-75, roll=0, blur=12.5, outside=0.5)
    assert floor.failures(weak) == ["size 20 px < 32", "blur 12.5 < 40", "yaw -75° beyond ±60", "outside 0.5 > 0.3"]
    assert floor.failures(FaceQuality(size=32, yaw=60, blur=40, outside=0.3)) == []  # the floor itself passes
    assert floor.failures(FaceQuality(size=50, yaw=None, blur=100)) == []  # no keypoints: yaw not judged
    assert QualityFloor(size=10).failures(weak) == []


class _Counting:
    """The built-in backend, counting the faces it is sent."""

    def __init__(self, backend):
        self.inner, self.name, self.sent = backend, backend.name, 0

    def supported_attributes(self):
        return self.inner.supported_attributes()

    def predict(self, faces, attributes):
        self.sent += len(faces)
        return self.inner.predict(faces, attributes)


@pytest.fixture(scope="module")
def backend():
    return BuiltinBackend()


def test_faces_under_the_floor_are_marked_and_not_sent_and_the_others_are_unchanged(backend):
    photo = shared("photos", "multi_face.jpg")
    plain = Analyzer(backend=backend, attributes="age,gender,emotion").analyze(photo)
    sizes = sorted(f.quality.size for f in plain.faces)
    cut = (sizes[1] + sizes[2]) / 2  # two faces under it, three over
    counting = _Counting(backend)
    floored = Analyzer(backend=counting, attributes="age,gender,emotion", min_quality=f"size={cut}").analyze(photo)
    assert counting.sent == 3
    assert [f.box for f in floored.faces] == [f.box for f in plain.faces]  # nothing is dropped
    for before, after in zip(plain.faces, floored.faces):
        if before.quality.size < cut:
            assert after.weak == [f"size {before.quality.size:g} px < {cut:g}"] and after.attributes == {}
            assert after.quality == before.quality
        else:
            assert after.weak is None
            assert {a: p.label for a, p in after.attributes.items()} == \
                {a: p.label for a, p in before.attributes.items()}
            assert after.attributes["age"].probabilities == pytest.approx(before.attributes["age"].probabilities)
    rows = result_rows([floored])
    assert sum(1 for r in rows if r.get("weak")) == 2 and all(r.get("age") is None for r in rows if r.get("weak"))


def test_every_face_weak_leaves_the_backend_idle(backend):
    counting = _Counting(backend)
    result = Analyzer(backend=counting, min_quality="size=5000").analyze(shared("photos", "multi_face.jpg"))
    assert counting.sent == 0 and result.ok and len(result.faces) == 5 and all(f.weak for f in result.faces)


def _face(i, x, size, gender="female", blur=300.0):
    pred = AttributePrediction.from_probabilities("gender", "gender", [0.9, 0.1] if gender == "male" else [0.1, 0.9],
                                                  "test", "test")
    return Face(index=i, box=Box(x=x, y=100, width=size, height=size), score=0.9, attributes={"gender": pred},
                quality=FaceQuality(size=size, yaw=0, roll=0, blur=blur))


def test_ask_cautions_about_a_weak_choice_and_says_when_the_person_is_under_the_floor():
    faces = [_face(0, 10, 20), _face(1, 200, 90), _face(2, 400, 95, "male")]
    answer = resolve("How old is the leftmost woman?", faces)
    assert answer.status == "answered" and answer.face == 0
    assert any(r.startswith("caution: face #0 is a weak detection (size 20 px < 24") for r in answer.reasons)
    assert answer.quality["size"] == 20 and answer.as_dict()["quality"] == answer.quality
    faces[0].weak = QualityFloor(size=32).failures(faces[0].quality)
    faces[0].attributes = {}  # as the analyzer leaves a face under the floor
    answer = resolve("How old is the leftmost woman?", faces)  # the woman filter cannot pick a face without gender
    assert answer.status == "answered" and answer.face == 1 and not any("caution" in r for r in answer.reasons)
    answer = resolve("How old is the leftmost person?", faces)  # "leftmost" still means the leftmost person
    assert answer.status == "weak" and answer.face == 0 and answer.answer == {}
    assert answer.reasons[-1] == "face #0 is under --min-quality (size 20 px < 32): its attributes were not predicted"
    faces[1].weak, faces[1].attributes = ["size 90 px < 100"], {}
    answer = resolve("Is the woman happy?", faces)  # both women are under the floor: said, not "no woman"
    assert answer.status == "no match" and answer.reasons[-1] == ("2 face(s) under --min-quality have no attributes "
                                                                  "to match: #0, #1")
    assert str(CAUTION) == "size=24,blur=40,yaw=60,outside=0.3"  # the caution floor the README states


def test_cli_analyze_and_ask_take_the_floor_and_refuse_a_bad_one(tmp_path):
    photo = shared("photos", "multi_face.jpg")
    out = tmp_path / "r.json"
    r = runner.invoke(app, ["analyze", str(photo), "--min-quality", "size=100", "--json", str(out)])
    assert r.exit_code == 0, r.output
    faces = json.loads(out.read_text())[0]["faces"]
    weak = [f for f in faces if f["weak"]]
    assert weak and all(f["quality"]["size"] < 100 and f["attributes"] == {} for f in weak)
    assert all(f["attributes"] for f in faces if not f["weak"])
    assert "weak: size" in r.output  # the terminal table says why
    r = runner.invoke(app, ["analyze", str(photo), "--min-quality", "size=big"])
    assert r.exit_code == 2 and "'big' is not a number" in r.output
    r = runner.invoke(app, ["analyze", str(shared("photos", "single_face.mp4")), "--min-quality", "size=32"])
    assert r.exit_code == 2 and "--min-quality is for photos, and " in r.output and "single_face.mp4" in r.output
    from facescan.video import analyze_video

    with pytest.raises(ValueError, match="min_quality is for photos"):
        analyze_video(shared("photos", "single_face.mp4"), min_quality="size=32")
    r = runner.invoke(app, ["ask", str(photo), "How old is the rightmost person?", "--min-quality", "size=100",
                            "--json", str(tmp_path / "a.json")])
    assert r.exit_code == 0, r.output
    answer = json.loads((tmp_path / "a.json").read_text())["answer"]
    assert answer["status"] == "answered" and answer["quality"]["size"] >= 100
    r = runner.invoke(app, ["ask", str(photo), "How old is the leftmost person?", "--min-quality", "size=100",
                            "--json", str(tmp_path / "a.json")])
    answer = json.loads((tmp_path / "a.json").read_text())["answer"]
    assert answer["status"] == "weak" and answer["face"] == 0 and "under --min-quality" in answer["reasons"][-1]
    r = runner.invoke(app, ["ask", str(photo), "How old is the leftmost person?", "--json", "-"])
    assert r.exit_code == 0 and json.loads(r.stdout)["answer"]["status"] == "answered"  # the answer alone on stdout


def test_service_reads_the_floor_and_refuses_a_bad_one():
    pytest.importorskip("fastapi", reason="service tests need the serve extra (fastapi)")
    from facescan.serve import ServeConfig, create_app

    from .test_serve import TestClient

    data = base64.b64encode(shared("photos", "multi_face.jpg").read_bytes()).decode()
    with TestClient(create_app(ServeConfig())) as client:
        r = client.post("/v1/analyze", json={"image_base64": data, "min_quality": "size=100"})
        assert r.status_code == 200, r.text
        faces = r.json()["faces"]
        assert 0 < sum(1 for f in faces if f["weak"]) < len(faces)
        r = client.post("/v1/analyze", json={"image_base64": data, "min_quality": "sise=1"})
        assert r.status_code == 422 and "name among size" in r.json()["detail"]
        r = client.post("/v1/ask", data={"question": "the leftmost person", "min_quality": "size=100"},
                        files={"image": ("m.jpg", base64.b64decode(data), "image/jpeg")})
        assert r.status_code == 200 and r.json()["answer"]["status"] == "weak"


def test_a_cluster_run_records_the_floor_only_when_given():
    from facescan.scale.analyze import Settings

    assert "min_quality" not in Settings().identity()  # folders from before the option hold the same settings
    assert Settings(min_quality="size=32").identity()["min_quality"] == "size=32"


def test_a_photo_whose_faces_are_all_weak_is_still_described_alone_or_in_a_batch(backend):
    photos = [shared("photos", "multi_face.jpg"), shared("photos", "single_face.jpg")]
    analyzer = Analyzer(backend=backend, describe=True, min_quality="size=150")
    alone = analyzer.analyze(photos[0])
    assert alone.faces and all(f.weak and f.description and "clothing_colours" in f.description
                               for f in alone.faces)
    batch = list(analyzer.analyze_many(photos))
    assert [f.description for f in batch[0].faces] == [f.description for f in alone.faces]


def test_the_floor_text_keeps_its_precision():
    assert str(QualityFloor.parse("blur=40.00001")) == "blur=40.00001"

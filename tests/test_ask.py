"""facescan ask: reading questions, resolving them against faces, the VLM box chooser, and the
person descriptors on the shared group photo."""

import numpy as np
import pytest
from typer.testing import CliRunner

from facescan.ask import parse_question, resolve, resolve_with_vlm
from facescan.schema import AttributePrediction, Box, Face

from .conftest import shared


def _pred(attr, label, label_set, p=0.9):
    from facescan import taxonomy

    labels = taxonomy.label_set(label_set).labels
    rest = (1 - p) / (len(labels) - 1)
    return AttributePrediction.from_probabilities(attr, label_set, [p if lab == label else rest for lab in labels],
                                                  "test", "test")


def _face(i, x, y, gender, emotion="happy", age="20-29", size=50, **description):
    d = {"clothing_colours": [], "clothing_colour_shares": {}, "clothing_texture": 1.0, "hair_colour": None,
         "hair_length": None, "eyewear": "none seen", "beard": False, "posture": {}}
    d.update(description)
    return Face(index=i, box=Box(x=x, y=y, width=size, height=size), score=1.0, description=d,
                attributes={"gender": _pred("gender", gender, "gender"), "emotion": _pred("emotion", emotion, "fer7"),
                            "age": _pred("age", age, "age9")})


@pytest.fixture()
def group():
    """Four people left to right; #2 wears sunglasses and red; #3 is older and not smiling."""
    return [_face(0, 0, 100, "female", clothing_colour_shares={"black": 0.7}),
            _face(1, 100, 40, "male", clothing_colour_shares={"light blue": 0.3, "black": 0.2}),
            _face(2, 200, 100, "female", eyewear="sunglasses", clothing_colour_shares={"red": 0.5}),
            _face(3, 300, 110, "male", emotion="neutral", age="60-69", size=70,
                  clothing_colour_shares={"grey": 0.6})]


def test_parse_reads_reference_and_what_is_asked():
    q = parse_question("How old is the man in the light blue shirt?")
    assert q.reference.gender == "male" and q.reference.colours[0][0] == "light blue" and q.asks == ["age"]
    q = parse_question("What is the third person from the right feeling?")
    assert q.reference.ordinal == (3, "right") and "emotion" in q.asks
    q = parse_question("the one who is not smiling")
    assert q.reference.emotions == ("happy",) and q.reference.not_emotion
    q = parse_question("Who is the oldest woman?")
    assert q.reference.superlative == ("age", "max") and q.reference.gender == "female"
    q = parse_question("the woman in the leopard print top")
    assert q.reference.pattern == "leopard print" and q.reference.colours == []
    assert parse_question("the person without sunglasses").reference.eyewear is False


@pytest.mark.parametrize("question, expected", [
    ("the second person from the left", 1), ("the leftmost man", 1), ("the rightmost woman", 2),
    ("the person with sunglasses", 2), ("the woman in red", 2), ("the man in the light blue shirt", 1),
    ("the one who is not smiling", 3), ("the oldest person", 3), ("the person at the top", 1),
    ("the person at the back", 1), ("the person in front", 3), ("the first person from the right", 3),
    ("How old is face #2?", 2), ("the 2nd from right", 2), ("the last person from the left", 3),
])
def test_resolves_each_kind_of_reference(group, question, expected):
    answer = resolve(question, group)
    assert answer.status == "answered", answer.reasons
    assert answer.face == expected and answer.box["x"] == group[expected].box.x
    assert answer.reasons  # says why


def test_ambiguous_and_unmatched_references_list_the_candidates(group):
    answer = resolve("How old is the woman?", group)
    assert answer.status == "ambiguous" and [c.index for c in answer.candidates] == [0, 2]
    answer = resolve("the man in the green jacket", group)
    assert answer.status == "no match" and len(answer.candidates) == 4 and "green" in answer.reasons[-1]
    answer = resolve("the sixth person from the left", group)
    assert answer.status == "no match"


def test_answer_holds_what_was_asked(group):
    answer = resolve("How old is the person with sunglasses?", group)
    assert set(answer.answer) == {"age"} and answer.answer["age"]["label"] == "20-29"
    answer = resolve("the person with sunglasses", group)
    assert {"age", "gender", "emotion", "clothing_colours", "eyewear"} <= set(answer.answer)


class FakeVLM:
    name = "fake-vlm"

    def __init__(self, reply):
        self.reply, self.prompts, self.images = reply, [], []

    def ask_image(self, image, prompt, max_new_tokens=None):
        self.prompts.append(prompt)
        self.images.append(image)
        return self.reply


def test_vlm_chooses_among_numbered_boxes(group):
    image = np.full((200, 400, 3), 90, np.uint8)
    vlm = FakeVLM("Box 3.")
    answer = resolve_with_vlm(vlm, image, "How old is the woman in the red top?", group)
    assert answer.status == "answered" and answer.face == 2 and answer.method == "vlm:fake-vlm"
    assert "the woman in the red top" in vlm.prompts[0] and "4 faces" in vlm.prompts[0]
    assert (vlm.images[0] != image).any()  # the boxes are drawn on the image sent
    for reply, status in (("maybe 2 or 3", "invalid answer"), ("I cannot tell", "invalid answer"), ("0", "no match"),
                          ("7", "invalid answer")):
        answer = resolve_with_vlm(FakeVLM(reply), image, "the woman in red", group)
        assert answer.status == status and answer.face is None and len(answer.candidates) == 4
        assert reply in answer.reasons[0]  # the raw answer is recorded


# --------------------------------------------------------------------- the shared group photo
@pytest.fixture(scope="module")
def group_photo():
    from facescan.pipeline import Analyzer

    photo = shared("photos", "multi_face.jpg")
    result = Analyzer(describe=True).analyze(photo)
    assert len(result.faces) == 5
    return photo, result


# faces left to right: 0 sunglasses man (top left, black T-shirt), 1 long blond hair woman (black hoodie),
# 2 curly-haired man at the back (light blue shirt), 3 brunette woman (black top), 4 ginger woman (leopard top)
MULTI_FACE_QUESTIONS = [
    ("the person with sunglasses", 0), ("How old is the man in the light blue shirt?", 2),
    ("What is the woman in the leopard print top feeling?", 4), ("the rightmost woman", 4),
    ("the leftmost woman", 1), ("the second person from the left", 1), ("the person at the top left", 0),
    ("the man at the back", 2), ("the red-haired woman", 4), ("the woman with blond hair", 1),
    ("the man wearing black", 0), ("the first person from the right", 4),
]


@pytest.mark.parametrize("question, expected", MULTI_FACE_QUESTIONS)
def test_questions_about_the_group_photo(group_photo, question, expected):
    _, result = group_photo
    answer = resolve(question, result.faces)
    assert (answer.status, answer.face) == ("answered", expected), answer.reasons


def test_group_photo_descriptors(group_photo):
    _, result = group_photo
    d = [f.description for f in result.faces]
    assert [x["eyewear"] for x in d] == ["sunglasses"] + ["none seen"] * 4
    light_blue = [x["clothing_colour_shares"].get("light blue", 0) for x in d]
    assert int(np.argmax(light_blue)) == 2
    assert int(np.argmax([x["clothing_texture"] for x in d])) == 4  # the leopard print
    assert d[4]["hair_colour"] == "red" and d[1]["hair_colour"] == "blond"
    assert "black" in d[0]["clothing_colours"] and d[0]["posture"]["body"] == "sitting"
    for x in d:
        assert set(x["head_pose"]) == {"yaw", "pitch", "roll"} and abs(x["head_pose"]["roll"]) < 30


def test_nobody_matches_is_said_not_guessed(group_photo):
    _, result = group_photo
    answer = resolve("the angry person", result.faces)  # nobody looks angry (four smile, one is near neutral)
    assert answer.status == "no match" and len(answer.candidates) == 5


def test_cli_ask_answers_and_annotates(group_photo, tmp_path):
    import json

    from facescan.cli import app

    photo, _ = group_photo
    out, js = tmp_path / "chosen.png", tmp_path / "a.json"
    r = CliRunner().invoke(app, ["ask", str(photo), "How old is the man in the light blue shirt?",
                                 "--annotate", str(out), "--json", str(js)])
    assert r.exit_code == 0, r.output
    assert "answered" in r.output and "person #2" in r.output and "age: 20-29" in r.output
    data = json.loads(js.read_text())
    assert data["answer"]["face"] == 2 and len(data["result"]["faces"]) == 5
    from PIL import Image

    img = np.asarray(Image.open(out).convert("RGB"))
    box = data["answer"]["box"]
    edge = img[int(box["y"]) + int(box["height"] / 2), int(box["x"])]  # left edge of the chosen box: yellow
    assert edge[0] > 200 and edge[1] > 150 and edge[2] < 80


def test_cli_analyze_describe_writes_descriptors(group_photo, tmp_path):
    import json

    from facescan.cli import app

    photo, _ = group_photo
    out = tmp_path / "r.json"
    r = CliRunner().invoke(app, ["analyze", str(photo), "--describe", "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert "eyewear sunglasses" in r.output and "clothing" in r.output
    faces = json.loads(out.read_text())[0]["faces"]
    assert faces[0]["description"]["eyewear"] == "sunglasses" and len(faces[0]["description"]["torso_box"]) == 4
    r = CliRunner().invoke(app, ["analyze", str(photo), "--describe", "--crops"])
    assert r.exit_code == 2 and "--describe needs whole photos" in r.output


def test_descriptors_of_the_single_person_photos():
    from facescan.pipeline import Analyzer

    analyzer = Analyzer(attributes="gender", describe=True)
    bearded = analyzer.analyze(shared("photos", "Image_with_alpha.png")).faces[0].description
    assert bearded["beard"] is True and bearded["posture"]["arms"] == "raised"  # hand on his forehead
    assert set(bearded["clothing_colours"]) <= {"grey", "white"}  # a light grey T-shirt
    plain = analyzer.analyze(shared("photos", "single_face.jpg")).faces[0].description
    assert plain["beard"] is False and plain["clothing_colours"] == ["black"] and plain["hair_colour"] == "black"
    assert plain["posture"]["facing"] == "camera"


def test_ask_and_annotate_decode_the_photo_once(group_photo, tmp_path, monkeypatch):
    """The VLM chooser and --annotate draw on the photo the analysis decoded, not on a second decode."""
    from facescan import imageio
    from facescan.ask import ask_photo
    from facescan.cli import app
    from facescan.pipeline import Analyzer

    photo, _ = group_photo
    opened = []
    original_decode = imageio._decode
    monkeypatch.setattr(imageio, "_decode", lambda source, name: opened.append(name) or original_decode(source, name))
    vlm = FakeVLM("2")
    answer, result = ask_photo(photo, "the man in the light blue shirt", Analyzer(attributes="gender", describe=True),
                               chooser="vlm", vlm=vlm)
    assert answer.status == "answered" and answer.face == 1 and len(result.faces) == 5
    assert vlm.images[0].shape[:2] == (result.height, result.width)  # the full photo, boxes drawn on it
    assert opened == [str(photo)]
    opened.clear()
    r = CliRunner().invoke(app, ["analyze", str(photo), "-a", "gender", "--annotate", str(tmp_path / "a.jpg")])
    assert r.exit_code == 0, r.output
    assert opened == [str(photo)] and (tmp_path / "a.jpg").stat().st_size > 10_000

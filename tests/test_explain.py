"""Action units from face-mesh geometry and ExpLLM-style explanations (analyze --explain)."""

import re

import numpy as np
import pytest

from facescan.explain import aus, chain_of_thought

from .conftest import shared


def _mesh(mouth_width=60.0, lips_apart=0.0, brow_height=30.0, eye_open=10.0):
    """A synthetic 468-point mesh with eyes 100 px apart and the landmarks the AUs read placed by hand."""
    p = np.zeros((468, 2))
    p[aus._EYE_R["outer"]], p[aus._EYE_R["inner"]] = (0, 100), (40, 100)
    p[aus._EYE_L["inner"]], p[aus._EYE_L["outer"]] = (100, 100), (140, 100)
    for eye, x in ((aus._EYE_R, 20), (aus._EYE_L, 120)):
        p[eye["upper"]], p[eye["lower"]] = (x, 100 - eye_open / 2), (x, 100 + eye_open / 2)
    p[aus._BROW_R["mid"]], p[aus._BROW_L["mid"]] = (20, 100 - eye_open / 2 - brow_height), (120, 95 - brow_height)
    p[aus._BROW_R["inner"]], p[aus._BROW_L["inner"]] = (45, 70), (95, 70)
    p[aus._MOUTH["right"]], p[aus._MOUTH["left"]] = (70 - mouth_width / 2, 200), (70 + mouth_width / 2, 200)
    p[aus._MOUTH["upper_inner"]], p[aus._MOUTH["lower_inner"]] = (70, 200 - lips_apart / 2), (70, 200 + lips_apart / 2)
    p[aus._MOUTH["upper_outer"]], p[aus._MOUTH["lower_outer"]] = (70, 190 - lips_apart / 2), (70, 210 + lips_apart / 2)
    p[aus._NOSE_TIP], p[aus._CHIN] = (70, 150), (70, 250)
    p[aus._CHEEK_R], p[aus._CHEEK_L] = (20, 150), (120, 150)
    return p


def test_ratios_are_measured_in_eye_distances():
    r = aus.raw_ratios(_mesh(mouth_width=80, lips_apart=10, brow_height=30, eye_open=10))
    assert r["AU12"] == pytest.approx(0.8)  # mouth width / eye-centre distance (100 px)
    assert r["AU25"] == pytest.approx(0.1)
    assert r["AU1+2"] == pytest.approx(0.3)
    assert r["AU26"] == pytest.approx(30 / 80)  # outer mouth height / width
    assert r["AU43"] == pytest.approx(0.1)
    # scale invariance: the same face twice as large gives the same ratios
    assert aus.raw_ratios(_mesh() * 2) == pytest.approx(aus.raw_ratios(_mesh()))


def test_intensities_follow_the_actions():
    smile = {r.au: r.intensity for r in aus.intensities(_mesh(mouth_width=110, lips_apart=12))}
    rest = {r.au: r.intensity for r in aus.intensities(_mesh(mouth_width=70, lips_apart=0))}
    assert smile["AU12"] > rest["AU12"] and smile["AU25"] > rest["AU25"]
    raised = {r.au: r.intensity for r in aus.intensities(_mesh(brow_height=50))}
    assert raised["AU1+2"] > rest["AU1+2"]
    gasp = {r.au: r.intensity for r in aus.intensities(_mesh(mouth_width=50, lips_apart=30))}
    assert gasp["AU26"] > smile["AU26"]  # a tall "O" mouth, not a wide smile, is a jaw drop
    assert all(0 <= v <= 5 for v in smile.values())


def test_chain_of_thought_shapes():
    readings = aus.intensities(_mesh(mouth_width=110, lips_apart=12))
    happy = chain_of_thought(readings, "happy", "fer7")
    assert happy.startswith("Key observations:\n- ") and happy.endswith("Final answer: happy")
    assert "points to happy" in happy or "point to happy" in happy
    calm = chain_of_thought(aus.intensities(_mesh()), "neutral", "fer7")
    assert calm.endswith("Final answer: neutral")
    unsupported = chain_of_thought(readings, "disgust", "fer7")  # no disgust AU is active in a smile
    assert "weak evidence" in unsupported and unsupported.endswith("Final answer: disgust")


def test_analyze_explain_on_a_real_photo_names_aus_and_keeps_the_label():
    from facescan.pipeline import Analyzer

    photo = shared("photos", "multi_face.jpg")
    analyzer = Analyzer(attributes="age", explain=True)
    assert analyzer.attributes == ("age", "emotion")  # an explanation needs the emotion
    result = analyzer.analyze(photo)
    assert len(result.faces) == 5
    for face in result.faces:
        assert face.explanation, f"face {face.index} has no explanation"
        assert re.search(r"AU\d+\+?\d* \([a-z ]+\), intensity \d\.\d/5", face.explanation)
        final = face.explanation.splitlines()[-1]
        emotion = face.attributes["emotion"]
        assert final == f"Final answer: {emotion.label}"
        assert set(face.action_units) == set(aus.AUS) and all(0 <= v <= 5 for v in face.action_units.values())

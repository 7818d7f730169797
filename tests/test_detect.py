import numpy as np
import pytest

from facescan import crops
from facescan.detect import create_detector
from facescan.imageio import load_image


@pytest.fixture(scope="module")
def mediapipe():
    return create_detector("mediapipe")


@pytest.mark.data
@pytest.mark.parametrize(
    "name,expected",
    [("multi_face.jpg", 5), ("single_face.jpg", 1), ("no_face.jpg", 0), ("BWPictureHuman.jpg", 1),
     ("Image_with_alpha.png", 1)],
)
def test_mediapipe_on_shared_photos(photos, mediapipe, name, expected):
    image = load_image(photos / name)
    faces = mediapipe.detect(image.pixels)
    assert len(faces) == expected
    for f in faces:
        x, y, w, h = f.box
        assert 0 <= x and 0 <= y and x + w <= image.size[0] + 1 and y + h <= image.size[1] + 1
        assert f.keypoints.shape == (6, 2) and 0.5 <= f.score <= 1
        # keypoints lie inside (or just around) the box
        assert (f.keypoints[:4, 0] > x - w * 0.1).all() and (f.keypoints[:4, 0] < x + w * 1.1).all()


@pytest.mark.data
def test_short_range_model_misses_group_faces_that_auto_finds(photos):
    image = load_image(photos / "multi_face.jpg").pixels
    assert len(create_detector("mediapipe:short").detect(image)) < 5
    assert len(create_detector("mediapipe:full").detect(image)) == 5


@pytest.mark.data
def test_haar_fallback_finds_the_single_face(photos):
    faces = create_detector("haar").detect(load_image(photos / "single_face.jpg").pixels)
    assert len(faces) >= 1 and faces[0].keypoints is None


def test_unknown_detector_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown detector"):
        create_detector("yolo")
    with pytest.raises(ValueError, match="auto, short or full"):
        create_detector("mediapipe:medium")


def test_align_puts_keypoints_on_the_template():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)
    # keypoints of a face tilted by 20 degrees, 80 px between the eyes
    angle = np.deg2rad(20)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    template = crops.TEMPLATE_POINTS * 224
    src = (template - 112) @ rot.T * 0.9 + [200, 150]
    chip = crops.align(image, src, 224)
    assert chip.shape == (224, 224, 3)
    # mapping the source pixels through the same transform reproduces the template
    import cv2

    m, _ = cv2.estimateAffinePartial2D(src.astype(np.float32), template.astype(np.float32))
    mapped = np.c_[src, np.ones(4)] @ m.T
    assert np.abs(mapped - template).max() < 1.0


def test_reframe_and_box_chip_geometry():
    chip = np.arange(150 * 150 * 3, dtype=np.uint8).reshape(150, 150, 3)
    tighter = crops.reframe(chip, 0.25, 0.0)
    assert tighter.shape[:2] == (100, 100)
    wider = crops.reframe(chip, 0.0, 0.25)
    assert wider.shape[:2] == (226, 226)
    assert crops.reframe(chip, 0.25, 0.25) is chip
    image = np.zeros((200, 200, 3), np.uint8)
    image[50:150, 50:150] = 255  # a 100 px "face"
    c = crops.box_chip(image, (50, 50, 100, 100), padding=0.25, size=150)
    # the face fills the central 100 of 150 px
    assert c[75, 75].tolist() == [255, 255, 255] and c[10, 10].tolist() == [0, 0, 0]
    assert c[26, 75].tolist() == [255, 255, 255] and c[23, 75].tolist() == [0, 0, 0]


def test_mediapipe_is_imported_without_matplotlib_or_sounddevice_until_something_uses_them():
    import subprocess
    import sys

    code = """
import sys
from facescan.detect.mediapipe import import_mediapipe
mp = import_mediapipe()
assert not [m for m in sys.modules if m.startswith("matplotlib")], "matplotlib was loaded with mediapipe"
assert "sounddevice" not in sys.modules, "the stand-in for sounddevice was left behind"
assert import_mediapipe() is mp
from mediapipe.python.solutions import drawing_utils
import matplotlib
assert hasattr(matplotlib, "__version__"), "a later import matplotlib got the stand-in"
matplotlib.use("Agg")
import matplotlib.pyplot as plt
fig, ax = plt.subplots()
ax.plot([0, 1])
assert drawing_utils.plt.figure is plt.figure  # mediapipe's own reference works too
assert mp.solutions.face_detection.FaceDetection
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]

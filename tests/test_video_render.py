"""Pictures of a video's analysis: the annotated clip, the emotion chart, and captions that do not collide.

The clip tests need ../shared/data (FairFace faces moving over a background; skipped without it).
The pictures are kept in ``test-artifacts/`` (or ``$FACESCAN_TEST_ARTIFACTS``) to be looked at.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from facescan.annotate import COLOURS, place_captions
from facescan.cli import app
from facescan.pipeline import Analyzer
from facescan.schema import FrameFaces, VideoResult
from facescan.video import VideoDetector, VideoReader, analyze_video
from facescan.video.render import _Shown, plot_emotions, render_video
from tests.clips import Person, StubBackend, linear, load_faces, scene_clip
from tests.conftest import shared

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("FACESCAN_TEST_ARTIFACTS", ROOT / "test-artifacts"))


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 2-s 10-fps clip: one face moving left to right, another still; and its analysis at 5 fps."""
    faces = load_faces(shared("fairface", "val"), (7, 25), 150)
    path = tmp_path_factory.mktemp("render") / "two.mp4"
    scene_clip(path, [Person(faces[0], linear(20, 60, 440, 60, 0, 2)), Person(faces[1], linear(250, 190, 250, 190,
                                                                                                0, 2))], 2, fps=10)
    result = analyze_video(path, Analyzer(backend=StubBackend(), detector=VideoDetector()), fps=5)
    assert result.ok and len(result.tracks) == 2
    return path, result


def test_rendered_clip_has_every_frame_and_each_person_boxed_in_their_colour(clip, tmp_path):
    path, result = clip
    out = render_video(result, path, tmp_path / "drawn.mp4")
    source_frames = list(VideoReader(path))
    drawn_frames = list(VideoReader(out))
    assert len(drawn_frames) == len(source_frames) == 20
    assert drawn_frames[0].pixels.shape == source_frames[0].pixels.shape
    moving = min(result.tracks, key=lambda t: result.frames[0].faces[0].track_id != t.track_id)
    colour = np.array(COLOURS[moving.track_id % len(COLOURS)])
    lefts = []
    for k in (2, 16):  # the moving face's left box edge is drawn in its colour, and moves right
        ff = _Shown(result).at(drawn_frames[k].time_s)
        face = next(f for f in ff.faces if f.track_id == moving.track_id)
        x, y, h = round(face.box.x), round(face.box.y), round(face.box.height)
        drawn, before = (f[k].pixels[y + h // 4 : y + 3 * h // 4, x : x + 2].reshape(-1, 3).mean(axis=0)
                         for f in (drawn_frames, source_frames))
        # the line is 2 px wide and the video's colour is subsampled: nearer the colour by far, not equal
        assert np.linalg.norm(drawn - colour) < np.linalg.norm(before - colour) - 60, (k, drawn, before, colour)
        lefts.append(x)
    assert lefts[1] - lefts[0] > 200
    Image.fromarray(drawn_frames[10].pixels).save(ARTIFACTS_DIR() / "video_annotated_frame.png")


def ARTIFACTS_DIR() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def test_boxes_are_held_two_sampling_steps_then_dropped():
    frames = [FrameFaces(frame=i * 5, time_s=i * 0.2, faces=[]) for i in range(5)]
    shown = _Shown(VideoResult(source="x", frames=frames))
    assert shown.at(0.0).frame == 0 and shown.at(0.19).frame == 0 and shown.at(0.21).frame == 5
    assert shown.at(1.2).frame == 20 and shown.at(0.8 + 0.45) is None
    assert _Shown(VideoResult(source="x", frames=frames[2:])).at(0.1) is None  # before the first analyzed frame


def test_emotion_chart_has_one_panel_per_person(clip, tmp_path):
    _, result = clip
    one = result.model_copy(update={"tracks": result.tracks[:1]})
    small, big = plot_emotions(one, tmp_path / "one.png"), plot_emotions(result, ARTIFACTS_DIR() / "video_emotions.png")
    assert Image.open(big).size[1] > Image.open(small).size[1] * 1.3
    with pytest.raises(ValueError, match="no person"):
        plot_emotions(result.model_copy(update={"tracks": []}), tmp_path / "none.png")


def test_bad_output_suffix_is_a_clear_error(clip, tmp_path):
    path, result = clip
    with pytest.raises(ValueError, match=r"\.mp4"):
        render_video(result, path, tmp_path / "drawn.gif")


def test_captions_stay_inside_the_image_and_apart():
    """Five faces side by side near the bottom edge, as in a group photo: no caption covers another
    caption or a face, and none leaves the picture."""
    size = (600, 300)
    boxes = [(20 + 115 * i, 180, 100, 100) for i in range(5)]
    sizes = [(96.0, 70.0)] * 5
    spots = place_captions(boxes, sizes, size)
    blocks = [(x, y, w, h) for (x, y), (w, h) in zip(spots, sizes)]
    for i, (x, y, w, h) in enumerate(blocks):
        assert 0 <= x and x + w <= size[0] and 0 <= y and y + h <= size[1]
        for j, other in enumerate(blocks + boxes):
            if j != i and j != len(blocks) + i:
                assert _overlap((x, y, w, h), other) == 0, (i, j)
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    for (x, y, w, h), c in zip(boxes, COLOURS):
        draw.rectangle([x, y, x + w, y + h], outline=c, width=3)
    for (x, y, w, h), c in zip(blocks, COLOURS):
        draw.rectangle([x, y, x + w, y + h], fill=c)
    img.save(ARTIFACTS_DIR() / "caption_placement.png")


def test_captions_of_the_group_photo_do_not_collide(tmp_path):
    """multi_face.jpg as `analyze --annotate` draws it: each caption inside the photo, off the other
    captions and faces (the picture is kept to be looked at)."""
    from facescan.annotate import _canvas, draw_captions, face_caption

    path = shared("photos", "multi_face.jpg")
    result = Analyzer().analyze(path)
    img, draw, _, width = _canvas(path)
    boxes = [(f.box.x, f.box.y, f.box.width, f.box.height) for f in result.faces]
    for x, y, w, h in boxes:
        draw.rectangle([x, y, x + w, y + h], outline=(230, 57, 70), width=width)
    blocks = draw_captions(draw, boxes, [face_caption(f) for f in result.faces], COLOURS[: len(boxes)], width,
                           img.size)
    img.save(ARTIFACTS_DIR() / "multi_face_annotated.png")
    assert len(blocks) == len(result.faces) >= 5
    for i, block in enumerate(blocks):
        x, y, w, h = block
        assert 0 <= x and x + w <= img.size[0] + 0.5 and 0 <= y and y + h <= img.size[1] + 0.5
        others = [b for j, b in enumerate(blocks) if j != i] + [b for j, b in enumerate(boxes) if j != i]
        assert all(_overlap(block, o) == 0 for o in others), i


def _overlap(a, b) -> float:
    iw = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    ih = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(0.0, iw) * max(0.0, ih)


def test_cli_draws_a_clip_and_its_chart(tmp_path):
    clip_path = shared("photos", "single_face.mp4")
    out, chart = tmp_path / "drawn.mp4", tmp_path / "chart.png"
    r = CliRunner().invoke(app, ["analyze", str(clip_path), "--fps", "5", "--annotate", str(out),
                                 "--timeline", str(chart), "-q"])
    assert r.exit_code == 0, r.output
    assert "resuming" not in r.output
    assert len(list(VideoReader(out, fps=5))) >= 10 and Image.open(chart).size[0] > 500
    r = CliRunner().invoke(app, ["analyze", str(clip_path), "--annotate", str(tmp_path / "drawn.jpg")])
    assert r.exit_code == 2 and "video file" in r.output
    r = CliRunner().invoke(app, ["analyze", str(shared("photos", "multi_face.jpg")), "--timeline", str(chart)])
    assert r.exit_code == 2 and "no input is a video" in r.output

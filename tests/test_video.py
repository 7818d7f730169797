"""facescan.video: decoding and sampling, rotation, bad files, tracks, aggregation, keyframes for VLMs.

Every clip is generated here with PyAV; tests that need faces use FairFace crops or the two real clips
from ../shared/data and skip without them.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from facescan.pipeline import Analyzer
from facescan.schema import AttributePrediction, Face
from facescan.video import (
    VideoDetector,
    VideoLoadError,
    analyze_video,
    is_video,
    iter_frames,
    video_frame_rows,
    video_track_rows,
)
from facescan.video import decode as video_decode
from facescan.video.aggregate import TrackStats, label_shares, smooth_timeline
from facescan.video.keyframes import Candidate, KeyframePool, frontality
from facescan.video.track import FaceTracker
from tests.clips import Person, StubBackend, StubVLM, linear, load_faces, scene_clip, write_clip
from tests.conftest import shared


@pytest.fixture(scope="module")
def stub_analyzer():
    """Real detection, a stub backend: fast, for everything but attribute values."""
    return Analyzer(backend=StubBackend(), detector=VideoDetector())


@pytest.fixture(scope="module")
def builtin_analyzer():
    return Analyzer(detector=VideoDetector())


@pytest.fixture(scope="module")
def faces():
    return load_faces(shared("fairface", "val"), (7, 25, 34), 160)


def counter_clip(path, n=50, fps=25, times=None):
    """Frame i is a flat grey of level 4·i, so a decoded frame tells which one it is."""
    frames = (np.full((64, 96, 3), 4 * i, np.uint8) for i in range(n))
    return write_clip(path, frames, fps=fps, times=times)


def frame_number(pixels) -> int:
    return int(round(float(pixels.mean()) / 4))


def needs_rotation_writing() -> None:
    import av

    if not hasattr(av.video.stream.VideoStream, "set_display_rotation"):
        pytest.skip(f"PyAV {av.__version__} cannot write rotation metadata (set_display_rotation came with PyAV 18)")


# --------------------------------------------------------------------------- decoding and sampling
def test_is_video():
    assert is_video("a/b.MP4") and is_video("x.webm") and is_video("clip.m4v")
    assert not is_video("photo.jpg") and not is_video("noext")


def test_every_frame_has_its_time_and_index(tmp_path):
    frames = list(iter_frames(counter_clip(tmp_path / "c.mp4")))
    assert [f.index for f in frames] == list(range(50))
    assert [f.time_s for f in frames] == pytest.approx([i / 25 for i in range(50)], abs=1e-6)
    assert all(frame_number(f.pixels) == f.index for f in frames)
    assert frames[0].pixels.shape == (64, 96, 3) and frames[0].scale == 1.0 and frames[0].original_size == (96, 64)


def test_fps_sampling_by_timestamps(tmp_path):
    frames = list(iter_frames(counter_clip(tmp_path / "c.mp4"), fps=5))
    assert [f.index for f in frames] == list(range(0, 50, 5))
    assert [f.time_s for f in frames] == pytest.approx([i / 5 for i in range(10)], abs=1e-6)
    assert all(frame_number(f.pixels) == f.index for f in frames)


def test_every_nth_frame_and_start_end(tmp_path):
    clip = counter_clip(tmp_path / "c.mp4")
    assert [f.index for f in iter_frames(clip, every=3)] == list(range(0, 50, 3))
    window = list(iter_frames(clip, start=0.8, end=1.6))
    assert [f.index for f in window] == list(range(20, 40))
    assert all(frame_number(f.pixels) == f.index for f in window)
    assert [f.index for f in iter_frames(clip, every=4, start=1.0)] == list(range(25, 50, 4))
    assert [f.time_s for f in iter_frames(clip, fps=2, start=0.5, end=1.6)] == pytest.approx([0.52, 1.0, 1.52])


def test_variable_frame_rate(tmp_path):
    times = [0, 0.03, 0.05, 0.2, 0.21, 0.5, 0.52, 0.9, 1.3, 1.31, 1.32, 1.7]
    clip = counter_clip(tmp_path / "vfr.mp4", n=len(times), times=times)
    every = list(iter_frames(clip))
    assert [f.time_s for f in every] == pytest.approx(times, abs=1e-3)
    sampled = list(iter_frames(clip, fps=5))  # the first frame of each 0.2 s slot
    assert [f.time_s for f in sampled] == pytest.approx([0, 0.2, 0.5, 0.9, 1.3, 1.7], abs=1e-3)
    assert all(frame_number(f.pixels) == f.index for f in sampled)


@pytest.mark.parametrize("rotation", [-90, 90, 180])
def test_rotation_metadata_gives_upright_frames(tmp_path, rotation):
    needs_rotation_writing()
    upright = np.full((160, 96, 3), 40, np.uint8)  # portrait, a white mark at the top left
    upright[:30, :20] = 255
    stored = np.ascontiguousarray(np.rot90(upright, -rotation // 90))  # the display matrix turns it back
    clip = write_clip(tmp_path / "rot.mp4", [stored] * 3, rotation=rotation)
    frame = next(iter_frames(clip))
    assert frame.pixels.shape == upright.shape and frame.original_size == (96, 160)
    assert np.abs(frame.pixels.astype(int) - upright).mean() < 4


def test_large_frames_are_downscaled(tmp_path):
    clip = write_clip(tmp_path / "big.mp4", [np.full((1080, 1920, 3), 90, np.uint8)] * 2)
    frame = next(iter_frames(clip, max_side=640))
    assert frame.pixels.shape == (360, 640, 3) and frame.scale == pytest.approx(1 / 3) and frame.original_size == (
        1920, 1080)


# --------------------------------------------------------------------------- bad files
def _truncated(folder, name, options=None):
    """The first half of a 50-frame clip."""
    frames = (np.full((64, 96, 3), 4 * i, np.uint8) for i in range(50))
    data = write_clip(folder / f"whole_{name}", frames, options=options).read_bytes()
    path = folder / name
    path.write_bytes(data[: len(data) // 2])
    return path


def _audio_only(path):
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        for i in range(10):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def _zero_frames(path):
    """A Matroska file with a video stream that holds no frame (only audio packets)."""
    import av

    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        audio = container.add_stream("aac", rate=16000)
        for i in range(5):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            container.mux(audio.encode(frame))
        container.mux(audio.encode(None))
    return path


BAD = {
    "random.mp4": (lambda p: p.write_bytes(np.random.default_rng(0).bytes(40_000)) and p, "not a video"),
    "text.mp4": (lambda p: p.write_text("this is not a video\n" * 20) and p, "not a video"),
    "empty.mp4": (lambda p: p.write_bytes(b"") or p, "empty"),
    "truncated.mp4": (lambda p: _truncated(p.parent, p.name), "corrupt or truncated MP4"),
    "audio_only.mp4": (_audio_only, "no video stream (the file has 1 audio stream"),
    "zero_frames.mkv": (_zero_frames, "no frames"),
    "folder.mp4": (lambda p: p.mkdir() or p, "is a folder"),
    "missing.mp4": (lambda p: p, "not found"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_video_is_a_clear_error_never_an_exception(tmp_path, stub_analyzer, name):
    build, problem = BAD[name]
    path = build(tmp_path / name)
    with pytest.raises(VideoLoadError, match=re.escape(problem)):
        list(iter_frames(path))
    result = analyze_video(path, stub_analyzer)
    assert result.error and result.error.startswith(str(path)) and problem in result.error
    assert result.tracks == [] and result.frames == [] and result.frames_analyzed == 0


def test_video_load_error_is_an_image_load_error():
    from facescan.imageio import ImageLoadError

    assert issubclass(VideoLoadError, ImageLoadError)


@pytest.mark.parametrize("name,options", [("fast.mp4", {"movflags": "faststart"}), ("cut.mkv", None)])
def test_truncated_but_readable_clip_keeps_what_decodes(tmp_path, stub_analyzer, name, options):
    path = _truncated(tmp_path, name, options)
    result = analyze_video(path, stub_analyzer)
    assert result.error is None and 10 <= result.frames_analyzed < 50
    assert any("truncated" in w for w in result.warnings), result.warnings


def test_limits_on_pixels_and_duration(tmp_path, stub_analyzer, monkeypatch):
    clip = counter_clip(tmp_path / "c.mp4")
    monkeypatch.setattr(video_decode, "MAX_FRAME_PIXELS", 1000)
    assert "pixel limit" in analyze_video(clip, stub_analyzer).error
    monkeypatch.setattr(video_decode, "MAX_FRAME_PIXELS", 10**8)
    monkeypatch.setattr(video_decode, "MAX_DURATION_S", 1)
    assert "limit" in analyze_video(clip, stub_analyzer).error


def test_bad_arguments_raise(tmp_path, stub_analyzer):
    clip = counter_clip(tmp_path / "c.mp4", n=5)
    for kwargs in ({"fps": 5, "every": 2}, {"fps": 0}, {"every": 0}, {"start": 2, "end": 1}, {"smooth": -1}):
        with pytest.raises(ValueError):
            analyze_video(clip, stub_analyzer, **kwargs)


def test_clip_without_faces_samples_and_times(tmp_path, stub_analyzer):
    seen = []
    result = analyze_video(counter_clip(tmp_path / "c.mp4"), stub_analyzer, fps=5, on_frame=seen.append)
    assert result.error is None and result.tracks == [] and result.frames_decoded == 50
    assert result.frames_analyzed == len(seen) == len(result.frames) == 10
    assert [f.time_s for f in result.frames] == pytest.approx([i / 5 for i in range(10)], abs=1e-6)
    assert result.width == 96 and result.height == 64 and result.fps == 25 and result.duration_s == pytest.approx(2)
    assert result.sampling.fps == 5 and video_frame_rows(result) == [] and video_track_rows(result) == []


def test_bytes_in_memory(tmp_path, stub_analyzer):
    data = counter_clip(tmp_path / "c.mp4", n=10).read_bytes()
    result = analyze_video(data, stub_analyzer, every=2)
    assert result.error is None and result.source == f"<{len(data)} bytes>" and result.frames_analyzed == 5
    assert "no data" in analyze_video(b"", stub_analyzer).error


# --------------------------------------------------------------------------- real clips (shared data)
def test_single_face_clip_is_one_person(builtin_analyzer):
    result = analyze_video(shared("photos", "single_face.mp4"), builtin_analyzer)
    assert result.error is None and result.frames_analyzed == result.frames_decoded == 72
    assert len(result.tracks) == 1
    track = result.tracks[0]
    assert track.n_frames >= 60 and set(track.attributes) == {"age", "gender", "emotion"}
    assert all(a.valid for a in track.attributes.values())
    assert track.dominant_emotion in track.emotion_shares and sum(track.emotion_shares.values()) == pytest.approx(1)
    assert len(track.emotion_timeline) == track.n_frames and track.keyframes is None
    rows = video_frame_rows(result)
    assert len(rows) == sum(len(f.faces) for f in result.frames) >= 60
    assert {"frame", "time_s", "track_id", "age", "age_score", "gender_p_female", "emotion_p_happy"} <= set(rows[0])
    (row,) = video_track_rows(result)
    assert row["track_id"] == track.track_id and row["gender"] == track.attributes["gender"].label
    assert "emotion_share_neutral" in row and row["dominant_emotion"] == track.dominant_emotion
    assert result.model_calls == result.faces_sent * 3 and result.faces_sent == len(rows)


def test_no_face_clip_has_no_tracks(stub_analyzer):
    result = analyze_video(shared("photos", "no_face.mp4"), stub_analyzer, fps=5)
    assert result.error is None and result.tracks == [] and result.frames_analyzed == 20
    assert all(face.track_id is None for f in result.frames for face in f.faces)  # one-frame blips at most


def test_rotated_phone_clip_gives_upright_faces(tmp_path, stub_analyzer, faces):
    needs_rotation_writing()
    upright = np.full((480, 270, 3), 100, np.uint8)
    upright[150:310, 55:215] = faces[0]
    clip = write_clip(tmp_path / "phone.mp4", [np.ascontiguousarray(np.rot90(upright, 1))] * 15, rotation=-90)
    result = analyze_video(clip, stub_analyzer)
    assert (result.width, result.height) == (270, 480) and len(result.tracks) == 1
    box = result.frames[-1].faces[0].box
    assert abs(box.x + box.width / 2 - 135) < 20 and abs(box.y + box.height / 2 - 230) < 30


def test_4k_clip_is_detected_downscaled_with_boxes_in_original_pixels(tmp_path, stub_analyzer, faces):
    from PIL import Image

    frame = np.full((2160, 3840, 3), 110, np.uint8)
    frame[700:1340, 1600:2240] = np.asarray(Image.fromarray(faces[1]).resize((640, 640)))
    result = analyze_video(write_clip(tmp_path / "uhd.mp4", [frame] * 4), stub_analyzer)
    assert result.error is None and (result.width, result.height) == (3840, 2160) and result.frames_analyzed == 4
    for ff in result.frames:
        (face,) = ff.faces
        cx, cy = face.box.x + face.box.width / 2, face.box.y + face.box.height / 2
        assert abs(cx - 1920) < 60 and abs(cy - 1020) < 100 and 250 < face.box.width < 700


# --------------------------------------------------------------------------- VLM backends: keyframes only
def _two_people(tmp_path, faces, duration=3.0):
    people = [Person(faces[0], linear(30, 90, 90, 100, 0, duration)),
              Person(faces[1], linear(450, 100, 420, 90, 0, duration))]
    scene_clip(tmp_path / "two.mp4", people, duration, fps=10)
    return tmp_path / "two.mp4"


def test_vlm_sees_keyframes_not_frames(tmp_path, faces):
    vlm = StubVLM()
    result = analyze_video(_two_people(tmp_path, faces), Analyzer(backend=vlm, detector=VideoDetector()), keyframes=3)
    assert result.error is None and result.frames_analyzed == 30 and len(result.tracks) == 2
    assert vlm.predict_calls == 1 and vlm.faces_seen == result.faces_sent == 2 * 3
    assert result.model_calls == 6 * 3  # faces × attributes
    for track in result.tracks:
        assert len(track.keyframes) == 3 and len(set(track.keyframes)) == 3
        assert set(track.attributes) == {"age", "gender", "emotion"} and len(track.emotion_timeline) == 3
    answered = [(ff.frame, f.track_id) for ff in result.frames for f in ff.faces if f.attributes]
    assert sorted(answered) == sorted((k, t.track_id) for t in result.tracks for k in t.keyframes)


def test_model_calls_use_the_backends_own_counter(tmp_path, faces):
    class CountingVLM(StubVLM):
        calls = 0

        def predict(self, faces, attributes):
            self.calls += len(faces)  # one JSON request per face
            return super().predict(faces, attributes)

    analyzer = Analyzer(backend=CountingVLM(), detector=VideoDetector())
    result = analyze_video(_two_people(tmp_path, faces, 1.5), analyzer, keyframes=2)
    assert result.faces_sent == 4 and result.model_calls == 4


def test_streaming_callback_without_keeping_frames(tmp_path, stub_analyzer, faces, capsys):
    seen = []
    result = analyze_video(_two_people(tmp_path, faces, 2.0), stub_analyzer, on_frame=seen.append,
                           keep_frames=False, progress=True)
    assert result.frames == [] and len(seen) == result.frames_analyzed == 20 and len(result.tracks) == 2
    assert [f.frame for f in seen] == sorted(f.frame for f in seen)
    assert {face.track_id for ff in seen[2:] for face in ff.faces} == {t.track_id for t in result.tracks}
    assert "frames" in capsys.readouterr().err


# --------------------------------------------------------------------------- units: tracking, aggregation, keyframes
def _track_ids(tracker, boxes_per_frame):
    out = []
    for i, boxes in enumerate(boxes_per_frame):
        out += [ids for _, ids in tracker.push(i, boxes)]
    return out + [ids for _, ids in tracker.flush()]


def test_tracker_keeps_ids_through_short_gaps_and_drops_blips():
    moving = [[(10.0 + 4 * i, 50.0, 60.0, 60.0)] for i in range(40)]
    short_gap = moving[:15] + [[]] * 5 + moving[20:]
    ids = [x[0] for x in _track_ids(FaceTracker(rate=10), short_gap) if x]
    assert set(ids) == {1} and len(ids) == 35
    long_gap = moving[:15] + [[]] * 15 + moving[30:]
    assert len({x[0] for x in _track_ids(FaceTracker(rate=10), long_gap) if x}) == 2
    blip = [[(10.0, 50.0, 60.0, 60.0)]] + [[]] * 10
    assert _track_ids(FaceTracker(rate=10), blip)[0] == [None]


def _prediction(attribute, label_set, probs):
    return AttributePrediction.from_probabilities(attribute, label_set, probs, "test", "m")


def test_track_attribute_is_the_argmax_of_the_mean_distribution():
    from facescan.schema import Box

    stats = TrackStats(1, 0, 0.0)
    for i, p in enumerate([[0.55, 0.45]] * 3 + [[0.05, 0.95]] * 2):  # 3 hesitant "male" votes, 2 sure "female"
        face = Face(index=0, box=Box(x=0, y=0, width=1, height=1), score=1,
                    attributes={"gender": _prediction("gender", "gender", p)})
        stats.add_face(i, i / 10, face)
    track = stats.build(["gender"], smooth=0)
    assert track.attributes["gender"].label == "female" and track.attributes["gender"].score == pytest.approx(0.65)
    assert track.n_frames == 5 and track.last_frame == 4 and track.emotion_timeline == []


def test_emotion_timeline_is_smoothed_in_seconds():
    happy, sad = [0.0, 0.0, 0.0, 0.9, 0.1, 0.0, 0.0], [0.0, 0.0, 0.0, 0.1, 0.1, 0.8, 0.0]
    points = [(t / 10, "fer7", _prediction("emotion", "fer7", happy if t < 20 else sad).probabilities)
              for t in range(40)]
    points[5] = (0.5, "fer7", _prediction("emotion", "fer7", sad).probabilities)  # a one-frame blip
    raw = smooth_timeline(points, 0)
    smoothed = smooth_timeline(points, 1.0)
    assert raw[5].label == "sad" and smoothed[5].label == "happy"
    assert [p.label for p in smoothed[:19]] == ["happy"] * 19 and [p.label for p in smoothed[21:]] == ["sad"] * 19
    shares = label_shares(smoothed, "fer7")
    assert shares["happy"] == pytest.approx(0.5, abs=0.03) and sum(shares.values()) == pytest.approx(1)
    # the same window over a sparser sampling averages fewer points: it is a time window
    sparse = smooth_timeline(points[::5], 1.0)
    assert len(sparse) == 8 and sparse[1].label == "happy"


def test_keyframes_are_sharp_frontal_and_spread():
    from facescan.backends.base import FaceInput

    rng = np.random.default_rng(0)
    sharp = FaceInput(chip=rng.integers(0, 255, (224, 224, 3), dtype=np.uint8), padding=0.25)
    pool = KeyframePool(k=3, min_gap_s=0.5)
    for i in range(100):
        quality = 1.0 + (i % 7) / 10 + (5 if i == 42 else 0)
        pool.offer(Candidate(quality, i, i / 10, sharp, face=None))
    assert len(pool.pool) <= 12
    chosen = pool.choose()
    assert len(chosen) == 3 and 42 in [c.frame for c in chosen]
    times = [c.time_s for c in chosen]
    assert min(b - a for a, b in zip(times, times[1:])) >= 0.5
    assert frontality([(40, 50), (80, 50), (60, 70)]) == pytest.approx(1.0)
    assert frontality([(40, 50), (80, 50), (75, 70)]) < 0.7

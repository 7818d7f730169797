"""Clips on the service and its page: /v1/analyze answers a clip with its tracks, within the clip limits
(upload size, duration, analyzed frames), refuses a corrupt clip clearly, never writes the clip anywhere,
and runs off the event loop under its deadline; the page plays the clip with moving boxes and draws each
person's emotion timeline (Chromium, screenshots kept in ``test-artifacts/``).

Clips are generated from FairFace val faces (``tests/clips.py``); without ../shared/data the tests skip.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="service tests need the serve extra (fastapi)")

from fastapi.testclient import TestClient  # noqa: E402

from facescan.schema import FrameFaces, VideoResult  # noqa: E402
from facescan.serve import ServeConfig, create_app  # noqa: E402

from .clips import Person, linear, load_faces, scene_clip  # noqa: E402
from .conftest import ROOT, shared  # noqa: E402

CHROMIUM = os.environ.get("FACESCAN_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(os.environ.get("FACESCAN_TEST_ARTIFACTS", ROOT / "test-artifacts"))
DURATION, FPS, SIZE = 3.0, 10, (640, 360)


def client(config: ServeConfig | None = None) -> TestClient:
    """A test client with a Host the service accepts (it serves loopback names only by default)."""
    return TestClient(create_app(config or ServeConfig()), base_url="http://127.0.0.1")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """3 s, 10 fps, 640×360: person A walks from the left to the middle, person B stays on the right."""
    faces = load_faces(shared("fairface", "val"), (7, 25), 160)
    path = tmp_path_factory.mktemp("clips") / "two.mp4"
    people = [Person(faces[0], linear(20, 90, 260, 100, 0, DURATION)),
              Person(faces[1], linear(460, 100, 440, 90, 0, DURATION))]
    scene_clip(path, people, DURATION, fps=FPS, size=SIZE)
    return path


@pytest.fixture(scope="module")
def api():
    with client() as c:
        yield c


def _post_clip(c: TestClient, data: bytes, name="two.mp4", field="image", ctype="video/mp4", **fields):
    return c.post("/v1/analyze", files={field: (name, data, ctype)}, data={k: str(v) for k, v in fields.items()})


# ------------------------------------------------------------------------------------------- the API
def test_a_clip_gets_tracks_with_boxes_in_video_pixels_and_emotion_timelines(api, clip):
    r = _post_clip(api, clip.read_bytes())
    assert r.status_code == 200, r.text
    video = VideoResult.model_validate(r.json())
    assert video.error is None and video.source == "upload" and (video.width, video.height) == SIZE
    assert video.sampling.fps == 5 and video.frames_analyzed == len(video.frames) == 15  # the default 5 fps
    assert len(video.tracks) == 2 and video.attributes == ["age", "gender", "emotion"]
    for track in video.tracks:
        assert track.n_frames >= 12 and "race" not in track.attributes  # race only when asked for
        assert {"age", "gender", "emotion"} <= set(track.attributes)
        assert len(track.emotion_timeline) == track.n_frames and track.dominant_emotion in track.emotion_shares
    # every face has its track and a box in the clip's own pixels; person A (leftmost at first) moves right
    boxes = {t.track_id: [] for t in video.tracks}
    for ff in video.frames:
        for face in ff.faces:
            assert face.track_id in boxes
            assert 0 <= face.box.x and face.box.x + face.box.width <= SIZE[0] + 2 and face.box.width > 40
            boxes[face.track_id].append(face.box.x)
    a, b = sorted(boxes.values(), key=lambda xs: xs[0])
    assert a[-1] - a[0] > 150 and abs(b[-1] - b[0]) < 40


def test_a_clip_by_field_json_or_content_and_the_sampling_asked_for(api, clip):
    data = clip.read_bytes()
    r = _post_clip(api, data, field="video", fps=2, attributes="emotion,race")
    assert r.status_code == 200, r.text
    video = r.json()
    assert video["sampling"]["fps"] == 2 and video["frames_analyzed"] == 6
    assert all(set(t["attributes"]) == {"emotion", "race"} for t in video["tracks"])
    r = api.post("/v1/analyze", json={"video_base64": base64.b64encode(data).decode(), "every": 5})
    assert r.status_code == 200, r.text
    assert r.json()["sampling"]["every"] == 5 and r.json()["frames_analyzed"] == 6
    # no suffix, no video content type: recognized by its first bytes (an MP4 'ftyp' box)
    r = _post_clip(api, data, name="upload", ctype="application/octet-stream", fps=1)
    assert r.status_code == 200 and r.json()["frames_analyzed"] == 3 and "tracks" in r.json()
    r = _post_clip(api, data, fps=2, every=3)
    assert r.status_code == 422 and "fps or every" in r.json()["detail"]
    r = _post_clip(api, data, start=2, end=1)
    assert r.status_code == 422 and "after start" in r.json()["detail"]
    r = _post_clip(api, data, describe="true")
    assert r.status_code == 422 and "for photos" in r.json()["detail"]
    r = api.post("/v1/ask", files={"image": ("two.mp4", data, "video/mp4")}, data={"question": "the man"})
    assert r.status_code == 422 and "not a clip" in r.json()["detail"]


def test_a_clip_over_a_limit_is_413_naming_the_limit(clip):
    data = clip.read_bytes()
    with client(ServeConfig(max_video_seconds=2)) as c:
        r = _post_clip(c, data)
        assert r.status_code == 413 and "3.0 s long, over the 2 s limit for clips" in r.json()["detail"]
    with client(ServeConfig(max_video_mb=0.05)) as c:
        r = _post_clip(c, data)
        assert r.status_code == 413 and "over the 0.05 MB limit for clips" in r.json()["detail"]
    with client(ServeConfig(max_video_frames=8)) as c:
        r = _post_clip(c, data, fps=10)
        assert r.status_code == 413 and "over the 8 frame limit for clips" in r.json()["detail"]
        r = _post_clip(c, data)  # the default sampling is lowered to fit: 8 frames over 3 s
        assert r.status_code == 200, r.text
        assert r.json()["sampling"]["fps"] < 3 and r.json()["frames_analyzed"] <= 8
        text = c.get("/v1/models").json()["video_limits"]
        assert text["max_frames"] == 8 and text["max_seconds"] == 60 and text["default_fps"] == 5
    with client(ServeConfig(max_pixels=640 * 300)) as c:
        r = _post_clip(c, data)
        assert r.status_code == 413 and "640x360" in r.json()["detail"] and "pixel limit" in r.json()["detail"]


def test_clips_may_have_a_larger_upload_limit_than_photos(clip):
    import io

    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8)).save(buf, "PNG")
    with client(ServeConfig(max_upload_mb=0.1, max_video_mb=2)) as c:
        assert len(clip.read_bytes()) > 0.1 * 1024 * 1024
        assert _post_clip(c, clip.read_bytes()).status_code == 200
        r = c.post("/v1/analyze", files={"image": ("big.png", buf.getvalue(), "image/png")})
        assert r.status_code == 413 and "over the 0.1 MB limit for photos" in r.json()["detail"]
        r = c.post("/v1/ask", files={"image": ("two.mp4", clip.read_bytes(), "video/mp4")}, data={"question": "x"})
        assert r.status_code == 413  # /v1/ask takes photos only: the photos' limit, at the door


@pytest.mark.parametrize("name, data, problem", [
    ("cut.mp4", "truncated", "corrupt or truncated MP4/MOV file"),
    ("noise.webm", b"\x13\x37" * 4000, "not a video file"),
    ("empty.mp4", b"", "no data (0 bytes)"),
])
def test_a_corrupt_clip_is_422_naming_the_problem(api, clip, name, data, problem):
    data = clip.read_bytes()[:3000] if data == "truncated" else data
    r = _post_clip(api, data, name=name)
    assert r.status_code == 422, r.text
    assert problem in r.json()["detail"] and r.json()["detail"].startswith(f"upload ({len(data)} bytes)")


def test_a_clip_never_touches_the_disk(api, clip, tmp_path, monkeypatch):
    import tempfile

    opened = []
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # anything Python puts in "the temp dir" lands here
    for fn in ("TemporaryFile", "NamedTemporaryFile", "mkstemp", "mkdtemp", "SpooledTemporaryFile"):
        real = getattr(tempfile, fn)
        monkeypatch.setattr(tempfile, fn, lambda *a, _real=real, _fn=fn, **k: opened.append(_fn) or _real(*a, **k))
    big = clip.read_bytes() + b"\0" * (1536 * 1024)  # over Starlette's 1 MB in-memory spool (trailing junk is ignored)
    r = _post_clip(api, big)
    assert r.status_code == 200 and len(r.json()["tracks"]) == 2
    r = _post_clip(api, clip.read_bytes()[:5000])
    assert r.status_code == 422
    assert opened == [] and list(tmp_path.iterdir()) == []


class FakeAnalysis:
    """Stands in for ``facescan.video.analyze_video``: reports a frame every 10 ms for ``seconds``,
    and records whether the per-frame callback stopped it."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.started, self.stopped = threading.Event(), threading.Event()

    def __call__(self, data, analyzer, *, on_frame, fps=None, every=None, start=None, end=None, **kwargs):
        self.started.set()
        result = VideoResult(source=f"<{len(data)} bytes>")
        until, i = time.monotonic() + self.seconds, 0
        while time.monotonic() < until:
            try:
                on_frame(FrameFaces(frame=i, time_s=i / 25))
            except Exception as e:  # noqa: BLE001 - as VideoRun does: the stop becomes the result's error
                self.stopped.set()
                result.error = f"video analysis failed ({e})"
                return result
            i += 1
            time.sleep(0.01)
        return result


def test_a_clip_runs_off_the_event_loop_within_its_deadline_and_queue(clip, monkeypatch):
    import facescan.video

    data = clip.read_bytes()
    slow = FakeAnalysis(3.0)
    monkeypatch.setattr(facescan.video, "analyze_video", slow)
    with client(ServeConfig(video_jobs=1, max_video_queue=0)) as c:
        answers = []
        worker = threading.Thread(target=lambda: answers.append(_post_clip(c, data)))
        worker.start()
        assert slow.started.wait(30)
        t0 = time.monotonic()
        assert c.get("/healthz").status_code == 200  # the loop is free while the clip is analyzed
        assert time.monotonic() - t0 < 1.0
        busy = _post_clip(c, data)
        assert busy.status_code == 429 and "busy with clips" in busy.json()["detail"] and busy.headers["retry-after"]
        worker.join(30)
        assert answers[0].status_code == 200 and not slow.stopped.is_set()
    stuck = FakeAnalysis(30)
    monkeypatch.setattr(facescan.video, "analyze_video", stuck)
    app = create_app(ServeConfig(video_timeout=0.5))
    with TestClient(app, base_url="http://127.0.0.1") as c:
        r = _post_clip(c, data)
        assert r.status_code == 503 and "longer than 0.5 s" in r.json()["detail"] and r.headers["retry-after"]
        clips = app.state.facescan.clips
        deadline = time.monotonic() + 10
        while clips.active and time.monotonic() < deadline:
            time.sleep(0.05)
        assert clips.active == 0  # the analysis itself stopped too (at its next frame), long before its 30 s
    assert stuck.stopped.is_set() or not stuck.started.is_set()


def test_frames_beyond_the_declared_duration_stop_the_analysis(clip, monkeypatch):
    """A container that understates its length is stopped at the limit as its frames come."""
    import facescan.video

    endless = FakeAnalysis(30)
    monkeypatch.setattr(facescan.video, "analyze_video", endless)
    with client(ServeConfig(max_video_frames=400, max_video_seconds=4)) as c:  # the clip declares 3 s
        r = _post_clip(c, clip.read_bytes())
    assert r.status_code == 413 and "longer than it declared: over the 4 s limit" in r.json()["detail"]
    assert endless.stopped.is_set()


# ------------------------------------------------------------------------------------------- the page
@pytest.fixture(scope="module")
def server_url():
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(ServeConfig(port=port)), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


SEEK = """async (t) => {
  const v = document.getElementById("clip");
  if (v.readyState < 1) await new Promise((r) => v.addEventListener("loadedmetadata", r, { once: true }));
  await new Promise((r) => { v.addEventListener("seeked", r, { once: true }); v.currentTime = t; });
  const c = document.getElementById("clipoverlay"), ctx = c.getContext("2d");
  const d = ctx.getImageData(0, 0, c.width, c.height).data;
  let left = c.width, painted = 0;  // the leftmost painted column: where the leftmost box is drawn
  for (let i = 3; i < d.length; i += 4) if (d[i] > 0) { painted++; left = Math.min(left, ((i - 3) / 4) % c.width); }
  const playhead = document.querySelector("#timelines line.playhead");
  return { time: c.dataset.time, boxes: JSON.parse(c.dataset.boxes), painted, left: left / c.width,
           playhead: Number(playhead.getAttribute("x1")) };
}"""


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium browser installed (apt install chromium)")
def test_page_plays_a_clip_with_moving_boxes_and_emotion_timelines(server_url, clip):
    pytest.importorskip("playwright", reason="needs playwright (the dev extra)")
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        external, errors = [], []
        page.on("request", lambda r: external.append(r.url) if not r.url.startswith((server_url, "blob:", "data:"))
                else None)
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(server_url)
        expect(page.locator("#backend option")).to_have_count(1)
        page.set_input_files("#file", str(clip))
        expect(page.locator("#clipstage")).to_be_visible()
        assert page.locator("#clip").get_attribute("src").startswith("blob:")  # played from the local file
        assert page.locator("#explain").is_disabled() and page.locator("#askrow").is_hidden()
        page.click("#run")
        expect(page.locator("#timelines svg.tlchart")).to_have_count(2, timeout=60_000)
        expect(page.locator("#status")).to_contain_text("2 person(s) tracked in 15 analyzed frames")
        assert page.locator("#timelines polygon.band").count() >= 2 * 7  # a band per emotion per person
        expect(page.locator("#cards .card.person")).to_have_count(2)
        expect(page.locator("#timelines .legend")).to_contain_text("happy")

        early, late = page.evaluate(SEEK, 0.3), page.evaluate(SEEK, 2.6)
        assert abs(float(early["time"]) - 0.4) < 0.21 and abs(float(late["time"]) - 2.6) < 0.21  # nearest frames
        assert len(early["boxes"]) == len(late["boxes"]) == 2 and early["painted"] > 500
        by_track = [{b["track"]: b for b in s["boxes"]} for s in (early, late)]
        assert set(by_track[0]) == set(by_track[1]) and None not in by_track[0]
        moved = {t: by_track[1][t]["x"] - by_track[0][t]["x"] for t in by_track[0]}
        assert max(moved.values()) > 150 and min(abs(m) for m in moved.values()) < 40  # A walks, B stays
        assert late["left"] - early["left"] > 0.2  # and so does what the canvas shows
        assert late["playhead"] > early["playhead"] + 500  # the playhead follows (viewBox 1000 wide)

        page.evaluate(SEEK, 0.0)
        page.evaluate("() => document.getElementById('clip').play()")  # boxes follow playback too
        page.wait_for_function("() => document.getElementById('clip').currentTime > 0.5", timeout=20_000)
        page.evaluate("() => document.getElementById('clip').pause()")
        assert float(page.locator("#clipoverlay").get_attribute("data-time")) > 0.3
        page.evaluate(SEEK, 1.5)
        page.screenshot(path=str(ARTIFACTS / "serve_clip.png"), full_page=True)

        page.set_viewport_size({"width": 400, "height": 900})
        narrow = page.evaluate(SEEK, 1.5)
        assert len(narrow["boxes"]) == 2 and narrow["painted"] > 100
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 400  # no sideways scrolling
        assert page.locator("#timelines svg.tlchart").first.bounding_box()["width"] > 300
        page.screenshot(path=str(ARTIFACTS / "serve_clip_narrow.png"), full_page=True)
        browser.close()
    assert external == [] and errors == []
    assert (ARTIFACTS / "serve_clip.png").stat().st_size > 10_000

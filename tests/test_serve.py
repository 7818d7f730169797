"""facescan serve: the API's results, every limit (413 / 422 / 429 / 503), the token rule, CORS,
batching across requests, metrics, and that uploads never reach the disk."""

import base64
import io
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="service tests need the serve extra (fastapi)")

from fastapi.testclient import TestClient as _TestClient  # noqa: E402
from PIL import Image  # noqa: E402

from facescan.schema import ImageResult  # noqa: E402
from facescan.serve import ServeConfig, check_bind, create_app  # noqa: E402
from facescan.serve.batching import DynamicBatcher  # noqa: E402

from .conftest import shared  # noqa: E402


class TestClient(_TestClient):
    """Starlette's test client with a Host the service accepts (it serves loopback names only by default)."""

    def __init__(self, app, **kwargs):
        super().__init__(app, base_url="http://127.0.0.1", **kwargs)


def _png(w=64, h=64, seed=0) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(ServeConfig(max_upload_mb=4))) as c:
        yield c


def test_analyze_multipart_and_json_give_the_cli_schema(client):
    data = shared("photos", "multi_face.jpg").read_bytes()
    r = client.post("/v1/analyze", files={"image": ("m.jpg", data, "image/jpeg")}, data={"attributes": "age,gender"})
    assert r.status_code == 200, r.text
    result = ImageResult.model_validate(r.json())
    assert len(result.faces) == 5 and set(result.faces[0].attributes) == {"age", "gender"}
    assert "race" not in result.faces[0].attributes  # opt-in only
    r2 = client.post("/v1/analyze", json={"image_base64": base64.b64encode(data).decode(),
                                          "attributes": ["age", "gender"], "describe": True})
    assert r2.status_code == 200
    faces2 = r2.json()["faces"]
    assert [f["box"] for f in faces2] == [f.box.model_dump() for f in result.faces]
    assert faces2[0]["description"]["eyewear"] == "sunglasses"


def test_ask_chooses_the_person(client):
    data = shared("photos", "multi_face.jpg").read_bytes()
    r = client.post("/v1/ask", files={"image": ("m.jpg", data, "image/jpeg")},
                    data={"question": "What is the woman in the leopard print top feeling?"})
    assert r.status_code == 200, r.text
    answer = r.json()["answer"]
    assert answer["status"] == "answered" and answer["face"] == 4 and set(answer["answer"]) == {"emotion"}
    r = client.post("/v1/ask", json={"image_base64": base64.b64encode(data).decode(), "question": "the woman"})
    assert r.json()["answer"]["status"] == "ambiguous" and len(r.json()["answer"]["candidates"]) == 3


def test_bad_inputs_are_422_naming_the_problem(client):
    r = client.post("/v1/analyze", files={"image": ("a.txt", b"just some text", "text/plain")})
    assert r.status_code == 422 and "not a recognized image format" in r.json()["detail"]
    r = client.post("/v1/analyze", files={"image": ("a.png", _png()[:300], "image/png")})
    assert r.status_code == 422 and "upload (300 bytes)" in r.json()["detail"]
    r = client.post("/v1/analyze", json={"image_base64": "%%%"})
    assert r.status_code == 422 and "base64" in r.json()["detail"]
    r = client.post("/v1/analyze", json={"image_base64": base64.b64encode(_png()).decode(), "attributes": "height"})
    assert r.status_code == 422 and "unknown attribute" in r.json()["detail"]
    r = client.post("/v1/analyze", json={"image_base64": base64.b64encode(_png()).decode(), "backend": "gpt-9"})
    assert r.status_code == 422 and "not served here" in r.json()["detail"]
    r = client.post("/v1/analyze", data=b"raw", headers={"content-type": "application/octet-stream"})
    assert r.status_code == 415
    r = client.post("/v1/ask", files={"image": ("a.png", _png(), "image/png")}, data={"question": " "})
    assert r.status_code == 422


def test_oversize_upload_and_too_many_pixels_are_413():
    with TestClient(create_app(ServeConfig(max_upload_mb=0.05, max_pixels=100 * 100))) as c:
        r = c.post("/v1/analyze", files={"image": ("big.png", _png(200, 200), "image/png")})
        assert r.status_code == 413 and "over the 0.05 MB limit" in r.json()["detail"]
        r = c.post("/v1/analyze", files={"image": ("wide.png", _png(120, 100), "image/png")})
        assert r.status_code == 413 and "120x100" in r.json()["detail"] and "pixel limit" in r.json()["detail"]


class SlowAnalyzer:
    """Stands in for the analyzer: takes ``seconds`` per batch and records the batch sizes (and, per
    batch, whether its photos were kept); a kept photo is the source itself."""

    def __init__(self, seconds):
        self.seconds, self.batches, self.kept = seconds, [], []

    def iter_analyzed(self, sources, workers=1, executor=None, keep_images=False):
        from facescan.pipeline import Analyzed

        self.batches.append(len(sources))
        self.kept.append(keep_images)
        time.sleep(self.seconds)
        for source in sources:
            yield Analyzed(ImageResult(source="x", width=64, height=64), source if keep_images else None)


def _swap_batcher(app, analyzer, **kw):
    state = app.state.facescan
    state.batcher.close()
    state.batcher = DynamicBatcher(lambda key: analyzer, **kw)


def _concurrently(c, n):
    codes, headers = [], []

    def one():
        r = c.post("/v1/analyze", files={"image": ("a.png", _png(), "image/png")})
        codes.append(r.status_code)
        headers.append(r.headers)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return codes, headers


def test_overload_is_429_with_retry_after():
    app = create_app(ServeConfig())
    with TestClient(app) as c:
        _swap_batcher(app, SlowAnalyzer(0.5), max_batch=1, max_queue=1)
        codes, headers = _concurrently(c, 6)
    assert codes.count(429) >= 3 and codes.count(200) >= 1
    assert all(h["retry-after"] == "1" for code, h in zip(codes, headers) if code == 429)


def test_a_request_over_the_timeout_is_503_with_retry_after():
    app = create_app(ServeConfig(request_timeout=0.2))
    with TestClient(app) as c:
        _swap_batcher(app, SlowAnalyzer(1.0), max_batch=1, max_queue=4)
        r = c.post("/v1/analyze", files={"image": ("a.png", _png(), "image/png")})
    assert r.status_code == 503 and r.headers["retry-after"] and "longer than 0.2 s" in r.json()["detail"]


def test_concurrent_requests_share_a_model_batch():
    app = create_app(ServeConfig())
    slow = SlowAnalyzer(0.2)
    with TestClient(app) as c:
        _swap_batcher(app, slow, max_batch=16, max_wait=0.05, max_queue=64)
        codes, _ = _concurrently(c, 8)
    assert codes == [200] * 8 and sum(slow.batches) == 8 and max(slow.batches) > 1
    assert not any(slow.kept)  # /v1/analyze keeps no decoded photo


def test_batcher_keeps_the_photo_only_for_a_job_that_asks():
    slow = SlowAnalyzer(0.0)
    batcher = DynamicBatcher(lambda key: slow, max_batch=4, max_wait=0.5, max_queue=4)
    try:
        plain, kept = batcher.submit("k", "photo-a"), batcher.submit("k", "photo-b", keep_image=True)
        a, b = plain.result(timeout=10), kept.result(timeout=10)
        alone = batcher.submit("k", "photo-c").result(timeout=10)
    finally:
        batcher.close()
    assert slow.batches == [2, 1] and slow.kept == [True, False]  # one model batch for the first two
    assert isinstance(a.result, ImageResult) and a.image is None and b.image == "photo-b" and alone.image is None


def test_token_required_beyond_loopback_and_checked():
    with pytest.raises(ValueError, match="without a bearer token"):
        check_bind("0.0.0.0", None)
    check_bind("127.0.0.1", None)
    check_bind("::1", None)
    check_bind("0.0.0.0", "s3cret")
    from typer.testing import CliRunner

    from facescan.cli import app as cli

    r = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0"], env={"FACESCAN_TOKEN": ""})
    assert r.exit_code == 2 and "refusing to listen on 0.0.0.0" in r.output
    with TestClient(create_app(ServeConfig(host="0.0.0.0", token="s3cret"))) as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/v1/models").status_code == 401
        assert c.get("/metrics").status_code == 401
        assert c.get("/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/v1/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_cors_is_off_unless_configured(client):
    r = client.get("/v1/models", headers={"Origin": "https://elsewhere.example"})
    assert "access-control-allow-origin" not in r.headers
    with TestClient(create_app(ServeConfig(cors_origins=["https://app.example"]))) as c:
        r = c.get("/v1/models", headers={"Origin": "https://app.example"})
        assert r.headers["access-control-allow-origin"] == "https://app.example"


def test_uploads_never_touch_the_disk(client, monkeypatch):
    import tempfile

    opened = []
    real = tempfile.TemporaryFile
    # a spooled upload that outgrows memory rolls over into tempfile.TemporaryFile (unlinked at once)
    monkeypatch.setattr(tempfile, "TemporaryFile", lambda *a, **k: opened.append(1) or real(*a, **k))
    big = _png(900, 900, seed=3)  # ~2.4 MB: over Starlette's default 1 MB in-memory spool
    assert len(big) > 2_000_000
    r = client.post("/v1/analyze", files={"image": ("big.png", big, "image/png")})
    assert r.status_code == 200 and opened == []


def test_multipart_files_stay_in_memory_without_patching_starlette(monkeypatch):
    from starlette.formparsers import MultiPartParser

    from facescan.serve.requests import InMemoryMultiPartParser

    app = create_app(ServeConfig(max_upload_mb=4))
    assert MultiPartParser.spool_max_size == 1024 * 1024  # Starlette's default, for every other app too
    seen = []
    real_parse = InMemoryMultiPartParser.parse

    async def parse(self):
        form = await real_parse(self)
        upload = form["image"]
        seen.append((self.spool_max_size, upload.size, upload.file._rolled))
        return form

    monkeypatch.setattr(InMemoryMultiPartParser, "parse", parse)
    big = _png(900, 900, seed=3)
    with TestClient(app) as c:
        r = c.post("/v1/analyze", files={"image": ("big.png", big, "image/png")})
    assert r.status_code == 200, r.text
    [(spool_max_size, size, rolled)] = seen
    assert 1024 * 1024 < size == len(big) < 4 * 1024 * 1024  # between Starlette's spool and the limit
    assert spool_max_size > 4 * 1024 * 1024 and rolled is False  # kept in memory, never rolled to a file
    assert MultiPartParser.spool_max_size == 1024 * 1024


class FakeVLM:
    """The built-in backend plus ``ask_image``: picks box ``reply`` and records the photos it was shown."""

    name = "fake-vlm"

    def __init__(self, inner, reply="5"):
        self.inner, self.reply, self.shown = inner, reply, []

    def supported_attributes(self):
        return self.inner.supported_attributes()

    def predict(self, inputs, attributes):
        return self.inner.predict(inputs, attributes)

    def ask_image(self, image, prompt, max_new_tokens=None):
        self.shown.append(np.asarray(image).shape)
        return self.reply


def test_ask_decodes_the_image_once(monkeypatch):
    import sys

    import facescan.imageio
    import facescan.pipeline

    decodes = []
    real = facescan.imageio.load_image

    def counting(*args, **kwargs):
        decodes.append(1)
        return real(*args, **kwargs)

    for name, module in list(sys.modules.items()):  # every module that imported it: pipeline, ask, serve…
        if name.startswith("facescan") and getattr(module, "load_image", None) is real:
            monkeypatch.setattr(module, "load_image", counting)
    assert facescan.pipeline.load_image is counting
    data = shared("photos", "multi_face.jpg").read_bytes()
    photo = {"image": ("m.jpg", data, "image/jpeg")}
    question = "What is the woman in the leopard print top feeling?"
    app = create_app(ServeConfig())
    vlm = FakeVLM(app.state.facescan.backends["builtin"])
    app.state.facescan.backends["fake-vlm"] = vlm
    with TestClient(app) as c:
        r = c.post("/v1/ask", files=photo, data={"question": question, "chooser": "descriptors"})
        assert r.status_code == 200, r.text
        assert r.json()["answer"]["face"] == 4 and len(decodes) == 1
        r = c.post("/v1/ask", files=photo, data={"question": question, "chooser": "vlm", "backend": "fake-vlm"})
        assert r.status_code == 200, r.text
        answer = r.json()["answer"]
        assert answer["method"] == "vlm:fake-vlm" and answer["status"] == "answered" and answer["face"] == 4
        size = r.json()["result"]["height"], r.json()["result"]["width"], 3
        assert len(decodes) == 2 and vlm.shown == [size] == [(667, 1000, 3)]  # full resolution, decoded once
        r = c.post("/v1/ask", files=photo, data={"question": question, "chooser": "vlm"})
        assert r.status_code == 422 and "numbered boxes" in r.json()["detail"]


def test_models_health_metrics_and_page(client):
    m = client.get("/v1/models").json()
    assert m["default"] == "builtin" and "race" in m["backends"][0]["attributes"]
    assert client.get("/healthz").json()["status"] == "ok"
    client.post("/v1/analyze", files={"image": ("a.png", _png(), "image/png")})
    text = client.get("/metrics").text
    assert 'facescan_requests_total{route="/v1/analyze",status="200"}' in text
    assert "facescan_batch_size_count" in text and "facescan_queue_depth" in text
    page = client.get("/").text
    assert '<script src="/static/app.js"' in page and "<script>" not in page  # no inline script (CSP)
    assert "/v1/analyze" in client.get("/static/app.js").text
    assert "src=\"http" not in page and "href=\"http" not in page  # no CDN: works offline
    spec = client.get("/openapi.json").json()
    assert {"/v1/analyze", "/v1/ask", "/v1/models", "/healthz", "/metrics"} <= set(spec["paths"])


def test_no_page_loads_from_a_cdn(client):
    assert client.get("/docs").status_code == 404  # Swagger UI would come from a CDN
    for path in ("/", "/static/app.js", "/static/app.css"):
        assert "cdn" not in client.get(path).text.lower()

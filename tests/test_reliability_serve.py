"""No bad input, upload or crash costs anyone else's result (issue 13).

Per-item isolation in the batcher, the upload limit on the bytes actually received (chunked too),
the body and header deadlines (a real uvicorn server on 127.0.0.1, raw sockets), 401 for a
non-ASCII token, 413 for decompression bombs, the Host check, the page's security headers, and
the script-injection probe in Chromium. The API-key tests are in test_api_backends.py.
"""

import io
import json
import select
import socket
import struct
import threading
import time
import zlib

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="service tests need the serve extra (fastapi)")

from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402

from facescan.pipeline import Analyzed  # noqa: E402
from facescan.schema import ImageResult  # noqa: E402
from facescan.serve import ServeConfig, create_app  # noqa: E402
from facescan.serve.batching import BadInput, DynamicBatcher  # noqa: E402

from .conftest import shared  # noqa: E402

LOCAL = "http://127.0.0.1"


def _png(w=64, h=64, seed=0) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _png_header(w: int, h: int) -> bytes:
    """A tiny 1-bit PNG whose header claims ``w`` x ``h`` pixels (a decompression bomb's shape)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


# ---------------------------------------------------------------- per-item isolation: the batcher
class FlakyAnalyzer:
    """Raises for a whole group when any of its sources is in ``crashes``; records each call's sources."""

    def __init__(self, crashes, seconds=0.0):
        self.crashes, self.seconds, self.calls = set(crashes), seconds, []

    def iter_analyzed(self, sources, workers=1, executor=None, keep_images=False):
        sources = list(sources)
        self.calls.append(sources)
        time.sleep(self.seconds)
        if self.crashes & set(sources):
            raise RuntimeError(f"decoder crashed on {sorted(self.crashes & set(sources))}")
        for s in sources:
            yield Analyzed(ImageResult(source=str(s)[:20], width=8, height=8), None)


def test_one_failing_job_gets_the_error_and_its_batch_mates_their_results():
    def probe(source):  # what decoding says: "corrupt" is a bad input, "crash" decodes fine (a server fault)
        if source == "corrupt":
            raise ValueError("corrupt or truncated image data")

    flaky = FlakyAnalyzer({"corrupt", "crash"})
    batcher = DynamicBatcher(lambda key: flaky, max_batch=8, max_wait=0.5, max_queue=8, probe=probe)
    try:
        futures = {s: batcher.submit("k", s) for s in ("a", "corrupt", "b", "crash", "c")}
        for s in "abc":
            assert futures[s].result(timeout=10).result.source == s
        with pytest.raises(BadInput, match="corrupt or truncated"):
            futures["corrupt"].result(timeout=10)
        with pytest.raises(RuntimeError, match="decoder crashed") as fault:
            futures["crash"].result(timeout=10)
        assert not isinstance(fault.value, BadInput)
    finally:
        batcher.close()
    assert flaky.calls[0] == ["a", "corrupt", "b", "crash", "c"]  # one batch first, then each job alone
    assert sorted(map(tuple, flaky.calls[1:])) == [("a",), ("b",), ("c",), ("corrupt",), ("crash",)]


def _post_concurrently(client, uploads):
    out = [None] * len(uploads)

    def one(i, data):
        out[i] = client.post("/v1/analyze", files={"image": ("x.png", data, "image/png")})

    threads = [threading.Thread(target=one, args=(i, d)) for i, d in enumerate(uploads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_a_corrupt_upload_fails_alone_over_http(monkeypatch):
    """A decoder that raises (not ImageLoadError) on one upload: 422 for it, 200 for its 6 batch-mates."""
    import facescan.imageio
    import facescan.pipeline

    poison = _png(seed=99)
    real = facescan.imageio.load_image

    def load_image(source, *args, **kwargs):
        if isinstance(source, (bytes, bytearray)) and bytes(source) == poison:
            raise RuntimeError("Failed to decode frame 0: Decoding of color planes failed")
        return real(source, *args, **kwargs)

    monkeypatch.setattr(facescan.pipeline, "load_image", load_image)
    monkeypatch.setattr(facescan.imageio, "load_image", load_image)  # what the batcher's probe decodes with
    app = create_app(ServeConfig(batch_wait_ms=400, max_batch=16))
    with TestClient(app, base_url=LOCAL) as c:
        responses = _post_concurrently(c, [_png(seed=i) for i in range(6)] + [poison])
        text = c.get("/metrics").text
    assert [r.status_code for r in responses] == [200] * 6 + [422], [r.text for r in responses]
    assert "Decoding of color planes failed" in responses[-1].json()["detail"]
    assert "facescan_batch_size_bucket" in text and 'le="4.0"} 0.0' in text  # the 7 went to the model together


def test_a_server_fault_is_500_for_its_request_only():
    app = create_app(ServeConfig())
    poison = _png(seed=98)
    with TestClient(app, base_url=LOCAL) as c:
        state = app.state.facescan
        state.batcher.close()
        state.batcher = DynamicBatcher(lambda key: FlakyAnalyzer({poison}, 0.05), max_batch=16, max_wait=0.4,
                                       probe=lambda source: None)  # decodes fine: the fault is the server's
        responses = _post_concurrently(c, [_png(seed=i) for i in range(4)] + [poison])
        state.batcher.close()
    assert [r.status_code for r in responses] == [200] * 4 + [500]
    assert "RuntimeError" in responses[-1].json()["detail"] and "other requests" in responses[-1].json()["detail"]


def test_an_hf_backend_runs_one_model_call_at_a_time():
    """The batcher and the VLM chooser call one backend from two threads: its model calls take turns."""
    from facescan.backends.hf import HFBackend

    class Probe(HFBackend):
        def __init__(self):  # no model: model_inputs is where a model call would start
            self._model_lock = threading.RLock()
            self.active = self.peak = 0

        def model_inputs(self, images, question):
            self.active += 1
            self.peak = max(self.peak, self.active)
            time.sleep(0.05)
            self.active -= 1
            raise RuntimeError("no model here")

    probe = Probe()

    def call(k):
        with pytest.raises(RuntimeError):
            if k % 2:
                probe.ask_image(np.zeros((8, 8, 3), np.uint8), "which box?")
            else:
                probe.generate([None], "age?")

    threads = [threading.Thread(target=call, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert probe.peak == 1 and all(hasattr(getattr(HFBackend, m), "__wrapped__")
                                   for m in ("predict", "generate", "ask_image"))


# ---------------------------------------------------------------- small ones over the ASGI interface
def test_a_non_ascii_token_is_401_not_500():
    app = create_app(ServeConfig(token="s3cret-ß"))
    with TestClient(app, base_url=LOCAL) as c:
        for sent in ("Bearer ünïcödé".encode("latin-1"), "Bearer ünïcödé".encode(), b"Bearer \xff\xfe"):
            r = c.get("/v1/models", headers={"Authorization": sent})
            assert r.status_code == 401, (sent, r.status_code, r.text)
        assert c.get("/v1/models", headers={"Authorization": "Bearer s3cret-ß".encode()}).status_code == 200


def test_decompression_bombs_are_413():
    with TestClient(create_app(ServeConfig()), base_url=LOCAL) as c:
        for w, h in ((100_000, 100_000), (12_000, 12_000)):  # over Pillow's bomb limit; over --max-pixels
            r = c.post("/v1/analyze", files={"image": ("bomb.png", _png_header(w, h), "image/png")})
            assert r.status_code == 413, r.text
        assert "decompression bomb" in c.post("/v1/analyze", files={"image": (
            "b.png", _png_header(100_000, 100_000), "image/png")}).json()["detail"]
    # --max-pixels above the loader's own 100 M limit: the loader refuses it, still 413
    with TestClient(create_app(ServeConfig(max_pixels=10**9)), base_url=LOCAL) as c:
        r = c.post("/v1/analyze", files={"image": ("bomb.png", _png_header(12_000, 12_000), "image/png")})
        assert r.status_code == 413 and "pixel limit" in r.json()["detail"], r.text


def test_host_header_is_checked():
    with TestClient(create_app(ServeConfig()), base_url=LOCAL) as c:  # loopback: its names only
        for host, status in (("127.0.0.1:8000", 200), ("localhost", 200), ("[::1]:8000", 200),
                             ("evil.example", 400), ("127.0.0.1.nip.io", 400)):
            assert c.get("/healthz", headers={"Host": host}).status_code == status, host
    config = ServeConfig(host="0.0.0.0", token="t", allowed_hosts=["faces.example.org"])
    with TestClient(create_app(config), base_url=LOCAL) as c:
        assert c.get("/healthz", headers={"Host": "faces.example.org:8000"}).status_code == 200
        assert c.get("/healthz", headers={"Host": "localhost"}).status_code == 200
        r = c.get("/healthz", headers={"Host": "rebound.attacker.example"})
        assert r.status_code == 400 and "content-security-policy" in r.headers
    with TestClient(create_app(ServeConfig(allowed_hosts=["*"])), base_url="http://anything.example") as c:
        assert c.get("/healthz").status_code == 200


def test_page_has_a_strict_csp_and_no_inline_script_or_style():
    with TestClient(create_app(ServeConfig()), base_url=LOCAL) as c:
        page = c.get("/")
        csp = page.headers["content-security-policy"]
        for part in ("default-src 'self'", "img-src 'self' data: blob:", "object-src 'none'", "base-uri 'none'",
                     "frame-ancestors 'none'"):
            assert part in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["referrer-policy"] == "no-referrer"
        assert "<script>" not in page.text and "<style" not in page.text and "style=" not in page.text
        js, css = c.get("/static/app.js"), c.get("/static/app.css")
        assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        assert "innerHTML" not in js.text and "insertAdjacentHTML" not in js.text
        assert c.get("/static/index.html").status_code == 404 and c.get("/static/../app.py").status_code == 404
        assert c.get("/v1/models").headers["x-content-type-options"] == "nosniff"


def test_the_guard_refuses_bad_framing_and_counts_chunked_bodies():
    with TestClient(create_app(ServeConfig(max_upload_mb=0.5)), base_url=LOCAL) as c:

        def chunks(total, size=64 * 1024):
            for _ in range(total // size):
                yield b"x" * size

        r = c.post("/v1/analyze", content=chunks(2 * 1024 * 1024), headers={"content-type": "application/json"})
        assert r.status_code == 413 and "limit" in r.json()["detail"] and r.headers["connection"] == "close"
        r = c.post("/v1/analyze", content=b"{}", headers={"content-length": "10", "transfer-encoding": "chunked",
                                                          "content-type": "application/json"})
        assert r.status_code == 400
        small = json.dumps({"image_base64": "!!"}).encode()
        r = c.post("/v1/analyze", content=iter([small]), headers={"content-type": "application/json"})
        assert r.status_code == 422 and "base64" in r.json()["detail"]  # chunked under the limit: read normally
        text = c.get("/metrics").text
    assert 'route="/v1/analyze",status="413"' in text and 'route="/v1/analyze",status="400"' in text


# ---------------------------------------------------------------- a real uvicorn server, raw sockets
BODY_TIMEOUT = HEADER_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def live():
    """uvicorn on 127.0.0.1 with a 1 MB upload limit and 1 s body and header deadlines; yields its port."""
    import uvicorn

    from facescan.serve.protocol import HeaderDeadlineProtocol

    class Protocol(HeaderDeadlineProtocol):
        header_timeout = HEADER_TIMEOUT

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = ServeConfig(port=port, max_upload_mb=1, body_timeout=BODY_TIMEOUT, header_timeout=HEADER_TIMEOUT)
    server = uvicorn.Server(uvicorn.Config(create_app(config), host="127.0.0.1", port=port, log_level="warning",
                                           http=Protocol, timeout_keep_alive=5))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    yield port
    server.should_exit = True
    thread.join(timeout=10)


def raw_exchange(port, head: bytes, chunks=(), delay=0.0, timeout=15.0):
    """Send ``head`` then each chunk (``delay`` s apart) until the server answers or closes; returns
    (status or None, seconds from the head to the answer / close, body bytes sent, the raw answer)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sent, answer, started = 0, b"", time.monotonic()
    try:
        sock.sendall(head)
        for chunk in chunks:
            if select.select([sock], [], [], 0)[0]:
                break  # the server answered (or closed) before the body was all sent
            try:
                sock.sendall(chunk)
            except OSError:
                break
            sent += len(chunk)
            if delay:
                select.select([sock], [], [], delay)  # a pause that ends as soon as the server answers
        sock.settimeout(max(0.1, timeout - (time.monotonic() - started)))
        while True:
            try:
                data = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not data:
                break
            answer += data
    finally:
        elapsed = time.monotonic() - started
        sock.close()
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else None
    return status, elapsed, sent, answer


def _multipart(data: bytes, boundary=b"facescanboundary") -> tuple[bytes, bytes]:
    body = (b"--" + boundary + b'\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
            b"Content-Type: image/png\r\n\r\n" + data + b"\r\n--" + boundary + b"--\r\n")
    return body, b"multipart/form-data; boundary=" + boundary


def _chunked(payload: bytes, size=64 * 1024):
    for i in range(0, len(payload), size):
        part = payload[i : i + size]
        yield b"%x\r\n" % len(part) + part + b"\r\n"
    yield b"0\r\n\r\n"


def test_chunked_uploads_are_counted_on_the_wire(live):
    body, ctype = _multipart(_png())
    head = b"POST /v1/analyze HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nContent-Type: " + ctype
    status, _, _, answer = raw_exchange(live, head + b"\r\nConnection: close\r\n\r\n", _chunked(body))
    assert status == 200 and b'"faces"' in answer  # chunked, under the limit: served
    big, ctype = _multipart(b"\0" * (64 * 1024 * 1024))
    status, _, sent, answer = raw_exchange(live, head + b"\r\n\r\n", _chunked(big))
    assert status == 413 and b"connection: close" in answer.lower(), answer[:300]
    # cut off near the 1 MB limit, not after the 64 MB ("sent" counts what the kernels' socket buffers took too)
    assert sent < 16 * 1024 * 1024
    lying = b"POST /v1/analyze HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n"
    status, _, sent, _ = raw_exchange(live, lying + b"Content-Type: application/json\r\n\r\n", _chunked(big))
    assert status == 400 and sent < 16 * 1024 * 1024


def test_a_slow_body_is_408_within_the_deadline(live):
    head = (b"POST /v1/analyze HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n")
    status, elapsed, sent, answer = raw_exchange(live, head, (b"{" for _ in range(1000)), delay=0.1)
    assert status == 408, answer[:300]
    assert BODY_TIMEOUT - 0.05 <= elapsed <= BODY_TIMEOUT + 1.5 and sent < 30
    assert b"connection: close" in answer.lower()


def test_slow_headers_are_cut_off_within_the_deadline(live):
    head = b"POST /v1/analyze HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 500
    status, elapsed, sent, answer = raw_exchange(live, b"", (head[i : i + 1] for i in range(len(head))), delay=0.1)
    assert HEADER_TIMEOUT - 0.05 <= elapsed <= HEADER_TIMEOUT + 1.5 and sent < 40
    assert status == 408 or answer == b""  # a 408 where part of a request came, and the connection closed
    status, elapsed, _, _ = raw_exchange(live, b"")  # connects and sends nothing
    assert HEADER_TIMEOUT - 0.05 <= elapsed <= HEADER_TIMEOUT + 1.5


def test_oversized_headers_are_refused(live):
    """uvicorn's h11 refuses an incomplete request line + headers over 16 KiB: 400, connection closed.

    (Its limit applies to what is buffered while the headers are incomplete: a header block that
    arrives whole in one socket read, up to asyncio's 256 KiB, is parsed.)"""
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * (64 * 1024) + b"\r\n\r\n"
    chunks = (head[i : i + 4096] for i in range(1024, len(head), 4096))
    status, elapsed, sent, answer = raw_exchange(live, head[:1024], chunks, delay=0.02)
    assert status == 400 and elapsed < HEADER_TIMEOUT + 1.5 and sent < 32 * 1024, answer[:200]


# ---------------------------------------------------------------- the injection probe, in Chromium
# in the explanation, and in its final answer (an invalid label: it reaches the emotion's error text too)
PAYLOAD = ('Key observations: <img src=x onerror="window.__pwned=1"> <script>window.__pwned=2</script>\n'
           'Final answer: <img src=y onerror="window.__pwned=3">')


class InjectingVLM:
    """The built-in backend, plus ``ask_image`` answering with markup (what a hostile model could write)."""

    name = "injecting-vlm"

    def __init__(self, inner):
        from facescan import prompts

        self.inner, self.preset = inner, prompts.load_preset("paper")

    def supported_attributes(self):
        return self.inner.supported_attributes()

    def predict(self, inputs, attributes):
        return self.inner.predict(inputs, attributes)

    def ask_image(self, image, prompt, max_new_tokens=None):
        return PAYLOAD


def test_model_text_cannot_run_script_in_the_page():
    import os
    import shutil

    chromium = os.environ.get("FACESCAN_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no Chromium browser installed (apt install chromium)")
    pytest.importorskip("playwright", reason="needs playwright (the dev extra)")
    import uvicorn
    from playwright.sync_api import expect, sync_playwright

    photo = shared("photos", "single_face.jpg")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(ServeConfig(port=port))
    state = app.state.facescan
    state.backends = {"injecting-vlm": InjectingVLM(state.backends["builtin"]), **state.backends}
    state.config.backends = ["injecting-vlm", "builtin"]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.05)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            expect(page.locator("#backend option")).to_have_count(2)
            page.set_input_files("#file", str(photo))
            page.check("#explain")
            page.click("#run")
            expect(page.locator("#cards pre.expl")).to_have_count(1, timeout=30_000)
            shown = page.locator("#cards pre.expl").text_content()
            card = page.locator("#cards .card").first.text_content()
            page.wait_for_timeout(500)  # time for an injected handler to have run
            pwned = page.evaluate("String(window.__pwned)")
            injected = page.locator("#cards img, #cards script").count()
            # defence in depth: even markup put into the page directly cannot run inline handlers (the CSP)
            page.evaluate("""document.body.insertAdjacentHTML('beforeend',
                '<img src=x onerror="window.__csp=1">')""")
            page.wait_for_timeout(500)
            csp_blocked = page.evaluate("String(window.__csp)")
            browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert (pwned, injected, csp_blocked) == ("undefined", 0, "undefined"), (pwned, injected, csp_blocked)
    assert '<img src=x onerror="window.__pwned=1">' in shown and "<script>window.__pwned=2</script>" in shown
    assert 'final answer \'<img src=y onerror="window.__pwned=3">\' is no' in card  # the error, as text

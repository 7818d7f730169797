"""API backends against local HTTP servers that speak the OpenAI and Gemini protocols."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

pytest.importorskip("openai", reason="API backend tests need the api extra (openai)")

from facescan.backends.base import FaceInput, load_backend  # noqa: E402


class FakeHandler(BaseHTTPRequestHandler):
    """The FakeServer's request handler: ``self.fake`` is the FakeServer that scripts it."""

    @property
    def fake(self):
        return self.server.fake

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.fake.lock:
            self.fake.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization"),
                                      "goog": self.headers.get("x-goog-api-key")})
            status = self.fake.script.pop(0) if self.fake.script else 200
        if status != 200:
            message = f"slow down ({self._credentials()})" if self.fake.echo else "slow down"
            self._send(status, {"error": {"message": message, "code": status}},
                       {"retry-after-ms": "10", "retry-after": "0"})
            return
        if self.fake.slow_marker and self.fake.slow_marker in json.dumps(body):
            time.sleep(self.fake.slow_seconds)
        if "generateContent" in self.path:
            self._gemini(body)
        else:
            self._openai(body)

    def _send(self, status, payload, headers=None):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        try:
            self.wfile.write(data)
        except OSError:
            pass

    def _credentials(self):
        return f"you sent {self.headers.get('Authorization')} / {self.headers.get('x-goog-api-key')}"

    def _answer(self, schema):
        props = schema["properties"]
        attr = next(iter(props))
        if self.fake.echo:  # an upstream that repeats the key: in free text, and in an attribute's answer
            text = json.dumps({"answer": self._credentials()}) if attr == "answer" else self._credentials()
            return attr, text, props
        text = self.fake.answers.get(attr) or json.dumps({a: p["enum"][0] for a, p in props.items()})
        return attr, text, props

    def _openai(self, body):
        attr, text, props = self._answer(body["response_format"]["json_schema"]["schema"])
        logprobs = None
        if body.get("logprobs"):
            first, second = props[attr]["enum"][:2]
            tokens = ['{"', attr, '":"', first, '"}']
            content = [{"token": t, "logprob": 0.0, "bytes": None, "top_logprobs": []} for t in tokens]
            content[3]["top_logprobs"] = [{"token": first, "logprob": np.log(0.7), "bytes": None},
                                          {"token": second, "logprob": np.log(0.2), "bytes": None},
                                          {"token": "I", "logprob": np.log(0.1), "bytes": None}]
            logprobs = {"content": content, "refusal": None}
        self._send(200, {
            "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": logprobs,
                         "message": {"role": "assistant", "content": text}}],
        })

    def _gemini(self, body):
        schema = body["generationConfig"]["responseJsonSchema"]
        _, text, _ = self._answer(schema)
        self._send(200, {"candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
                                         "finishReason": "STOP", "index": 0}]})


class FakeServer:
    """A chat-completions / generateContent server on 127.0.0.1 whose behaviour a test scripts.

    ``answers``: attribute → answer text (default: the first allowed option as JSON);
    ``script``: statuses to return before answering normally (e.g. [429]);
    ``slow_marker``: requests whose image data contains it sleep ``slow_seconds``;
    ``echo``: every answer and error message repeats the credentials the request carried.
    """

    def __init__(self):
        self.requests = []
        self.answers = {}
        self.script = []
        self.slow_marker = None
        self.slow_seconds = 0.0
        self.echo = False
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeHandler)
        self.httpd.fake = self
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


@pytest.fixture()
def server(monkeypatch, tmp_path):
    monkeypatch.setenv("FACESCAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    s = FakeServer()
    yield s
    s.close()


def _faces(n, seed=0):
    rng = np.random.default_rng(seed)
    return [FaceInput(chip=rng.integers(0, 255, (48, 48, 3), dtype=np.uint8), padding=0.25) for _ in range(n)]


def test_valid_json_answers_with_logprobs_become_distributions(server):
    backend = load_backend(f"openai:{server.url}/v1#tiny-vlm?retries=0")
    preds = backend.predict(_faces(2), ["gender", "age"])
    assert len(server.requests) == 4  # 2 faces × 2 questions
    body = server.requests[0]["body"]
    assert body["response_format"]["type"] == "json_schema" and body["temperature"] == 0
    assert body["messages"][0]["content"][0]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    g = preds[0]["gender"]
    assert g.label == "male" and g.mode == "generation" and g.prompt == "paper"
    # top logprobs of the value token: male 0.7, female 0.2, an unrelated token left out
    assert g.probabilities["male"] == pytest.approx(0.7 / 0.9) and g.probabilities["female"] == pytest.approx(0.2 / 0.9)
    a = preds[1]["age"]
    assert a.label == "0-2" and sum(a.probabilities.values()) == pytest.approx(1.0)
    assert a.model == f"{server.url}/v1#tiny-vlm"


def test_malformed_answer_is_invalid_with_its_raw_text(server):
    server.answers["emotion"] = "I cannot determine the emotion of this person."
    pred = load_backend(f"openai:{server.url}/v1#m?retries=0").predict(_faces(1), ["emotion"])[0]["emotion"]
    assert pred.label is None and not pred.valid
    assert pred.raw == "I cannot determine the emotion of this person." and "no label" in pred.error


def test_429_is_retried_then_succeeds(server):
    server.script = [429, 503]
    pred = load_backend(f"openai:{server.url}/v1#m?retries=3").predict(_faces(1), ["gender"])[0]["gender"]
    assert pred.valid and len(server.requests) == 3


def test_timeout_is_that_faces_error_and_the_batch_goes_on(server):
    faces = _faces(3)
    import base64

    from facescan.backends.api import jpeg_bytes

    server.slow_marker = base64.b64encode(jpeg_bytes(faces[1].chip)).decode()[-200:-160]
    server.slow_seconds = 3.0
    backend = load_backend(f"openai:{server.url}/v1#m?retries=0&timeout=0.5")
    t0 = time.time()
    preds = backend.predict(faces, ["gender"])
    assert time.time() - t0 < 2.5
    assert preds[0]["gender"].valid and preds[2]["gender"].valid
    bad = preds[1]["gender"]
    assert not bad.valid and "Timeout" in bad.error


def test_identical_request_is_served_from_the_cache(server):
    faces = _faces(2)
    first = load_backend(f"openai:{server.url}/v1#m?retries=0").predict(faces, ["race"])
    n = len(server.requests)
    again = load_backend(f"openai:{server.url}/v1#m?retries=0")
    second = again.predict(faces, ["race"])
    assert len(server.requests) == n and again.calls == 0
    assert [p["race"].probabilities for p in first] == [p["race"].probabilities for p in second]
    load_backend(f"openai:{server.url}/v1#other-model?retries=0").predict(faces, ["race"])
    assert len(server.requests) == n + 2  # another model is another cache key


def test_json_preset_asks_once_per_face_for_all_attributes(server):
    server.answers["age"] = '{"age": "20-29", "gender": "Female", "emotion": "joyful"}'
    preds = load_backend(f"openai:{server.url}/v1#m?preset=json&retries=0").predict(_faces(1), ["age", "gender",
                                                                                              "emotion"])[0]
    assert len(server.requests) == 1
    assert (preds["age"].label, preds["gender"].label, preds["emotion"].label) == ("20-29", "female", "happy")


def test_api_key_is_sent_but_never_written_into_results(server, monkeypatch):
    monkeypatch.setenv("MY_SERVER_KEY", "sk-secret-123")
    server.script = [500]
    preds = load_backend(f"openai:{server.url}/v1#m?retries=0&cache=off&key_env=MY_SERVER_KEY").predict(
        _faces(1), ["gender"])
    assert server.requests[0]["auth"] == "Bearer sk-secret-123"
    assert "sk-secret-123" not in preds[0]["gender"].model_dump_json()


OFFICIAL_KEY, SERVER_KEY = "sk-official-SECRET-0001", "srv-SECRET-4567"


def test_a_custom_base_url_never_gets_the_official_key(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", OFFICIAL_KEY)
    monkeypatch.setenv("GEMINI_API_KEY", OFFICIAL_KEY)
    server.echo = True
    pred = load_backend(f"openai:{server.url}/v1#m?retries=0&cache=off").predict(_faces(1), ["gender"])[0]["gender"]
    assert server.requests[-1]["auth"] == "Bearer not-needed" and OFFICIAL_KEY not in pred.model_dump_json()
    assert load_backend("openai:https://api.openai.com/v1#gpt-4o")._key == OFFICIAL_KEY  # the official host
    assert load_backend("openai:gpt-4o")._key == OFFICIAL_KEY
    assert load_backend(f"openai:{server.url.replace('127.0.0.1', 'api.openai.com')}/v1#m")._key is None  # http
    pytest.importorskip("google.genai", reason="needs the api extra (google-genai)")
    load_backend(f"gemini:{server.url}#gemini-test?retries=0&cache=off").predict(_faces(1), ["gender"])
    assert OFFICIAL_KEY not in json.dumps(server.requests[-1])


def test_key_env_is_sent_and_masked_in_every_text(server, monkeypatch, tmp_path):
    from facescan.ask import resolve_with_vlm
    from facescan.explain.chain import explain_with_vlm
    from facescan.schema import Box, Face

    monkeypatch.setenv("OPENAI_API_KEY", OFFICIAL_KEY)
    monkeypatch.setenv("MY_SERVER_KEY", SERVER_KEY)
    server.echo = True
    backend = load_backend(f"openai:{server.url}/v1#m?retries=0&key_env=MY_SERVER_KEY")  # cache on
    pred = backend.predict(_faces(1), ["gender"])[0]["gender"]
    assert server.requests[-1]["auth"] == f"Bearer {SERVER_KEY}"
    assert SERVER_KEY in server.requests[-1]["auth"] and "Bearer ***" in pred.raw  # the echo, masked
    texts = [pred.model_dump_json(), backend.ask_image(np.zeros((32, 32, 3), np.uint8), "say it")]
    explanation, emotion = explain_with_vlm(backend, np.zeros((48, 48, 3), np.uint8))
    texts += [explanation, emotion.model_dump_json()]
    faces = [Face(index=0, box=Box(x=1, y=1, width=20, height=20), score=1.0)]
    texts.append(json.dumps(resolve_with_vlm(backend, np.zeros((64, 64, 3), np.uint8), "the man", faces).as_dict()))
    server.script = [500]  # an error message that echoes the key
    failed = load_backend(f"openai:{server.url}/v1#m?retries=0&cache=off&key_env=MY_SERVER_KEY")
    texts.append(failed.predict(_faces(1, seed=9), ["age"])[0]["age"].model_dump_json())
    assert "500" in texts[-1] and "***" in texts[-1]
    server.script = [500]
    with pytest.raises(Exception) as raised:
        failed.ask_image(np.ones((32, 32, 3), np.uint8), "say it")
    texts.append(str(raised.value))
    texts += [f.read_text() for f in (tmp_path / "cache").rglob("*.json")]  # nothing cached holds the key
    assert all("***" in t for t in texts[:3]) and len(texts) > 8
    assert not [t for t in texts if SERVER_KEY in t or OFFICIAL_KEY in t]


def test_key_env_that_is_not_set_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    with pytest.raises(ValueError, match="key_env names NO_SUCH_KEY_VAR"):
        load_backend("openai:http://127.0.0.1:9/v1#m?key_env=NO_SUCH_KEY_VAR")


def test_served_answers_never_carry_the_key(server, monkeypatch):
    pytest.importorskip("fastapi", reason="needs the serve extra (fastapi)")
    from fastapi.testclient import TestClient

    from facescan.serve import ServeConfig, create_app

    from .conftest import shared

    photo = {"image": ("p.jpg", shared("photos", "single_face.jpg").read_bytes(), "image/jpeg")}
    monkeypatch.setenv("OPENAI_API_KEY", OFFICIAL_KEY)
    monkeypatch.setenv("MY_SERVER_KEY", SERVER_KEY)
    server.echo = True
    spec = f"openai:{server.url}/v1#m?retries=0&cache=off&key_env=MY_SERVER_KEY"
    with TestClient(create_app(ServeConfig(backends=["builtin", spec])), base_url="http://127.0.0.1") as c:
        asked = c.post("/v1/ask", files=photo, data={"question": "the person", "chooser": "vlm", "backend": spec})
        explained = c.post("/v1/analyze", files=photo, data={"backend": spec, "explain": "true",
                                                             "attributes": "emotion"})
    assert asked.status_code == 200 and explained.status_code == 200, (asked.text, explained.text)
    assert "Bearer ***" in asked.text and "Bearer ***" in explained.json()["faces"][0]["explanation"]
    assert all(r["auth"] == f"Bearer {SERVER_KEY}" for r in server.requests)
    assert SERVER_KEY not in asked.text + explained.text and OFFICIAL_KEY not in asked.text + explained.text


def test_official_endpoint_without_key_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        load_backend("openai:gpt-4o")


def test_gemini_protocol_answer_and_cache(server, monkeypatch):
    pytest.importorskip("google.genai", reason="needs the api extra (google-genai)")
    monkeypatch.setenv("GEMINI_API_KEY", "g-key")
    backend = load_backend(f"gemini:{server.url}#gemini-test?retries=0")
    pred = backend.predict(_faces(1), ["gender"])[0]["gender"]
    assert pred.valid and pred.label == "male" and pred.backend == "gemini"
    assert "gemini-test:generateContent" in server.requests[0]["path"]
    backend.predict(_faces(1), ["gender"])
    assert len(server.requests) == 1


def test_vlm_explanation_final_answer_is_parsed_like_any_answer(server):
    import json

    from facescan.pipeline import Analyzer

    spec = f"openai:{server.url}/v1#tiny-vlm?retries=0"
    server.answers["answer"] = json.dumps({"answer": (
        "Key observations:\n- AU6 (cheek raiser), intensity 3/5; linked with happy.\n- AU12 (lip corner puller), "
        "intensity 4/5; linked with happy.\nOverall interpretation: a broad smile.\nFinal answer: Happy")})
    analyzer = Analyzer(backend=spec, attributes="emotion", crops=True, explain=True)
    face = analyzer.analyze(np.random.default_rng(0).integers(0, 255, (96, 96, 3), dtype=np.uint8)).faces[0]
    assert face.attributes["emotion"].label == "happy" and face.attributes["emotion"].mode == "explanation"
    assert "AU12" in face.explanation and face.explanation.rstrip().endswith("Final answer: Happy")
    assert "Final answer" in server.requests[-1]["body"]["messages"][0]["content"][1]["text"]  # the ExpLLM prompt

    server.answers["answer"] = json.dumps({"answer": "Key observations: none.\nFinal answer: bored"})
    face = Analyzer(backend=spec, attributes="emotion", crops=True, explain=True).analyze(
        np.random.default_rng(1).integers(0, 255, (96, 96, 3), dtype=np.uint8)).faces[0]
    emotion = face.attributes["emotion"]
    assert emotion.label is None and "bored" in emotion.error and "Final answer: bored" in emotion.raw


def test_openai_backend_chooses_a_numbered_box(server):
    import json

    from facescan.ask import resolve_with_vlm
    from facescan.schema import Box, Face

    backend = load_backend(f"openai:{server.url}/v1#tiny-vlm?retries=0")
    faces = [Face(index=i, box=Box(x=10 + 60 * i, y=20, width=40, height=40), score=1.0) for i in range(3)]
    server.answers["answer"] = json.dumps({"answer": "2"})
    answer = resolve_with_vlm(backend, np.full((100, 200, 3), 128, np.uint8), "the person in the middle", faces)
    assert answer.status == "answered" and answer.face == 1
    assert "Which numbered box shows the person in the middle" in json.dumps(server.requests[-1]["body"])


def test_explain_on_a_vlm_makes_one_emotion_call_per_face(server):
    """With --explain, the VLM's chain of thought gives the emotion: emotion is not asked a second time."""
    import json

    from facescan.pipeline import Analyzer

    server.answers["answer"] = json.dumps({"answer": "Key observations: AU12.\nFinal answer: Happy"})
    chips = [np.random.default_rng(k).integers(0, 255, (96, 96, 3), dtype=np.uint8) for k in range(3)]
    only_emotion = Analyzer(backend=f"openai:{server.url}/v1#m?retries=0&cache=off", attributes="emotion",
                            crops=True, explain=True)
    faces = [r.faces[0] for r in only_emotion.analyze_many(chips)]
    assert len(server.requests) == 3  # one model call per face, not two
    assert all(f.attributes["emotion"].label == "happy" for f in faces)

    server.requests.clear()
    both = Analyzer(backend=f"openai:{server.url}/v1#m?retries=0&cache=off&preset=json", attributes="age,emotion",
                    crops=True, explain=True)
    faces = [r.faces[0] for r in both.analyze_many(chips)]
    assert len(server.requests) == 6  # per face: one JSON answer for age, one explanation
    schemas = [r["body"]["response_format"]["json_schema"]["schema"]["properties"] for r in server.requests]
    assert sorted(sorted(s) for s in schemas) == [["age"]] * 3 + [["answer"]] * 3
    assert [list(f.attributes) for f in faces] == [["age", "emotion"]] * 3

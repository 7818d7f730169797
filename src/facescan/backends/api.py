"""API VLMs: OpenAI-compatible chat completions (OpenAI, vLLM, Ollama, llama.cpp, LM Studio,
SGLang…) and Google Gemini, behind the same backend interface.

Specs: ``openai:<model>``, ``openai:<base url>#<model>``, ``gemini:<model>``, each optionally
followed by ``?preset=…&concurrency=…&timeout=…&retries=…&cache=on|off&logprobs=on|off&key_env=VAR``.

Each face is sent as a JPEG chip with one question per attribute (or one JSON question,
``preset=json``). Answers are asked for as JSON constrained to the label options (structured
output) and parsed by :mod:`facescan.backends.parsing`; an answer that maps to no label is
recorded as invalid. Where the API returns top log-probabilities (OpenAI-compatible servers),
the probabilities of the answer's first token become the label distribution.

Retries with exponential backoff on 429/5xx and timeouts are the SDKs' own (openai, google-genai).
Responses are cached on disk by (image hash, prompt, model, parameters), so a repeated request
makes no network call.

API keys come from the environment, and only go where the operator said: the official endpoint
(no base URL, or ``https://api.openai.com…`` / ``https://generativelanguage.googleapis.com…``) takes
``OPENAI_API_KEY`` / ``GEMINI_API_KEY`` or ``GOOGLE_API_KEY``; a custom base URL takes a key only
from the variable its spec names (``openai:http://host/v1#model?key_env=MY_SERVER_KEY``), and
none otherwise (local servers take any key). Every text a backend returns or records (answers,
raw text, explanations, error messages, cached responses) has each key it knows replaced by
``***``, so an upstream that echoes the key never gets it into a result, a log or an HTTP answer.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from facescan import prompts
from facescan.backends.base import FaceInput
from facescan.backends.parsing import parse_answer, parse_json_answer
from facescan.registry import typed_options
from facescan.schema import AttributePrediction


def default_cache_dir() -> Path:
    return Path(os.environ.get("FACESCAN_CACHE", Path.home() / ".cache" / "facescan")) / "responses"


class ResponseCache:
    """One JSON file per response, named by the hash of its request.

    Written by hand because the cache holds a few small JSON answers and must not keep images:
    the key is built from the image's hash, never from the image itself.
    """

    def __init__(self, folder: Path | None):
        self.folder = folder

    @staticmethod
    def key(**request) -> str:
        return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()

    def get(self, key: str) -> dict | None:
        if self.folder is None:
            return None
        path = self.folder / f"{key}.json"
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def put(self, key: str, value: dict) -> None:
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f"{key}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(value))
        tmp.replace(self.folder / f"{key}.json")  # atomic: concurrent readers never see half a file


@dataclass
class APIOptions:
    """Options shared by the API backends."""

    model: str
    base_url: str | None = None
    preset: str = "paper"
    concurrency: int = 4
    timeout: float = 60.0
    retries: int = 4
    cache: str = "on"
    logprobs: str = "on"
    key_env: str | None = None  # the variable holding the key for a custom base URL

    @classmethod
    def build(cls, target: str, kind: str, **options) -> APIOptions:
        """``<model>`` or ``<base url>#<model>`` plus ``key=value`` options, with clear errors."""
        base_url, sep, model = target.rpartition("#")
        if not sep:
            base_url, model = None, target
        if not model:
            raise ValueError(f"{kind} backend needs a model: {kind}:<model> or {kind}:<base url>#<model>")
        if {"model", "base_url"} & set(options):
            raise ValueError(f"{kind} backend: give the model and base url as {kind}:<base url>#<model>")
        return cls(model=model, base_url=base_url or None, **typed_options(cls, options, f"{kind} backend"))


class APIRequestError(RuntimeError):
    """A request to the API failed; the message (the cause's type and text) has every known key masked."""


def jpeg_bytes(chip: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(chip)).convert("RGB").save(buf, format="JPEG", quality=95)
    return buf.getvalue()


class APIBackend:
    """Common logic of the API backends; subclasses implement :meth:`request`."""

    name = "api"
    key_variables: tuple[str, ...] = ()  # the official endpoint's key, in order of preference
    official_hosts: tuple[str, ...] = ()  # https hosts a base URL may name and still be the official endpoint

    def __init__(self, options: APIOptions):
        self.options = options
        self._key: str | None = None  # the key the client sends (set by the subclass)
        self.preset = prompts.load_preset(options.preset)
        self.cache = ResponseCache(default_cache_dir() if options.cache == "on" else None)
        self.model_id = options.model if not options.base_url else f"{options.base_url}#{options.model}"
        self.calls = 0  # network requests made (cache hits excluded)

    @classmethod
    def from_spec(cls, target: str, **options) -> APIBackend:
        """The registry's factory: ``<kind>:<model>`` or ``<kind>:<base url>#<model>``, ``?key=value&…``."""
        return cls(APIOptions.build(target, cls.name, **options))

    def official_endpoint(self) -> bool:
        """Whether requests go to the provider's own API (no base URL, or an https URL on its host)."""
        base = self.options.base_url
        if base is None:
            return True
        url = urlparse(base)
        return url.scheme == "https" and (url.hostname or "") in self.official_hosts

    def api_key(self, required: bool) -> str | None:
        """The key to send: ``key_env``'s value when the spec names it; else the official endpoint's
        variables, for the official endpoint only (a custom base URL never gets them implicitly)."""
        var = self.options.key_env
        if var:
            if not os.environ.get(var):
                raise ValueError(f"{self.name} backend: key_env names {var}, which is not set")
            return os.environ[var]
        if not self.official_endpoint():
            return None
        for var in self.key_variables:
            if os.environ.get(var):
                return os.environ[var]
        if required:
            raise ValueError(f"{self.name} backend needs an API key in {' or '.join(self.key_variables)}")
        return None

    def known_keys(self) -> list[str]:
        """Every key value this backend knows (sent or in its variables), longest first."""
        names = [*self.key_variables, *([self.options.key_env] if self.options.key_env else [])]
        keys = {os.environ.get(name) for name in names} | {self._key}
        return sorted((k for k in keys if k), key=len, reverse=True)

    def supported_attributes(self) -> tuple[str, ...]:
        return tuple(self.preset.questions)

    def request(self, image: bytes, question: str, schema: dict) -> dict:
        """Send one question; return {"text": answer, "top_logprobs": [[token, logprob]…] or None}."""
        raise NotImplementedError

    # ------------------------------------------------------------------ predict
    def predict(self, faces: Sequence[FaceInput], attributes: Sequence[str]) -> list[dict[str, AttributePrediction]]:
        """Every face × question concurrently (bounded); a failed request is an invalid prediction."""
        attributes = list(attributes)
        unknown = set(attributes) - set(self.supported_attributes())
        if unknown:
            raise ValueError(f"prompt preset {self.preset.name!r} has no question for {', '.join(sorted(unknown))}")
        groups = [attributes] if self.preset.style == "json" else [[a] for a in attributes]
        jobs = [(i, group) for i in range(len(faces)) for group in groups]
        images = [jpeg_bytes(f.chip) for f in faces]
        results: list[dict[str, AttributePrediction]] = [{} for _ in faces]
        with ThreadPoolExecutor(max_workers=max(1, self.options.concurrency)) as pool:
            answers = pool.map(lambda job: self._answer(images[job[0]], job[1]), jobs)
            for (i, _), preds in zip(jobs, answers):
                results[i].update(preds)
        return [{a: r[a] for a in attributes} for r in results]

    def _answer(self, image: bytes, group: list[str]) -> dict[str, AttributePrediction]:
        if len(group) == 1 and self.preset.style != "json":
            question = self.preset.question(group[0])
        else:
            question = self.preset.json_question(group)
        schema = self.answer_schema(group)
        key = ResponseCache.key(image=hashlib.sha256(image).hexdigest(), prompt=question, model=self.model_id,
                                backend=self.name, schema=schema, logprobs=self.options.logprobs)
        try:
            response = self._cached_request(key, image, question, schema)
        except Exception as e:  # noqa: BLE001 - any failure of one request is that face's error, the batch goes on
            message = str(e) if isinstance(e, APIRequestError) else self._safe(f"{type(e).__name__}: {e}")
            return {a: AttributePrediction.invalid(a, self.preset.label_set(a).name, self.name, self.model_id,
                                                   message, mode="generation", prompt=self.preset.name)
                    for a in group}
        return {a: self._prediction(a, response, len(group) == 1) for a in group}

    def ask_image(self, image, prompt: str, max_new_tokens: int | None = None) -> str:
        """A free-text answer to ``prompt`` about a whole RGB image (cached like every request)."""
        data = jpeg_bytes(image)
        schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"],
                  "additionalProperties": False}
        key = ResponseCache.key(image=hashlib.sha256(data).hexdigest(), prompt=prompt, model=self.model_id,
                                backend=self.name, schema=schema, logprobs="off")
        text = self._cached_request(key, data, prompt, schema)["text"]
        obj = parse_json_answer(text)
        return str(obj.get("answer", text)) if obj is not None else text

    def _cached_request(self, key: str, image: bytes, question: str, schema: dict) -> dict:
        """The cached response, or :meth:`request`'s, with its text masked (:meth:`_safe`); a failed
        request raises :class:`APIRequestError`, its message masked too."""
        response = self.cache.get(key)
        if response is None:
            try:
                response = self.request(image, question, schema)
            except Exception as e:  # noqa: BLE001 - re-raised with every known key masked out of its text
                raise APIRequestError(self._safe(f"{type(e).__name__}: {e}")) from None
            self.calls += 1
            response = {**response, "text": self._safe(response.get("text") or "")}
            self.cache.put(key, response)  # the key never reaches the cache's files either
        return {**response, "text": self._safe(response.get("text") or "")}

    def _safe(self, message: str) -> str:
        """``message`` with every API key this backend knows replaced by ``***``."""
        for key in self.known_keys():
            message = message.replace(key, "***")
        return message

    def answer_schema(self, attributes: list[str]) -> dict:
        """A JSON schema: one string property per attribute, constrained to its label options."""
        return {
            "type": "object",
            "properties": {a: {"type": "string", "enum": self.preset.options(a)} for a in attributes},
            "required": list(attributes),
            "additionalProperties": False,
        }

    def _prediction(self, attr: str, response: dict, single: bool) -> AttributePrediction:
        ls = self.preset.label_set(attr)
        text = response.get("text") or ""
        obj = parse_json_answer(text)
        value = str(obj[attr]) if obj is not None and obj.get(attr) is not None else (None if obj else text)
        spellings = {lab: self.preset.answer(attr, lab) for lab in ls.labels}
        label = parse_answer(value, ls, spellings)
        meta = {"mode": "generation", "prompt": self.preset.name}
        if label is None:
            return AttributePrediction.invalid(attr, ls.name, self.name, self.model_id, "answer maps to no label",
                                               raw=text, **meta)
        probs = [1.0 if lab == label else 0.0 for lab in ls.labels]
        if single and response.get("top_logprobs"):
            dist = self._logprob_distribution(attr, response["top_logprobs"])
            if dist is not None and dist[ls.labels.index(label)] > 0:
                probs = dist
        return AttributePrediction.from_probabilities(attr, ls.name, probs, self.name, self.model_id, raw=text,
                                                      **meta)

    def _logprob_distribution(self, attr: str, top: list) -> list[float] | None:
        """Probabilities over labels from the alternatives for the answer's first token.

        A token counts for a label when it starts exactly one label's spelling; tokens that
        start several labels, or none, are left out, and the rest is renormalized.
        """
        options = [o.lower() for o in self.preset.options(attr)]
        mass = [0.0] * len(options)
        for token, logprob in top:
            t = token.strip().lower().lstrip('"')
            hits = [i for i, o in enumerate(options) if t and o.startswith(t)]
            if len(hits) == 1:
                mass[hits[0]] += math.exp(logprob)
        total = sum(mass)
        return [m / total for m in mass] if total > 0 else None


def _value_token_alternatives(content: list, attribute: str) -> list | None:
    """In a JSON answer's token log-probs, the alternatives for the first token of ``attribute``'s value."""
    text = ""
    for item in content:
        compact = text.replace(" ", "")
        if compact.endswith(f'"{attribute}":"') or compact.endswith(f'"{attribute}":'):
            return [[t["token"], t["logprob"]] for t in item.get("top_logprobs") or []]
        text += item.get("token", "")
    return None


class OpenAIBackend(APIBackend):
    """Chat completions with an image, on OpenAI or any OpenAI-compatible server."""

    name = "openai"
    key_variables = ("OPENAI_API_KEY",)
    official_hosts = ("api.openai.com",)

    def __init__(self, options: APIOptions):
        super().__init__(options)
        import openai

        o = self.options
        # local servers (vLLM, Ollama, llama.cpp…) usually take any key
        self._key = self.api_key(required=self.official_endpoint())
        self.client = openai.OpenAI(api_key=self._key or "not-needed", base_url=o.base_url, timeout=o.timeout,
                                    max_retries=o.retries)

    def request(self, image: bytes, question: str, schema: dict) -> dict:
        import base64

        url = "data:image/jpeg;base64," + base64.b64encode(image).decode()
        props = schema["properties"]
        # label probabilities come from the value token of a one-label answer; free text has none
        want_logprobs = self.options.logprobs == "on" and len(props) == 1 and "enum" in next(iter(props.values()))
        response = self.client.chat.completions.create(
            model=self.options.model, temperature=0,
            messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                                   {"type": "text", "text": question}]}],
            response_format={"type": "json_schema",
                             "json_schema": {"name": "face_attributes", "schema": schema, "strict": True}},
            **({"logprobs": True, "top_logprobs": 10} if want_logprobs else {}),
        )
        choice = response.choices[0]
        top = None
        if want_logprobs and choice.logprobs is not None and choice.logprobs.content:
            content = [c.model_dump() for c in choice.logprobs.content]
            top = _value_token_alternatives(content, next(iter(schema["properties"])))
        return {"text": choice.message.content or "", "top_logprobs": top}


class GeminiBackend(APIBackend):
    """Google Gemini through google-genai, with JSON-schema constrained answers."""

    name = "gemini"
    key_variables = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    official_hosts = ("generativelanguage.googleapis.com",)

    def __init__(self, options: APIOptions):
        super().__init__(options)
        from google import genai
        from google.genai import types

        o = self.options
        http = types.HttpOptions(
            base_url=o.base_url, timeout=int(o.timeout * 1000),
            retry_options=types.HttpRetryOptions(attempts=o.retries + 1, initial_delay=0.5,
                                                 http_status_codes=[408, 429, 500, 502, 503, 504]),
        )
        self._key = self.api_key(required=self.official_endpoint())
        self.client = genai.Client(api_key=self._key or "not-needed", http_options=http)
        self._types = types

    def request(self, image: bytes, question: str, schema: dict) -> dict:
        types = self._types
        response = self.client.models.generate_content(
            model=self.options.model,
            contents=[types.Part.from_bytes(data=image, mime_type="image/jpeg"), question],
            config=types.GenerateContentConfig(temperature=0, response_mime_type="application/json",
                                               response_json_schema=schema),
        )
        return {"text": response.text or "", "top_logprobs": None}

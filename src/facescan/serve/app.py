"""The REST service and its web page: ``facescan serve``.

Routes: ``POST /v1/analyze`` and ``POST /v1/ask`` (a multipart upload, or JSON with a base64
image), ``GET /v1/models``, ``GET /healthz``, ``GET /metrics`` (Prometheus text) and the page at
``/``. Results have the CLI's schema. Uploaded images live in memory only: they are never written
to disk or to a log.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import io
import ipaddress
import json
import re
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from facescan import __version__, taxonomy
from facescan.schema import ImageResult
from facescan.serve.batching import DynamicBatcher, QueueFull

LOOPBACK_NAMES = ("localhost", "ip6-localhost")


@dataclass
class ServeConfig:
    """Everything ``facescan serve`` can be told (the first backend is the default one)."""

    backends: list[str] = field(default_factory=lambda: ["builtin"])
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    max_upload_mb: float = 10.0
    max_pixels: int = 40_000_000
    request_timeout: float = 30.0
    max_batch: int = 16
    batch_wait_ms: float = 5.0
    max_queue: int = 64
    cors_origins: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        return cls(**json.loads(text))


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond this machine without a bearer token."""
    if not is_loopback(host) and not token:
        raise ValueError(f"refusing to listen on {host} without a bearer token: anyone who can reach it could "
                         "use it. Pass --token (or set FACESCAN_TOKEN), or listen on 127.0.0.1.")


# ----------------------------------------------------------------------------- request models
class AnalyzeJSON(BaseModel):
    """``POST /v1/analyze`` as JSON."""

    image_base64: str = Field(description="The image file's bytes, base64-encoded (JPEG, PNG, WebP…).")
    attributes: list[str] | str | None = Field(None, description="Attributes; default age, gender, emotion. "
                                                                 "Race only when asked for.")
    backend: str | None = Field(None, description="One of the backends GET /v1/models lists.")
    describe: bool = False
    explain: bool = False


class AskJSON(AnalyzeJSON):
    """``POST /v1/ask`` as JSON."""

    question: str = Field(description='About one person, e.g. "How old is the man in the light blue shirt?"',
                          min_length=1, max_length=500)
    chooser: str = Field("descriptors", description="descriptors, or vlm (the backend picks a numbered box).")


class AskResponse(BaseModel):
    answer: dict[str, Any]
    result: ImageResult


class Problem(BaseModel):
    detail: str


def _multipart_schema(extra: dict) -> dict:
    props = {"image": {"type": "string", "format": "binary", "description": "The photo."},
             "attributes": {"type": "string", "description": "Comma-separated attributes."},
             "backend": {"type": "string"}, "describe": {"type": "boolean"}, "explain": {"type": "boolean"},
             **extra}
    return {"type": "object", "properties": props, "required": ["image", *[k for k in extra if k == "question"]]}


def _body_doc(json_model: type[BaseModel], extra: dict) -> dict:
    return {"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": _multipart_schema(extra)},
        "application/json": {"schema": {"$ref": f"#/components/schemas/{json_model.__name__}"}},
    }}}


ERRORS = {400: {"model": Problem}, 401: {"model": Problem}, 411: {"model": Problem}, 413: {"model": Problem},
          415: {"model": Problem}, 422: {"model": Problem}, 429: {"model": Problem}, 503: {"model": Problem}}


# ----------------------------------------------------------------------------- the app
class _State:
    """Models (loaded once per process), the batcher and the metrics of one app."""

    def __init__(self, config: ServeConfig):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        from facescan.backends.base import load_backend
        from facescan.detect import create_detector

        self.config = config
        self.backends = {spec: load_backend(spec) for spec in config.backends}
        self.detector = create_detector("mediapipe")
        self._describer = None
        self._explainer = None
        self._analyzers: dict[tuple, object] = {}
        self._lock = threading.Lock()
        self.registry = CollectorRegistry()
        self.requests = Counter("facescan_requests", "HTTP requests by route and status", ["route", "status"],
                                registry=self.registry)
        self.latency = Histogram("facescan_request_seconds", "Request latency", ["route"], registry=self.registry,
                                 buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.batch_size = Histogram("facescan_batch_size", "Images per model batch", registry=self.registry,
                                    buckets=(1, 2, 4, 8, 16, 32, 64))
        self.queue_wait = Histogram("facescan_batch_wait_seconds", "Time from queueing to batching",
                                    registry=self.registry, buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5))
        self.faces = Counter("facescan_faces", "Faces analyzed", registry=self.registry)
        self.queue_depth = Gauge("facescan_queue_depth", "Requests waiting for a batch", registry=self.registry)
        self.batcher = DynamicBatcher(self.analyzer_for, max_batch=config.max_batch,
                                      max_wait=config.batch_wait_ms / 1000, max_queue=config.max_queue,
                                      on_batch=self._batched)
        self.queue_depth.set_function(lambda: self.batcher.depth)

    def _batched(self, size: int, waited: float) -> None:
        self.batch_size.observe(size)
        self.queue_wait.observe(waited)

    def analyzer_for(self, key: tuple):
        """One Analyzer per (backend, attributes, describe, explain), sharing the loaded models."""
        from facescan.pipeline import Analyzer

        with self._lock:
            if key not in self._analyzers:
                backend, attributes, describe, explain = key
                analyzer = Analyzer(backend=self.backends[backend], detector=self.detector, attributes=attributes)
                if describe:
                    if self._describer is None:
                        from facescan.describe.person import PersonDescriber

                        self._describer = PersonDescriber()
                    analyzer.describer = self._describer
                if explain:
                    if self._explainer is None:
                        from facescan.describe.explain import Explainer

                        self._explainer = Explainer()
                    analyzer.explainer = self._explainer
                    if "emotion" not in analyzer.attributes:
                        analyzer.attributes = (*analyzer.attributes, "emotion")
                self._analyzers[key] = analyzer
            return self._analyzers[key]


def create_app(config: ServeConfig | None = None) -> FastAPI:
    """The FastAPI app for ``config`` (models load here, once)."""
    config = config or ServeConfig()
    check_bind(config.host, config.token)
    state = _State(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        state.batcher.close()

    # No /docs or /redoc: their pages load Swagger UI / ReDoc from a CDN, and this service must work
    # offline; the spec itself is at /openapi.json.
    app = FastAPI(title="facescan", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Facial attributes (age group, gender, race, emotion), person descriptors and "
                              "questions about one person in a photo. Race is computed only when asked for.")
    app.state.facescan = state
    max_bytes = int(config.max_upload_mb * 1024 * 1024)
    # Starlette spools multipart files over 1 MB to a temporary file; uploads here stay in memory
    # (the Content-Length check below bounds them), so nothing of an image ever reaches the disk.
    from starlette.formparsers import MultiPartParser

    MultiPartParser.spool_max_size = max(MultiPartParser.spool_max_size, max_bytes + 1024 * 1024)
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=config.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])

    @app.middleware("http")
    async def limits_and_metrics(request: Request, call_next):
        started = time.perf_counter()
        route = request.url.path if request.url.path in _ROUTES else "other"
        if request.method == "POST":
            length = request.headers.get("content-length")
            if length is None or not length.isdigit():
                response = _problem(411, "send a Content-Length header (uploads are limited to "
                                         f"{config.max_upload_mb:g} MB)")
            elif int(length) > max_bytes:
                response = _problem(413, f"upload of {int(length) / 1e6:.1f} MB is over the "
                                         f"{config.max_upload_mb:g} MB limit")
            else:
                response = await call_next(request)
        else:
            response = await call_next(request)
        state.requests.labels(route, str(response.status_code)).inc()
        state.latency.labels(route).observe(time.perf_counter() - started)
        return response

    def authorized(request: Request) -> None:
        if not config.token:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip(), config.token):
            raise HTTPException(401, "a bearer token is required (Authorization: Bearer <token>)",
                                headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException):
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(resources.files("facescan.serve").joinpath("static", "index.html").read_text("utf-8"))

    @app.get("/healthz")
    def healthz() -> dict:
        """Liveness: the models are loaded and the queue is open."""
        return {"status": "ok", "version": __version__, "queue": state.batcher.depth,
                "auth_required": bool(config.token)}

    @app.get("/metrics", response_class=Response, dependencies=[Depends(authorized)],
             responses={200: {"content": {"text/plain": {}}}, 401: {"model": Problem}})
    def metrics() -> Response:
        """Prometheus text format: requests, latency, batch sizes, queue depth, faces."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(state.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models", dependencies=[Depends(authorized)], responses={401: {"model": Problem}})
    def models() -> dict:
        """The backends this server loaded (the first is the default) and the attributes each predicts."""
        return {"default": config.backends[0],
                "backends": [{"name": spec, "attributes": list(b.supported_attributes())}
                             for spec, b in state.backends.items()],
                "attributes": list(taxonomy.ATTRIBUTES), "default_attributes": ["age", "gender", "emotion"],
                "limits": {"max_upload_mb": config.max_upload_mb, "max_pixels": config.max_pixels,
                           "request_timeout_s": config.request_timeout}}

    async def read_request(request: Request, model: type[BaseModel]) -> tuple[bytes, BaseModel]:
        """The image bytes and options of a multipart or JSON request (422 naming what is wrong)."""
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("application/json"):
            try:
                body = model.model_validate_json(await request.body())
            except Exception as e:  # pydantic's ValidationError or bad JSON
                raise HTTPException(422, f"invalid JSON body: {_short(e)}") from None
            try:
                data = base64.b64decode(body.image_base64, validate=True)
            except (binascii.Error, ValueError):
                raise HTTPException(422, "image_base64 is not valid base64") from None
            return data, body
        if ctype.startswith("multipart/form-data"):
            try:
                form = await request.form(max_files=1, max_fields=10)
            except Exception as e:  # malformed multipart
                raise HTTPException(422, f"malformed multipart body: {_short(e)}") from None
            upload = form.get("image")
            if upload is None or isinstance(upload, str):
                raise HTTPException(422, "the form has no file field 'image'")
            data = await upload.read()
            fields = {k: v for k, v in form.items() if isinstance(v, str)}
            for flag in ("describe", "explain"):
                if flag in fields:
                    value = fields[flag].strip().lower()
                    if value not in ("true", "false", "1", "0", "on", "off", ""):
                        raise HTTPException(422, f"{flag} must be true or false, not {fields[flag]!r}")
                    fields[flag] = value in ("true", "1", "on")
            try:
                body = model.model_validate({**fields, "image_base64": ""})
            except Exception as e:
                raise HTTPException(422, f"invalid form fields: {_short(e)}") from None
            return data, body
        raise HTTPException(415, "send multipart/form-data (field 'image') or application/json (image_base64)")

    def check_image(data: bytes) -> None:
        """Reject what is not an image (422) or has too many pixels (413) before it is queued."""
        from PIL import Image, UnidentifiedImageError

        if not data:
            raise HTTPException(422, "the image is empty (0 bytes)")
        try:
            with Image.open(io.BytesIO(data)) as img:  # reads the header only
                width, height = img.size
        except UnidentifiedImageError:
            raise HTTPException(422, "the upload is not a recognized image format (JPEG, PNG, WebP, BMP, "
                                     "TIFF, GIF…)") from None
        except Exception as e:  # noqa: BLE001 - a header PIL cannot parse
            raise HTTPException(422, f"the image header cannot be read: {_short(e)}") from None
        if width * height > config.max_pixels:
            raise HTTPException(413, f"{width}x{height} = {width * height:,} pixels is over the "
                                     f"{config.max_pixels:,} pixel limit")

    def analyzer_key(body: AnalyzeJSON, force_describe: bool = False) -> tuple:
        from facescan.pipeline import parse_attributes

        backend = body.backend or config.backends[0]
        if backend not in state.backends:
            raise HTTPException(422, f"backend {backend!r} is not served here; GET /v1/models lists "
                                     f"{', '.join(state.backends)}")
        try:
            attributes = parse_attributes(body.attributes)
        except ValueError as e:
            raise HTTPException(422, str(e)) from None
        missing = set(attributes) - set(state.backends[backend].supported_attributes())
        if missing:
            raise HTTPException(422, f"backend {backend} cannot predict {', '.join(sorted(missing))}")
        return backend, attributes, body.describe or force_describe, body.explain

    async def run(key: tuple, data: bytes) -> ImageResult:
        try:
            future = state.batcher.submit(key, data)
        except QueueFull as e:
            raise HTTPException(429, f"the server is busy ({e}); retry shortly",
                                headers={"Retry-After": "1"}) from None
        try:
            result = await asyncio.wait_for(asyncio.wrap_future(future), config.request_timeout)
        except TimeoutError:
            future.cancel()
            raise HTTPException(503, f"the analysis took longer than {config.request_timeout:g} s; retry later",
                                headers={"Retry-After": "5"}) from None
        if result.error:
            raise HTTPException(422, re.sub(r"^<(\d+) bytes>", r"upload (\1 bytes)", result.error))
        result.source = "upload"
        state.faces.inc(len(result.faces))
        return result

    @app.post("/v1/analyze", response_model=ImageResult, dependencies=[Depends(authorized)], responses=ERRORS,
              openapi_extra=_body_doc(AnalyzeJSON, {}))
    async def analyze(request: Request) -> ImageResult:
        """Every face of a photo with its attributes (and descriptors / explanations when asked)."""
        data, body = await read_request(request, AnalyzeJSON)
        check_image(data)
        return await run(analyzer_key(body), data)

    @app.post("/v1/ask", response_model=AskResponse, dependencies=[Depends(authorized)], responses=ERRORS,
              openapi_extra=_body_doc(AskJSON, {"question": {"type": "string", "minLength": 1, "maxLength": 500},
                                                "chooser": {"type": "string", "enum": ["descriptors", "vlm"]}}))
    async def ask(request: Request) -> AskResponse:
        """Which person a question is about, with their box, the attributes asked for, and why."""
        from facescan.ask import parse_question, resolve, resolve_with_vlm

        data, body = await read_request(request, AskJSON)
        if not body.question.strip():
            raise HTTPException(422, "the question is empty")
        if body.chooser not in ("descriptors", "vlm"):
            raise HTTPException(422, f"chooser must be descriptors or vlm, not {body.chooser!r}")
        check_image(data)
        q = parse_question(body.question)
        if body.attributes is None:
            body.attributes = ["age", "gender", "emotion"] + (["race"] if "race" in q.asks else [])
        key = analyzer_key(body, force_describe=True)
        result = await run(key, data)
        if not result.faces:
            from facescan.ask import Answer

            answer = Answer(question=body.question, status="no match", reasons=["no face was found in the photo"])
        elif body.chooser == "vlm":
            backend = state.backends[key[0]]
            if not hasattr(backend, "ask_image"):
                raise HTTPException(422, f"backend {key[0]} cannot choose among numbered boxes; use a VLM backend")
            from facescan.imageio import load_image

            pixels = await asyncio.to_thread(lambda: load_image(data, max_side=None).pixels)
            answer = await asyncio.to_thread(resolve_with_vlm, backend, pixels, q, result.faces)
        else:
            answer = resolve(q, result.faces)
        return AskResponse(answer=answer.as_dict(), result=result)

    return app


_ROUTES = ("/", "/healthz", "/metrics", "/v1/models", "/v1/analyze", "/v1/ask", "/openapi.json")


def _problem(status: int, detail: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _short(e: Exception) -> str:
    text = str(e).replace("\n", "; ")
    return text[:300]


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` worker processes: the config travels in FACESCAN_SERVE_CONFIG."""
    import os

    return create_app(ServeConfig.from_json(os.environ["FACESCAN_SERVE_CONFIG"]))

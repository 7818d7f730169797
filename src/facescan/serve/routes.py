"""The service's routes: the page, health, metrics, models, ``/v1/analyze`` and ``/v1/ask``.

Handlers get the app's state, its config and the token check through dependencies.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from importlib import resources

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from facescan import __version__, taxonomy
from facescan.schema import ImageResult
from facescan.serve.batching import BadInput, QueueFull
from facescan.serve.config import ServeConfig
from facescan.serve.requests import (
    ASK_FIELDS,
    ERRORS,
    AnalyzeJSON,
    AskJSON,
    AskResponse,
    Problem,
    body_doc,
    check_image,
    image_status,
    read_request,
)
from facescan.serve.state import AnalyzerKey, State

#: The page's static files: name → media type (nothing else is served from the package).
STATIC = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
#: The paths metrics are labelled with (anything else is "other").
ROUTES = ("/", "/healthz", "/metrics", "/v1/models", "/v1/analyze", "/v1/ask", "/openapi.json",
          *(f"/static/{name}" for name in STATIC))
logger = logging.getLogger("facescan.serve")


def get_state(request: Request) -> State:
    return request.app.state.facescan


def get_config(request: Request) -> ServeConfig:
    return request.app.state.facescan.config


def authorized(request: Request, config: ServeConfig = Depends(get_config)) -> None:
    """401 unless the request has the configured bearer token (when there is one)."""
    if not config.token:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    # compared as bytes: header values arrive as latin-1 text, and compare_digest refuses non-ASCII str
    sent, expected = given.strip().encode("latin-1"), config.token.encode("utf-8")
    if scheme.lower() != "bearer" or not secrets.compare_digest(sent, expected):
        raise HTTPException(401, "a bearer token is required (Authorization: Bearer <token>)",
                            headers={"WWW-Authenticate": "Bearer"})


public = APIRouter()
protected = APIRouter(dependencies=[Depends(authorized)])


def _static(name: str) -> str:
    return resources.files("facescan.serve").joinpath("static", name).read_text("utf-8")


@public.get("/", response_class=HTMLResponse, include_in_schema=False)
def page() -> HTMLResponse:
    return HTMLResponse(_static("index.html"), headers={"Cache-Control": "no-cache"})


@public.get("/static/{name}", include_in_schema=False)
def static(name: str) -> Response:
    """The page's script and styles (its Content-Security-Policy allows no inline script or style)."""
    if name not in STATIC:
        raise HTTPException(404, "not found")
    return Response(_static(name), media_type=STATIC[name], headers={"Cache-Control": "no-cache"})


@public.get("/healthz")
def healthz(state: State = Depends(get_state)) -> dict:
    """Liveness: the models are loaded and the queue is open."""
    return {"status": "ok", "version": __version__, "queue": state.batcher.depth,
            "auth_required": bool(state.config.token)}


@protected.get("/metrics", response_class=Response,
               responses={200: {"content": {"text/plain": {}}}, 401: {"model": Problem}})
def metrics(state: State = Depends(get_state)) -> Response:
    """Prometheus text format: requests, latency, batch sizes, queue depth, faces."""
    text, media_type = state.metrics.text()
    return Response(text, media_type=media_type)


@protected.get("/v1/models", responses={401: {"model": Problem}})
def models(state: State = Depends(get_state)) -> dict:
    """The backends this server loaded (the first is the default) and the attributes each predicts."""
    config = state.config
    return {"default": config.backends[0],
            "backends": [{"name": spec, "attributes": list(b.supported_attributes())}
                         for spec, b in state.backends.items()],
            "attributes": list(taxonomy.ATTRIBUTES), "default_attributes": list(taxonomy.DEFAULT_ATTRIBUTES),
            "limits": {"max_upload_mb": config.max_upload_mb, "max_pixels": config.max_pixels,
                       "request_timeout_s": config.request_timeout, "body_timeout_s": config.body_timeout,
                       "header_timeout_s": config.header_timeout, "max_queue": config.max_queue}}


def analyzer_key(state: State, body: AnalyzeJSON, attributes=None, describe: bool | None = None) -> AnalyzerKey:
    """The analyzer a request asks for (422 naming an unknown backend or attribute)."""
    from facescan.pipeline import parse_attributes

    backend = body.backend or state.config.backends[0]
    if backend not in state.backends:
        raise HTTPException(422, f"backend {backend!r} is not served here; GET /v1/models lists "
                                 f"{', '.join(state.backends)}")
    try:
        wanted = parse_attributes(body.attributes if attributes is None else attributes)
    except ValueError as e:
        raise HTTPException(422, str(e)) from None
    needed = {*wanted, "emotion"} if body.explain else set(wanted)  # an explanation explains the emotion
    missing = needed - set(state.backends[backend].supported_attributes())
    if missing:
        raise HTTPException(422, f"backend {backend} cannot predict {', '.join(sorted(missing))}")
    return AnalyzerKey(backend, wanted, body.describe if describe is None else describe, body.explain)


async def run(state: State, key: AnalyzerKey, data: bytes, keep_image: bool = False):
    """Analyze one upload through the batcher: its ``Analyzed`` (429 when busy, 503 after the timeout,
    413 / 422 for an image that cannot be analyzed, 500 for a server fault that hit this request only)."""
    timeout = state.config.request_timeout
    try:
        future = state.batcher.submit(key, data, keep_image=keep_image)
    except QueueFull as e:
        raise HTTPException(429, f"the server is busy ({e}); retry shortly", headers={"Retry-After": "1"}) from None
    try:
        analyzed = await asyncio.wait_for(asyncio.wrap_future(future), timeout)
    except TimeoutError:
        future.cancel()
        raise HTTPException(503, f"the analysis took longer than {timeout:g} s; retry later",
                            headers={"Retry-After": "5"}) from None
    except BadInput as e:
        message = _upload_message(str(e))
        raise HTTPException(image_status(message), f"the image cannot be analyzed: {message}") from None
    except Exception as e:
        logger.error("analysis failed on the server: %s", type(e).__name__, exc_info=e)
        raise HTTPException(500, f"the analysis failed on the server ({type(e).__name__}); other requests "
                                 "were not affected") from None
    result = analyzed.result
    if result.error:
        message = _upload_message(result.error)
        raise HTTPException(image_status(message), message)
    result.source = "upload"
    state.metrics.faces.inc(len(result.faces))
    return analyzed


def _upload_message(text: str) -> str:
    return re.sub(r"^<(\d+) bytes>", r"upload (\1 bytes)", text)


@protected.post("/v1/analyze", response_model=ImageResult, responses=ERRORS, openapi_extra=body_doc(AnalyzeJSON))
async def analyze(request: Request, state: State = Depends(get_state)) -> ImageResult:
    """Every face of a photo with its attributes (and descriptors / explanations when asked)."""
    config = state.config
    data, body = await read_request(request, AnalyzeJSON, config.max_upload_bytes)
    check_image(data, config.max_pixels)
    return (await run(state, analyzer_key(state, body), data)).result


@protected.post("/v1/ask", response_model=AskResponse, responses=ERRORS,
                openapi_extra=body_doc(AskJSON, ASK_FIELDS))
async def ask(request: Request, state: State = Depends(get_state)) -> AskResponse:
    """Which person a question is about, with their box, the attributes asked for, and why."""
    from facescan.ask import answer_question, attributes_for, check_chooser, parse_question

    config = state.config
    data, body = await read_request(request, AskJSON, config.max_upload_bytes)
    if not body.question.strip():
        raise HTTPException(422, "the question is empty")
    try:
        check_chooser(body.chooser)
    except ValueError as e:
        raise HTTPException(422, str(e)) from None
    check_image(data, config.max_pixels)
    question = parse_question(body.question)
    attributes = attributes_for(question) if body.attributes is None else None
    key = analyzer_key(state, body, attributes, describe=True)
    analyzed = await run(state, key, data, keep_image=body.chooser == "vlm")
    try:
        answer = await asyncio.to_thread(answer_question, question, analyzed, body.chooser,
                                         vlm=state.backends[key.backend])
    except ValueError as e:  # e.g. the vlm chooser with a backend that cannot look at numbered boxes
        raise HTTPException(422, str(e)) from None
    return AskResponse(answer=answer.as_dict(), result=analyzed.result)

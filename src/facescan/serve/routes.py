"""The service's routes: the page, health, metrics, models, ``/v1/analyze`` (photos and clips) and ``/v1/ask``.

Handlers get the app's state, its config and the token check through dependencies.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
from importlib import resources
from typing import Union

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from facescan import __version__, taxonomy
from facescan.schema import ImageResult, VideoResult
from facescan.serve.batching import BadInput, QueueFull
from facescan.serve.clips import ClipOptions, ClipRefused, analyze_clip, is_clip
from facescan.serve.config import ServeConfig
from facescan.serve.requests import (
    ASK_FIELDS,
    CLIP_FIELDS,
    ERRORS,
    AnalyzeJSON,
    AskJSON,
    AskResponse,
    Options,
    Problem,
    Upload,
    body_doc,
    check_image,
    image_status,
    read_request,
    upload_message,
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
                       "header_timeout_s": config.header_timeout, "max_queue": config.max_queue},
            "video_limits": {"max_upload_mb": config.video_upload_mb, "max_seconds": config.max_video_seconds,
                             "max_frames": config.max_video_frames, "default_fps": config.video_fps,
                             "timeout_s": config.video_timeout, "max_pixels": config.max_pixels,
                             "jobs": config.video_jobs, "max_queue": config.max_video_queue}}


def analyzer_key(state: State, body: Options, attributes=None, describe: bool | None = None) -> AnalyzerKey:
    """The analyzer a request asks for (422 naming an unknown backend or attribute)."""
    from facescan.detect.quality import QualityFloor
    from facescan.pipeline import parse_attributes

    backend = body.backend or state.config.backends[0]
    if backend not in state.backends:
        raise HTTPException(422, f"backend {backend!r} is not served here; GET /v1/models lists "
                                 f"{', '.join(state.backends)}")
    try:
        wanted = parse_attributes(body.attributes if attributes is None else attributes)
        floor = str(QualityFloor.parse(body.min_quality) or "")  # one spelling: one analyzer per floor
    except ValueError as e:
        raise HTTPException(422, str(e)) from None
    needed = {*wanted, "emotion"} if body.explain else set(wanted)  # an explanation explains the emotion
    missing = needed - set(state.backends[backend].supported_attributes())
    if missing:
        raise HTTPException(422, f"backend {backend} cannot predict {', '.join(sorted(missing))}")
    return AnalyzerKey(backend, wanted, body.describe if describe is None else describe, body.explain, floor)


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
        message = upload_message(str(e))
        raise HTTPException(image_status(message), f"the image cannot be analyzed: {message}") from None
    except Exception as e:
        logger.error("analysis failed on the server: %s", type(e).__name__, exc_info=e)
        raise HTTPException(500, f"the analysis failed on the server ({type(e).__name__}); other requests "
                                 "were not affected") from None
    result = analyzed.result
    if result.error:
        message = upload_message(result.error)
        raise HTTPException(image_status(message), message)
    result.source = "upload"
    state.metrics.faces.inc(len(result.faces))
    return analyzed


async def run_clip(state: State, body: AnalyzeJSON, upload: Upload) -> VideoResult:
    """Analyze one clip on the clip threads: its ``VideoResult`` (413 over a limit, 422 unreadable,
    429 when busy, 503 after ``video_timeout``, which also stops the analysis at its next frame)."""
    config = state.config
    if len(upload.data) > config.video_upload_bytes:
        raise HTTPException(413, f"the clip ({len(upload.data) / 1e6:.1f} MB) is over the "
                                 f"{config.video_upload_mb:g} MB limit for clips")
    if body.describe or body.explain or body.min_quality:
        raise HTTPException(422, "describe, explain and min_quality are for photos; a clip gets tracks, attributes "
                                 "and emotion timelines")
    key = analyzer_key(state, body)
    options = ClipOptions(fps=body.fps, every=body.every, start=body.start, end=body.end)
    cancel = threading.Event()

    def work() -> VideoResult:
        return analyze_clip(state.video_analyzer_for(key), upload.data, config, options, cancel)

    try:
        future = state.clips.submit(work, cancel)
    except QueueFull as e:
        raise HTTPException(429, f"the server is busy with clips ({e}); retry shortly",
                            headers={"Retry-After": "5"}) from None
    try:
        result = await asyncio.wait_for(asyncio.wrap_future(future), config.video_timeout)
    except TimeoutError:
        cancel.set()  # the analysis stops at its next frame
        future.cancel()
        raise HTTPException(503, f"the clip's analysis took longer than {config.video_timeout:g} s; send a "
                                 "shorter clip or ask for fewer frames per second",
                            headers={"Retry-After": "5"}) from None
    except ClipRefused as e:
        raise HTTPException(e.status, e.detail) from None
    except Exception as e:
        logger.error("clip analysis failed on the server: %s", type(e).__name__, exc_info=e)
        raise HTTPException(500, f"the clip's analysis failed on the server ({type(e).__name__}); other "
                                 "requests were not affected") from None
    state.metrics.faces.inc(sum(len(f.faces) for f in result.frames))
    state.metrics.video_frames.inc(result.frames_analyzed)
    return result


def json_response(result: ImageResult | VideoResult) -> Response:
    """A result as JSON, serialized once (a clip's result holds every analyzed frame's faces)."""
    return Response(result.model_dump_json(), media_type="application/json")


@protected.post("/v1/analyze", response_model=Union[ImageResult, VideoResult], responses=ERRORS,
                openapi_extra=body_doc(AnalyzeJSON, CLIP_FIELDS, required=()))
async def analyze(request: Request, state: State = Depends(get_state)) -> Response:
    """Every face of a photo with its attributes (and descriptors / explanations when asked), or, for a
    clip (MP4, MOV, WebM, MKV, AVI), each person's track: boxes per analyzed frame, attributes and an
    emotion timeline."""
    config = state.config
    upload, body = await read_request(request, AnalyzeJSON, config.body_limit_bytes("POST", "/v1/analyze"),
                                      files=("image", "video"))
    if upload.field == "video" or is_clip(upload):
        return json_response(await run_clip(state, body, upload))
    if len(upload.data) > config.max_upload_bytes:  # the clip limit, when larger, let it through the guard
        raise HTTPException(413, f"the photo ({len(upload.data) / 1e6:.1f} MB) is over the "
                                 f"{config.max_upload_mb:g} MB limit for photos")
    check_image(upload.data, config.max_pixels)
    return json_response((await run(state, analyzer_key(state, body), upload.data)).result)


@protected.post("/v1/ask", response_model=AskResponse, responses=ERRORS,
                openapi_extra=body_doc(AskJSON, ASK_FIELDS))
async def ask(request: Request, state: State = Depends(get_state)) -> AskResponse:
    """Which person a question is about, with their box, the attributes asked for, and why."""
    from facescan.ask import answer_question, attributes_for, check_chooser, parse_question

    config = state.config
    upload, body = await read_request(request, AskJSON, config.max_upload_bytes)
    if is_clip(upload):
        raise HTTPException(422, "ask takes a photo, not a clip")
    data = upload.data
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

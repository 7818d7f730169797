"""The REST service and its web page: ``facescan serve``.

Routes: ``POST /v1/analyze`` and ``POST /v1/ask`` (a multipart upload, or JSON with a base64
image), ``GET /v1/models``, ``GET /healthz``, ``GET /metrics`` (Prometheus text) and the page at
``/``. Results have the CLI's schema. Uploaded images live in memory only: they are never written
to disk or to a log.
"""

from __future__ import annotations

import contextlib
import time

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from facescan import __version__
from facescan.serve.config import ServeConfig, check_bind, is_loopback
from facescan.serve.routes import ROUTES, protected, public
from facescan.serve.state import State

__all__ = ["ServeConfig", "app_from_env", "check_bind", "create_app", "is_loopback"]

DESCRIPTION = ("Facial attributes (age group, gender, race, emotion), person descriptors and questions about "
               "one person in a photo. Race is computed only when asked for.")


def create_app(config: ServeConfig | None = None) -> FastAPI:
    """The FastAPI app for ``config`` (models load here, once)."""
    config = config or ServeConfig()
    check_bind(config.host, config.token)
    # No /docs or /redoc: their pages load Swagger UI / ReDoc from a CDN, and this service must work
    # offline; the spec itself is at /openapi.json.
    app = FastAPI(title="facescan", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    app.state.facescan = State(config)
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=config.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    app.middleware("http")(limits_and_metrics)
    app.add_exception_handler(HTTPException, http_error)
    app.include_router(public)
    app.include_router(protected)
    return app


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI):
    yield
    app.state.facescan.batcher.close()


async def limits_and_metrics(request: Request, call_next):
    """Refuse uploads without a Content-Length (411) or over the limit (413); count and time every request."""
    state: State = request.app.state.facescan
    started = time.perf_counter()
    route = request.url.path if request.url.path in ROUTES else "other"
    response = upload_problem(request, state.config) if request.method == "POST" else None
    if response is None:
        response = await call_next(request)
    state.metrics.requests.labels(route, str(response.status_code)).inc()
    state.metrics.latency.labels(route).observe(time.perf_counter() - started)
    return response


def upload_problem(request: Request, config: ServeConfig) -> JSONResponse | None:
    length = request.headers.get("content-length")
    if length is None or not length.isdigit():
        return problem(411, f"send a Content-Length header (uploads are limited to {config.max_upload_mb:g} MB)")
    if int(length) > config.max_upload_bytes:
        return problem(413, f"upload of {int(length) / 1e6:.1f} MB is over the {config.max_upload_mb:g} MB limit")
    return None


async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    return problem(exc.status_code, exc.detail, exc.headers)


def problem(status: int, detail: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` worker processes: the config travels in FACESCAN_SERVE_CONFIG."""
    import os

    return create_app(ServeConfig.from_json(os.environ["FACESCAN_SERVE_CONFIG"]))

"""The REST service and its web page: ``facescan serve``.

Routes: ``POST /v1/analyze`` and ``POST /v1/ask`` (a multipart upload, or JSON with a base64
image), ``GET /v1/models``, ``GET /healthz``, ``GET /metrics`` (Prometheus text) and the page at
``/``. ``/v1/analyze`` also takes a short clip and answers with its tracks (``facescan.serve.clips``).
Results have the CLI's schema. Uploaded images and clips live in memory only: they are never
written to disk or to a log.

Middleware, outermost first: :class:`~facescan.serve.guard.RequestGuard` (upload framing, size
counted on the bytes received, body deadline, security headers, metrics), Starlette's
``TrustedHostMiddleware`` (the loopback names, the bind address and ``--allowed-host``; anything
else is 400), then CORS when configured.
"""

from __future__ import annotations

import contextlib

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.middleware.trustedhost import TrustedHostMiddleware

from facescan import __version__
from facescan.serve.config import ServeConfig, check_bind, is_loopback
from facescan.serve.guard import RequestGuard
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
    hosts = ["*"] if "*" in config.allowed_hosts else config.trusted_hosts
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=hosts, www_redirect=False)
    app.add_middleware(RequestGuard, config=config, metrics=app.state.facescan.metrics, routes=ROUTES)
    app.add_exception_handler(HTTPException, http_error)
    app.include_router(public)
    app.include_router(protected)
    return app


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI):
    yield
    app.state.facescan.batcher.close()
    app.state.facescan.clips.close()


async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    return problem(exc.status_code, exc.detail, exc.headers)


def problem(status: int, detail: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` worker processes: the config travels in FACESCAN_SERVE_CONFIG."""
    import os

    return create_app(ServeConfig.from_json(os.environ["FACESCAN_SERVE_CONFIG"]))

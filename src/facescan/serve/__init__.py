"""``facescan serve``: the REST API and web page (FastAPI), with dynamic batching."""

from facescan.serve.app import ServeConfig, check_bind, create_app

__all__ = ["ServeConfig", "check_bind", "create_app"]

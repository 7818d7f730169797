"""Which optional extra provides each library that is not in the default install."""

from __future__ import annotations

#: Top-level module → the extra that installs it (``pip install 'facescan[<extra>]'``).
EXTRA_OF_MODULE: dict[str, str] = {
    "torch": "vlm", "transformers": "vlm", "peft": "vlm", "accelerate": "vlm",
    "openai": "api", "google": "api",
    "fastapi": "serve", "uvicorn": "serve", "multipart": "serve", "prometheus_client": "serve",
    "sklearn": "eval", "markdown_it": "eval",
    "onnx": "train",
    "datasets": "finetune", "matplotlib": "finetune",
    "bitsandbytes": "quant",
    "ray": "ray",
    "mkdocs": "docs",
}


def install_command(error: ImportError) -> str | None:
    """``pip install 'facescan[extra]'`` for the library a failed import lacked, or None if no extra has it."""
    top = (getattr(error, "name", None) or "").split(".")[0]
    extra = EXTRA_OF_MODULE.get(top)
    return f"pip install 'facescan[{extra}]'" if extra else None


def missing_message(error: ImportError, what: str) -> str | None:
    """One line: ``<what> needs <library>, which is not installed: pip install 'facescan[extra]'``."""
    command = install_command(error)
    if command is None:
        return None
    return f"{what} needs {(error.name or '').split('.')[0]}, which is not installed: {command}"

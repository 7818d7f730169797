"""The backend interface and the spec-string registry (``builtin``, and more kinds as they are added)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from facescan.schema import AttributePrediction


@dataclass
class FaceInput:
    """What a backend sees of one face.

    ``chip`` is a square RGB crop framed with ``padding`` face widths of margin (FairFace's
    framing when aligned by the detector pipeline); ``image`` and ``box`` give VLM backends
    the whole picture and where the face is in it.
    """

    chip: np.ndarray
    padding: float
    image: np.ndarray | None = None
    box: tuple[float, float, float, float] | None = None
    keypoints: np.ndarray | None = None  # detector keypoints, in ``image`` pixels


class Backend(Protocol):
    """Predicts attribute distributions for batches of faces."""

    name: str

    def supported_attributes(self) -> tuple[str, ...]: ...

    def predict(self, faces: Sequence[FaceInput], attributes: Sequence[str]) -> list[dict[str, AttributePrediction]]:
        """One dict per face, attribute → prediction (invalid predictions included, never dropped)."""
        ...


@dataclass(frozen=True)
class BackendKind:
    """A registered kind of backend: how to build it and what it offers."""

    kind: str
    factory: Callable[[str], Backend]
    description: str
    attributes: tuple[str, ...]
    needs: str = ""


BACKENDS: dict[str, BackendKind] = {}


def register_backend(kind: BackendKind) -> None:
    """Make ``kind.kind[:options]`` specs build backends with ``kind.factory(options)``."""
    BACKENDS[kind.kind] = kind


def load_backend(spec: str = "builtin") -> Backend:
    """Build a backend from its spec string: ``kind``, ``kind:options`` or ``kind?query``."""
    kind = spec.split(":", 1)[0].split("?", 1)[0]
    options = spec[len(kind) :].removeprefix(":")
    if kind not in BACKENDS:
        raise ValueError(f"unknown backend {spec!r}; known kinds: {', '.join(BACKENDS)}")
    return BACKENDS[kind].factory(options)


def _lazy(module: str, cls: str) -> Callable[[str], Backend]:
    """A factory that imports its backend module (and its heavy dependencies) only when used."""

    def build(options: str) -> Backend:
        return getattr(importlib.import_module(module), cls)(options)

    return build


register_backend(
    BackendKind(
        "builtin", _lazy("facescan.backends.builtin", "BuiltinBackend"),
        "compact CNNs trained by facescan on FairFace and FER2013, run with onnxruntime on CPU (offline)",
        ("age", "gender", "race", "emotion"),
    )
)
register_backend(
    BackendKind(
        "hf", _lazy("facescan.backends.hf", "HFBackend"),
        "a local VLM through transformers (hub id or folder; PaliGemma, LLaVA, Qwen2-VL, Idefics3/SmolVLM, Gemma 3…):"
        " closed-set scoring or generation; options ?mode=&preset=&device=&dtype=&bits=&adapter=",
        ("age", "gender", "race", "emotion"), needs="pip install 'facescan[vlm]'",
    )
)
register_backend(
    BackendKind(
        "facescan-paligemma", _lazy("facescan.backends.hf", "FaceScanPaliGemmaBackend"),
        "the paper's FaceScanPaliGemma: four PaliGemma fine-tunes (NYUAD-ComNets), one per attribute; a GPU is advised",
        ("age", "gender", "race", "emotion"), needs="pip install 'facescan[vlm]'",
    )
)
register_backend(
    BackendKind(
        "openai", _lazy("facescan.backends.api", "OpenAIBackend"),
        "OpenAI chat completions, or any OpenAI-compatible server (vLLM, Ollama, llama.cpp, LM Studio, SGLang) as "
        "openai:<base url>#<model>; JSON-schema answers, logprobs, retries, on-disk cache; key in OPENAI_API_KEY",
        ("age", "gender", "race", "emotion"), needs="pip install 'facescan[api]'",
    )
)
register_backend(
    BackendKind(
        "gemini", _lazy("facescan.backends.api", "GeminiBackend"),
        "Google Gemini through google-genai; JSON-schema answers, retries, on-disk cache; key in GEMINI_API_KEY",
        ("age", "gender", "race", "emotion"), needs="pip install 'facescan[api]'",
    )
)

"""The backend interface and the backends' spec-string registry (``builtin``, ``hf:…``, ``openai:…``…)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from facescan.registry import Registry
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


BACKENDS = Registry("backend")


def load_backend(spec: str = "builtin") -> Backend:
    """Build a backend from its spec string: ``kind``, ``kind:target`` and ``?option=value&…``."""
    return BACKENDS.create(spec)


_ALL = ("age", "gender", "race", "emotion")
_VLM = "pip install 'facescan[vlm]'"
_API = "pip install 'facescan[api]'"
BACKENDS.register(
    "builtin", "facescan.backends.builtin:BuiltinBackend.from_spec",
    "compact CNNs trained by facescan on FairFace and FER2013, run with onnxruntime on CPU (offline)", _ALL)
BACKENDS.register(
    "hf", "facescan.backends.hf:HFBackend.from_spec",
    "a local VLM through transformers (hub id or folder; PaliGemma, LLaVA, Qwen2-VL, Idefics3/SmolVLM, Gemma 3…):"
    " closed-set scoring or generation; options ?mode=&preset=&device=&dtype=&bits=&adapter=", _ALL, needs=_VLM)
BACKENDS.register(
    "facescan-paligemma", "facescan.backends.hf:FaceScanPaliGemmaBackend.from_spec",
    "the paper's FaceScanPaliGemma: four PaliGemma fine-tunes (NYUAD-ComNets), one per attribute; a GPU is advised",
    _ALL, needs=_VLM)
BACKENDS.register(
    "openai", "facescan.backends.api:OpenAIBackend.from_spec",
    "OpenAI chat completions, or any OpenAI-compatible server (vLLM, Ollama, llama.cpp, LM Studio, SGLang) as "
    "openai:<base url>#<model>; JSON-schema answers, logprobs, retries, on-disk cache; key in OPENAI_API_KEY",
    _ALL, needs=_API)
BACKENDS.register(
    "gemini", "facescan.backends.api:GeminiBackend.from_spec",
    "Google Gemini through google-genai; JSON-schema answers, retries, on-disk cache; key in GEMINI_API_KEY",
    _ALL, needs=_API)

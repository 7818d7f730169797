"""The backend interface and the spec-string registry (``builtin``, and more kinds as they are added)."""

from __future__ import annotations

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
    """Build a backend from its spec string, e.g. ``builtin``."""
    kind, _, options = spec.partition(":")
    if kind not in BACKENDS:
        raise ValueError(f"unknown backend {spec!r}; known kinds: {', '.join(BACKENDS)}")
    return BACKENDS[kind].factory(options)


def _builtin(options: str) -> Backend:
    from facescan.backends.builtin import BuiltinBackend

    return BuiltinBackend(options or None)


register_backend(
    BackendKind(
        "builtin", _builtin,
        "compact CNNs trained by facescan on FairFace and FER2013, run with onnxruntime on CPU (offline)",
        ("age", "gender", "race", "emotion"),
    )
)

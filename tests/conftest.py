"""Shared fixtures: paths to ../shared/data (skipped when absent) and small generated images."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FACESCAN_SHARED_DATA", ROOT.parent / "shared" / "data"))


def shared(*parts: str) -> Path:
    """Path inside ../shared/data; skips the calling test with a reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs {path} (the maintainers' shared data), which is absent on this machine")
    return path


@pytest.fixture(scope="session")
def photos() -> Path:
    return shared("photos")


@pytest.fixture(scope="session")
def analyzer_all():
    """One built-in Analyzer with every attribute (model loading is the slow part)."""
    from facescan.pipeline import Analyzer

    return Analyzer(attributes="age,gender,race,emotion")

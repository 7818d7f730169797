"""facescan: facial attribute recognition with compact specialist models and vision-language models.

>>> import facescan
>>> result = facescan.analyze("group.jpg", attributes="age,gender,emotion")
>>> [f.attributes["age"].label for f in result.faces]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = ["analyze", "analyze_video", "Analyzer", "load_backend", "ImageResult", "VideoResult", "to_dataframe",
           "__version__"]

if TYPE_CHECKING:
    from facescan.api import analyze
    from facescan.backends.base import load_backend
    from facescan.pipeline import Analyzer
    from facescan.schema import ImageResult, VideoResult
    from facescan.tables import to_dataframe
    from facescan.video import analyze_video

_LAZY = {
    "analyze": "facescan.api",
    "Analyzer": "facescan.pipeline",
    "load_backend": "facescan.backends.base",
    "ImageResult": "facescan.schema",
    "VideoResult": "facescan.schema",
    "analyze_video": "facescan.video",
    "to_dataframe": "facescan.tables",
}


def __getattr__(name: str):
    # Imported on first use so `import facescan` stays fast and light.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'facescan' has no attribute {name!r}")

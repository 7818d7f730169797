"""Dataset adapters: each reads one dataset's official layout into labelled samples.

Specs like ``fairface:PATH`` or ``fer2013:PATH`` pick an adapter (see :func:`open_dataset`).
"""

from facescan.datasets.base import DATASET_KINDS, Sample, Samples, open_dataset

__all__ = ["Sample", "Samples", "open_dataset", "DATASET_KINDS"]

"""Facial action units measured on MediaPipe's face mesh, and ExpLLM-style explanations of expressions.

``Explainer`` measures AUs on a face chip and explains the emotion a backend gave;
``explain_with_vlm`` asks a VLM backend for the chain of thought and its final label.
"""

from facescan.explain.chain import Explainer, chain_of_thought, explain_with_vlm

__all__ = ["Explainer", "chain_of_thought", "explain_with_vlm"]

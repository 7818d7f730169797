"""Attribute backends: built-in ONNX models, local transformers VLMs and API VLMs."""

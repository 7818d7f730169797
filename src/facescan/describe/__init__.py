"""Descriptions of a face beyond its attributes: action units (face-mesh geometry) and explanations."""

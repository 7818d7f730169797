"""Colour families for clothing and hair, as HSV rules (used by :mod:`facescan.describe.person`)."""

from __future__ import annotations

#: Colour families a pixel is sorted into, tried in order: (name, hue range in degrees, saturation
#: range, value range), HSV on 0-1 scales except hue. Hue ranges may wrap (start > end).
COLOUR_RULES: tuple[tuple[str, tuple[float, float], tuple[float, float], tuple[float, float]], ...] = (
    ("black", (0, 360), (0, 1), (0, 0.22)),
    ("white", (0, 360), (0, 0.13), (0.8, 1)),
    ("grey", (0, 360), (0, 0.13), (0, 1)),
    ("navy", (150, 260), (0.13, 1), (0, 0.4)),
    ("light blue", (150, 260), (0.13, 0.75), (0.45, 1)),
    ("blue", (150, 260), (0.13, 1), (0, 1)),
    ("purple", (260, 295), (0.13, 1), (0, 1)),
    ("pink", (295, 345), (0.13, 1), (0.55, 1)),
    ("red", (345, 15), (0.13, 1), (0, 1)),
    ("brown", (15, 50), (0.13, 1), (0, 0.5)),
    ("beige", (15, 50), (0.13, 0.45), (0.5, 1)),
    ("orange", (15, 40), (0.45, 1), (0.5, 1)),
    ("yellow", (40, 70), (0.13, 1), (0.5, 1)),
    ("green", (70, 150), (0.13, 1), (0, 1)),
    ("magenta", (295, 345), (0.13, 1), (0, 1)),
    ("olive", (50, 70), (0.13, 1), (0, 1)),
)

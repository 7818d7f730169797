"""Explanations of facial expressions in ExpLLM's shape: key observations (action units with their
intensities and the emotions they signal) → overall interpretation → final label.

For the built-in backend the chain is built by rules from the AUs measured on the face mesh;
its final label is always the label the backend gave, and the text says when the measured AUs
do not support it.
"""

from __future__ import annotations

from collections.abc import Sequence

from facescan import taxonomy
from facescan.describe.aus import AUReading, FaceMesh, intensities


def chain_of_thought(readings: Sequence[AUReading], label: str, label_set: str, top: int = 3) -> str:
    """Key observations (AU, intensity, linked emotions) → overall interpretation → final answer."""
    ls = taxonomy.label_set(label_set)
    strong = [r for r in readings if r.intensity >= 1.0][:top] or list(readings[:1])
    lines = ["Key observations:"]
    for r in strong:
        linked = ", ".join(e for e in r.emotions if e in ls.labels) or "none of the options"
        lines.append(f"- {r.au} ({r.name}), intensity {r.intensity:.1f}/5; linked with {linked}.")
    support = [r.au for r in strong if label in r.emotions]
    if support:
        verb = "points" if len(support) == 1 else "point"
        interpretation = f"{' and '.join(support)} {verb} to {ls.pretty(label)}."
    elif label == "neutral":
        interpretation = "No action unit is strongly active, which indicates a neutral face."
    else:
        interpretation = (f"The measured action units are weak evidence; the overall appearance indicates "
                          f"{ls.pretty(label)}.")
    lines += [f"Overall interpretation: {interpretation}", f"Final answer: {ls.pretty(label)}"]
    return "\n".join(lines)


class Explainer:
    """Measures AUs on face chips and explains the emotion a backend predicted."""

    def __init__(self):
        self.mesh = FaceMesh()

    def explain(self, chip, label: str | None, label_set: str) -> tuple[dict[str, float] | None, str | None]:
        """(AU intensities, explanation text); (None, None) when no mesh fits the chip or no label."""
        points = self.mesh.landmarks(chip)
        if points is None:
            return None, None
        readings = intensities(points)
        aus = {r.au: round(r.intensity, 2) for r in readings}
        if label is None:
            return aus, None
        return aus, chain_of_thought(readings, label, label_set)

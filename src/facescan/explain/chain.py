"""Explanations of facial expressions in ExpLLM's shape: key observations (action units with their
intensities and the emotions they signal) → overall interpretation → final label.

For the built-in backend the chain is built by rules from the AUs measured on the face mesh;
its final label is always the label the backend gave, and the text says when the measured AUs
do not support it. A VLM backend is prompted for the chain itself (:func:`explain_with_vlm`);
its final label is parsed like any other answer and becomes that face's emotion.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from facescan import prompts, taxonomy
from facescan.backends.parsing import parse_answer
from facescan.explain.aus import AUReading, FaceMesh, intensities
from facescan.schema import AttributePrediction


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


def explain_with_vlm(backend, chip, model: str | None = None) -> tuple[str, AttributePrediction]:
    """Ask a VLM backend (one with ``ask_image`` and a prompt preset) for an ExpLLM-style chain of
    thought about the face in ``chip``; its ``Final answer`` is parsed like any other answer, and
    an answer that maps to no label is an invalid prediction that keeps the text."""
    preset = backend.preset
    ls = preset.label_set("emotion")
    prompt = prompts.task_prompt("explain", "expression", options=", ".join(preset.options("emotion")))
    meta = {"backend": backend.name, "model": model or getattr(backend, "model_id", backend.name),
            "mode": "explanation", "prompt": "tasks.explain"}
    try:
        text = backend.ask_image(chip, prompt, max_new_tokens=256)
    except Exception as e:  # noqa: BLE001 - a failed request is this face's invalid answer
        return "", AttributePrediction.invalid("emotion", ls.name, error=f"{type(e).__name__}: {e}", **meta)
    final = re.findall(r"final answer\s*[:\-]\s*(.+)", text, flags=re.IGNORECASE)
    spellings = {lab: preset.answer("emotion", lab) for lab in ls.labels}
    label = parse_answer(final[-1].strip(), ls, spellings) if final else None
    if label is None:
        why = "no 'Final answer:' line" if not final else f"final answer {final[-1].strip()!r} is no {ls.name} label"
        return text, AttributePrediction.invalid("emotion", ls.name, raw=text, error=why, **meta)
    probs = [1.0 if lab == label else 0.0 for lab in ls.labels]
    return text, AttributePrediction.from_probabilities("emotion", ls.name, probs, raw=text, **meta)

"""Choosing the person a question means by letting a VLM pick one of the photo's numbered boxes."""

from __future__ import annotations

import re

import numpy as np

from facescan import prompts
from facescan.annotate import draw_numbered_boxes
from facescan.ask.answer import Answer, Candidate, choose, summarize
from facescan.ask.question import Question, parse_question
from facescan.schema import Face


def reference_phrase(text: str) -> str:
    """The part of a question that names the person ("the man in the light blue shirt")."""
    m = re.search(r"\b(the (?:\w+[- ]?)*?(?:person|man|woman|one|guy|girl|boy|lady|people|face)\b.*?)(?:\?|$)",
                  text, flags=re.IGNORECASE)
    return (m.group(1) if m else text).strip().rstrip("?").strip()


def resolve_with_vlm(backend, image, question: Question | str, faces: list[Face]) -> Answer:
    """Let a VLM backend (one with ``ask_image``) choose the person among numbered boxes.

    The answer must be one box number (0 = nobody); anything else is recorded as an invalid
    answer, with the candidates listed, never guessed. ``image`` is the photo's RGB array (boxes
    are in its pixels). A chosen face marked ``weak`` gives a ``weak`` answer."""
    q = parse_question(question) if isinstance(question, str) else question
    reference = reference_phrase(q.text)
    prompt = prompts.task_prompt("ask", "choose_box", n=len(faces), reference=reference)
    answer = Answer(question=q.text, status="invalid answer", method=f"vlm:{getattr(backend, 'name', 'vlm')}")
    boxed = np.asarray(draw_numbered_boxes(image, faces))
    try:
        raw = backend.ask_image(boxed, prompt, max_new_tokens=8)
    except Exception as e:  # noqa: BLE001 - the request's failure is this answer's error
        raw = None
        answer.reasons = [f"the VLM request failed: {type(e).__name__}: {e}"]
    numbers = re.findall(r"\b\d+\b", raw or "")
    if raw is not None:
        answer.reasons = [f"asked which numbered box shows {reference!r}; the VLM answered {raw!r}"]
    if len(set(numbers)) == 1 and 0 <= int(numbers[0]) <= len(faces):
        k = int(numbers[0])
        if k == 0:
            answer.status = "no match"
        else:
            choose(answer, faces[k - 1], q.asks)
            return answer
    answer.candidates = [Candidate(f.index, summarize(f)) for f in faces]
    return answer

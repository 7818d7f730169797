"""``facescan ask``: questions about one person in a group photo (FaceScanGPT's task).

:func:`ask_photo` analyzes the photo (attributes and person descriptors) and resolves the
question from the descriptors, or lets a VLM choose among numbered boxes.
"""

from __future__ import annotations

from facescan.ask.resolve import (
    Answer,
    Question,
    numbered_boxes,
    parse_question,
    resolve,
    resolve_with_vlm,
    summarize,
)

__all__ = ["Answer", "Question", "ask_photo", "numbered_boxes", "parse_question", "resolve", "resolve_with_vlm",
           "summarize"]

CHOOSERS = ("descriptors", "vlm")


def ask_photo(image, question: str, analyzer=None, chooser: str = "descriptors", vlm=None):
    """Answer ``question`` about one person in ``image`` (path, bytes or array).

    Returns ``(Answer, ImageResult)``. ``analyzer`` must describe people (``Analyzer(describe=True)``);
    ``chooser="vlm"`` needs ``vlm``, a backend with ``ask_image`` (the analyzer's own backend by default).
    """
    from facescan.imageio import load_image
    from facescan.pipeline import Analyzer

    if chooser not in CHOOSERS:
        raise ValueError(f"chooser must be one of {', '.join(CHOOSERS)}, not {chooser!r}")
    if not question or not question.strip():
        raise ValueError("the question is empty")
    q = parse_question(question)
    if analyzer is None:
        wanted = ["age", "gender", "emotion"] + (["race"] if "race" in q.asks else [])
        analyzer = Analyzer(describe=True, attributes=wanted)
    result = analyzer.analyze(image)
    if not result.ok:
        raise ValueError(result.error)
    if not result.faces:
        return Answer(question=question, status="no match", reasons=["no face was found in the photo"]), result
    if chooser == "vlm":
        backend = vlm or analyzer.backend
        if not hasattr(backend, "ask_image"):
            raise ValueError(f"backend {getattr(backend, 'name', backend)} cannot look at numbered boxes; "
                             "use a VLM backend (hf, openai, gemini)")
        pixels = load_image(image, max_side=None).pixels  # boxes are in original pixels
        return resolve_with_vlm(backend, pixels, q, result.faces), result
    return resolve(q, result.faces), result

"""``facescan ask``: questions about one person in a group photo (FaceScanGPT's task).

The one ask flow, shared by the CLI, the Python API and ``POST /v1/ask``: :func:`parse_question`
reads the question, :func:`attributes_for` says what the analysis must predict, the photo is
analyzed once with person descriptors, and :func:`answer_question` resolves the reference from the
descriptors or lets a VLM choose among numbered boxes drawn on the same decoded photo.
"""

from __future__ import annotations

from facescan import taxonomy
from facescan.ask.answer import Answer, Candidate
from facescan.ask.question import Question, Reference, parse_question
from facescan.ask.resolve import resolve
from facescan.ask.vlm_chooser import resolve_with_vlm

__all__ = ["Answer", "Candidate", "Question", "Reference", "answer_question", "ask_photo", "attributes_for",
           "check_chooser", "parse_question", "resolve", "resolve_with_vlm"]

CHOOSERS = ("descriptors", "vlm")


def check_chooser(chooser: str, vlm=None) -> None:
    """Raise ValueError unless ``chooser`` is one of :data:`CHOOSERS` and, for ``"vlm"``, ``vlm`` (when
    given) is a backend that can look at numbered boxes — so a request fails before any analysis."""
    if chooser not in CHOOSERS:
        raise ValueError(f"chooser must be one of {', '.join(CHOOSERS)}, not {chooser!r}")
    if chooser == "vlm" and vlm is not None and not hasattr(vlm, "ask_image"):
        raise ValueError(f"backend {getattr(vlm, 'name', vlm)} cannot look at numbered boxes; "
                         "use a VLM backend (hf, openai, gemini)")


def attributes_for(question: Question) -> tuple[str, ...]:
    """What to predict for a question: the default attributes, and race only when it is asked for."""
    return (*taxonomy.DEFAULT_ATTRIBUTES, *(["race"] if "race" in question.asks else []))


def answer_question(question: Question, analyzed, chooser: str = "descriptors", vlm=None) -> Answer:
    """Resolve ``question`` on an analyzed photo (a :class:`facescan.pipeline.Analyzed`; its result
    must carry person descriptors, and for ``chooser="vlm"`` its decoded image). ``vlm`` is a
    backend with ``ask_image``."""
    check_chooser(chooser, vlm)
    if chooser == "vlm" and vlm is None:
        raise ValueError("the vlm chooser needs a VLM backend (hf, openai, gemini)")
    result = analyzed.result
    if not result.ok:
        raise ValueError(result.error)
    if not result.faces:
        return Answer(question=question.text, status="no match", reasons=["no face was found in the photo"])
    if chooser == "vlm":
        return resolve_with_vlm(vlm, analyzed.image.original, question, result.faces)
    return resolve(question, result.faces)


def ask_photo(image, question: str, analyzer=None, chooser: str = "descriptors", vlm=None,
              detector: str = "mediapipe", min_quality=None):
    """Answer ``question`` about one person in ``image`` (path, bytes or array); returns ``(Answer, ImageResult)``.

    ``analyzer`` must describe people (``Analyzer(describe=True)``); by default one is built for the
    question, with ``detector`` and ``min_quality`` (faces under it are not chosen). ``chooser="vlm"``
    lets ``vlm`` (default: the analyzer's backend) pick a numbered box.
    """
    from facescan.pipeline import Analyzer

    q = parse_question(question)
    analyzer = analyzer or Analyzer(describe=True, attributes=attributes_for(q), detector=detector,
                                    min_quality=min_quality)
    check_chooser(chooser, vlm or analyzer.backend)
    analyzed = analyzer.analyze_one(image, keep_image=chooser == "vlm")
    return answer_question(q, analyzed, chooser, vlm or analyzer.backend), analyzed.result

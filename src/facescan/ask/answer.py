"""What an answer about one person holds, and how faces are summarized in it."""

from __future__ import annotations

from dataclasses import dataclass, field

from facescan import taxonomy
from facescan.detect.quality import QualityFloor
from facescan.schema import Face

#: Under this, an answered face's attributes are flagged as less reliable in the answer's reasons (the
#: face is still answered about; under ``min_quality`` it would have no attributes at all). Measured on 600
#: FairFace val faces made small, blurred and cut (``benchmarks/quality_accuracy.py``): faces under it
#: were 6-7 points less accurate on gender and race while looking almost as confident; faces of 24-32 px
#: were as accurate as large ones, those under 24 px 9 points less on gender.
CAUTION = QualityFloor(size=24, blur=40, yaw=60, outside=0.3)


@dataclass
class Candidate:
    index: int
    summary: str


@dataclass
class Answer:
    """The outcome of a question: ``status`` is ``answered``, ``ambiguous``, ``no match``, or ``weak`` (the
    person is found but their face fell under ``min_quality``: it has no attributes to answer with)."""

    question: str
    status: str
    face: int | None = None
    box: dict | None = None
    answer: dict = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    method: str = "descriptors"
    quality: dict | None = None  # the chosen face's quality record (size, yaw, roll, blur, outside)

    def as_dict(self) -> dict:
        return {"question": self.question, "status": self.status, "face": self.face, "box": self.box,
                "quality": self.quality, "answer": self.answer, "reasons": self.reasons, "method": self.method,
                "candidates": [{"face": c.index, "summary": c.summary} for c in self.candidates]}


def label_of(face: Face, attr: str) -> str | None:
    """The face's valid label for ``attr``, or None."""
    pred = face.attributes.get(attr)
    return pred.label if pred is not None and pred.valid else None


def summarize(face: Face) -> str:
    """One line about a face: position, attributes and descriptors."""
    parts = [f"#{face.index} at x={face.box.x + face.box.width / 2:.0f}, y={face.box.y + face.box.height / 2:.0f}"]
    for attr in ("gender", "age", "emotion", "race"):
        pred = face.attributes.get(attr)
        if pred is not None and pred.valid:
            parts.append(f"{attr} {taxonomy.label_set(pred.label_set).pretty(pred.label)}")
    d = face.description or {}
    if d.get("clothing_colours"):
        parts.append("wearing " + "/".join(d["clothing_colours"]))
    if d.get("hair_colour"):
        parts.append(f"{d.get('hair_length') or ''} {d['hair_colour']} hair".strip())
    if d.get("eyewear") == "sunglasses":
        parts.append("sunglasses")
    return ", ".join(parts)


def answer_fields(face: Face, asks: list[str]) -> dict:
    """The asked attributes of a face (all of them when the question asks nothing specific)."""
    d = face.description or {}
    out: dict = {}
    wanted = asks or ["age", "gender", "emotion", "race", "clothing", "hair", "eyewear", "posture"]
    for attr in ("age", "gender", "emotion", "race"):
        if attr in wanted and attr in face.attributes:
            pred = face.attributes[attr]
            out[attr] = {"label": pred.label, "score": round(pred.score, 3) if pred.score is not None else None,
                         "valid": pred.valid}
    if "clothing" in wanted and d:
        out["clothing_colours"] = d.get("clothing_colours")
    if "hair" in wanted and d:
        out["hair"] = {"colour": d.get("hair_colour"), "length": d.get("hair_length")}
    if "eyewear" in wanted and d:
        out["eyewear"] = d.get("eyewear")
    if "posture" in wanted and d:
        out["posture"] = d.get("posture")
    if face.explanation and "emotion" in wanted:
        out["explanation"] = face.explanation
    return out


def choose(answer: Answer, face: Face, asks: list[str]) -> None:
    """Record ``face`` as ``answer``'s person: its number, box, quality, the asked fields, and a reason line
    when it falls under :data:`CAUTION`."""
    answer.status, answer.face, answer.box = "answered", face.index, face.box.model_dump()
    if face.quality is not None:
        answer.quality = face.quality.model_dump()
    if face.weak:
        answer.status = "weak"
        answer.reasons.append(f"face #{face.index} is under --min-quality ({'; '.join(face.weak)}): its "
                              "attributes were not predicted")
        return
    answer.answer = answer_fields(face, asks)
    if face.quality is not None:
        weak = CAUTION.failures(face.quality)
        if weak:
            answer.reasons.append(f"caution: face #{face.index} is a weak detection ({'; '.join(weak)}): its "
                                  "attributes are less reliable")

"""Reading a question about one person: who it refers to (:class:`Reference`) and what it asks."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from facescan.ask import vocabulary as words


@dataclass
class Reference:
    """Who a question means."""

    gender: str | None = None
    position: str | None = None  # leftmost, rightmost, top, bottom, top left…, middle, back, front
    ordinal: tuple[int, str] | None = None  # (n, "left" | "right")
    colours: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)  # (phrase, families)
    pattern: str | None = None
    hair: str | None = None
    hair_length: str | None = None
    eyewear: bool | None = None
    beard: bool | None = None
    emotions: tuple[str, ...] | None = None
    not_emotion: bool = False
    superlative: tuple[str, str] | None = None  # ("age", "max") | ("emotion:happy", "max")
    body: str | None = None  # sitting | standing
    index: int | None = None  # "face #2": a face number as facescan numbers them


@dataclass
class Question:
    text: str
    reference: Reference
    asks: list[str]



def _has(text: str, phrase: str) -> bool:
    return re.search(r"(?<![\w-])" + re.escape(phrase) + r"(?![\w-])", text) is not None


_NEGATED = r"(?:not|n't|no|without)"
_POSITIONS = (("top left", r"top[- ]left|upper left"), ("top right", r"top[- ]right|upper right"),
              ("bottom left", r"bottom[- ]left|lower left"), ("bottom right", r"bottom[- ]right|lower right"),
              ("leftmost", r"left ?most|far left|on the left|at the left|to the left"),
              ("rightmost", r"right ?most|far right|on the right|at the right|to the right"),
              ("middle", r"in the (?:middle|centre|center)|middle one"),
              ("back", r"at the back|in the back|behind|in the background"),
              ("front", r"in (?:the )?front|in the foreground"),
              ("top", r"at the top|top one|highest"), ("bottom", r"at the bottom|lowest"))
_SUPERLATIVES = {"oldest": ("age", "max"), "eldest": ("age", "max"), "youngest": ("age", "min"),
                 "happiest": ("emotion:happy", "max"), "saddest": ("emotion:sad", "max"),
                 "most surprised": ("emotion:surprise", "max"), "angriest": ("emotion:angry", "max")}


def parse_question(text: str) -> Question:
    """Read who a question refers to and what it asks (ValueError for an empty question)."""
    if not text or not text.strip():
        raise ValueError("the question is empty")
    q = " " + re.sub(r"\s+", " ", text.lower().replace("’", "'")).strip() + " "
    ref = Reference()
    m = re.search(r"\b(?:person|face|box|number) #?(\d+)\b|#(\d+)", q)
    if m:
        ref.index = int(m.group(1) or m.group(2))
    for word, gender in words.PERSON_WORDS.items():
        if gender and _has(q, word):
            ref.gender = gender
    _read_position(q, ref)
    _read_clothing(q, ref)
    _read_looks(q, ref)
    yes_no = bool(re.match(r"\s*(is|are|does|do)\b", q))
    _read_emotion(q, ref, yes_no)
    return Question(text=text, reference=ref, asks=_asked(q, ref, yes_no))


def _read_position(q: str, ref: Reference) -> None:
    m = re.search(r"\b(" + "|".join(words.ORDINALS) + r")(?: \w+)? (?:from|on) (?:the )?(left|right)\b", q)
    last = re.search(r"\b(?:last|final) (?:\w+ )?(?:from|on) (?:the )?(left|right)\b", q)
    if m:
        ref.ordinal = (words.ORDINALS[m.group(1)], m.group(2))
    elif last:
        ref.position = "rightmost" if last.group(1) == "left" else "leftmost"
    else:
        ref.position = next((pos for pos, pattern in _POSITIONS if re.search(pattern, q)), None)
    m = re.search(r"\b(" + "|".join(_SUPERLATIVES) + r")\b", q)
    if m:
        ref.superlative = _SUPERLATIVES[m.group(1)]


def _read_clothing(q: str, ref: Reference) -> None:
    ref.pattern = next((p for p in sorted(words.PATTERN_WORDS, key=len, reverse=True) if _has(q, p)), None)
    garment = "|".join(re.escape(g) for g in words.GARMENT_WORDS)
    for phrase in sorted(words.COLOUR_WORDS, key=len, reverse=True):
        # a colour counts as clothing when it comes with a garment word or after "in"/"wearing"
        if re.search(rf"(?:\bin (?:a |an |the )?|wearing (?:a |an |the )?){re.escape(phrase)}\b"
                     rf"|\b{re.escape(phrase)} (?:{garment})\b", q) and not any(
                phrase in p for p, _ in ref.colours):
            ref.colours.append((phrase, words.COLOUR_WORDS[phrase]))


def _read_looks(q: str, ref: Reference) -> None:
    """Hair, eyewear, beard and body posture."""
    hair = next((p for p in sorted(words.HAIR_WORDS, key=len, reverse=True) if _has(q, p)), None)
    ref.hair = words.HAIR_WORDS[hair] if hair else None
    if re.search(r"\blong[- ]hair", q):
        ref.hair_length = "long"
    elif re.search(r"\bshort[- ]hair", q):
        ref.hair_length = "short"
    if re.search(r"sunglasses|shades|glasses", q):
        ref.eyewear = not re.search(_NEGATED + r" (?:\w+ )?(?:sunglasses|shades|glasses)", q)
    if re.search(r"\bbeard|bearded", q):
        ref.beard = not re.search(_NEGATED + r" (?:\w+ )?beard", q)
    if re.search(r"\b(?:is|are) (?:\w+ )?sitting|\bseated\b|\bthe sitting\b", q):
        ref.body = "sitting"
    elif re.search(r"\b(?:is|are) (?:\w+ )?standing|\bthe standing\b", q):
        ref.body = "standing"


def _read_emotion(q: str, ref: Reference, yes_no: bool) -> None:
    for word in sorted(words.EMOTION_WORDS, key=len, reverse=True):
        m = re.search(r"(?<![\w-])" + re.escape(word) + r"(?![\w-])", q)
        if m and not (yes_no and q.rstrip().endswith(word + "?")):
            ref.emotions = words.EMOTION_WORDS[word]
            ref.not_emotion = bool(re.search(_NEGATED + r" (?:\w+ )?$", q[: m.start()].rstrip() + " "))
            return


def _asked(q: str, ref: Reference, yes_no: bool) -> list[str]:
    asks = [a for a, ws in words.ASKED_WORDS.items() if any(_has(q, w) for w in ws if not w.endswith("?"))
            or any(q.rstrip().endswith(w) for w in ws if w.endswith("?"))]
    if ref.eyewear is not None and "eyewear" in asks and not yes_no:
        asks.remove("eyewear")  # "the person with sunglasses" names, it does not ask
    if ref.body and "posture" in asks and not yes_no:
        asks.remove("posture")
    if ref.colours and "clothing" in asks and not re.search(r"\bwhat\b.*\bwearing\b", q):
        asks.remove("clothing")
    return asks

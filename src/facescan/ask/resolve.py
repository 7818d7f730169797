"""Questions about one person in a group photo (FaceScanGPT's task), resolved from descriptors.

A question is read into a :class:`Reference` (who is meant: gender, position, ordinal,
clothing colour or pattern, hair, eyewear, expression, superlatives) and the attributes it asks
for. The reference is resolved against the faces of an analyzed photo: hard filters first, then
clothing colour (scored, since colours are measured, not known), then position or superlative.
The answer names the chosen face and why, or says the reference was ambiguous or matched nobody
and lists the candidates. Every word list lives in :mod:`facescan.taxonomy`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from facescan import taxonomy
from facescan.schema import Face

#: What a question may ask, and the words that ask for it.
ASKED_WORDS: dict[str, tuple[str, ...]] = {
    "age": ("how old", "age", "years old"),
    "emotion": ("emotion", "feel", "feeling", "mood", "expression", "smiling?", "happy?", "sad?", "angry?"),
    "gender": ("gender", "man or a woman", "male or female"),
    "race": ("race", "ethnicity", "ethnic"),
    "clothing": ("wearing", "wear", "dressed", "clothes", "clothing", "colour is", "color is"),
    "hair": ("hair like", "hair colour", "hair color", "what hair", "hairstyle", "haircut"),
    "posture": ("posture", "sitting", "standing", "pose", "arms"),
    "eyewear": ("glasses", "sunglasses"),
}


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


@dataclass
class Candidate:
    index: int
    summary: str


@dataclass
class Answer:
    """The outcome of a question: ``status`` is ``answered``, ``ambiguous`` or ``no match``."""

    question: str
    status: str
    face: int | None = None
    box: dict | None = None
    answer: dict = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    method: str = "descriptors"

    def as_dict(self) -> dict:
        return {"question": self.question, "status": self.status, "face": self.face, "box": self.box,
                "answer": self.answer, "reasons": self.reasons, "method": self.method,
                "candidates": [{"face": c.index, "summary": c.summary} for c in self.candidates]}


def _has(text: str, phrase: str) -> bool:
    return re.search(r"(?<![\w-])" + re.escape(phrase) + r"(?![\w-])", text) is not None


def parse_question(text: str) -> Question:
    """Read who a question refers to and what it asks."""
    q = " " + re.sub(r"\s+", " ", text.lower().replace("’", "'")).strip() + " "
    ref = Reference()
    m = re.search(r"\b(?:person|face|box|number) #?(\d+)\b|#(\d+)", q)
    if m:
        ref.index = int(m.group(1) or m.group(2))
    for word, gender in taxonomy.PERSON_WORDS.items():
        if gender and _has(q, word):
            ref.gender = gender
    m = re.search(r"\b(" + "|".join(taxonomy.ORDINALS) + r")(?: \w+)? (?:from|on) (?:the )?(left|right)\b", q)
    if m:
        ref.ordinal = (taxonomy.ORDINALS[m.group(1)], m.group(2))
    elif re.search(r"\b(last|final) (?:\w+ )?(?:from|on) (?:the )?(left|right)\b", q):
        side = re.search(r"\b(?:last|final) (?:\w+ )?(?:from|on) (?:the )?(left|right)\b", q).group(1)
        ref.position = "rightmost" if side == "left" else "leftmost"
    else:
        for pos, pattern in (("top left", r"top[- ]left|upper left"), ("top right", r"top[- ]right|upper right"),
                             ("bottom left", r"bottom[- ]left|lower left"),
                             ("bottom right", r"bottom[- ]right|lower right"),
                             ("leftmost", r"left ?most|far left|on the left|at the left|to the left"),
                             ("rightmost", r"right ?most|far right|on the right|at the right|to the right"),
                             ("middle", r"in the (?:middle|centre|center)|middle one"),
                             ("back", r"at the back|in the back|behind|in the background"),
                             ("front", r"in (?:the )?front|in the foreground"),
                             ("top", r"at the top|top one|highest"), ("bottom", r"at the bottom|lowest")):
            if re.search(pattern, q):
                ref.position = pos
                break
    for phrase in sorted(taxonomy.PATTERN_WORDS, key=len, reverse=True):
        if _has(q, phrase):
            ref.pattern = phrase
            break
    garment = "|".join(re.escape(g) for g in taxonomy.GARMENT_WORDS)
    for phrase in sorted(taxonomy.COLOUR_WORDS, key=len, reverse=True):
        # a colour counts as clothing when it comes with a garment word or after "in"/"wearing"
        if re.search(rf"(?:\bin (?:a |an |the )?|wearing (?:a |an |the )?){re.escape(phrase)}\b"
                     rf"|\b{re.escape(phrase)} (?:{garment})\b", q) and not any(
                phrase in p for p, _ in ref.colours):
            ref.colours.append((phrase, taxonomy.COLOUR_WORDS[phrase]))
    for phrase in sorted(taxonomy.HAIR_WORDS, key=len, reverse=True):
        if _has(q, phrase):
            ref.hair = taxonomy.HAIR_WORDS[phrase]
            break
    if re.search(r"\blong[- ]hair", q):
        ref.hair_length = "long"
    elif re.search(r"\bshort[- ]hair", q):
        ref.hair_length = "short"
    negated = r"(?:not|n't|no|without)"
    if re.search(r"sunglasses|shades|glasses", q):
        ref.eyewear = not re.search(negated + r" (?:\w+ )?(?:sunglasses|shades|glasses)", q)
    if re.search(r"\bbeard|bearded", q):
        ref.beard = not re.search(negated + r" (?:\w+ )?beard", q)
    m = re.search(r"\b(oldest|eldest|youngest|happiest|saddest|most surprised|angriest)\b", q)
    if m:
        ref.superlative = {"oldest": ("age", "max"), "eldest": ("age", "max"), "youngest": ("age", "min"),
                           "happiest": ("emotion:happy", "max"), "saddest": ("emotion:sad", "max"),
                           "most surprised": ("emotion:surprise", "max"),
                           "angriest": ("emotion:angry", "max")}[m.group(1)]
    if re.search(r"\b(?:is|are) (?:\w+ )?sitting|\bseated\b|\bthe sitting\b", q):
        ref.body = "sitting"
    elif re.search(r"\b(?:is|are) (?:\w+ )?standing|\bthe standing\b", q):
        ref.body = "standing"
    yes_no = bool(re.match(r"\s*(is|are|does|do)\b", q))
    for word in sorted(taxonomy.EMOTION_WORDS, key=len, reverse=True):
        m = re.search(r"(?<![\w-])" + re.escape(word) + r"(?![\w-])", q)
        if m and not (yes_no and q.rstrip().endswith(word + "?")):
            ref.emotions = taxonomy.EMOTION_WORDS[word]
            ref.not_emotion = bool(re.search(negated + r" (?:\w+ )?$", q[: m.start()].rstrip() + " "))
            break
    asks = [a for a, words in ASKED_WORDS.items() if any(w in q for w in words if not w.endswith("?"))
            or any(q.rstrip().endswith(w) for w in words if w.endswith("?"))]
    if ref.eyewear is not None and "eyewear" in asks and not yes_no:
        asks.remove("eyewear")  # "the person with sunglasses" names, it does not ask
    if ref.body and "posture" in asks and not yes_no:
        asks.remove("posture")
    if ref.colours and "clothing" in asks and not re.search(r"\bwhat\b.*\bwearing\b", q):
        asks.remove("clothing")
    return Question(text=text, reference=ref, asks=asks)


# ---------------------------------------------------------------------------- resolution
def _label(face: Face, attr: str) -> str | None:
    pred = face.attributes.get(attr)
    return pred.label if pred is not None and pred.valid else None


def _expected_age(face: Face) -> float | None:
    pred = face.attributes.get("age")
    if pred is None or not pred.valid:
        return None
    if pred.probabilities:
        total = sum(pred.probabilities.values())
        return sum(p * taxonomy.age_group_midpoint(lab, pred.label_set) for lab, p in pred.probabilities.items()) \
            / max(total, 1e-9)
    return taxonomy.age_group_midpoint(pred.label, pred.label_set)


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


def _colour_score(face: Face, families: tuple[str, ...]) -> float:
    shares = (face.description or {}).get("clothing_colour_shares") or {}
    return float(sum(shares.get(f, 0.0) for f in families))


def resolve(question: Question | str, faces: list[Face], min_colour_share: float = 0.06,
            margin: float = 1.5) -> Answer:
    """Choose the face a question refers to (faces carry attributes and, for clothing, hair and
    eyewear cues, ``description`` from ``--describe``)."""
    q = parse_question(question) if isinstance(question, str) else question
    ref = q.reference
    answer = Answer(question=q.text, status="no match")
    pool = list(faces)
    reasons: list[str] = []

    def keep(pred, what: str) -> None:
        nonlocal pool
        before = len(pool)
        pool = [f for f in pool if pred(f)]
        reasons.append(f"{what}: {len(pool)} of {before}")

    if ref.index is not None:
        keep(lambda f: f.index == ref.index, f"face #{ref.index}")
    if ref.gender:
        keep(lambda f: _label(f, "gender") == ref.gender, "man" if ref.gender == "male" else "woman")
    if ref.eyewear is not None:
        want = "sunglasses" if ref.eyewear else "none seen"
        keep(lambda f: (f.description or {}).get("eyewear") == want,
             "with sunglasses" if ref.eyewear else "without sunglasses")
    if ref.beard is not None:
        keep(lambda f: (f.description or {}).get("beard") == ref.beard, "bearded" if ref.beard else "no beard")
    if ref.hair:
        keep(lambda f: (f.description or {}).get("hair_colour") == ref.hair, f"{ref.hair} hair")
    if ref.hair_length:
        keep(lambda f: (f.description or {}).get("hair_length") == ref.hair_length, f"{ref.hair_length} hair")
    if ref.body:
        keep(lambda f: ((f.description or {}).get("posture") or {}).get("body") == ref.body, ref.body)
    if ref.emotions:
        if ref.not_emotion:
            keep(lambda f: _label(f, "emotion") is not None and _label(f, "emotion") not in ref.emotions,
                 f"not {'/'.join(ref.emotions)}")
        else:
            keep(lambda f: _label(f, "emotion") in ref.emotions, "/".join(ref.emotions))
    families = tuple(fam for _, fams in ref.colours for fam in fams)
    what = " and ".join(p for p, _ in ref.colours)
    if ref.pattern:
        families += taxonomy.PATTERN_WORDS[ref.pattern]
        what = " ".join(x for x in (what, ref.pattern) if x)
    if (families or ref.pattern) and pool:
        if families:
            scores = {f.index: _colour_score(f, families) for f in pool}
        else:
            scores = {}
        if ref.pattern:  # a print is busy: weight the colours by the torso's texture
            tex = {f.index: (f.description or {}).get("clothing_texture", 0.0) for f in pool}
            top = max(tex.values()) or 1.0
            scores = {i: (scores.get(i, 1.0)) * (tex[i] / top) for i in tex}
        ranked = sorted(pool, key=lambda f: -scores[f.index])
        best = scores[ranked[0].index]
        second = scores[ranked[1].index] if len(ranked) > 1 else 0.0
        detail = ", ".join(f"#{f.index} {scores[f.index]:.2f}" for f in ranked)
        if best < min_colour_share:
            pool = []
            reasons.append(f"{what}: no one's clothing matches ({detail})")
        elif second > 0 and best < margin * second and not (ref.position or ref.ordinal or ref.superlative):
            pool = [f for f in ranked if scores[f.index] >= best / margin]
            reasons.append(f"{what}: several match about as well ({detail})")
        else:
            pool = [ranked[0]] if not (ref.position or ref.ordinal or ref.superlative) else \
                [f for f in ranked if scores[f.index] >= min_colour_share]
            reasons.append(f"{what}: best match by clothing colour share ({detail})")
    if pool and (ref.position or ref.ordinal):
        chosen, why = _by_position(pool, ref, faces)
        pool = [chosen] if chosen is not None else []
        reasons.append(why)
    if pool and ref.superlative:
        key, direction = ref.superlative
        if key == "age":
            values = {f.index: _expected_age(f) for f in pool}
        else:
            emo = key.split(":")[1]
            values = {f.index: (f.attributes["emotion"].probabilities or {}).get(emo, 0.0)
                      if "emotion" in f.attributes else None for f in pool}
        scored = [f for f in pool if values[f.index] is not None]
        if scored:
            pick = (max if direction == "max" else min)(scored, key=lambda f: values[f.index])
            reasons.append(f"{'highest' if direction == 'max' else 'lowest'} {key} of {len(scored)} "
                           f"({', '.join(f'#{f.index} {values[f.index]:.2f}' for f in scored)})")
            pool = [pick]
    answer.reasons = reasons
    if len(pool) == 1:
        face = pool[0]
        answer.status, answer.face = "answered", face.index
        answer.box = face.box.model_dump()
        answer.answer = answer_fields(face, q.asks)
    else:
        answer.status = "ambiguous" if pool else "no match"
        answer.candidates = [Candidate(f.index, summarize(f)) for f in (pool or faces)]
    return answer


def _by_position(pool: list[Face], ref: Reference, everyone: list[Face]) -> tuple[Face | None, str]:
    cx = {f.index: f.box.x + f.box.width / 2 for f in pool}
    cy = {f.index: f.box.y + f.box.height / 2 for f in pool}
    if ref.ordinal:
        n, side = ref.ordinal
        order = sorted(pool, key=lambda f: cx[f.index], reverse=side == "right")
        if n > len(order):
            return None, f"no {n}th from the {side}: only {len(order)}"
        return order[n - 1], f"number {n} from the {side} of {len(order)}"
    pos = ref.position
    xs = [cx[f.index] for f in pool]
    ys = [cy[f.index] for f in pool]
    span_x, span_y = (max(xs) - min(xs)) or 1.0, (max(ys) - min(ys)) or 1.0
    nx = {i: (cx[i] - min(xs)) / span_x for i in cx}
    ny = {i: (cy[i] - min(ys)) / span_y for i in cy}
    size = {f.index: f.box.width for f in pool}
    key = {"leftmost": lambda i: nx[i], "rightmost": lambda i: -nx[i], "top": lambda i: ny[i],
           "bottom": lambda i: -ny[i], "top left": lambda i: nx[i] + ny[i], "top right": lambda i: ny[i] - nx[i],
           "bottom left": lambda i: nx[i] - ny[i], "bottom right": lambda i: -nx[i] - ny[i],
           "middle": lambda i: abs(nx[i] - 0.5),
           # farther faces are smaller; among faces of about one size, the higher one is farther back
           "back": lambda i: (round(20 * size[i] / max(size.values())), ny[i]),
           "front": lambda i: (-round(20 * size[i] / max(size.values())), -ny[i])}[pos]
    ranked = sorted(pool, key=lambda f: key(f.index))
    return ranked[0], f"{pos} of {len(pool)}"


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


def _reference_phrase(text: str) -> str:
    """The part of a question that names the person ("the man in the light blue shirt")."""
    m = re.search(r"\b(the (?:\w+[- ]?)*?(?:person|man|woman|one|guy|girl|boy|lady|people|face)\b.*?)(?:\?|$)",
                  text, flags=re.IGNORECASE)
    return (m.group(1) if m else text).strip().rstrip("?").strip()


def numbered_boxes(image, faces: list[Face]):
    """The photo with each face boxed and numbered 1…n (the numbers a VLM is asked to choose from)."""
    from PIL import Image, ImageDraw

    from facescan.annotate import _font

    img = Image.fromarray(image).convert("RGB")
    draw = ImageDraw.Draw(img)
    width = max(2, max(img.size) // 300)
    for k, face in enumerate(faces, start=1):
        b = face.box
        draw.rectangle([b.x, b.y, b.x + b.width, b.y + b.height], outline=(255, 0, 0), width=width)
        font = _font(int(max(14, b.width / 3)))
        tb = draw.textbbox((0, 0), str(k), font=font)
        y = max(0, b.y - (tb[3] - tb[1]) - 3 * width)
        draw.rectangle([b.x, y, b.x + tb[2] - tb[0] + 2 * width, y + tb[3] - tb[1] + 2 * width], fill=(255, 0, 0))
        draw.text((b.x + width, y + width - tb[1]), str(k), fill=(255, 255, 255), font=font)
    return img


def resolve_with_vlm(backend, image, question: Question | str, faces: list[Face]) -> Answer:
    """Let a VLM backend (one with ``ask_image``) choose the person among numbered boxes.

    The answer must be one box number (0 = nobody); anything else is recorded as an invalid
    answer, with the candidates listed, never guessed."""
    import numpy as np

    from facescan import prompts

    q = parse_question(question) if isinstance(question, str) else question
    reference = _reference_phrase(q.text)
    prompt = prompts.task_prompt("ask", "choose_box", n=len(faces), reference=reference)
    answer = Answer(question=q.text, status="invalid answer", method=f"vlm:{getattr(backend, 'name', 'vlm')}")
    boxed = np.asarray(numbered_boxes(image, faces))
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
            face = faces[k - 1]
            answer.status, answer.face, answer.box = "answered", face.index, face.box.model_dump()
            answer.answer = answer_fields(face, q.asks)
            return answer
    answer.candidates = [Candidate(f.index, summarize(f)) for f in faces]
    return answer

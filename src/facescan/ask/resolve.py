"""Resolving a question's reference against the faces of an analyzed photo, from their descriptors.

Hard filters first (face number, gender, eyewear, beard, hair, posture, expression), then clothing
colour (scored, since colours are measured, not known), then position or superlative.
"""

from __future__ import annotations

from facescan import taxonomy
from facescan.ask import vocabulary as words
from facescan.ask.answer import Answer, Candidate, choose, label_of, summarize
from facescan.ask.question import Question, Reference, parse_question
from facescan.schema import Face
from facescan.tables import age_in_years


def resolve(question: Question | str, faces: list[Face], min_colour_share: float = 0.06,
            margin: float = 1.5) -> Answer:
    """Choose the face a question refers to (faces carry attributes and, for clothing, hair and
    eyewear cues, ``description`` from ``--describe``). A face marked ``weak`` has no attributes, so no
    attribute picks it; a position can, and the answer is then ``weak``."""
    q = parse_question(question) if isinstance(question, str) else question
    ref = q.reference
    pool, reasons = _filter(ref, list(faces))
    if (ref.colours or ref.pattern) and pool:
        pool, why = _by_clothing(ref, pool, min_colour_share, margin)
        reasons.append(why)
    if pool and (ref.position or ref.ordinal):
        chosen, why = _by_position(pool, ref)
        pool = [chosen] if chosen is not None else []
        reasons.append(why)
    if pool and ref.superlative:
        pool, why = _by_superlative(pool, ref)
        reasons += [why] if why else []
    answer = Answer(question=q.text, status="no match", reasons=reasons)
    if len(pool) == 1:
        choose(answer, pool[0], q.asks)
    else:
        weak = [f for f in faces if f.weak and f not in pool]
        if weak:  # they have no attributes, so no attribute word could pick them
            answer.reasons.append(f"{len(weak)} face(s) under --min-quality have no attributes to match: "
                                  + ", ".join(f"#{f.index}" for f in weak))
        answer.status = "ambiguous" if pool else "no match"
        answer.candidates = [Candidate(f.index, summarize(f)) for f in (pool or faces)]
    return answer


def _filter(ref: Reference, pool: list[Face]) -> tuple[list[Face], list[str]]:
    """Apply the reference's hard constraints in turn, saying how many faces each one kept."""
    def desc(f: Face) -> dict:
        return f.description or {}

    tests = []
    if ref.index is not None:
        tests.append((lambda f: f.index == ref.index, f"face #{ref.index}"))
    if ref.gender:
        tests.append((lambda f: label_of(f, "gender") == ref.gender, "man" if ref.gender == "male" else "woman"))
    if ref.eyewear is not None:
        want = "sunglasses" if ref.eyewear else "none seen"
        tests.append((lambda f: desc(f).get("eyewear") == want,
                      "with sunglasses" if ref.eyewear else "without sunglasses"))
    if ref.beard is not None:
        tests.append((lambda f: desc(f).get("beard") == ref.beard, "bearded" if ref.beard else "no beard"))
    if ref.hair:
        tests.append((lambda f: desc(f).get("hair_colour") == ref.hair, f"{ref.hair} hair"))
    if ref.hair_length:
        tests.append((lambda f: desc(f).get("hair_length") == ref.hair_length, f"{ref.hair_length} hair"))
    if ref.body:
        tests.append((lambda f: (desc(f).get("posture") or {}).get("body") == ref.body, ref.body))
    if ref.emotions and ref.not_emotion:
        tests.append((lambda f: label_of(f, "emotion") not in (None, *ref.emotions),
                      f"not {'/'.join(ref.emotions)}"))
    elif ref.emotions:
        tests.append((lambda f: label_of(f, "emotion") in ref.emotions, "/".join(ref.emotions)))
    reasons = []
    for keep, what in tests:
        before = len(pool)
        pool = [f for f in pool if keep(f)]
        reasons.append(f"{what}: {len(pool)} of {before}")
    return pool, reasons


def _colour_score(face: Face, families: tuple[str, ...]) -> float:
    shares = (face.description or {}).get("clothing_colour_shares") or {}
    return float(sum(shares.get(f, 0.0) for f in families))


def _by_clothing(ref: Reference, pool: list[Face], min_share: float, margin: float) -> tuple[list[Face], str]:
    families = tuple(fam for _, fams in ref.colours for fam in fams)
    what = " and ".join(p for p, _ in ref.colours)
    if ref.pattern:
        families += words.PATTERN_WORDS[ref.pattern]
        what = " ".join(x for x in (what, ref.pattern) if x)
    scores = {f.index: _colour_score(f, families) for f in pool} if families else {}
    if ref.pattern:  # a print is busy: weight the colours by the torso's texture
        tex = {f.index: (f.description or {}).get("clothing_texture", 0.0) for f in pool}
        top = max(tex.values()) or 1.0
        scores = {i: (scores.get(i, 1.0)) * (tex[i] / top) for i in tex}
    ranked = sorted(pool, key=lambda f: -scores[f.index])
    best = scores[ranked[0].index]
    second = scores[ranked[1].index] if len(ranked) > 1 else 0.0
    detail = ", ".join(f"#{f.index} {scores[f.index]:.2f}" for f in ranked)
    placed = bool(ref.position or ref.ordinal or ref.superlative)
    if best < min_share:
        return [], f"{what}: no one's clothing matches ({detail})"
    if second > 0 and best < margin * second and not placed:
        return [f for f in ranked if scores[f.index] >= best / margin], \
            f"{what}: several match about as well ({detail})"
    kept = [f for f in ranked if scores[f.index] >= min_share] if placed else [ranked[0]]
    return kept, f"{what}: best match by clothing colour share ({detail})"


def _expected_age(face: Face) -> float | None:
    """The age in years a face is reported with (``age_years``), for "the oldest" and "the youngest"."""
    pred = face.attributes.get("age")
    if pred is None or not pred.valid:
        return None
    if pred.value is not None:
        return pred.value
    if pred.probabilities and sum(pred.probabilities.values()) > 0 and pred.label_set in ("age9", "age5"):
        return age_in_years(pred.probabilities, pred.label_set)[0]
    return taxonomy.age_group_midpoint(pred.label, pred.label_set)


def _by_superlative(pool: list[Face], ref: Reference) -> tuple[list[Face], str | None]:
    key, direction = ref.superlative
    if key == "age":
        values = {f.index: _expected_age(f) for f in pool}
    else:
        emo = key.split(":")[1]
        values = {f.index: (f.attributes["emotion"].probabilities or {}).get(emo, 0.0)
                  if "emotion" in f.attributes else None for f in pool}
    scored = [f for f in pool if values[f.index] is not None]
    if not scored:
        return pool, None
    pick = (max if direction == "max" else min)(scored, key=lambda f: values[f.index])
    return [pick], (f"{'highest' if direction == 'max' else 'lowest'} {key} of {len(scored)} "
                    f"({', '.join(f'#{f.index} {values[f.index]:.2f}' for f in scored)})")


def _by_position(pool: list[Face], ref: Reference) -> tuple[Face | None, str]:
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



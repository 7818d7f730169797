"""Free-text VLM answers → taxonomy labels, or None when the answer does not say.

The rule is never to guess: an answer maps to a label only when it names exactly one label
of the target set (directly, by a synonym from :data:`vocabulary.ANSWER_SYNONYMS`, or for ages
by an age, range or life-stage word that falls in one group). No match, conflicting matches
or a meaning the target set cannot express give None, which backends record as invalid.
"""

from __future__ import annotations

import json
import re

from facescan import taxonomy
from facescan.backends import vocabulary

_NEGATION = re.compile(r"\b(not|no|isn't|isnt|doesn't|without|never|nor)\s+(\w+\s+)?$")
_NUMBER = r"(\d{1,3}(?:\.\d+)?)"


def parse_json_answer(text: str) -> dict | None:
    """The first JSON object in ``text`` (fenced code blocks allowed), or None."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
            continue
        return value if isinstance(value, dict) else None
    return None


def parse_answer(text: str | None, labels: str | taxonomy.LabelSet,
                 spellings: dict[str, str] | None = None) -> str | None:
    """Map one answer about one attribute to a canonical label of ``labels``, or None.

    ``spellings`` (label → how a prompt preset spells it) are accepted as exact answers too.
    """
    if text is None:
        return None
    ls = taxonomy.label_set(labels)
    obj = parse_json_answer(text)
    if obj is not None:
        value = obj.get(ls.attribute, obj.get("answer", obj.get("label")))
        return parse_answer(str(value), ls, spellings) if value is not None else None
    clean = _normalize(text)
    if not clean:
        return None
    exact = _exact(clean, ls, spellings or {})
    if exact is not None:
        return exact
    if ls.attribute == "age":
        return _parse_age(clean, ls)
    return _parse_words(clean, ls)


def _normalize(text: str) -> str:
    text = text.strip().lower()
    text = re.sub(r"^(answer|the answer is|final answer|label|result)\s*[:\-]\s*", "", text)
    return text.strip(" \t\n\"'`.!*[]()")


def _exact(clean: str, ls: taxonomy.LabelSet, spellings: dict[str, str]) -> str | None:
    for label in ls.labels:
        names = {label, ls.pretty(label).lower(), spellings.get(label, "").lower()}
        if clean in names:
            return label
    try:
        return taxonomy.canonical(ls, clean)
    except ValueError:
        return None


def _matches(clean: str, phrases) -> list[tuple[int, int, str]]:
    """Non-overlapping whole-word occurrences of ``phrases`` (longest first), not negated."""
    taken = [False] * len(clean)
    found = []
    for phrase in sorted(phrases, key=len, reverse=True):
        for m in re.finditer(r"(?<![\w-])" + re.escape(phrase) + r"(?![\w-])", clean):
            if any(taken[m.start() : m.end()]):
                continue
            for i in range(m.start(), m.end()):
                taken[i] = True
            if not _NEGATION.search(clean[: m.start()]):
                found.append((m.start(), m.end(), phrase))
    return found


def _parse_words(clean: str, ls: taxonomy.LabelSet) -> str | None:
    synonyms = dict(vocabulary.ANSWER_SYNONYMS.get(ls.attribute, {}))
    for label in ls.labels:  # the target set's own labels, spelled out
        synonyms.setdefault(ls.pretty(label).lower(), (ls.name, label))
        synonyms.setdefault(label, (ls.name, label))
    found = _matches(clean, synonyms)
    if not found and ls.attribute == "gender":
        found = _matches(clean, vocabulary.GENDER_PRONOUNS)
        labels = {vocabulary.GENDER_PRONOUNS[p] for _, _, p in found}
        return labels.pop() if len(labels) == 1 else None
    labels = set()
    for _, _, phrase in found:
        source, label = synonyms[phrase]
        if source == ls.name:
            labels.add(label)
        elif taxonomy.has_mapping(source, ls):
            labels.add(taxonomy.map_label(label, source, ls))  # None: the target cannot express it
        else:
            labels.add(None)
    return labels.pop() if len(labels) == 1 else None


def _parse_age(clean: str, ls: taxonomy.LabelSet) -> str | None:
    intervals = _age_intervals(clean)
    groups = {taxonomy.age_interval_group(lo, hi, ls) if lo is not None else None for lo, hi in intervals}
    return groups.pop() if len(groups) == 1 else None


def _age_intervals(clean: str) -> list[tuple[float | None, float | None]]:
    """Every age statement in the answer as (low, high) years; (None, None) for one that cannot be placed."""
    out: list[tuple[float | None, float | None]] = []
    rest = clean
    patterns = [
        # 25-30, 25 to 30, between 25 and 30
        (rf"(?:between\s+)?{_NUMBER}\s*(?:-|–|to|and)\s*{_NUMBER}", lambda a, b: _range(float(a), float(b))),
        (rf"(?:over|above|older than|more than|at least)\s+{_NUMBER}|{_NUMBER}\s*\+"
         rf"|{_NUMBER}\s+(?:and|or)\s+(?:over|older|above)",
         lambda *g: (float(next(x for x in g if x)), None)),
        (rf"(?:under|below|younger than|less than)\s+{_NUMBER}", lambda a: (0.0, max(0.0, float(a) - 1))),
        (r"(early|mid|mid-|late)?\s*-?\s*(\d)0'?s\b", _decade),
        (r"(early|mid|mid-|late)?\s*-?\s*(" + "|".join(vocabulary.AGE_DECADES) + r")\b",
         lambda q, w: _decade(q, str(vocabulary.AGE_DECADES[w] // 10))),
        (rf"{_NUMBER}\s*(?:years?|yrs?|y/?o|year-old|-year-old)|(?:age|aged|about|around|approximately|roughly|"
         rf"maybe|probably|estimated age)\s*(?:is|of|:)?\s*{_NUMBER}",
         lambda a, b: (float(a or b), float(a or b))),
    ]
    for pattern, to_interval in patterns:
        for m in re.finditer(pattern, rest):
            out.append(to_interval(*m.groups()))
        rest = re.sub(pattern, " ", rest)
    words = _matches(rest, vocabulary.AGE_WORDS)
    out += [vocabulary.AGE_WORDS[p] for _, _, p in words]
    if not out:
        bare = re.fullmatch(_NUMBER, rest.strip())
        if bare:
            out.append((float(bare.group(1)), float(bare.group(1))))
    return out


def _range(a: float, b: float) -> tuple[float | None, float | None]:
    lo, hi = min(a, b), max(a, b)
    if hi - lo <= 6:  # a narrow estimate ("25-30") stands for its middle
        mid = (lo + hi) / 2
        return mid, mid
    return lo, hi


def _decade(qualifier: str | None, digit: str) -> tuple[float, float]:
    base = int(digit) * 10
    q = (qualifier or "").strip("- ")
    return {"early": (base, base + 3), "mid": (base + 3, base + 6), "late": (base + 6, base + 9)}.get(
        q, (base, base + 9))

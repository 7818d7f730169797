"""Every label set facescan knows, and the mappings between them.

This module is the only place where label strings are spelled. Datasets, backends,
parsers and reports convert through the functions here, so a label set used in one
place is the same everywhere.

Canonical labels are lowercase identifiers (``"east_asian"``, ``"20-29"``, ``"happy"``).
Official dataset spellings (FairFace's ``"East Asian"``, ``"more than 70"``…) are accepted
as aliases by :func:`canonical`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

ATTRIBUTES: tuple[str, ...] = ("age", "gender", "race", "emotion")
#: What is predicted when a request names no attributes: race only when asked for.
DEFAULT_ATTRIBUTES: tuple[str, ...] = ("age", "gender", "emotion")
#: Attributes of the person rather than of the moment: within one clip they do not change, so video
#: predicts them on fewer frames than the emotion.
PERSON_ATTRIBUTES: tuple[str, ...] = ("age", "gender", "race")


@dataclass(frozen=True)
class LabelSet:
    """An ordered, named set of labels for one attribute."""

    name: str
    attribute: str
    labels: tuple[str, ...]
    description: str = ""
    display: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"label set {self.name!r} has duplicate labels")

    def __len__(self) -> int:
        return len(self.labels)

    def __contains__(self, label: object) -> bool:
        return label in self.labels

    def index(self, label: str) -> int:
        """Position of ``label`` (canonical or alias) in this set."""
        return self.labels.index(canonical(self, label))

    def pretty(self, label: str) -> str:
        """Human-readable spelling of a canonical label."""
        return self.display.get(label, label.replace("_", " "))


# --- gender -------------------------------------------------------------------------------
GENDER = LabelSet("gender", "gender", ("male", "female"), "binary gender as annotated in FairFace and UTKFace")

# --- race ---------------------------------------------------------------------------------
RACE_FAIRFACE7 = LabelSet(
    "race7",
    "race",
    ("white", "black", "latino_hispanic", "east_asian", "southeast_asian", "indian", "middle_eastern"),
    "FairFace's 7 race groups",
    {"white": "White", "black": "Black", "latino_hispanic": "Latino/Hispanic", "east_asian": "East Asian",
     "southeast_asian": "Southeast Asian", "indian": "Indian", "middle_eastern": "Middle Eastern"},
)
RACE_FAIRFACE4 = LabelSet(
    "race4", "race", ("white", "black", "asian", "indian"), "FairFace's 4-group view (White, Black, Asian, Indian)",
    {"white": "White", "black": "Black", "asian": "Asian", "indian": "Indian"},
)
RACE_PAPER6 = LabelSet(
    "race6",
    "race",
    ("white", "black", "latino_hispanic", "asian", "indian", "middle_eastern"),
    "the VLM paper's view: FairFace with East and Southeast Asian merged into Asian",
    {"white": "White", "black": "Black", "latino_hispanic": "Latino/Hispanic", "asian": "Asian", "indian": "Indian",
     "middle_eastern": "Middle Eastern"},
)
RACE_UTKFACE5 = LabelSet(
    "race5_utk", "race", ("white", "black", "asian", "indian", "others"), "UTKFace's 5 races (0-4 in file names)",
    {"white": "White", "black": "Black", "asian": "Asian", "indian": "Indian", "others": "Others"},
)

# --- age ----------------------------------------------------------------------------------
AGE_FAIRFACE9 = LabelSet(
    "age9", "age", ("0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70+"),
    "FairFace's 9 age groups",
)
AGE_PAPER5 = LabelSet("age5", "age", ("0-9", "10-19", "20-39", "40-59", "60+"), "the VLM paper's 5 age groups")

# Inclusive lower bounds of each group, used to bin exact ages.
_AGE_BOUNDS: dict[str, tuple[int, ...]] = {
    "age9": (0, 3, 10, 20, 30, 40, 50, 60, 70),
    "age5": (0, 10, 20, 40, 60),
}

# --- emotion ------------------------------------------------------------------------------
EMOTION_FER7 = LabelSet(
    "fer7", "emotion", ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"), "FER2013's 7 emotions"
)
EMOTION_AFFECTNET8 = LabelSet(
    "affectnet8",
    "emotion",
    ("neutral", "happy", "sad", "surprise", "fear", "disgust", "angry", "contempt"),
    "AffectNet's 8 expressions (official index order 0-7)",
)
EMOTION_RAFDB7 = LabelSet(
    "rafdb7",
    "emotion",
    ("surprise", "fear", "disgust", "happy", "sad", "angry", "neutral"),
    "RAF-DB basic's 7 expressions (official index order 1-7)",
)

LABEL_SETS: Mapping[str, LabelSet] = MappingProxyType(
    {
        s.name: s
        for s in (
            GENDER, RACE_FAIRFACE7, RACE_FAIRFACE4, RACE_PAPER6, RACE_UTKFACE5,
            AGE_FAIRFACE9, AGE_PAPER5, EMOTION_FER7, EMOTION_AFFECTNET8, EMOTION_RAFDB7,
        )
    }
)

#: The label set each attribute uses unless a dataset or backend says otherwise.
DEFAULT_LABEL_SETS: Mapping[str, LabelSet] = MappingProxyType(
    {"age": AGE_FAIRFACE9, "gender": GENDER, "race": RACE_FAIRFACE7, "emotion": EMOTION_FER7}
)

# --- face keypoints -------------------------------------------------------------------------
#: The named keypoints of each detector family, in the order the detector gives them.
KEYPOINT_NAMES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "mediapipe": ("right_eye", "left_eye", "nose_tip", "mouth_centre", "right_ear", "left_ear"),  # BlazeFace
    "mtcnn": ("right_eye", "left_eye", "nose_tip", "mouth_centre"),  # facescan's MTCNN, corners left out
    "centerface": ("right_eye", "left_eye", "nose_tip", "mouth_centre"),  # its mouth corners averaged
    "fused": ("right_eye", "left_eye", "nose_tip", "mouth_centre"),
})


def keypoint_names(detector: str | None, count: int) -> tuple[str, ...]:
    """Names of ``count`` keypoints from ``detector`` (a spec such as ``mediapipe:auto``); ``kp0``… if unknown."""
    names = KEYPOINT_NAMES.get((detector or "").split(":", 1)[0].split("?", 1)[0], ())
    return names[:count] if len(names) >= count else tuple(f"{i}" for i in range(count))


# Official dataset spellings and common variants → canonical label, per attribute.
_ALIASES: dict[str, dict[str, str]] = {
    "gender": {"m": "male", "man": "male", "f": "female", "woman": "female"},
    "race": {
        "latino hispanic": "latino_hispanic", "latino": "latino_hispanic", "hispanic": "latino_hispanic",
        "latino/hispanic": "latino_hispanic", "east asian": "east_asian", "southeast asian": "southeast_asian",
        "middle eastern": "middle_eastern", "other": "others",
    },
    "age": {"more than 70": "70+", "70-130": "70+", "60-130": "60+", "60 and over": "60+"},
    "emotion": {
        "anger": "angry", "disgusted": "disgust", "fearful": "fear", "happiness": "happy", "sadness": "sad",
        "surprised": "surprise", "neutrality": "neutral",
    },
}


def label_set(name_or_set: str | LabelSet) -> LabelSet:
    """Look up a label set by name (``"race7"``) or attribute (``"race"`` → its default)."""
    if isinstance(name_or_set, LabelSet):
        return name_or_set
    if name_or_set in LABEL_SETS:
        return LABEL_SETS[name_or_set]
    if name_or_set in DEFAULT_LABEL_SETS:
        return DEFAULT_LABEL_SETS[name_or_set]
    known = ", ".join([*DEFAULT_LABEL_SETS, *LABEL_SETS])
    raise KeyError(f"unknown label set {name_or_set!r}; known: {known}")


def canonical(labels: str | LabelSet, value: str) -> str:
    """Return the canonical spelling of ``value`` in ``labels``, accepting official aliases.

    Raises ``ValueError`` when ``value`` is not a label of the set.
    """
    ls = label_set(labels)
    key = str(value).strip()
    low = key.lower()
    candidates = [low, low.replace(" ", "_"), _ALIASES.get(ls.attribute, {}).get(low, "")]
    for c in candidates:
        if c in ls.labels:
            return c
    raise ValueError(f"{value!r} is not a label of {ls.name} ({', '.join(ls.labels)})")


def age_to_group(age: float, labels: str | LabelSet = AGE_FAIRFACE9) -> str:
    """Bin an exact age in years into a group of ``labels`` (``age9`` or ``age5``)."""
    ls = label_set(labels)
    if ls.name not in _AGE_BOUNDS:
        raise ValueError(f"{ls.name} is not an age-group label set")
    if age < 0:
        raise ValueError(f"age must be non-negative, got {age}")
    bounds = _AGE_BOUNDS[ls.name]
    idx = max(i for i, lo in enumerate(bounds) if age >= lo)
    return ls.labels[idx]


#: Models with an exact-age head predict a distribution over whole years 0 … AGE_YEARS_TOP (the last bin:
#: that age or older).
AGE_YEARS_TOP = 100


def age_year_groups(labels: str | LabelSet = AGE_FAIRFACE9) -> list[int]:
    """For each whole year 0 … :data:`AGE_YEARS_TOP`, the index of its group in ``labels``."""
    ls = label_set(labels)
    return [ls.index(age_to_group(year, ls)) for year in range(AGE_YEARS_TOP + 1)]


def age_group_range(group: str, labels: str | LabelSet = AGE_FAIRFACE9) -> tuple[int, int | None]:
    """Inclusive ``(low, high)`` years of an age group; ``high`` is None for the open top group."""
    ls = label_set(labels)
    bounds = _AGE_BOUNDS[ls.name]
    i = ls.index(group)
    return bounds[i], (bounds[i + 1] - 1 if i + 1 < len(bounds) else None)


def age_group_midpoint(group: str, labels: str | LabelSet = AGE_FAIRFACE9) -> float:
    """A representative age for a group (used for MAE against exact ages)."""
    lo, hi = age_group_range(group, labels)
    return (lo + hi) / 2 if hi is not None else lo + 5.0


# --- mappings between label sets -----------------------------------------------------------
# Each mapping sends every label of the source set to one label of the target set (or None
# when the target has no equivalent: that item is then left out of a comparison, never guessed).
_MAPPINGS: dict[tuple[str, str], dict[str, str | None]] = {
    ("age9", "age5"): {
        "0-2": "0-9", "3-9": "0-9", "10-19": "10-19", "20-29": "20-39", "30-39": "20-39",
        "40-49": "40-59", "50-59": "40-59", "60-69": "60+", "70+": "60+",
    },
    ("race7", "race4"): {
        "white": "white", "black": "black", "east_asian": "asian", "southeast_asian": "asian", "indian": "indian",
        "latino_hispanic": None, "middle_eastern": None,
    },
    ("race7", "race6"): {
        "white": "white", "black": "black", "latino_hispanic": "latino_hispanic", "east_asian": "asian",
        "southeast_asian": "asian", "indian": "indian", "middle_eastern": "middle_eastern",
    },
    ("race7", "race5_utk"): {
        "white": "white", "black": "black", "east_asian": "asian", "southeast_asian": "asian", "indian": "indian",
        "latino_hispanic": "others", "middle_eastern": "others",
    },
    ("race6", "race5_utk"): {
        "white": "white", "black": "black", "asian": "asian", "indian": "indian",
        "latino_hispanic": "others", "middle_eastern": "others",
    },
    ("race6", "race4"): {
        "white": "white", "black": "black", "asian": "asian", "indian": "indian",
        "latino_hispanic": None, "middle_eastern": None,
    },
    ("affectnet8", "fer7"): {
        "neutral": "neutral", "happy": "happy", "sad": "sad", "surprise": "surprise", "fear": "fear",
        "disgust": "disgust", "angry": "angry", "contempt": None,
    },
    ("fer7", "rafdb7"): {e: e for e in EMOTION_FER7.labels},
    ("rafdb7", "fer7"): {e: e for e in EMOTION_RAFDB7.labels},
    ("fer7", "affectnet8"): {e: e for e in EMOTION_FER7.labels},
    ("rafdb7", "affectnet8"): {e: e for e in EMOTION_RAFDB7.labels},
}


def has_mapping(source: str | LabelSet, target: str | LabelSet) -> bool:
    """Whether labels of ``source`` can be converted to ``target``."""
    s, t = label_set(source).name, label_set(target).name
    return s == t or (s, t) in _MAPPINGS


def map_label(label: str, source: str | LabelSet, target: str | LabelSet) -> str | None:
    """Convert one label between label sets; None where the target has no equivalent."""
    s, t = label_set(source), label_set(target)
    label = canonical(s, label)
    if s.name == t.name:
        return label
    try:
        return _MAPPINGS[(s.name, t.name)][label]
    except KeyError:
        raise ValueError(f"no mapping from {s.name} to {t.name}") from None


def map_distribution(probs: Mapping[str, float], source: str | LabelSet, target: str | LabelSet) -> dict[str, float]:
    """Convert a probability distribution between label sets by summing merged labels.

    Mass on labels with no equivalent in ``target`` is dropped and the rest renormalized;
    if no mass is left, the result is uniform over ``target``.
    """
    t = label_set(target)
    out = dict.fromkeys(t.labels, 0.0)
    for label, p in probs.items():
        dest = map_label(label, source, t)
        if dest is not None:
            out[dest] += float(p)
    total = sum(out.values())
    if total <= 0:
        return {k: 1.0 / len(t) for k in t.labels}
    return {k: v / total for k, v in out.items()}


def mappable_sets(source: str | LabelSet) -> list[str]:
    """Names of the label sets ``source`` converts to (itself included)."""
    s = label_set(source).name
    return [s] + [t for (a, t) in _MAPPINGS if a == s]


def age_interval_group(low: float, high: float | None, labels: str | LabelSet) -> str | None:
    """The group of ``labels`` holding every age in [low, high] (high None: open-ended); None if
    the interval spans several groups."""
    ls = label_set(labels)
    groups = {age_to_group(low, ls)}
    if high is None:
        groups.add(ls.labels[-1])
    else:
        groups.add(age_to_group(high, ls))
    return groups.pop() if len(groups) == 1 else None


#: The emotion codes 0-6 of the original ``fer2013.csv`` (not the label set's order).
FER2013_CSV_CODES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


# --- clip-labelled expression datasets -------------------------------------------------------
# Each video dataset's official emotion labels and the basic emotion (a label of ``fer7``) each one
# is compared as. A label with no basic counterpart maps to None and names why: its clips are left
# out of an evaluation and counted (never guessed into the nearest class). These are kept out of
# LABEL_SETS on purpose: nothing predicts them, every comparison happens in ``fer7``.
@dataclass(frozen=True)
class ClipEmotions:
    """A clip dataset's emotion labels (official spellings, in the order of their codes) and each
    one's basic emotion, or None with the reason (in ``excluded``) that it has none."""

    dataset: str
    labels: tuple[str, ...]
    basic: Mapping[str, str | None]
    excluded: Mapping[str, str] = field(default_factory=dict)
    first_code: int = 1

    def __post_init__(self) -> None:
        if set(self.basic) != set(self.labels):
            raise ValueError(f"{self.dataset}: every label needs its basic emotion (or None)")
        for label, target in self.basic.items():
            if target is not None and target not in EMOTION_FER7.labels:
                raise ValueError(f"{self.dataset}: {target!r} is not a basic emotion")
            if (target is None) != (label in self.excluded):
                raise ValueError(f"{self.dataset}: {label!r} must say why it is left out exactly when it is")

    def by_code(self, code: int) -> str:
        """The official label of a numeric code (DFEW 1-7, RAVDESS 01-08, MAFW 1-11)."""
        index = int(code) - self.first_code
        if not 0 <= index < len(self.labels):
            raise ValueError(f"{self.dataset} emotion code {code!r} is not one of "
                             f"{self.first_code}-{self.first_code + len(self.labels) - 1}")
        return self.labels[index]

    def label(self, value: str) -> str:
        """The official label spelled ``value`` (any case); ValueError when the dataset has none."""
        for label in self.labels:
            if label.lower() == str(value).strip().lower():
                return label
        raise ValueError(f"{value!r} is not a {self.dataset} emotion ({', '.join(self.labels)})")

    def to_basic(self, label: str) -> str | None:
        """The basic emotion (``fer7``) of an official label; None when it is left out (see ``excluded``)."""
        return self.basic[self.label(label)]


#: Why a compound label (MAFW's ``anger_disgust``: several emotions in one clip) is left out.
COMPOUND_EXCLUDED = ("MAFW compound labels (several emotions in one clip, e.g. anger_disgust) "
                     "have no single basic emotion")
_NOT_BASIC = "has no counterpart among the 7 basic emotions (FER2013's, which facescan's emotion models predict)"

CLIP_EMOTIONS: Mapping[str, ClipEmotions] = MappingProxyType({
    "dfew": ClipEmotions(
        "DFEW", ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear"),
        {e: e for e in ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear")}),
    "afew": ClipEmotions(
        "AFEW", ("Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise"),
        {e: e.lower() for e in ("Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise")}),
    "ravdess": ClipEmotions(
        "RAVDESS", ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"),
        {"neutral": "neutral", "calm": None, "happy": "happy", "sad": "sad", "angry": "angry", "fearful": "fear",
         "disgust": "disgust", "surprised": "surprise"},
        {"calm": f"RAVDESS calm (code 02) {_NOT_BASIC}: an acted low-arousal state, distinct from neutral"}),
    "mafw": ClipEmotions(
        "MAFW", ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise", "contempt", "anxiety",
                 "helplessness", "disappointment"),
        {"anger": "angry", "disgust": "disgust", "fear": "fear", "happiness": "happy", "neutral": "neutral",
         "sadness": "sad", "surprise": "surprise", "contempt": None, "anxiety": None, "helplessness": None,
         "disappointment": None},
        {"contempt": f"MAFW contempt {_NOT_BASIC}; AffectNet has it as an 8th class",
         "anxiety": f"MAFW anxiety {_NOT_BASIC}", "helplessness": f"MAFW helplessness {_NOT_BASIC}",
         "disappointment": f"MAFW disappointment {_NOT_BASIC}"}),
})

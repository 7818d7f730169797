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
    {"latino_hispanic": "Latino/Hispanic", "east_asian": "East Asian", "southeast_asian": "Southeast Asian",
     "middle_eastern": "Middle Eastern"},
)
RACE_FAIRFACE4 = LabelSet(
    "race4", "race", ("white", "black", "asian", "indian"), "FairFace's 4-group view (White, Black, Asian, Indian)"
)
RACE_PAPER6 = LabelSet(
    "race6",
    "race",
    ("white", "black", "latino_hispanic", "asian", "indian", "middle_eastern"),
    "the VLM paper's view: FairFace with East and Southeast Asian merged into Asian",
)
RACE_UTKFACE5 = LabelSet(
    "race5_utk", "race", ("white", "black", "asian", "indian", "others"), "UTKFace's 5 races (0-4 in file names)"
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


# --- free-text answers ------------------------------------------------------------------------
# Words and phrases VLMs answer with, → (label set, label). The parser maps them into the label
# set asked for through the mappings above; an answer whose meaning the target set cannot
# express (e.g. "Asian" when East and Southeast Asian are separate) stays invalid.
ANSWER_SYNONYMS: Mapping[str, Mapping[str, tuple[str, str]]] = MappingProxyType({
    "gender": {
        **dict.fromkeys(("male", "man", "men", "boy", "gentleman", "guy", "masculine", "father", "husband"),
                        ("gender", "male")),
        **dict.fromkeys(("female", "woman", "women", "girl", "lady", "feminine", "mother", "wife"),
                        ("gender", "female")),
    },
    "race": {
        **dict.fromkeys(("white", "caucasian", "european", "european american"), ("race7", "white")),
        **dict.fromkeys(("black", "african", "african american", "afro-american", "afro american"),
                        ("race7", "black")),
        **dict.fromkeys(("latino", "latina", "latinx", "hispanic", "latino hispanic", "latino/hispanic",
                         "latino_hispanic", "latin american"), ("race7", "latino_hispanic")),
        **dict.fromkeys(("east asian", "east_asian", "chinese", "japanese", "korean"), ("race7", "east_asian")),
        **dict.fromkeys(("southeast asian", "south-east asian", "south east asian", "southeast_asian", "filipino",
                         "vietnamese", "thai", "indonesian", "malaysian"), ("race7", "southeast_asian")),
        # FairFace's "Indian" group is South Asian
        **dict.fromkeys(("indian", "south asian", "pakistani", "bangladeshi", "sri lankan"), ("race7", "indian")),
        **dict.fromkeys(("middle eastern", "middle-eastern", "middle_eastern", "arab", "arabic", "persian",
                         "iranian", "turkish"), ("race7", "middle_eastern")),
        "asian": ("race6", "asian"),
        "others": ("race5_utk", "others"),
    },
    "emotion": {
        **dict.fromkeys(("happy", "happiness", "joy", "joyful", "smiling", "smile", "cheerful", "glad", "delighted",
                         "pleased", "laughing", "content"), ("fer7", "happy")),
        **dict.fromkeys(("sad", "sadness", "unhappy", "sorrowful", "sorrow", "depressed", "crying", "gloomy",
                         "melancholy", "upset", "down"), ("fer7", "sad")),
        **dict.fromkeys(("angry", "anger", "furious", "mad", "irritated", "annoyed", "rage", "enraged"),
                        ("fer7", "angry")),
        **dict.fromkeys(("fear", "fearful", "scared", "afraid", "terrified", "frightened", "anxious"),
                        ("fer7", "fear")),
        **dict.fromkeys(("disgust", "disgusted", "revolted", "repulsed", "grossed out"), ("fer7", "disgust")),
        **dict.fromkeys(("surprise", "surprised", "astonished", "shocked", "amazed", "startled"),
                        ("fer7", "surprise")),
        **dict.fromkeys(("neutral", "neutrality", "calm", "expressionless", "blank", "relaxed", "no emotion",
                         "emotionless", "impassive"), ("fer7", "neutral")),
        **dict.fromkeys(("contempt", "contemptuous", "disdain", "disdainful", "scornful", "scorn"),
                        ("affectnet8", "contempt")),
    },
})

#: Pronouns that settle a gender answer when no gender word is present ("She looks about 30").
GENDER_PRONOUNS: Mapping[str, str] = MappingProxyType({"she": "female", "her": "female", "he": "male",
                                                       "his": "male", "him": "male"})

# Age words → (low, high) years, high None when open-ended.
AGE_WORDS: Mapping[str, tuple[int, int | None]] = MappingProxyType({
    "newborn": (0, 0), "infant": (0, 1), "baby": (0, 2), "toddler": (1, 2), "child": (3, 9), "kid": (3, 9),
    "young child": (3, 9), "little girl": (3, 9), "little boy": (3, 9), "preteen": (10, 12),
    "teenager": (13, 19), "teen": (13, 19), "teens": (13, 19), "teenage": (13, 19), "adolescent": (12, 18),
})
AGE_DECADES: Mapping[str, int] = MappingProxyType({
    "twenties": 20, "thirties": 30, "forties": 40, "fifties": 50, "sixties": 60, "seventies": 70, "eighties": 80,
    "nineties": 90,
})


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


# --- person descriptors and questions about one person ---------------------------------------
#: Colour families a pixel is sorted into, tried in order: (name, hue range in degrees, saturation
#: range, value range), HSV on 0-1 scales except hue. Hue ranges may wrap (start > end).
COLOUR_RULES: tuple[tuple[str, tuple[float, float], tuple[float, float], tuple[float, float]], ...] = (
    ("black", (0, 360), (0, 1), (0, 0.22)),
    ("white", (0, 360), (0, 0.13), (0.8, 1)),
    ("grey", (0, 360), (0, 0.13), (0, 1)),
    ("navy", (150, 260), (0.13, 1), (0, 0.4)),
    ("light blue", (150, 260), (0.13, 0.75), (0.45, 1)),
    ("blue", (150, 260), (0.13, 1), (0, 1)),
    ("purple", (260, 295), (0.13, 1), (0, 1)),
    ("pink", (295, 345), (0.13, 1), (0.55, 1)),
    ("red", (345, 15), (0.13, 1), (0, 1)),
    ("brown", (15, 50), (0.13, 1), (0, 0.5)),
    ("beige", (15, 50), (0.13, 0.45), (0.5, 1)),
    ("orange", (15, 40), (0.45, 1), (0.5, 1)),
    ("yellow", (40, 70), (0.13, 1), (0.5, 1)),
    ("green", (70, 150), (0.13, 1), (0, 1)),
    ("magenta", (295, 345), (0.13, 1), (0, 1)),
    ("olive", (50, 70), (0.13, 1), (0, 1)),
)
COLOURS: tuple[str, ...] = tuple(dict.fromkeys(rule[0] for rule in COLOUR_RULES))

#: Colour words in questions → the families they accept (longest phrases are matched first).
COLOUR_WORDS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "light blue": ("light blue",), "sky blue": ("light blue",), "pale blue": ("light blue",),
    "baby blue": ("light blue",), "turquoise": ("light blue", "blue"), "teal": ("light blue", "blue"),
    "dark blue": ("navy", "blue"), "navy": ("navy",), "blue": ("light blue", "blue", "navy"),
    "black": ("black",), "dark": ("black", "navy"), "white": ("white",), "grey": ("grey",), "gray": ("grey",),
    "red": ("red",), "pink": ("pink", "magenta"), "purple": ("purple", "magenta"), "orange": ("orange",),
    "yellow": ("yellow",), "green": ("green", "olive"), "brown": ("brown",), "beige": ("beige",),
    "tan": ("beige", "brown"),
})
#: Pattern words in questions; an animal print also asks for its colours.
PATTERN_WORDS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "leopard print": ("beige", "brown", "orange", "black"), "leopard": ("beige", "brown", "orange", "black"),
    "animal print": ("beige", "brown", "orange", "black"), "patterned": (), "striped": (), "stripes": (),
    "plaid": (), "checked": (), "floral": (), "print": (),
})
#: Garment words: they only mark the phrase as being about clothing.
GARMENT_WORDS: tuple[str, ...] = (
    "shirt", "t-shirt", "tshirt", "top", "hoodie", "sweater", "jumper", "jacket", "coat", "dress", "blouse",
    "tank top", "vest", "clothes", "outfit", "suit", "hat", "scarf",
)
#: Hair colour names reported, and the words in questions that name them.
HAIR_COLOURS: tuple[str, ...] = ("black", "brown", "blond", "red", "grey")
HAIR_WORDS: Mapping[str, str] = MappingProxyType({
    "blond": "blond", "blonde": "blond", "fair-haired": "blond", "fair hair": "blond", "brunette": "brown",
    "brown-haired": "brown", "brown hair": "brown", "black-haired": "black", "black hair": "black",
    "dark-haired": "black", "dark hair": "black", "red-haired": "red", "red hair": "red", "redhead": "red",
    "ginger": "red", "auburn": "red", "grey-haired": "grey", "gray-haired": "grey", "grey hair": "grey",
    "gray hair": "grey", "white-haired": "grey", "white hair": "grey",
})
#: Words naming who is meant, and the gender they imply (None: anyone).
PERSON_WORDS: Mapping[str, str | None] = MappingProxyType({
    "man": "male", "men": "male", "guy": "male", "boy": "male", "male": "male", "gentleman": "male",
    "woman": "female", "women": "female", "girl": "female", "lady": "female", "female": "female",
    "person": None, "one": None, "someone": None, "people": None, "face": None, "kid": None, "child": None,
})
#: Ordinal words ("the third from the left").
ORDINALS: Mapping[str, int] = MappingProxyType({
    "first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4, "fifth": 5,
    "5th": 5, "sixth": 6, "6th": 6, "seventh": 7, "7th": 7, "eighth": 8, "8th": 8,
})
#: Emotion words in questions → the emotion labels (FER and AffectNet names) they accept.
EMOTION_WORDS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "smiling": ("happy",), "smile": ("happy",), "happy": ("happy",), "laughing": ("happy",),
    "sad": ("sad",), "crying": ("sad",), "angry": ("angry",), "frowning": ("angry", "sad", "disgust"),
    "surprised": ("surprise",), "shocked": ("surprise",), "scared": ("fear",), "afraid": ("fear",),
    "disgusted": ("disgust",), "neutral": ("neutral",), "serious": ("neutral",), "calm": ("neutral",),
})

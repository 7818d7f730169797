"""The words VLMs answer with, and what they mean in the taxonomy's label sets.

:mod:`facescan.backends.parsing` reads free-text answers with these. Each synonym names the label
set whose label it means; the parser maps it into the set asked for through the taxonomy's
mappings, and an answer whose meaning the target set cannot express (e.g. "Asian" when East and
Southeast Asian are separate) stays invalid.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

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

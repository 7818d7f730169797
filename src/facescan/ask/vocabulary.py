"""The words questions about one person use: who is meant (person words, ordinals, positions' colours,
garments, patterns, hair, expressions) and what is asked."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

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
#: Words in questions that name a hair colour.
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

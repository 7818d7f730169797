"""Free-text VLM answers → labels: a table of realistic answers, and answers that must stay invalid."""

import pytest

from facescan.backends.parsing import parse_answer, parse_json_answer

ANSWERS = [
    # (answer, label set, expected label)
    ("Male", "gender", "male"),
    ("female", "gender", "female"),
    ("The person in the image is a woman.", "gender", "female"),
    ("This appears to be a man with a beard.", "gender", "male"),
    ("Woman", "gender", "female"),
    ("a young girl", "gender", "female"),
    ("He looks like a middle-aged gentleman.", "gender", "male"),
    ("She appears to be in her thirties.", "gender", "female"),
    ("**Male**", "gender", "male"),
    ("Answer: female", "gender", "female"),
    ('{"gender": "Female"}', "gender", "female"),
    ("Caucasian", "race7", "white"),
    ("White", "race7", "white"),
    ("The person appears to be of East Asian descent.", "race7", "east_asian"),
    ("South Asian", "race7", "indian"),
    ("Indian", "race7", "indian"),
    ("Latino/Hispanic", "race7", "latino_hispanic"),
    ("Hispanic", "race7", "latino_hispanic"),
    ("She looks Middle Eastern.", "race7", "middle_eastern"),
    ("African American", "race7", "black"),
    ("Black", "race7", "black"),
    ("Southeast Asian", "race7", "southeast_asian"),
    ("The individual appears to be Filipino.", "race7", "southeast_asian"),
    ("Asian", "race6", "asian"),
    ("East Asian", "race6", "asian"),
    ("Southeast Asian", "race4", "asian"),
    ("Caucasian", "race5_utk", "white"),
    ("latino hispanic", "race6", "latino_hispanic"),
    ("Arab", "race6", "middle_eastern"),
    ("Middle Eastern", "race5_utk", "others"),
    ("34 years old", "age9", "30-39"),
    ("in her twenties", "age9", "20-29"),
    ("in his early 40s", "age9", "40-49"),
    ("late 50s", "age9", "50-59"),
    ("about 8 years old", "age9", "3-9"),
    ("The person is approximately 65 years old.", "age9", "60-69"),
    ("20-29", "age9", "20-29"),
    ("more than 70", "age9", "70+"),
    ("70+", "age9", "70+"),
    ("over 75", "age9", "70+"),
    ("a toddler", "age9", "0-2"),
    ("teenager", "age9", "10-19"),
    ("She is a teenager, around 16.", "age9", "10-19"),
    ("25-30", "age9", "20-29"),
    ("between 30 and 35", "age9", "30-39"),
    ("Age: 52", "age9", "50-59"),
    ("in their sixties", "age5", "60+"),
    ("more than 60", "age5", "60+"),
    ("34 years old", "age5", "20-39"),
    ("mid-thirties", "age5", "20-39"),
    ("42", "age9", "40-49"),
    ("a baby", "age5", "0-9"),
    ('{"age": "30-39"}', "age9", "30-39"),
    ("joyful", "fer7", "happy"),
    ("Happy", "fer7", "happy"),
    ("The person is smiling broadly.", "fer7", "happy"),
    ("surprised", "fer7", "surprise"),
    ("She looks scared.", "fer7", "fear"),
    ("Anger", "fer7", "angry"),
    ("disgusted", "fer7", "disgust"),
    ("sadness", "fer7", "sad"),
    ("The expression is neutral.", "fer7", "neutral"),
    ("calm and expressionless", "fer7", "neutral"),
    ("contempt", "affectnet8", "contempt"),
    ("anger", "affectnet8", "angry"),
    ("The person looks furious.", "rafdb7", "angry"),
    ("astonished", "rafdb7", "surprise"),
    ("Neutral.", "affectnet8", "neutral"),
    ('```json\n{"emotion": "happy"}\n```', "fer7", "happy"),
    ("The person is not smiling; they look sad.", "fer7", "sad"),
]

INVALID = [
    ("I cannot determine that.", "gender"),
    ("blue", "gender"),
    ("blue", "race7"),
    ("I'm sorry, I can't help with identifying race.", "race7"),
    ("Asian", "race7"),  # East or Southeast: race7 cannot tell, so no guess
    ("blue", "age9"),
    ("I cannot determine the age.", "age9"),
    ("over 60", "age9"),  # spans 60-69 and 70+
    ("20-39", "age9"),  # spans two groups
    ("blue", "fer7"),
    ("contempt", "fer7"),  # FER2013 has no contempt
    ("happy or sad, hard to say", "fer7"),
    ("", "fer7"),
    ("male or female", "gender"),
    ("either a man or a woman", "gender"),
    ('{"colour": "blue"}', "fer7"),
]


@pytest.mark.parametrize(("answer", "labels", "expected"), ANSWERS)
def test_realistic_answers_map_to_labels(answer, labels, expected):
    assert parse_answer(answer, labels) == expected


def test_the_table_is_large_and_covers_every_attribute():
    from facescan import taxonomy

    assert len(ANSWERS) >= 60
    assert {taxonomy.label_set(ls).attribute for _, ls, _ in ANSWERS} == {"age", "gender", "race", "emotion"}


@pytest.mark.parametrize(("answer", "labels"), INVALID)
def test_unrelated_or_ambiguous_answers_are_invalid(answer, labels):
    assert parse_answer(answer, labels) is None


def test_preset_spellings_are_accepted():
    assert parse_answer("more than 60", "age5", {"60+": "more than 60"}) == "60+"
    assert parse_answer("anger", "affectnet8", {"angry": "anger"}) == "angry"


def test_json_objects_are_found_in_surrounding_text():
    assert parse_json_answer('Sure! {"age": "20-29", "gender": "male"} hope it helps') == {"age": "20-29",
                                                                                             "gender": "male"}
    assert parse_json_answer("no json here") is None
    assert parse_json_answer("{broken") is None

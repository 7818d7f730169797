import pytest

from facescan import taxonomy as tx


@pytest.mark.parametrize(
    "age,group9,group5",
    [(0, "0-2", "0-9"), (2, "0-2", "0-9"), (2.9, "0-2", "0-9"), (3, "3-9", "0-9"), (9, "3-9", "0-9"),
     (10, "10-19", "10-19"), (19, "10-19", "10-19"), (20, "20-29", "20-39"), (34, "30-39", "20-39"),
     (39, "30-39", "20-39"), (40, "40-49", "40-59"), (59, "50-59", "40-59"), (60, "60-69", "60+"),
     (69, "60-69", "60+"), (70, "70+", "60+"), (116, "70+", "60+")],
)
def test_exact_age_to_groups(age, group9, group5):
    assert tx.age_to_group(age, "age9") == group9
    assert tx.age_to_group(age, "age5") == group5
    # binning then merging agrees with binning directly
    assert tx.map_label(group9, "age9", "age5") == group5


def test_age_rejects_negative_and_non_age_sets():
    with pytest.raises(ValueError):
        tx.age_to_group(-1)
    with pytest.raises(ValueError):
        tx.age_to_group(30, "race7")


def test_age9_to_age5_covers_every_group():
    m = {g: tx.map_label(g, "age9", "age5") for g in tx.AGE_FAIRFACE9.labels}
    assert m == {"0-2": "0-9", "3-9": "0-9", "10-19": "10-19", "20-29": "20-39", "30-39": "20-39",
                 "40-49": "40-59", "50-59": "40-59", "60-69": "60+", "70+": "60+"}


def test_age_group_ranges_and_midpoints():
    assert tx.age_group_range("20-29") == (20, 29)
    assert tx.age_group_range("70+") == (70, None)
    assert tx.age_group_midpoint("20-29") == 24.5
    assert tx.age_group_range("20-39", "age5") == (20, 39)


@pytest.mark.parametrize(
    "official,canonical",
    [("more than 70", "70+"), ("East Asian", "east_asian"), ("Southeast Asian", "southeast_asian"),
     ("Latino_Hispanic", "latino_hispanic"), ("Middle Eastern", "middle_eastern"), ("White", "white")],
)
def test_fairface_official_spellings(official, canonical):
    attr = "age" if official[0].isdigit() or official.startswith("more") else "race"
    assert tx.canonical(tx.DEFAULT_LABEL_SETS[attr], official) == canonical


def test_gender_and_emotion_aliases():
    assert tx.canonical("gender", "Male") == "male"
    assert tx.canonical("gender", "Female") == "female"
    assert tx.canonical("fer7", "Surprised") == "surprise"
    assert tx.canonical("affectnet8", "Contempt") == "contempt"
    with pytest.raises(ValueError):
        tx.canonical("gender", "robot")
    with pytest.raises(ValueError):
        tx.canonical("fer7", "contempt")  # FER2013 has no contempt


def test_race_views():
    r4 = {r: tx.map_label(r, "race7", "race4") for r in tx.RACE_FAIRFACE7.labels}
    assert r4 == {"white": "white", "black": "black", "east_asian": "asian", "southeast_asian": "asian",
                  "indian": "indian", "latino_hispanic": None, "middle_eastern": None}
    r6 = {r: tx.map_label(r, "race7", "race6") for r in tx.RACE_FAIRFACE7.labels}
    assert r6["east_asian"] == r6["southeast_asian"] == "asian"
    assert set(r6.values()) == set(tx.RACE_PAPER6.labels)
    utk = {r: tx.map_label(r, "race7", "race5_utk") for r in tx.RACE_FAIRFACE7.labels}
    assert utk["latino_hispanic"] == utk["middle_eastern"] == "others"
    assert tx.map_label("asian", "race6", "race5_utk") == "asian"
    assert tx.map_label("middle_eastern", "race6", "race4") is None


def test_emotion_sets():
    assert len(tx.EMOTION_FER7) == 7 and len(tx.EMOTION_AFFECTNET8) == 8 and len(tx.EMOTION_RAFDB7) == 7
    m = {e: tx.map_label(e, "affectnet8", "fer7") for e in tx.EMOTION_AFFECTNET8.labels}
    assert m["contempt"] is None
    assert all(m[e] == e for e in tx.EMOTION_FER7.labels)
    # RAF-DB and FER2013 name the same seven expressions, in a different order
    assert set(tx.EMOTION_RAFDB7.labels) == set(tx.EMOTION_FER7.labels)
    assert tx.EMOTION_RAFDB7.labels[0] == "surprise" and tx.EMOTION_AFFECTNET8.labels[0] == "neutral"
    assert tx.map_label("angry", "rafdb7", "affectnet8") == "angry"


def test_map_distribution_sums_merged_labels():
    probs = dict.fromkeys(tx.RACE_FAIRFACE7.labels, 0.0)
    probs.update(east_asian=0.3, southeast_asian=0.2, white=0.5)
    out = tx.map_distribution(probs, "race7", "race6")
    assert out["asian"] == pytest.approx(0.5) and out["white"] == pytest.approx(0.5)
    assert sum(out.values()) == pytest.approx(1.0)
    # mass on labels without an equivalent is dropped and the rest renormalized
    probs4 = tx.map_distribution({"latino_hispanic": 0.5, "black": 0.5}, "race7", "race4")
    assert probs4 == {"white": 0.0, "black": 1.0, "asian": 0.0, "indian": 0.0}
    emo = tx.map_distribution({"contempt": 1.0}, "affectnet8", "fer7")
    assert emo == pytest.approx(dict.fromkeys(tx.EMOTION_FER7.labels, 1 / 7))


def test_no_mapping_raises_and_lookup_errors():
    assert tx.has_mapping("age9", "age5") and not tx.has_mapping("age5", "age9")
    with pytest.raises(ValueError):
        tx.map_label("0-9", "age5", "age9")
    with pytest.raises(KeyError):
        tx.label_set("nonsense")
    assert tx.label_set("race") is tx.RACE_FAIRFACE7
    assert "age5" in tx.mappable_sets("age9")

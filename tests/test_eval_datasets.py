"""Dataset adapters on fixtures written in each dataset's official layout, and seeded sampling."""

import csv
from collections import Counter

import numpy as np
import pytest

from facescan.datasets import open_dataset
from facescan.datasets.base import subsample

from .dataset_layouts import (
    face_image,
    write_affectnet,
    write_fairface,
    write_fer2013_csv,
    write_fer2013_folders,
    write_rafdb,
    write_utkface,
)


def test_fairface(tmp_path):
    samples = open_dataset(f"fairface:{write_fairface(tmp_path / 'ff', n=9)}", "val")
    assert len(samples) == 9
    assert samples[8].labels == {"age": "70+", "gender": "male", "race": "black"}
    assert samples[2].labels["race"] == "latino_hispanic" and samples[0].path.exists()


def test_utkface_reads_labels_from_names_and_warns_about_bad_ones(tmp_path):
    root, _ = write_utkface(tmp_path / "utk")
    with pytest.warns(UserWarning, match="skipped 1 file"):
        samples = open_dataset(f"utkface:{root}", "all")
    by_age = {s.exact_age: s for s in samples}
    assert set(by_age) == {1.0, 34.0, 72.0, 25.0, 116.0}
    assert by_age[116.0].labels == {"age": "70+", "gender": "male", "race": "white"}
    assert by_age[1.0].labels == {"age": "0-2", "gender": "male", "race": "asian"}
    assert by_age[34.0].labels == {"age": "30-39", "gender": "female", "race": "white"}
    assert by_age[72.0].labels["race"] == "others" and by_age[72.0].labels["age"] == "70+"
    assert by_age[25.0].labels["race"] == "indian"
    assert samples[0].label_sets["race"] == "race5_utk"


def test_affectnet_8_and_7_classes(tmp_path):
    root = write_affectnet(tmp_path / "an")
    eight = open_dataset(f"affectnet:{root}", "val")
    assert [s.labels["emotion"] for s in eight] == ["happy", "contempt", "angry", "neutral"]  # code 9 left out
    assert eight[0].box == (16.0, 16.0, 64.0, 64.0) and eight[0].path.exists()
    assert eight[0].source.shape == (224, 224, 3)  # the face chip cut around the box
    seven = open_dataset(f"affectnet7:{root}", "val")
    assert [s.labels["emotion"] for s in seven] == ["happy", "angry", "neutral"]
    assert seven[0].label_sets["emotion"] == "fer7"


def test_rafdb_basic(tmp_path):
    root = write_rafdb(tmp_path / "raf")
    train = open_dataset(f"rafdb:{root}", "train")
    test = open_dataset(f"rafdb:{root}", "test")
    assert [s.labels["emotion"] for s in train] == ["sad", "surprise"]
    assert [s.labels["emotion"] for s in test] == ["happy", "neutral"]
    assert all(s.path.exists() and s.path.name.endswith("_aligned.jpg") for s in train + test)


def test_fer2013_csv_and_folders(tmp_path):
    root = write_fer2013_csv(tmp_path / "fercsv")
    val = open_dataset(f"fer2013:{root}", "val")
    assert [s.labels["emotion"] for s in val] == ["happy", "neutral", "surprise"]  # csv codes 3, 6, 5
    assert val[0].pixels.shape == (48, 48) and val[0].pixels.dtype == np.uint8
    assert [s.labels["emotion"] for s in open_dataset(f"fer2013:{root}", "test")] == ["sad"]
    folders = open_dataset(f"fer2013:{write_fer2013_folders(tmp_path / 'ferdir')}", "val")
    assert sorted(s.labels["emotion"] for s in folders) == ["angry", "happy", "surprise"]


def test_generic_csv_with_exact_ages_and_imagefolder(tmp_path):
    root = tmp_path / "mine"
    (root / "img").mkdir(parents=True)
    with (root / "labels.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "age", "gender", "emotion", "split"])
        for i, (age, gender, emotion) in enumerate([(23, "M", "joy"), (67, "F", "Sad"), (5, "F", "neutral")]):
            face_image(i).save(root / "img" / f"{i}.jpg")
            w.writerow([f"img/{i}.jpg", age, gender, emotion if emotion != "joy" else "happiness", "test"])
    samples = open_dataset(f"csv:{root / 'labels.csv'}", "test")
    assert [s.labels for s in samples] == [
        {"age": "20-29", "gender": "male", "emotion": "happy"},
        {"age": "60-69", "gender": "female", "emotion": "sad"},
        {"age": "3-9", "gender": "female", "emotion": "neutral"},
    ]
    assert samples[0].exact_age == 23.0 and samples[0].path.exists()
    folder = tmp_path / "ifolder"
    for i, label in enumerate(["Anger", "contempt", "happy"]):
        (folder / label).mkdir(parents=True)
        face_image(i).save(folder / label / "x.jpg")
    items = open_dataset(f"imagefolder:{folder}", "val")
    assert [s.labels for s in items] == [{"emotion": "angry"}, {"emotion": "contempt"}, {"emotion": "happy"}]
    assert items[0].label_sets == {"emotion": "affectnet8"}


def test_bad_specs_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="KIND:PATH"):
        open_dataset("nosuch:/x", "val")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_dataset(f"fairface:{tmp_path / 'missing'}", "val")
    with pytest.raises(FileNotFoundError, match="fairface_label_val.csv"):
        (tmp_path / "empty").mkdir()
        open_dataset(f"fairface:{tmp_path / 'empty'}", "val")


def test_limit_is_seeded_and_stratified_sampling_keeps_proportions(tmp_path):
    samples = open_dataset(f"fairface:{write_fairface(tmp_path / 'ff', n=140)}", "val")
    a = open_dataset(f"fairface:{tmp_path / 'ff'}", "val", limit=35, seed=1)
    b = open_dataset(f"fairface:{tmp_path / 'ff'}", "val", limit=35, seed=1)
    c = open_dataset(f"fairface:{tmp_path / 'ff'}", "val", limit=35, seed=2)
    assert [s.id for s in a] == [s.id for s in b] and [s.id for s in a] != [s.id for s in c]
    strat = subsample(samples, 70, seed=0, stratify="race")
    assert len(strat) == 70
    assert set(Counter(s.labels["race"] for s in strat).values()) == {10}  # 7 races × 20 each → half of each
    both = subsample(samples, 28, seed=0, stratify="race,gender")
    assert len(both) == 28 and len({(s.labels["race"], s.labels["gender"]) for s in both}) == 14
    with pytest.raises(ValueError, match="emotion"):
        subsample(samples, 10, stratify="emotion")

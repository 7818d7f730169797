"""Regression floors for the shipped models on the first 600 val images of each dataset.

The numbers reported in the model cards come from benchmarks/accuracy_builtin.py over the full
val splits; these floors sit a few points below them and only catch a broken model or pipeline.
"""

import numpy as np
import pytest

from facescan import taxonomy
from facescan.datasets import open_dataset
from facescan.pipeline import Analyzer

from .conftest import shared

N = 600
# emotion (FER2013 + RAF-DB model): 0.670 over FER2013 val's 3,589 images, 0.837 over RAF-DB's 1,227-image
# development split (benchmarks/emotion_dev.py)
FLOORS = {"gender": 0.88, "race": 0.63, "age": 0.54, "age_pm1": 0.92, "emotion": 0.63, "emotion_rafdb": 0.78}


def _accuracy(spec, attributes, samples=None):
    samples = open_dataset(spec, "val") if samples is None else samples
    samples = [samples[i] for i in np.random.default_rng(0).permutation(len(samples))[:N]]
    results = list(Analyzer(attributes=attributes, crops=True).analyze_many([s.path for s in samples]))
    assert all(r.ok for r in results)
    out = {}
    for attr in attributes.split(","):
        ls = taxonomy.label_set(samples[0].label_sets[attr])
        t = np.array([ls.index(s.labels[attr]) for s in samples])
        p = np.array([ls.index(r.faces[0].attributes[attr].label) for r in results])
        out[attr] = (t == p).mean()
        if attr == "age":
            out["age_pm1"] = (np.abs(t - p) <= 1).mean()
    return out


@pytest.mark.data
def test_fairface_floors():
    acc = _accuracy(f"fairface:{shared('fairface')}", "age,gender,race")
    assert acc["gender"] >= FLOORS["gender"], acc
    assert acc["race"] >= FLOORS["race"], acc
    assert acc["age"] >= FLOORS["age"], acc
    assert acc["age_pm1"] >= FLOORS["age_pm1"], acc


@pytest.mark.data
def test_fer2013_floor():
    acc = _accuracy(f"fer2013:{shared('fer2013')}", "emotion")
    assert acc["emotion"] >= FLOORS["emotion"], acc


@pytest.mark.data
def test_rafdb_development_split_floor():
    from facescan.train.builtin import development_split

    train = open_dataset(f"rafdb:{shared('rafdb/basic')}", "train")
    dev, _ = development_split(len(train))
    acc = _accuracy(f"rafdb:{shared('rafdb/basic')}", "emotion", [train[i] for i in dev])
    assert acc["emotion"] >= FLOORS["emotion_rafdb"], acc

"""Writers of tiny datasets in each official layout (images generated here, labels known)."""

from __future__ import annotations

import csv

import numpy as np
from PIL import Image

FAIRFACE_AGES = ["0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "more than 70"]
FAIRFACE_RACES = ["White", "Black", "Latino_Hispanic", "East Asian", "Southeast Asian", "Indian", "Middle Eastern"]


def face_image(seed: int, size: int = 48) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8))


def write_fairface(root, n: int = 28, split: str = "val"):
    (root / split).mkdir(parents=True, exist_ok=True)
    with (root / f"fairface_label_{split}.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "age", "gender", "race", "service_test"])
        for i in range(n):
            face_image(i).save(root / split / f"{i + 1}.jpg")
            w.writerow([f"{split}/{i + 1}.jpg", FAIRFACE_AGES[i % 9], ["Male", "Female"][i % 2],
                        FAIRFACE_RACES[i % 7], "True"])
    return root


def write_utkface(root):
    root.mkdir(parents=True, exist_ok=True)
    names = ["1_0_2_20161219140530307.jpg.chip.jpg", "34_1_0_20170103183229419.jpg.chip.jpg",
             "72_0_4_20170120134639935.jpg.chip.jpg", "25_1_3_20170104.jpg.chip.jpg",
             "116_0_0_20170112213500903.jpg.chip.jpg",  # UTKFace's oldest age
             "61_1_20170109142408075.jpg.chip.jpg"]  # the last lacks its race field, as 3 UTKFace files do
    for i, name in enumerate(names):
        face_image(i).save(root / name)
    return root, names


def write_affectnet(root):
    img_dir = root / "Manually_Annotated_Images" / "101"
    img_dir.mkdir(parents=True, exist_ok=True)
    rows = [("101/a.jpg", 1), ("101/b.jpg", 7), ("101/c.jpg", 6), ("101/d.jpg", 9), ("101/e.jpg", 0)]
    with (root / "validation.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["subDirectory_filePath", "face_x", "face_y", "face_width", "face_height", "facial_landmarks",
                    "expression", "valence", "arousal"])
        for i, (rel, code) in enumerate(rows):
            face_image(i, 96).save(root / "Manually_Annotated_Images" / rel)
            w.writerow([rel, 16, 16, 64, 64, "", code, 0.1, 0.2])
    return root


def write_rafdb(root):
    (root / "EmoLabel").mkdir(parents=True, exist_ok=True)
    (root / "Image" / "aligned").mkdir(parents=True, exist_ok=True)
    lines = ["train_00001.jpg 5", "train_00002.jpg 1", "test_0001.jpg 4", "test_0002.jpg 7"]
    (root / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    for i, line in enumerate(lines):
        stem = line.split()[0].rsplit(".", 1)[0]
        face_image(i).save(root / "Image" / "aligned" / f"{stem}_aligned.jpg")
    return root


def write_fer2013_csv(root):
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = [(0, "Training"), (3, "PublicTest"), (6, "PublicTest"), (4, "PrivateTest"), (5, "PublicTest")]
    with (root / "fer2013.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["emotion", "pixels", "Usage"])
        for code, usage in rows:
            w.writerow([code, " ".join(map(str, rng.integers(0, 255, 48 * 48))), usage])
    return root


def write_fer2013_folders(root, split: str = "val"):
    for i, emotion in enumerate(["angry", "happy", "surprise"]):
        (root / split / emotion).mkdir(parents=True, exist_ok=True)
        face_image(i).convert("L").save(root / split / emotion / f"PublicTest_{i}.png")
    return root

"""Tiny clip datasets in each official layout (DFEW, AFEW, RAVDESS, MAFW), labels known.

Each writer takes ``clip(emotion)``: the bytes of a clip showing that expression (``"none"``: a clip
without a face, ``"corrupt"``: not a video at all). :class:`ExpressionClips` makes them from RAF-DB
faces of known expression moving over a background (tests/clips.py); the reader tests pass
placeholder bytes instead, since reading a layout never opens a clip.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tests.clips import Person, background, linear, scene_clip, write_clip

Clip = Callable[..., bytes]  # clip(emotion, suffix=".mp4")

# RAF-DB basic's codes 1-7, as in EmoLabel/list_patition_label.txt
RAFDB_CODES = {"surprise": 1, "fear": 2, "disgust": 3, "happy": 4, "sad": 5, "angry": 6, "neutral": 7}


def placeholder(emotion: str, suffix: str = ".mp4") -> bytes:
    return f"placeholder clip: {emotion}".encode()


class ExpressionClips:
    """Clips of one RAF-DB face per expression (the first training image with that label), made once each."""

    def __init__(self, rafdb: Path, folder: Path, duration: float = 1.5, fps: float = 10, size=(400, 240)):
        self.rafdb, self.folder, self.duration, self.fps, self.size = rafdb, folder, duration, fps, size
        self.folder.mkdir(parents=True, exist_ok=True)
        self._made: dict[tuple[str, str], bytes] = {}

    def face(self, emotion: str) -> np.ndarray:
        from PIL import Image

        code = str(RAFDB_CODES[emotion])
        for line in (self.rafdb / "EmoLabel" / "list_patition_label.txt").read_text().splitlines():
            name, _, label = line.partition(" ")
            path = self.rafdb / "Image" / "aligned" / name.replace(".jpg", "_aligned.jpg")
            if label.strip() == code and path.exists():
                return np.asarray(Image.open(path).convert("RGB").resize((128, 128), Image.LANCZOS))
        raise LookupError(f"no RAF-DB image labelled {emotion}")

    def __call__(self, emotion: str, suffix: str = ".mp4") -> bytes:
        """The clip's bytes, in the container ``suffix`` names (``.mp4``, ``.avi``)."""
        if (emotion, suffix) not in self._made:
            path = self.folder / f"{emotion}{suffix}"
            if emotion == "corrupt":
                path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)  # an MP4 header, then junk
            elif emotion == "none":
                bg = background(*self.size, seed=3)
                write_clip(path, (bg for _ in range(int(self.duration * self.fps))), fps=self.fps)
            else:
                w, h = self.size
                mover = Person(self.face(emotion), linear(40, 50, w - 200, h - 170, 0, self.duration))
                scene_clip(path, [mover], self.duration, fps=self.fps, size=self.size)
            self._made[emotion, suffix] = path.read_bytes()
        return self._made[emotion, suffix]


def _put(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def write_dfew(root: Path, clip: Clip) -> dict[str, str]:
    """Clip/original/*.mp4 + the fold CSVs; returns the test split of fold 1 (id → basic emotion).
    Clip 00004 is corrupt (labelled angry); fold 2 tests other clips."""
    test1 = {"00001": (1, "happy"), "00002": (5, "surprise"), "00003": (2, "sad"), "00004": (4, "angry")}
    train1 = {"00005": (3, "neutral"), "00006": (7, "fear")}
    test2 = {"00005": (3, "neutral"), "00006": (7, "fear")}
    for stem, (_, emotion) in {**test1, **train1}.items():
        _put(root / "Clip" / "original" / f"{stem}.mp4", clip("corrupt" if stem == "00004" else emotion))
    for part, fold, rows in (("test", 1, test1), ("train", 1, train1), ("test", 2, test2)):
        folder = root / "EmoLabel_DataSplit" / f"{part}(single-labeled)"
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / f"set_{fold}.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["video_name", "label"])
            w.writerows([int(stem), code] for stem, (code, _) in rows.items())  # the CSVs hold 1, not 00001
    return {f"Clip/original/{stem}.mp4": emotion for stem, (_, emotion) in test1.items()}


def write_afew(root: Path, clip: Clip) -> dict[str, str]:
    """Train_AFEW/ and Val_AFEW/ with one folder per emotion; returns Val's clips (id → basic emotion)."""
    val = {"Val_AFEW/Happy/000146.avi": "happy", "Val_AFEW/Surprise/000210.avi": "surprise",
           "Val_AFEW/Sad/000317.avi": "sad", "Val_AFEW/Neutral/000452.avi": "neutral"}
    for rel, emotion in val.items():
        _put(root / rel, clip(emotion, ".avi"))
    _put(root / "Train_AFEW" / "Angry" / "000046.avi", clip("angry", ".avi"))
    _put(root / "Val_AFEW" / "AlignedFaces_LBPTOP_Points" / "Happy" / "000146" / "0.png", b"not a clip")
    _put(root / "Val_AFEW" / "Happy" / "notes.txt", b"not a clip either")
    return val


def write_ravdess(root: Path, clip: Clip) -> dict[str, tuple[str, str]]:
    """Actor_XX/ folders of MM-VC-EE-II-SS-RR-AA files; returns the clips evaluated (id → (emotion, gender)).

    Left out: 1 audio-only file, 2 video-only copies of full-AV files, 1 calm clip. Actor 02's neutral
    clip shows no face."""
    files = {
        "Actor_01/01-01-03-01-01-01-01.mp4": "happy",
        "Actor_01/02-01-03-01-01-01-01.mp4": "happy",  # the same recording, video-only: evaluated once
        "Actor_01/01-02-04-02-02-01-01.mp4": "sad",  # a song
        "Actor_01/03-01-05-01-01-01-01.wav": None,  # audio-only
        "Actor_02/01-01-08-02-01-02-02.mp4": "surprise",
        "Actor_02/02-01-08-02-01-02-02.mp4": "surprise",
        "Actor_02/02-01-05-01-02-01-02.mp4": "angry",  # video-only without its full-AV file: kept
        "Actor_02/01-01-02-01-01-01-02.mp4": "neutral",  # calm: left out
        "Actor_02/01-01-01-01-01-01-02.mp4": "none",  # neutral, but no face in the clip
    }
    for rel, emotion in files.items():
        _put(root / rel, b"RIFF....WAVE" if emotion is None else clip(emotion))
    (root / "README.txt").write_text("not a clip")
    return {"Actor_01/01-01-03-01-01-01-01.mp4": ("happy", "male"),
            "Actor_01/01-02-04-02-02-01-01.mp4": ("sad", "male"),
            "Actor_02/01-01-08-02-01-02-02.mp4": ("surprise", "female"),
            "Actor_02/02-01-05-01-02-01-02.mp4": ("angry", "female"),
            "Actor_02/01-01-01-01-01-01-02.mp4": ("neutral", "female")}


def write_mafw(root: Path, clip: Clip) -> dict[str, str]:
    """data/clips/ + 'Train & Test Set' folds; returns the single set's fold-1 test clips (id → basic emotion).

    Left out of it: one contempt and one anxiety clip; the compound set adds anger_disgust and fear_surprise."""
    clips = {"00001": "happy", "00002": "sad", "00003": "surprise", "00004": "angry", "00005": "neutral",
             "00006": "disgust"}
    for stem, emotion in clips.items():
        _put(root / "data" / "clips" / f"{stem}.mp4", clip(emotion))
    sets = root / "Train & Test Set"
    single = ["00001.mp4 happiness", "00002.mp4 sadness", "00003.mp4 surprise", "00005.mp4 contempt",
              "00006.mp4 anxiety"]
    compound = ["00001.mp4 happiness", "00004.mp4 anger_disgust", "00003.mp4 fear_surprise", "00002.mp4 sadness"]
    _put(sets / "single" / "no_caption" / "set_1" / "test.txt", ("\n".join(single) + "\n").encode())
    _put(sets / "single" / "no_caption" / "set_1" / "train.txt", b"00004.mp4 anger\n")
    _put(sets / "compound" / "no_caption" / "set_1" / "test.txt", ("\n".join(compound) + "\n").encode())
    return {"data/clips/00001.mp4": "happy", "data/clips/00002.mp4": "sad", "data/clips/00003.mp4": "surprise"}


def write_dfew_frames(root: Path, faces: ExpressionClips, emotion: str = "happy", n: int = 16) -> Path:
    """DFEW's aligned-face layout: Clip/clip_224x224_16f/00001/00001_1.jpg … (one folder of frames per clip)."""
    from PIL import Image

    folder = root / "Clip" / "clip_224x224_16f" / "00001"
    folder.mkdir(parents=True, exist_ok=True)
    face = Image.fromarray(faces.face(emotion)).resize((224, 224))
    for i in range(1, n + 1):
        face.save(folder / f"00001_{i}.jpg")
    split = root / "EmoLabel_DataSplit" / "test(single_labeled)"  # as the DFEW README spells it
    split.mkdir(parents=True, exist_ok=True)
    (split / "set_1.csv").write_text("video_name,label\n1,1\n")
    return folder

"""facescan eval on clip datasets (DFEW, AFEW, RAVDESS, MAFW): readers of each official layout, labels
without a basic emotion left out and counted, one prediction per clip from its main track, a corrupt clip
as an error row, the same store, metrics and report as images.

The reader tests write placeholder clips (reading a layout never opens them); the evaluation tests make
real clips of RAF-DB faces of known expression moving over a background, and skip without ../shared/data.
"""

import json
import sqlite3

import pytest
from typer.testing import CliRunner

from facescan import taxonomy
from facescan.cli import app
from facescan.datasets import open_dataset
from facescan.evaluate import run_eval
from facescan.evaluate.clips import frames_video, main_track
from facescan.evaluate.compare import compare_markdown
from facescan.schema import Box, Face, FrameFaces, Track, VideoResult

from .clip_layouts import (
    ExpressionClips,
    placeholder,
    write_afew,
    write_dfew,
    write_dfew_frames,
    write_mafw,
    write_ravdess,
)
from .conftest import shared
from .dataset_layouts import write_fairface

pytest.importorskip("sklearn", reason="eval needs the eval extra (scikit-learn, matplotlib)")
pytest.importorskip("av", reason="clips need the video extra (PyAV)")


def _labels(samples, attribute="emotion"):
    return {s.id: s.labels[attribute] for s in samples}


# --------------------------------------------------------------------------- readers
def test_dfew_reads_the_fold_csvs_and_codes(tmp_path):
    truth = write_dfew(tmp_path / "DFEW", placeholder)
    test = open_dataset(f"dfew:{tmp_path / 'DFEW'}", "test")
    assert _labels(test) == truth and test.excluded == {}  # DFEW's 7 labels are the basic 7
    assert all(s.video and s.path.is_file() and s.label_sets == {"emotion": "fer7"} for s in test)
    assert _labels(open_dataset(f"dfew:{tmp_path / 'DFEW'}", "val")) == truth  # val reads test
    assert _labels(open_dataset(f"dfew:{tmp_path / 'DFEW'}", "train")) == {
        "Clip/original/00005.mp4": "neutral", "Clip/original/00006.mp4": "fear"}
    assert _labels(open_dataset(f"dfew:{tmp_path / 'DFEW'}?fold=2", "test")) == {
        "Clip/original/00005.mp4": "neutral", "Clip/original/00006.mp4": "fear"}
    with pytest.raises(FileNotFoundError, match=r"set_3\.csv"):
        open_dataset(f"dfew:{tmp_path / 'DFEW'}?fold=3", "test")
    with pytest.raises(ValueError, match="fold must be 1-5"):
        open_dataset(f"dfew:{tmp_path / 'DFEW'}?fold=9", "test")
    with pytest.raises(ValueError, match=r"no option 'flod' \(its options: fold, clips\)"):
        open_dataset(f"dfew:{tmp_path / 'DFEW'}?flod=2", "test")
    with pytest.raises(ValueError, match="no option 'fold' .it takes none"):
        open_dataset(f"afew:{tmp_path / 'DFEW'}?fold=2", "val")
    bad = tmp_path / "DFEW" / "EmoLabel_DataSplit" / "test(single-labeled)" / "set_1.csv"
    bad.write_text("video_name,label\n1,1\n2,0\n")  # 0 marks annotation.xlsx's non-single-labeled clips
    with pytest.raises(ValueError, match=r"set_1\.csv:3: expected video_name,label \(1-7\)"):
        open_dataset(f"dfew:{tmp_path / 'DFEW'}", "test")


def test_dfew_frame_folders_and_the_readme_spelling(tmp_path):
    root = tmp_path / "DFEW"
    frames = root / "Clip" / "clip_224x224_16f" / "00001"
    frames.mkdir(parents=True)
    split = root / "EmoLabel_DataSplit" / "test(single_labeled)"
    split.mkdir(parents=True)
    (split / "set_1.csv").write_text("video_name,label\n1,7\n2,3\n")
    samples = open_dataset(f"dfew:{root}", "test")
    assert _labels(samples) == {"Clip/clip_224x224_16f/00001": "fear", "Clip/clip_224x224_16f/00002.mp4": "neutral"}
    assert samples[0].path.is_dir() and not samples[1].path.exists()  # a missing clip fails when evaluated
    with pytest.raises(FileNotFoundError, match="DFEW clip folder"):
        open_dataset(f"dfew:{root}?clips=Clip/original", "test")


def test_afew_reads_the_emotion_folders(tmp_path):
    truth = write_afew(tmp_path / "AFEW", placeholder)
    val = open_dataset(f"afew:{tmp_path / 'AFEW'}", "val")
    assert _labels(val) == truth and val.excluded == {}  # AlignedFaces_LBPTOP_Points and notes.txt are no clips
    assert _labels(open_dataset(f"afew:{tmp_path / 'AFEW'}", "train")) == {"Train_AFEW/Angry/000046.avi": "angry"}
    with pytest.raises(ValueError, match="test labels are not public"):
        open_dataset(f"afew:{tmp_path / 'AFEW'}", "test")


def test_ravdess_reads_file_names_and_counts_what_it_leaves_out(tmp_path):
    truth = write_ravdess(tmp_path / "RAVDESS", placeholder)
    samples = open_dataset(f"ravdess:{tmp_path / 'RAVDESS'}", "all")
    assert {s.id: (s.labels["emotion"], s.labels["gender"]) for s in samples} == truth
    assert samples[0].label_sets == {"emotion": "fer7", "gender": "gender"}
    reasons = {why.split(" (")[0]: n for why, n in samples.excluded.items()}
    assert reasons == {"RAVDESS audio-only files": 1, "RAVDESS video-only copies": 2, "RAVDESS calm": 1}
    assert "7 basic emotions" in next(why for why in samples.excluded if why.startswith("RAVDESS calm"))
    actor = open_dataset(f"ravdess:{tmp_path / 'RAVDESS'}", "Actor_01")  # a subfolder as the split
    assert set(_labels(actor)) == {"Actor_01/01-01-03-01-01-01-01.mp4", "Actor_01/01-02-04-02-02-01-01.mp4"}
    assert actor[0].id == "Actor_01/01-01-03-01-01-01-01.mp4"  # the id is the path under the dataset root
    with pytest.raises(FileNotFoundError, match="no official split"):
        open_dataset(f"ravdess:{tmp_path / 'RAVDESS'}", "val")
    (tmp_path / "RAVDESS" / "Actor_01" / "01-01-09-01-01-01-01.mp4").write_bytes(b"x")
    with pytest.raises(ValueError, match="emotion code 9 is not one of 1-8"):
        open_dataset(f"ravdess:{tmp_path / 'RAVDESS'}", "all")


def test_mafw_single_and_compound_sets(tmp_path):
    truth = write_mafw(tmp_path / "MAFW", placeholder)
    single = open_dataset(f"mafw:{tmp_path / 'MAFW'}", "test")
    assert _labels(single) == truth
    assert sorted(single.excluded.values()) == [1, 1]
    assert {why.split()[1] for why in single.excluded} == {"contempt", "anxiety"}
    compound = open_dataset(f"mafw:{tmp_path / 'MAFW'}?subset=compound", "test")
    assert _labels(compound) == {"data/clips/00001.mp4": "happy", "data/clips/00002.mp4": "sad"}
    assert compound.excluded == {taxonomy.COMPOUND_EXCLUDED: 2}
    assert _labels(open_dataset(f"mafw:{tmp_path / 'MAFW'}", "train")) == {"data/clips/00004.mp4": "angry"}
    with pytest.raises(ValueError, match="subset must be single or compound"):
        open_dataset(f"mafw:{tmp_path / 'MAFW'}?subset=multi", "test")
    (tmp_path / "MAFW" / "Train & Test Set" / "single" / "no_caption" / "set_1" / "train.txt").write_text(
        "00004.mp4 boredom\n")
    with pytest.raises(ValueError, match=r"train\.txt:1: 'boredom' is not a MAFW emotion"):
        open_dataset(f"mafw:{tmp_path / 'MAFW'}", "train")


def test_what_is_left_out_is_counted_over_the_whole_split(tmp_path):
    write_ravdess(tmp_path / "RAVDESS", placeholder)
    sample = open_dataset(f"ravdess:{tmp_path / 'RAVDESS'}", "all", limit=2, seed=1)
    assert len(sample) == 2 and sum(sample.excluded.values()) == 4


def test_clip_emotion_mappings_are_data():
    for key, emotions in taxonomy.CLIP_EMOTIONS.items():
        for label in emotions.labels:
            basic = emotions.to_basic(label)
            assert basic in taxonomy.EMOTION_FER7.labels or (basic is None and emotions.excluded[label]), (key, label)
    ravdess = taxonomy.CLIP_EMOTIONS["ravdess"]
    assert [ravdess.to_basic(ravdess.by_code(c)) for c in range(1, 9)] == [
        "neutral", None, "happy", "sad", "angry", "fear", "disgust", "surprise"]
    dfew = taxonomy.CLIP_EMOTIONS["dfew"]
    assert [dfew.by_code(c) for c in range(1, 8)] == ["happy", "sad", "neutral", "angry", "surprise", "disgust", "fear"]
    assert taxonomy.CLIP_EMOTIONS["afew"].to_basic("SURPRISE") == "surprise"
    mafw = taxonomy.CLIP_EMOTIONS["mafw"]
    assert [mafw.to_basic(mafw.by_code(c)) for c in range(1, 12)].count(None) == 4
    with pytest.raises(ValueError, match="must say why"):
        taxonomy.ClipEmotions("X", ("calm",), {"calm": None})
    with pytest.raises(ValueError, match="not a basic emotion"):
        taxonomy.ClipEmotions("X", ("joy",), {"joy": "joyful"})


def test_main_track_is_the_person_seen_longest_then_the_larger_face():
    def face(track_id, size):
        return Face(index=0, box=Box(x=0, y=0, width=size, height=size), score=1.0, track_id=track_id)

    def track(track_id, n):
        return Track(track_id=track_id, first_frame=0, last_frame=n, first_time_s=0, last_time_s=n, n_frames=n)

    frames = [FrameFaces(frame=i, time_s=i, faces=[face(1, 40), face(2, 90)]) for i in range(4)]
    video = VideoResult(source="c.mp4", frames=frames, tracks=[track(1, 6), track(2, 4)])
    assert main_track(video).track_id == 1  # seen longest, although smaller
    video.tracks = [track(1, 4), track(2, 4)]
    assert main_track(video).track_id == 2  # as long: the larger face
    assert main_track(VideoResult(source="c.mp4")) is None


def test_fps_is_for_clip_datasets(tmp_path):
    with pytest.raises(ValueError, match="--fps samples the frames of clips"):
        run_eval(f"fairface:{write_fairface(tmp_path / 'ff', n=2)}", "val", "builtin", tmp_path / "run", fps=5,
                 progress=False)


# --------------------------------------------------------------------------- evaluation on real clips
@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Clips of RAF-DB faces of known expression (1.5 s, 10 frames/s, 400×240), made once per expression."""
    return ExpressionClips(shared("rafdb", "basic"), tmp_path_factory.mktemp("expression_clips"))


def _stored(out):
    with sqlite3.connect(out / "predictions.sqlite") as con:
        return {(i, a): (label, error) for i, a, label, error in
                con.execute("SELECT item_id, attribute, label, error FROM predictions")}


def test_cli_eval_on_ravdess_scores_clips_and_reports_what_is_left_out(tmp_path, clips):
    root = tmp_path / "RAVDESS"
    truth = write_ravdess(root, clips)
    out = tmp_path / "run"
    r = CliRunner().invoke(app, ["eval", "--dataset", f"ravdess:{root}", "--split", "all", "--out", str(out),
                                 "--fps", "5", "--quiet"])
    assert r.exit_code == 0, r.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["meta"]["identity"]["fps"] == 5
    assert set(metrics["attributes"]) == {"emotion", "gender"}  # RAVDESS labels the actor's gender too
    emotion = metrics["attributes"]["emotion"]
    assert emotion["n"] == len(truth) == 5 and emotion["failed_images"] == 0
    assert emotion["invalid_rate"] == pytest.approx(1 / 5)  # the clip without a face: an invalid answer
    assert next(iter(emotion["errors"])).startswith("no person in the clip")
    assert set(emotion["per_class"]) == set(taxonomy.EMOTION_FER7.labels)
    assert emotion["confusion"]["labels"][-1] == "invalid" and len(emotion["confusion"]["matrix"]) == 8
    stored = _stored(out)
    assert set(stored) == {(i, a) for i in truth for a in ("emotion", "gender")}
    assert stored["Actor_02/01-01-01-01-01-01-02.mp4", "emotion"][0] is None
    assert all(label in taxonomy.EMOTION_FER7.labels for (i, a), (label, _) in stored.items()
               if a == "emotion" and i != "Actor_02/01-01-01-01-01-01-02.mp4")
    md = (out / "report.md").read_text()
    for text in ("## Left out", "4 item(s) of the split are not evaluated", "1 × RAVDESS audio-only files",
                 "2 × RAVDESS video-only copies", "1 × RAVDESS calm (code 02) has no counterpart",
                 "## Summary", "accuracy (95% CI)", "macro-F1", "| class | precision | recall | F1 | support |",
                 "5 frames per second analyzed", "main track", "### emotion accuracy per gender"):
        assert text in md, text
    assert (out / "figures" / "confusion_emotion.svg").exists() and (out / "report.html").exists()
    assert "emotion" in r.output and "gender" in r.output  # the summary table on the terminal


def test_a_corrupt_clip_is_an_error_row_and_the_others_are_evaluated(tmp_path, clips):
    root = tmp_path / "DFEW"
    truth = write_dfew(root, clips)  # 00004.mp4 is corrupt
    out = tmp_path / "run"
    m = run_eval(f"dfew:{root}", "test", "builtin", out, progress=False, n_resamples=100)
    emotion = m["attributes"]["emotion"]
    assert emotion["n"] == 3 and emotion["failed_images"] == 1 and emotion["invalid_rate"] == 0
    assert m["problems"] == [] and m["meta"]["identity"]["fps"] == 5.0  # the default
    stored = _stored(out)
    label, error = stored["Clip/original/00004.mp4", "emotion"]
    assert label is None and error.startswith("clip: ") and "00004" not in error
    assert all(stored[i, "emotion"][0] in taxonomy.EMOTION_FER7.labels for i in truth if "00004" not in i)
    assert next(iter(emotion["errors"])) == error
    assert "1 clip(s) could not be analyzed and are left out." in (out / "report.md").read_text()
    again = run_eval(f"dfew:{root}", "test", "builtin", out, progress=False, n_resamples=100)  # resumes: all done
    assert again["attributes"] == m["attributes"] and _stored(out) == stored
    with pytest.raises(ValueError, match="another run.*fps 5.0 .this run: 2.0"):
        run_eval(f"dfew:{root}", "test", "builtin", out, progress=False, fps=2)


def test_afew_and_mafw_runs_and_their_comparison(tmp_path, clips):
    write_afew(tmp_path / "AFEW", clips)
    write_mafw(tmp_path / "MAFW", clips)
    afew = run_eval(f"afew:{tmp_path / 'AFEW'}", "val", "builtin", tmp_path / "afew", progress=False,
                    n_resamples=100, fps=4)
    mafw = run_eval(f"mafw:{tmp_path / 'MAFW'}", "test", "builtin", tmp_path / "mafw", progress=False,
                    n_resamples=100)
    assert afew["attributes"]["emotion"]["n"] == 4 and mafw["attributes"]["emotion"]["n"] == 3
    assert afew["attributes"]["emotion"]["invalid_rate"] == 0 == mafw["attributes"]["emotion"]["invalid_rate"]
    assert "## Left out" not in (tmp_path / "afew" / "report.md").read_text()
    md = (tmp_path / "mafw" / "report.md").read_text()
    assert "1 × MAFW contempt has no counterpart" in md and "1 × MAFW anxiety" in md
    table = compare_markdown([tmp_path / "afew", tmp_path / "mafw"])
    assert "| afew | builtin | afew | val | emotion | fer7 | 4 |" in table
    assert "| mafw | builtin | mafw | test | emotion | fer7 | 3 |" in table


def test_dfew_frame_folders_are_played_as_clips(tmp_path, clips):
    folder = write_dfew_frames(tmp_path / "DFEW", clips)
    import av

    with av.open(__import__("io").BytesIO(frames_video(folder))) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (224, 224)
        assert sum(1 for _ in container.decode(stream)) == 16
    m = run_eval(f"dfew:{tmp_path / 'DFEW'}", "test", "builtin", tmp_path / "run", progress=False, n_resamples=100)
    emotion = m["attributes"]["emotion"]
    assert emotion["n"] == 1 and emotion["failed_images"] == 0 and emotion["invalid_rate"] == 0

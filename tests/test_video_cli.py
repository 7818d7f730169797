"""`facescan analyze` on folders that mix photos and clips (the shared photos folder)."""

import csv
import json

from typer.testing import CliRunner

from facescan.cli import app

from .conftest import shared


def test_analyze_the_photos_folder_with_its_clips(tmp_path):
    folder = shared("photos")
    out = tmp_path / "r.csv"
    r = CliRunner().invoke(app, ["analyze", str(folder), "--csv", str(out), "--jsonl", str(tmp_path / "r.jsonl")])
    assert r.exit_code == 0, r.output
    assert "2 video(s) with 1 person(s), 0 failed" in r.output  # single_face.mp4: one person; no_face.mp4: none
    rows = list(csv.DictReader(out.open()))
    clip_rows = [row for row in rows if row["source"].endswith("single_face.mp4")]
    assert len(clip_rows) > 50 and {row["track_id"] for row in clip_rows} == {"1"}
    tracks = list(csv.DictReader((tmp_path / "r.tracks.csv").open()))
    assert [(t["source"].rsplit("/", 1)[-1], t["gender"]) for t in tracks] == [("single_face.mp4", "male")]
    lines = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    videos = {line["source"].rsplit("/", 1)[-1]: line for line in lines if "tracks" in line}
    assert len(videos["no_face.mp4"]["tracks"]) == 0 and len(videos["single_face.mp4"]["tracks"]) == 1

"""facescan.scale without a cluster: input lists, shards, the pipeline's two stages called directly,
the shared rate limit, GPU batch sizes, the eval hook and the CLI's checks (no Ray needed but for
the stages' pyarrow tables)."""

from __future__ import annotations

import importlib.util
import io
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from typer.testing import CliRunner

from facescan.cli import app
from facescan.scale.analyze import Predictor, Settings, prepare_batch, with_threads, without_threads
from facescan.scale.ratelimit import TokenBucket, limit_requests
from facescan.scale.shards import RunFolderError, ShardWriter, read_results, rows_table
from facescan.scale.sources import list_inputs

from .conftest import shared

#: fsspec comes with the ray extra (Ray Data needs it); the shard folders are written through it
needs_fsspec = pytest.mark.skipif(importlib.util.find_spec("fsspec") is None,
                                  reason="needs fsspec: pip install 'facescan[ray]'")


def _jpeg(path, colour=(200, 150, 120)):
    Image.new("RGB", (64, 64), colour).save(path, format="JPEG")
    return path


# -- inputs -----------------------------------------------------------------------------------

def test_inputs_from_folders_lists_and_uris(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    a, b = _jpeg(photos / "a.jpg"), _jpeg(photos / "b.jpg")
    (photos / "notes.txt").write_text("not a list: inside a folder it is skipped")
    (tmp_path / "list.txt").write_text("# comment\nphotos/a.jpg\n\nphotos/b.jpg\nhttps://example.org/c.jpg\n")
    (tmp_path / "list.csv").write_text("file,age\nphotos/b.jpg,20-29\ns3://bucket/d.jpg,30-39\n")
    pq.write_table(pa.table({"id": [1], "path": [str(a)]}), tmp_path / "list.parquet")
    skipped: list[str] = []
    found = list_inputs([str(photos), str(tmp_path / "list.txt"), str(tmp_path / "list.csv"),
                         str(tmp_path / "list.parquet")], skipped=skipped)
    # relative entries are relative to their list; each input once, in first-seen order; URLs and URIs kept
    assert [s for s, _ in found] == [str(a), str(b), "https://example.org/c.jpg", "s3://bucket/d.jpg"]
    assert skipped == [str(photos / "notes.txt")]
    with pytest.raises(ValueError, match="standard input"):
        list_inputs(["-"])


@needs_fsspec
def test_inputs_and_shards_on_an_fsspec_filesystem():
    import fsspec

    fs = fsspec.filesystem("memory")
    buf = io.BytesIO()
    Image.new("RGB", (40, 40), (90, 90, 90)).save(buf, format="PNG")
    fs.pipe("/bucket/in/x.png", buf.getvalue())
    fs.pipe("/bucket/in/readme.md", b"#")
    fs.pipe("/bucket/list.txt", b"in/x.png\n")
    assert list_inputs(["memory://bucket/in/"]) == [("memory://bucket/in/x.png",) * 2]
    assert list_inputs(["memory://bucket/list.txt"]) == [("memory://bucket/in/x.png",) * 2]
    table = prepare_batch(pa.table({"source": ["memory://bucket/in/x.png", "memory://bucket/in/gone.png"],
                                    "location": ["memory://bucket/in/x.png", "memory://bucket/in/gone.png"]}),
                          Settings(attributes=("age",), crops=True))
    import pickle

    ok, gone = (pickle.loads(p).result for p in table.column("payload").to_pylist())
    assert ok.source == "memory://bucket/in/x.png" and ok.error is None and len(ok.faces) == 1
    assert gone.error == "memory://bucket/in/gone.png: file not found"
    with ShardWriter("memory://bucket/out", {"k": 1}, shard_rows=1) as writer:
        writer.add([{"source": "s", "face": 0, "error": None}])
    assert read_results("memory://bucket/out").column("source").to_pylist() == ["s"]


# -- shards -----------------------------------------------------------------------------------

@needs_fsspec
def test_shards_are_whole_typed_and_resumable(tmp_path):
    out = tmp_path / "out"
    writer = ShardWriter(str(out), {"backend": "builtin"}, shard_rows=2, shard_seconds=3600)
    writer.add([{"source": "a", "face": None, "error": None}])  # one row waits
    assert not list(out.glob("part-*"))
    writer.add([{"source": "b", "face": 0, "x": 1.5, "age": "20-29", "error": None}])  # two rows: a shard
    writer.add([{"source": "c", "face": None, "error": "c: file not found", "detector": None}])
    writer.close()
    shards = sorted(out.glob("part-*.parquet"))
    assert len(shards) == 2 and not list(out.glob(".*tmp"))  # the temporary names are gone
    # every shard types its columns alike, even where all of its values are empty
    assert pq.read_schema(shards[0]).field("error").type == pa.string()
    assert pq.read_schema(shards[1]).field("detector").type == pa.string()
    table = read_results(str(out))
    assert sorted(table.column("source").to_pylist()) == ["a", "b", "c"]
    assert "age" in table.column_names and "x" in table.column_names
    done, failed = ShardWriter(str(out), {"backend": "builtin"}).done()
    assert done == {"a", "b", "c"} and failed == {"c": "c: file not found"}
    # a folder holds one run's settings: another run is refused, as is a folder of foreign shards
    with pytest.raises(RunFolderError, match="other settings: backend 'builtin' \\(this run: 'hf:x'\\)"):
        ShardWriter(str(out), {"backend": "hf:x"})
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "part-0.parquet").write_bytes(b"")
    with pytest.raises(RunFolderError, match="not a facescan run folder"):
        ShardWriter(str(tmp_path / "foreign"), {})
    (tmp_path / "file.parquet").write_bytes(b"")
    with pytest.raises(RunFolderError, match="is a file"):
        ShardWriter(str(tmp_path / "file.parquet"), {})


def test_rows_table_matches_the_single_machine_parquet():
    rows = [{"source": "a", "face": 0, "age_p_20_29": 0.5, "error": None}, {"source": "b", "face": None,
                                                                          "error": "b: bad"}]
    table = rows_table(rows)
    assert table.column_names == ["source", "face", "age_p_20_29", "error"]
    assert table.schema.field("face").type == pa.int64() and table.to_pylist()[1]["age_p_20_29"] is None


def test_thread_counts_follow_the_actor_and_stay_out_of_the_settings():
    assert with_threads("builtin", 2) == "builtin?threads=2"
    assert with_threads("builtin?batch_size=8", 1) == "builtin?batch_size=8&threads=1"
    assert with_threads("builtin?threads=4", 1) == "builtin?threads=4"
    assert with_threads("hf:some/model", 1) == "hf:some/model"
    assert without_threads("builtin?threads=1") == "builtin"
    assert without_threads("builtin?batch_size=8&threads=1") == "builtin?batch_size=8"


# -- the two stages, called here as Ray calls them on the cluster ------------------------------------

def test_small_runs_reach_every_actor():
    from facescan.scale.analyze import BATCH_SIZE, actor_batch

    assert actor_batch(32, 2) == 16 and actor_batch(3, 4) == 1 and actor_batch(0, 2) == 1
    assert actor_batch(2500, 2) == BATCH_SIZE


def test_default_actor_count_keeps_cpus_for_tasks_only_where_tasks_run():
    from facescan.scale import cluster

    two = {"CPU": 2.0}
    assert cluster.default_actors(two, 1.0, 0.0, 0.5) == 1  # half a CPU kept for read-decode-detect tasks
    assert cluster.default_actors(two, 1.0, 0.0, 0.0) == 2  # --crops: no task runs
    assert cluster.default_actors({"CPU": 10.0}, 1.0, 0.0, 0.5) == 8  # a fifth kept
    cluster.check_room(two, 2, 1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="2 actor\\(s\\) × 1 CPU plus 0.5 CPU .* the tasks would wait"):
        cluster.check_room(two, 2, 1.0, 0.0, 0.5)
    with pytest.raises(ValueError, match="3 actor\\(s\\) × 1 CPU is more than the cluster's 2 CPUs: the actors"):
        cluster.check_room(two, 3, 1.0, 0.0, 0.0)


def test_stages_give_the_single_machine_rows_and_errors_as_rows(tmp_path):
    from facescan.api import video_analyzer
    from facescan.pipeline import Analyzer
    from facescan.tables import result_rows, video_frame_rows, video_track_rows
    from facescan.video import analyze_video

    photos = shared("photos")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    inputs = [str(photos / "multi_face.jpg"), str(photos / "no_face.jpg"), str(bad), str(tmp_path / "gone.png"),
              str(photos / "single_face.mp4")]
    settings = Settings(attributes=("age", "gender", "emotion"), video={"fps": 2.0})
    prepared = prepare_batch(pa.table({"source": inputs, "location": inputs}), settings)
    out = Predictor(settings, threads=1)(prepared)
    import pickle

    got = {s: pickle.loads(r) for s, r in zip(out.column("source").to_pylist(), out.column("rows").to_pylist())}
    analyzer = Analyzer(attributes="age,gender,emotion")
    for source in inputs[:4]:
        assert got[source] == (result_rows([analyzer.analyze(source)]), [])
    errors = dict(zip(out.column("source").to_pylist(), out.column("error").to_pylist()))
    assert errors[str(bad)].startswith(f"{bad}: ") and errors[str(tmp_path / "gone.png")].endswith("file not found")
    video = analyze_video(inputs[4], video_analyzer(analyzer), fps=2.0)
    assert got[inputs[4]] == (video_frame_rows(video), video_track_rows(video))
    assert out.column("faces").to_pylist()[:2] == [len(analyzer.analyze(inputs[0]).faces), 0]


def test_crops_are_read_and_decoded_by_the_actor_with_the_single_machine_rows(tmp_path):
    import pickle

    from facescan.pipeline import Analyzer
    from facescan.tables import result_rows

    rng = np.random.default_rng(3)
    inputs = []
    for i in range(3):
        inputs.append(str(tmp_path / f"crop{i}.png"))
        Image.fromarray(rng.integers(0, 255, (90 + 10 * i, 80, 3), dtype=np.uint8)).save(inputs[-1])
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    inputs += [str(bad), str(tmp_path / "gone.png")]
    settings = Settings(attributes=("age", "emotion"), crops=True)
    # the listed inputs go straight to the actor: no read-decode-detect task runs for crops
    out = Predictor(settings, threads=1)(pa.table({"source": inputs, "location": inputs}))
    assert out.column("source").to_pylist() == inputs
    rows = [pickle.loads(r) for r in out.column("rows").to_pylist()]
    analyzer = Analyzer(attributes="age,emotion", crops=True)
    assert rows == [(result_rows([analyzer.analyze(path)]), []) for path in inputs]
    errors = out.column("error").to_pylist()
    assert errors[:3] == [None] * 3 and errors[3].startswith(f"{bad}: ") and errors[4].endswith("file not found")
    assert out.column("faces").to_pylist() == [1, 1, 1, 0, 0]


def test_stages_describe_people_from_the_whole_photo_as_the_single_machine_does():
    import pickle

    from facescan.pipeline import Analyzer
    from facescan.tables import result_rows

    photo = str(shared("photos") / "multi_face.jpg")
    settings = Settings(attributes=("gender",), describe=True)
    out = Predictor(settings, threads=1)(prepare_batch(pa.table({"source": [photo], "location": [photo]}), settings,
                                                       keep_images=True))
    assert out.column("error").to_pylist() == [None]
    rows, _ = pickle.loads(out.column("rows").to_pylist()[0])
    assert rows == result_rows([Analyzer(attributes="gender", describe=True).analyze(photo)])
    assert len(rows) == 5 and all(r.get("clothing_colours") is not None or r.get("describe_error") for r in rows)


# -- one request rate for every actor --------------------------------------------------------

def test_token_bucket_spaces_requests_at_the_rate():
    now = [0.0]
    bucket = TokenBucket(rate=5, burst=2, clock=lambda: now[0])
    assert [bucket.reserve() for _ in range(4)] == [0.0, 0.0, 0.2, 0.4]  # a burst of 2, then 1 every 0.2 s
    now[0] = 10.0  # idle: the bucket refills to its burst, no more
    assert [bucket.reserve() for _ in range(3)] == [0.0, 0.0, 0.2]
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(rate=0)


def test_limit_requests_waits_for_the_shared_bucket_before_each_network_call():
    now = [0.0]
    bucket = TokenBucket(rate=10, burst=1, clock=lambda: now[0])
    slept: list[float] = []

    class FakeAPIBackend:
        calls = 0

        def request(self, image, question, schema):
            self.calls += 1
            return {"text": "ok"}

    backend = FakeAPIBackend()
    limit_requests(backend, bucket, sleep=slept.append)
    for _ in range(5):
        backend.request(b"", "q", {})
    assert backend.calls == 5 and slept == pytest.approx([0.1, 0.2, 0.3, 0.4])
    limit_requests(object(), bucket)  # a backend that sends nothing is left as it is


# -- GPU actors ------------------------------------------------------------------------------

def test_gpu_batch_fits_the_free_memory_and_halves_when_it_does_not():
    from facescan.scale.gpu import batch_for_memory, halve_on_oom

    gib = 1 << 30
    assert batch_for_memory(70 * gib, 1 * gib) == 49  # 70 % of the free memory
    assert batch_for_memory(80 * gib, 0.1 * gib) == 64  # capped
    assert batch_for_memory(0.5 * gib, 2 * gib) == 1

    class OutOfMemoryError(RuntimeError):
        pass

    class Options:
        batch_size = 32

    class FakeVLM:
        options = Options()

        def predict(self, faces, attributes):
            if self.options.batch_size > 8:
                raise OutOfMemoryError("CUDA out of memory")
            return [{} for _ in faces]

    pytest.importorskip("torch")
    model = FakeVLM()
    halve_on_oom(model)
    assert model.predict([1, 2, 3], ["age"]) == [{}, {}, {}] and model.options.batch_size == 8


# -- eval: predictions made elsewhere, stored by run_eval --------------------------------------

class _HereInStages:
    """The Ray engine's two stages run in this process: what RayPredictions hands run_eval."""

    def supported_attributes(self, backend):
        from facescan.backends.base import load_backend

        return load_backend(backend).supported_attributes()

    def predict(self, samples, backend, attributes, fps, batch_size):
        import pickle

        from facescan.scale.evaluation import EvalPredictor, prepare_items

        actor = EvalPredictor(backend, backend, attributes, fps)
        for start in range(0, len(samples), 7):
            chunk = samples[start : start + 7]
            table = prepare_items(pa.table({"sample": [pickle.dumps(s) for s in chunk]}))
            yield len(chunk), [r for blob in actor(table).column("rows").to_pylist() for r in pickle.loads(blob)]


def test_eval_with_predictions_made_elsewhere_stores_the_same_run(tmp_path):
    from facescan.evaluate import run_eval
    from facescan.evaluate.store import RunStore

    data = shared("fairface")
    spec = f"fairface:{data}"
    local = run_eval(spec, "val", "builtin", tmp_path / "local", limit=40, progress=False, n_resamples=10)
    staged = run_eval(spec, "val", "builtin", tmp_path / "staged", limit=40, progress=False, n_resamples=10,
                      predictions=_HereInStages())
    assert staged["attributes"] == local["attributes"]
    a, b = RunStore(tmp_path / "local" / "predictions.sqlite"), RunStore(tmp_path / "staged" / "predictions.sqlite")
    assert a.predictions("builtin") == b.predictions("builtin") and len(a.predictions("builtin")) == 40 * 3
    a.close()
    b.close()


def test_eval_of_clips_with_predictions_made_elsewhere_stores_the_same_run(tmp_path):
    from facescan.evaluate import run_eval
    from facescan.evaluate.store import RunStore

    from .clip_layouts import ExpressionClips, write_dfew

    root = tmp_path / "DFEW"
    write_dfew(root, ExpressionClips(shared("rafdb", "basic"), tmp_path / "clips"))  # one clip is corrupt
    local = run_eval(f"dfew:{root}", "test", "builtin", tmp_path / "local", progress=False, n_resamples=10)
    staged = run_eval(f"dfew:{root}", "test", "builtin", tmp_path / "staged", progress=False, n_resamples=10,
                      predictions=_HereInStages())
    assert staged["attributes"] == local["attributes"] and staged["attributes"]["emotion"]["failed_images"] == 1
    a, b = RunStore(tmp_path / "local" / "predictions.sqlite"), RunStore(tmp_path / "staged" / "predictions.sqlite")
    assert a.predictions("builtin") == b.predictions("builtin")
    a.close()
    b.close()


# -- the command line --------------------------------------------------------------------------

def test_cli_engine_ray_needs_a_parquet_folder_and_refuses_local_only_outputs(tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["analyze", "--engine", "ray", str(tmp_path)])
    assert r.exit_code == 2 and "--engine ray needs --parquet FOLDER" in r.output
    r = runner.invoke(app, ["analyze", "--engine", "ray", str(tmp_path), "--parquet", str(tmp_path / "o"),
                            "--csv", str(tmp_path / "o.csv")])
    assert r.exit_code == 2 and "--csv: --engine local only" in r.output
    r = runner.invoke(app, ["analyze", "--engine", "spark", str(tmp_path), "--parquet", str(tmp_path / "o")])
    assert r.exit_code == 2 and "--engine must be local or ray" in r.output
    r = runner.invoke(app, ["analyze", "--engine", "ray", str(tmp_path), "--parquet", str(tmp_path / "o"),
                            "--workers", "2"])
    assert r.exit_code == 2 and "--workers: --engine local only; on a cluster, --actors" in r.output


def test_cli_cluster_options_without_engine_ray_are_refused_not_ignored(tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["analyze", str(tmp_path), "--address", "127.0.0.1:1", "--actors", "2",
                            "--parquet", str(tmp_path / "o.parquet")])
    assert r.exit_code == 2 and "--address, --actors: --engine ray only" in r.output
    assert not (tmp_path / "o.parquet").exists()
    r = runner.invoke(app, ["eval", "-d", f"fairface:{tmp_path}", "--rate", "5", "--out", str(tmp_path / "run")])
    assert r.exit_code == 2 and "--rate: --engine ray only" in r.output


def test_one_input_named_as_a_string_is_one_input(tmp_path):
    photo = _jpeg(tmp_path / "a.jpg")
    assert list_inputs(str(photo)) == list_inputs([str(photo)]) == [(str(photo), str(photo))]
    assert list_inputs(photo) == [(str(photo), str(photo))]


def test_cli_without_ray_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    from facescan import cli

    _jpeg(tmp_path / "a.jpg")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    monkeypatch.setattr(sys, "argv", ["facescan", "analyze", "--engine", "ray", str(tmp_path), "--parquet",
                                      str(tmp_path / "out"), "-q"])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: facescan analyze needs ray, which is not installed: pip install 'facescan[ray]'"]
    assert not (tmp_path / "out").exists()  # found missing before anything was written


def test_local_cluster_ports_are_distinct_and_skip_the_taken_ones():
    """Ray refuses a node two of whose components got the same port (a flake CI once hit)."""
    import socket

    from facescan.scale.localcluster import free_ports

    taken = set(free_ports(20))
    ports = free_ports(30, taken)
    assert len(ports) == len(set(ports)) == 30 and not taken & set(ports)
    for port in ports[:3]:  # free when handed out
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))

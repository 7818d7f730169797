"""The built-in training recipe on a tiny generated FairFace-layout dataset (needs torch)."""

import csv
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch", reason="training tests need the train extra (torch)")
pytest.importorskip("onnx", reason="training tests need the train extra (onnx)")

from facescan.train import builtin  # noqa: E402


def _fairface_fixture(root, n=48):
    """Images whose colour encodes the gender label, in FairFace's layout and official spellings."""
    rng = np.random.default_rng(0)
    (root / "train").mkdir(parents=True)
    (root / "val").mkdir()
    ages = ["0-2", "20-29", "more than 70"]
    races = ["White", "East Asian", "Latino_Hispanic"]
    for split, count in (("train", n), ("val", 12)):
        with (root / f"fairface_label_{split}.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["file", "age", "gender", "race", "service_test"])
            for i in range(count):
                male = i % 2 == 0
                img = rng.integers(0, 60, (40, 40, 3), dtype=np.uint8)
                img[..., 0 if male else 2] += 180
                Image.fromarray(img).save(root / split / f"{i}.jpg")
                w.writerow([f"{split}/{i}.jpg", ages[i % 3], "Male" if male else "Female", races[i % 3], "TRUE"])
    return root


@pytest.fixture()
def tiny(tmp_path):
    data = _fairface_fixture(tmp_path / "ff")
    cfg = replace(builtin.DEFAULT_CONFIGS["fairface"], epochs=2, widths=(4, 8, 8, 8), blocks=(1, 1, 1, 1),
                  batch_size=16, threads=1, members=1, member_overrides=())
    return data, cfg, tmp_path


def _weights(run_dir):
    return torch.load(run_dir / "checkpoint.pt", weights_only=False)["net"]


def test_training_exports_a_model_the_backend_loads(tiny):
    data, cfg, tmp = tiny
    out = builtin.train("fairface", data, tmp / "out", tmp / "cache", cfg, run_dir=tmp / "run")
    assert out.name == "fairface.onnx"
    import shutil

    from facescan.backends.builtin import BuiltinBackend, models_dir

    shutil.copy(models_dir() / "emotion.onnx", tmp / "out" / "emotion.onnx")
    backend = BuiltinBackend(tmp / "out")
    from facescan.backends.base import FaceInput

    pred = backend.predict([FaceInput(chip=np.zeros((40, 40, 3), np.uint8), padding=0.25)], ["gender", "race"])[0]
    assert sum(pred["race"].probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    history = torch.load(tmp / "run" / "checkpoint.pt", weights_only=False)["history"]
    assert [h["epoch"] for h in history] == [1, 2] and "val" in history[-1]


def test_same_seed_same_weights_and_resume_continues_identically(tiny):
    data, cfg, tmp = tiny
    builtin.train("fairface", data, tmp / "a", tmp / "cache", cfg, run_dir=tmp / "run_a")
    # interrupted after epoch 1, then resumed from its checkpoint
    builtin.train("fairface", data, tmp / "b", tmp / "cache", cfg, run_dir=tmp / "run_b", stop_after=1)
    assert torch.load(tmp / "run_b" / "checkpoint.pt", weights_only=False)["epoch"] == 1
    assert not (tmp / "b" / "fairface.onnx").exists()
    builtin.train("fairface", data, tmp / "b", tmp / "cache", cfg, run_dir=tmp / "run_b")
    a, b = _weights(tmp / "run_a"), _weights(tmp / "run_b")
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-5), k
    other = builtin.train("fairface", data, tmp / "c", tmp / "cache", replace(cfg, seed=1), run_dir=tmp / "run_c")
    assert other.exists()
    c = _weights(tmp / "run_c")
    assert any(not torch.allclose(a[k].float(), c[k].float()) for k in a if a[k].is_floating_point())


def test_fp32_compute_trains_its_own_reproducible_weights_and_bad_compute_is_refused(tiny):
    data, cfg, tmp = tiny
    fp32 = replace(cfg, epochs=1, compute="fp32")
    builtin.train("fairface", data, tmp / "a", tmp / "cache", fp32, run_dir=tmp / "run_a")
    builtin.train("fairface", data, tmp / "b", tmp / "cache", fp32, run_dir=tmp / "run_b")
    builtin.train("fairface", data, tmp / "c", tmp / "cache", replace(cfg, epochs=1), run_dir=tmp / "run_c")
    a, b, c = (_weights(tmp / r) for r in ("run_a", "run_b", "run_c"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())  # bf16 autocast differs
    with pytest.raises(ValueError, match="compute"):
        builtin.train("fairface", data, tmp / "d", tmp / "cache", replace(cfg, compute="fp8"), run_dir=tmp / "run_d")


def test_augmentation_keeps_shape_and_range():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 3, 20, 20) * 255
    y = builtin.augment(x, pad=2, erasing=0.5, color=True, generator=g)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 255
    assert not torch.equal(x, y)


def test_ensemble_members_train_with_their_own_seeds(tiny):
    data, cfg, tmp = tiny
    out = builtin.train("fairface", data, tmp / "out", tmp / "cache", replace(cfg, members=2, epochs=1),
                        run_dir=tmp / "run")
    import json

    import onnx

    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    histories = json.loads(meta["facescan_training"])["history"]
    assert [h[0]["seed"] for h in histories] == [0, 1]
    a, b = _weights(tmp / "run"), _weights(tmp / "run" / "member1")
    assert not torch.allclose(a["features.0.0.weight"], b["features.0.0.weight"])


def test_fp16_weight_storage_halves_the_file_and_keeps_outputs(tmp_path):
    import onnxruntime as ort

    spec = builtin.TASKS["fairface"]
    torch.manual_seed(0)
    net = builtin.build_network(spec, (16, 32, 64, 64), (1, 1, 1, 1))
    builtin.export_onnx(net, spec, tmp_path / "a.onnx", {}, precision="fp32")
    builtin.export_onnx(net, spec, tmp_path / "b.onnx", {}, precision="fp16")
    assert (tmp_path / "b.onnx").stat().st_size < 0.6 * (tmp_path / "a.onnx").stat().st_size
    x = np.random.default_rng(0).uniform(0, 255, (4, 3, spec.crop, spec.crop)).astype(np.float32)
    a = ort.InferenceSession(str(tmp_path / "a.onnx")).run(None, {"pixels": x})
    b = ort.InferenceSession(str(tmp_path / "b.onnx")).run(None, {"pixels": x})
    for pa, pb in zip(a, b):
        assert np.abs(pa - pb).max() < 2e-3
        assert np.allclose(pb.sum(1), 1, atol=1e-5)


def test_int8_export_quantizes_convolutions_and_keeps_predictions(tmp_path):
    import onnx
    import onnxruntime as ort

    spec = builtin.TASKS["fairface"]
    torch.manual_seed(0)
    net = builtin.build_network(spec, (16, 32, 64, 64), (1, 1, 1, 1))
    rng = np.random.default_rng(0)
    # smooth images (a random colour gradient each) so activations look like photos, not noise
    ramp = np.linspace(0, 1, spec.crop, dtype=np.float32)
    def images(n):
        a, b = rng.uniform(0, 255, (2, n, 3, 1, 1)).astype(np.float32)
        return np.ascontiguousarray(a + (b - a) * ramp[None, None, :, None] * ramp[None, None, None, :])
    net.train()
    with torch.no_grad():  # settle batch-norm statistics so the net is not degenerate
        for _ in range(20):
            net(torch.from_numpy(images(32)))
    builtin.export_onnx(net, spec, tmp_path / "f.onnx", {}, precision="fp32")
    builtin.export_onnx(net, spec, tmp_path / "q.onnx", {"note": "x"}, precision="int8", calibration=images(128))
    model = onnx.load(str(tmp_path / "q.onnx"))
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert {p.key for p in model.metadata_props} >= {"facescan_spec", "facescan_training"}
    x = images(64)
    f = ort.InferenceSession(str(tmp_path / "f.onnx")).run(None, {"pixels": x})
    q = ort.InferenceSession(str(tmp_path / "q.onnx")).run(None, {"pixels": x})
    for pf, pq in zip(f, q):
        assert np.allclose(pq.sum(1), 1, atol=1e-5)  # softmax stays float
        assert np.abs(pf - pq).max() < 0.1
    with pytest.raises(ValueError, match="calibration"):
        builtin.export_onnx(net, spec, tmp_path / "x.onnx", {}, precision="int8")


def test_members_of_another_input_size_see_the_input_resized_in_the_graph(tiny):
    import onnxruntime as ort
    import torch.nn.functional as F

    data, cfg, tmp = tiny
    cfg = replace(cfg, epochs=1, members=2, precision="fp32",
                  member_overrides=({}, {"resize": 54, "crop": 48, "seed_offset": 5}))
    out = builtin.train("fairface", data, tmp / "out", tmp / "cache", cfg, run_dir=tmp / "run")
    assert (tmp / "cache" / "fairface_train_54.npz").exists()  # the small member's own decoded cache
    spec = builtin.TASKS["fairface"]
    big = builtin.build_network(spec, cfg.widths, cfg.blocks)
    big.load_state_dict(_weights(tmp / "run"))
    small = builtin.build_network(spec, cfg.widths, cfg.blocks)
    small.load_state_dict(_weights(tmp / "run" / "member1"))
    assert torch.load(tmp / "run" / "member1" / "checkpoint.pt", weights_only=False)["history"][0]["seed"] == 5
    x = np.random.default_rng(0).uniform(0, 255, (3, 3, spec.crop, spec.crop)).astype(np.float32)
    got = ort.InferenceSession(str(out)).run(["gender"], {"pixels": x})[0]
    with torch.no_grad():
        t = torch.from_numpy(x)
        views = [(big, t), (small, F.interpolate(t, size=(48, 48), mode="bilinear", align_corners=False))]
        want = sum(torch.softmax(n.eval()(v)["gender"], 1) for n, v in views) / 2
    assert np.abs(got - want.numpy()).max() < 1e-4


def _emotion_fixtures(root):
    """FER2013 folders (train: 12 happy, 3 fear, 1 disgust; val: one each) and a RAF-DB basic train split of 20
    faces in its official layout (codes 1-7), each image a distinct grey level so it can be traced."""
    fer, raf = root / "fer", root / "raf"
    level = iter(range(0, 250, 2))
    for split, counts in (("train", {"happy": 12, "fear": 3, "disgust": 1}), ("val", {"happy": 1, "fear": 1})):
        for emotion, n in counts.items():
            (fer / split / emotion).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(np.full((48, 48), next(level), np.uint8)).save(fer / split / emotion / f"{i}.png")
    (raf / "EmoLabel").mkdir(parents=True)
    (raf / "Image" / "aligned").mkdir(parents=True)
    lines = []
    for i in range(20):
        code = 4 if i < 14 else 2  # happy, fear
        lines.append(f"train_{i + 1:05d}.jpg {code}")
        Image.fromarray(np.full((100, 100, 3), next(level), np.uint8)).save(
            raf / "Image" / "aligned" / f"train_{i + 1:05d}_aligned.jpg", quality=100)
    (raf / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    return fer, raf


def test_also_adds_a_mapped_dataset_keeps_its_dev_split_out_and_balances_rare_classes(tmp_path):
    fer, raf = _emotion_fixtures(tmp_path)
    spec = builtin.TASKS["fer2013"]
    cache = tmp_path / "cache"
    base = builtin.build_cache("fer2013", fer, "train", cache, progress=False)
    cfg = replace(builtin.DEFAULT_CONFIGS["fer2013"], dev_fraction=0.25)
    images, labels, devs = builtin.with_also("fer2013", base["images"], {"emotion": base["y_emotion"]},
                                             [("rafdb", raf)], cache, cfg, progress=False)
    raf_all = builtin.build_cache("rafdb", raf, "train", cache, progress=False, spec=spec)
    fer7 = spec.outputs["emotion"]
    from facescan import taxonomy

    happy, fear = (taxonomy.label_set(fer7).index(e) for e in ("happy", "fear"))
    assert sorted(set(raf_all["y_emotion"].tolist())) == sorted([happy, fear])  # RAF-DB codes 4, 2 in fer7
    dev_images, dev_labels = devs["rafdb"]
    assert len(dev_images) == 5  # 25 % of 20, the same five in every run
    again = builtin.with_also("fer2013", base["images"], {"emotion": base["y_emotion"]}, [("rafdb", raf)], cache,
                              cfg, progress=False)[2]["rafdb"][0]
    assert np.array_equal(again, dev_images)
    level = lambda batch: {int(np.median(x)) for x in batch}  # noqa: E731
    assert not level(dev_images) & level(images)  # no dev face is trained on
    assert len(level(images)) == 16 + 15  # every FER2013 train face and the 15 other RAF-DB faces
    assert len(images) == len(labels["emotion"]) == 16 + 15
    balanced = replace(cfg, balance="sqrt")
    b_images, b_labels, _ = builtin.with_also("fer2013", base["images"], {"emotion": base["y_emotion"]},
                                              [("rafdb", raf)], cache, balanced, progress=False)
    counts = np.bincount(labels["emotion"], minlength=7)
    after = np.bincount(b_labels["emotion"], minlength=7)
    for c in np.flatnonzero(counts):
        assert after[c] == counts[c] * min(4, max(1, round(np.sqrt(counts.max() / counts[c]))))
    assert after[taxonomy.label_set(fer7).index("disgust")] == 4  # 1 face, repeated the most allowed
    with pytest.raises(ValueError, match="balance must be none or sqrt"):
        builtin.with_also("fer2013", base["images"], {"emotion": base["y_emotion"]}, [], cache,
                          replace(cfg, balance="equal"), progress=False)


def test_a_model_trained_with_also_records_its_datasets_and_dev_scores(tmp_path):
    fer, raf = _emotion_fixtures(tmp_path)
    cfg = replace(builtin.DEFAULT_CONFIGS["fer2013"], epochs=1, widths=(4, 8, 8, 8), blocks=(1, 1, 1, 1),
                  batch_size=8, threads=1, compute="fp32", balance="sqrt", precision="fp32")
    out = builtin.train("fer2013", fer, tmp_path / "out", tmp_path / "cache", cfg, run_dir=tmp_path / "run",
                        also=[("rafdb", raf)])
    import json
    import shutil

    import onnx

    from facescan.backends.builtin import BuiltinBackend, models_dir

    info = json.loads({p.key: p.value for p in onnx.load(str(out)).metadata_props}["facescan_training"])
    assert info["datasets"] == ["fer2013", "rafdb"] and 0 <= info["dev"]["rafdb"]["emotion"] <= 1
    assert info["config"]["balance"] == "sqrt" and info["config"]["dev_seed"] == 17
    shutil.copy(models_dir() / "fairface.onnx", tmp_path / "out" / "fairface.onnx")
    assert BuiltinBackend(tmp_path / "out").trained_on() == {"age": ["fairface"], "gender": ["fairface"],
                                                              "race": ["fairface"], "emotion": ["fer2013", "rafdb"]}


def test_coarser_labels_are_kept_as_they_are_never_guessed_finer(tmp_path):
    from .dataset_layouts import write_utkface

    utk, names = write_utkface(tmp_path / "utk")
    data = builtin.build_cache("utkface", utk, "all", tmp_path / "cache", progress=False,
                               spec=builtin.TASKS["fairface"])
    labels = builtin.label_arrays(data)
    assert (labels["race"] == -1).all()  # no FairFace race is guessed from UTKFace's five
    from facescan import taxonomy

    coarse = taxonomy.label_set("race5_utk").labels
    assert sorted(coarse[i] for i in labels["race@race5_utk"]) == sorted(["asian", "white", "others", "indian",
                                                                          "white"])
    assert sorted(labels["age_years"].tolist()) == [1.0, 25.0, 34.0, 72.0, 116.0]
    assert (labels["age"] >= 0).all() and (labels["gender"] >= 0).all()
    with pytest.raises(ValueError, match="fer2013 has no age labels"):
        from .dataset_layouts import write_fer2013_folders

        builtin.build_cache("fer2013", write_fer2013_folders(tmp_path / "fer", "train"), "train", tmp_path / "c2",
                            progress=False, spec=builtin.TASKS["fairface"])
    from typer.testing import CliRunner

    from facescan.cli import app

    r = CliRunner().invoke(app, ["train", "builtin", "fer2013", str(tmp_path), "--also", "rafdb"])
    assert r.exit_code == 2 and "write KIND:PATH" in r.output


def test_the_loss_sums_fine_probabilities_into_a_coarse_label_and_years_into_groups():
    spec = replace(builtin.TASKS["fairface"], age_years=True)
    cfg = replace(builtin.DEFAULT_CONFIGS["fairface"], label_smoothing=0.0)
    g = torch.Generator().manual_seed(0)
    out = {"age": torch.randn(2, 101, generator=g), "gender": torch.randn(2, 2, generator=g),
           "race": torch.randn(2, 7, generator=g)}
    from facescan import taxonomy

    asian = taxonomy.label_set("race5_utk").index("asian")
    labels = {"age": np.array([3, -1]), "gender": np.array([0, 1]), "race": np.array([-1, 2]),
              "race@race5_utk": np.array([asian, -1]), "age_years": np.array([np.nan, 30.0], np.float32)}
    loss = builtin._loss(out, labels, np.array([0, 1]), spec, cfg)
    p_years = torch.softmax(out["age"], 1)
    p_race = torch.softmax(out["race"], 1)
    fine = taxonomy.label_set("race7")
    asian_fine = [fine.index("east_asian"), fine.index("southeast_asian")]
    groups = taxonomy.age_year_groups()
    years = torch.arange(101) + 0.5
    target = torch.softmax(-0.5 * ((years - 30.5) / cfg.age_sigma) ** 2, 0)
    by_hand = (-torch.log(p_years[0, [y for y in range(101) if groups[y] == 3]].sum())  # item 0: age group 3
               - torch.log(torch.softmax(out["gender"], 1)[[0, 1], [0, 1]]).sum()
               - torch.log(p_race[1, 2])  # item 1: a FairFace race
               - torch.log(p_race[0, asian_fine].sum())  # item 0: UTKFace's "asian", east or southeast
               - (target * torch.log(p_years[1])).sum()) / 2  # item 1: an exact age of 30
    assert float(loss) == pytest.approx(float(by_hand), rel=1e-5)
    plain = {"age": np.array([3, 4]), "gender": np.array([0, 1]), "race": np.array([1, 2])}
    assert builtin._plain_labels(plain, builtin.TASKS["fairface"])
    assert not builtin._plain_labels(labels, builtin.TASKS["fairface"])


def test_an_exact_age_model_trained_with_utkface_exports_years_and_groups(tmp_path):
    from .dataset_layouts import write_utkface

    ff = _fairface_fixture(tmp_path / "ff")
    utk, _ = write_utkface(tmp_path / "utk")
    # two members, the second at another input size, as the FairFace recipe has
    cfg = replace(builtin.DEFAULT_CONFIGS["fairface"], epochs=1, widths=(4, 8, 8, 8), blocks=(1, 1, 1, 1),
                  batch_size=16, threads=1, members=2, compute="fp32", exact_age=True, precision="fp32",
                  dev_fraction=0.4, member_overrides=({}, {"resize": 72, "crop": 64, "seed_offset": 1}))
    out = builtin.train("fairface", ff, tmp_path / "out", tmp_path / "cache", cfg, run_dir=tmp_path / "run",
                        also=[("utkface", utk)])
    import json

    import onnxruntime as ort

    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["age", "gender", "race", "age_years"]
    x = np.random.default_rng(0).uniform(0, 255, (3, 3, 80, 80)).astype(np.float32)
    age, _, _, years = session.run(None, {"pixels": x})
    assert years.shape == (3, 101) and np.allclose(years.sum(1), 1, atol=1e-5)
    from facescan import taxonomy

    groups = np.array(taxonomy.age_year_groups())
    assert np.allclose(age, np.stack([years[:, groups == k].sum(1) for k in range(9)], 1), atol=1e-6)
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["facescan_spec"])["age_years"] is True
    info = json.loads(meta["facescan_training"])
    assert info["datasets"] == ["fairface", "utkface"] and info["config"]["exact_age"] is True
    assert {"race@race5_utk", "age_years_mae", "gender"} <= set(info["dev"]["utkface"])
    assert "race" not in info["dev"]["utkface"]  # UTKFace has no FairFace race to score
    import shutil

    from facescan.backends.base import FaceInput
    from facescan.backends.builtin import BuiltinBackend, models_dir
    from facescan.tables import age_from_years, attribute_columns

    shutil.copy(models_dir() / "emotion.onnx", tmp_path / "out" / "emotion.onnx")
    backend = BuiltinBackend(tmp_path / "out", tta=False)
    chip = np.random.default_rng(1).integers(0, 255, (96, 96, 3), dtype=np.uint8)
    age = backend.predict([FaceInput(chip=chip, padding=0.25)], ["age", "gender"])[0]["age"]
    low, high = age.interval
    assert low <= age.value <= high and age.label_set == "age9"
    row = attribute_columns("age", age)
    assert (row["age_years"], row["age_years_low"], row["age_years_high"]) == (age.value, low, high)
    assert age_from_years(np.eye(101)[30]) == (30.5, 30.1, 30.9)
    from facescan.evaluate import run_eval

    metrics = run_eval(f"utkface:{utk}", "all", f"builtin:{tmp_path / 'out'}", tmp_path / "eval", progress=False,
                       n_resamples=20)
    from facescan.evaluate.store import RunStore

    stored = RunStore(tmp_path / "eval" / "predictions.sqlite").predictions(f"builtin:{tmp_path / 'out'}")
    values = [p["value"] for (_, a), p in stored.items() if a == "age"]
    assert len(values) == 5 and all(v is not None for v in values)  # the model's own ages are what eval scores
    assert metrics["attributes"]["age"]["mae_years"] != metrics["attributes"]["age"]["mae_years_midpoint"]


def test_a_checkpoint_of_another_recipe_is_not_resumed(tiny):
    data, cfg, tmp = tiny
    builtin.train("fairface", data, tmp / "out", tmp / "cache", replace(cfg, epochs=1), run_dir=tmp / "run")
    with pytest.raises(ValueError, match=r"another recipe \(its config differ\)"):
        builtin.train("fairface", data, tmp / "out", tmp / "cache", replace(cfg, epochs=1, lr=0.05),
                      run_dir=tmp / "run")
    # the thread count changes no weights' meaning: resumed (and finished: nothing left to train)
    builtin.train("fairface", data, tmp / "out", tmp / "cache", replace(cfg, epochs=1, threads=2), run_dir=tmp / "run")


def test_a_cache_of_another_data_folder_is_rebuilt_and_unmapped_labels_are_left_out_with_a_warning(tmp_path):
    import shutil

    from .dataset_layouts import write_affectnet

    a = _fairface_fixture(tmp_path / "a")
    b = tmp_path / "b"
    shutil.copytree(a, b)
    for i in range(4):  # the first four rows' images
        (b / "train" / f"{i}.jpg").unlink()
    lines = (b / "fairface_label_train.csv").read_text().splitlines()
    (b / "fairface_label_train.csv").write_text("\n".join(lines[:1] + lines[5:]) + "\n")
    first = builtin.build_cache("fairface", a, "train", tmp_path / "cache", progress=False)
    second = builtin.build_cache("fairface", b, "train", tmp_path / "cache", progress=False)
    assert len(first["images"]) == 48 and len(second["images"]) == 44
    affectnet = write_affectnet(tmp_path / "affectnet")
    with pytest.warns(UserWarning, match=r"left out 1 image\(s\) whose label has no facescan-fer-resnet equivalent "
                                         r"\(emotion 'contempt': 1\)"):
        data = builtin.build_cache("affectnet", affectnet, "val", tmp_path / "cache", progress=False,
                                   spec=builtin.TASKS["fer2013"])
    assert (builtin.label_arrays(data)["emotion"] >= 0).all()


def test_temperatures_fitted_on_dev_data_calibrate_an_overconfident_model_and_go_into_the_graph(tmp_path):
    from facescan.evaluate.metrics import expected_calibration_error

    spec = builtin.TASKS["fer2013"]
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (300, spec.resize, spec.resize, 1), dtype=np.uint8)
    truth = rng.integers(0, 7, 300)

    class Overconfident(torch.nn.Module):  # right 60 % of the time, always sure
        def __init__(self):
            super().__init__()
            self.answer = torch.tensor(np.where(rng.random(300) < 0.6, truth, (truth + 1) % 7))
            self.seen = 0

        def forward(self, x):
            answer = self.answer[self.seen : self.seen + len(x)]
            self.seen += len(x)
            return {"emotion": torch.nn.functional.one_hot(answer, 7).float() * 5.0}

    net = Overconfident()
    temperatures, report = builtin.fit_temperatures([net], [spec.crop], {"rafdb": (images, {"emotion": truth})}, spec)
    row = report["emotion"]
    assert temperatures["emotion"] > 2 and row["fitted_on"] == ["rafdb"] and row["n"] == 300
    assert row["held_out_n"] == 150 and not row["at_grid_edge"]
    assert row["nll_after"] < row["nll_before"] and row["ece_after"] < row["ece_before"] / 3
    right = (net.answer == torch.tensor(truth)).numpy()
    sure = np.exp(5.0) / (np.exp(5.0) + 6)
    assert row["ece_before"] == pytest.approx(expected_calibration_error(np.full(300, sure), right), abs=0.06)
    few, _ = builtin.fit_temperatures([Overconfident()], [spec.crop],
                                      {"rafdb": (images[:20], {"emotion": truth[:20]})}, spec)
    assert few == {}  # too few development items: no temperature

    import onnxruntime as ort

    real = builtin.build_network(spec, (4, 8, 8, 8), (1, 1, 1, 1)).eval()
    builtin.export_onnx(real, spec, tmp_path / "t.onnx", {}, "fp32", temperatures={"emotion": 2.5})
    x = rng.uniform(0, 255, (4, 1, spec.crop, spec.crop)).astype(np.float32)
    (probs,) = ort.InferenceSession(str(tmp_path / "t.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"pixels": x})
    assert not real.training  # exporting leaves the net as it found it
    with torch.no_grad():
        expected = torch.softmax(real(torch.from_numpy(x))["emotion"] / 2.5, 1).numpy()
    assert np.allclose(probs, expected, atol=1e-5)

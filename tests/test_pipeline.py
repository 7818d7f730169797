"""The Python API and the built-in backend."""

import io
import time

import numpy as np
import pytest
from PIL import Image

import facescan
from facescan import taxonomy
from facescan.backends.base import FaceInput, load_backend
from facescan.backends.builtin import MODEL_FILES, models_dir
from facescan.pipeline import Analyzer, parse_attributes


def test_shipped_models_fit_the_size_budget_and_have_cards():
    total = sum((models_dir() / f).stat().st_size for f in MODEL_FILES)
    assert total <= 25 * 1024 * 1024
    for f in MODEL_FILES:
        assert (models_dir() / f).with_suffix(".md").exists(), f"{f} needs a model card"


def test_builtin_outputs_full_distributions_over_taxonomy_labels():
    backend = load_backend("builtin")
    rng = np.random.default_rng(0)
    faces = [FaceInput(chip=rng.integers(0, 255, (s, s, 3), dtype=np.uint8), padding=0.25) for s in (224, 128, 48)]
    preds = backend.predict(faces, ["age", "gender", "race", "emotion"])
    assert len(preds) == 3
    for p in preds:
        for attr, pred in p.items():
            assert list(pred.probabilities) == list(taxonomy.DEFAULT_LABEL_SETS[attr].labels)
            assert sum(pred.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
            assert pred.label == max(pred.probabilities, key=pred.probabilities.get)


def test_batching_does_not_change_predictions():
    backend = load_backend("builtin")
    rng = np.random.default_rng(1)
    faces = [FaceInput(chip=rng.integers(0, 255, (96, 96, 3), dtype=np.uint8), padding=0.25) for _ in range(5)]
    together = backend.predict(faces, ["age", "emotion"])
    alone = [backend.predict([f], ["age", "emotion"])[0] for f in faces]
    for a, b in zip(together, alone):
        for attr in ("age", "emotion"):
            assert a[attr].probabilities == pytest.approx(b[attr].probabilities, abs=1e-5)


def test_tta_averages_each_face_with_its_mirror_image():
    plain, tta = load_backend("builtin?tta=0"), load_backend("builtin")
    assert not plain.tta and tta.tta  # on by default
    rng = np.random.default_rng(2)
    chips = [rng.integers(0, 255, (96, 96, 3), dtype=np.uint8) for _ in range(3)]
    attrs = ["age", "gender", "race", "emotion"]
    both = tta.predict([FaceInput(chip=c, padding=0.25) for c in chips], attrs)
    one = plain.predict([FaceInput(chip=c, padding=0.25) for c in chips], attrs)
    mirrored = plain.predict([FaceInput(chip=np.ascontiguousarray(c[:, ::-1]), padding=0.25) for c in chips], attrs)
    for b, o, m in zip(both, one, mirrored):
        for attr in attrs:
            want = {k: (o[attr].probabilities[k] + m[attr].probabilities[k]) / 2 for k in o[attr].probabilities}
            assert b[attr].probabilities == pytest.approx(want, abs=1e-5)
            assert b[attr].probabilities != pytest.approx(o[attr].probabilities, abs=1e-4)  # the mirror counts
    with pytest.raises(ValueError, match="tta"):
        load_backend("builtin?tta=maybe")


def test_only_requested_attributes_are_returned():
    backend = load_backend("builtin")
    face = FaceInput(chip=np.zeros((64, 64, 3), np.uint8), padding=0.25)
    assert list(backend.predict([face], ["gender"])[0]) == ["gender"]
    with pytest.raises(ValueError):
        backend.predict([face], ["hair"])


def test_parse_attributes():
    assert parse_attributes(None) == ("age", "gender", "emotion")
    assert parse_attributes("race, age,race") == ("race", "age")
    with pytest.raises(ValueError, match="unknown attribute"):
        parse_attributes("age,height")


def test_api_accepts_arrays_bytes_and_lists_and_keeps_order(tmp_path):
    gray = np.full((80, 80), 128, np.uint8)
    buf = io.BytesIO()
    Image.fromarray(gray).save(buf, "PNG")
    results = facescan.analyze([gray, buf.getvalue(), tmp_path / "missing.jpg", b"junk"], crops=True)
    assert [r.ok for r in results] == [True, True, False, False]
    assert "file not found" in results[2].error and "not a recognized image format" in results[3].error
    assert all(len(r.faces) == 1 for r in results[:2])


def test_workers_give_the_same_results_in_the_same_order(tmp_path):
    rng = np.random.default_rng(2)
    paths = []
    for i in range(6):
        p = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    analyzer = Analyzer(crops=True, batch_images=4)
    one = list(analyzer.analyze_many(paths, workers=1))
    two = list(analyzer.analyze_many(paths, workers=3))
    assert [r.source for r in two] == [str(p) for p in paths]
    for a, b in zip(one, two):
        assert a.faces[0].attributes["age"].probabilities == pytest.approx(b.faces[0].attributes["age"].probabilities)


@pytest.mark.data
def test_photos_waiting_for_the_model_hold_their_face_chips_not_their_pixels(photos):
    """A batch of prepared photos keeps each face's chip; the whole photo only where the describer needs it."""
    pytest.importorskip("mediapipe")
    prepared = Analyzer(attributes="gender").prepare(photos / "multi_face.jpg")
    assert len(prepared.inputs) == 5 and all(fi.image is None and fi.chip is not None for fi in prepared.inputs)
    described = Analyzer(attributes="gender", describe=True).prepare(photos / "multi_face.jpg")
    assert all(fi.image is not None and fi.image.shape[:2] == (667, 1000) for fi in described.inputs)


def test_reading_a_small_file_allocates_about_its_size(tmp_path):
    """Not the 200 MB limit: read(n) allocates n bytes before it reads."""
    import tracemalloc

    from facescan.imageio import load_image

    path = tmp_path / "small.jpg"
    Image.new("RGB", (64, 64), (120, 90, 60)).save(path)
    tracemalloc.start()
    try:
        load_image(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000, peak


@pytest.mark.data
def test_boxes_are_in_original_coordinates_when_downscaled(photos, monkeypatch):
    from facescan import imageio

    analyzer = Analyzer(attributes="gender")
    full = analyzer.analyze(photos / "multi_face.jpg")
    monkeypatch.setattr(imageio, "MAX_SIDE", 500)
    monkeypatch.setattr("facescan.pipeline.load_image",
                        lambda src, **kw: imageio.load_image(src, **{**kw, "max_side": 500}))
    small = analyzer.analyze(photos / "multi_face.jpg")
    assert (small.width, small.height) == (full.width, full.height)
    assert len(small.faces) == len(full.faces) == 5
    for a, b in zip(full.faces, small.faces):
        assert abs(a.box.x - b.box.x) < 0.05 * a.box.width and abs(a.box.width - b.box.width) < 0.1 * a.box.width




def test_analyze_opens_no_network_connection(tmp_path):
    """Run the CLI under strace and check it never connects to an IP address."""
    import shutil
    import subprocess
    import sys

    if not shutil.which("strace"):
        pytest.skip("strace is not installed")
    from .badinputs import gradient

    img = tmp_path / "g.png"
    gradient(300, 300).save(img)
    log = tmp_path / "trace"
    proc = subprocess.run(
        ["strace", "-f", "-e", "trace=connect", "-o", str(log), sys.executable, "-m", "facescan.cli", "analyze",
         str(img), "-a", "age,gender,race,emotion"],
        capture_output=True, text=True, timeout=120,
    )
    if proc.returncode != 0 and "ptrace" in proc.stderr:
        pytest.skip(f"strace cannot trace here: {proc.stderr.strip()[:200]}")
    assert proc.returncode == 0, proc.stderr
    inet = [line for line in log.read_text().splitlines() if "AF_INET" in line]
    assert inet == [], inet


def test_built_in_path_does_not_import_torch(tmp_path):
    """`import facescan` and a built-in analysis stay light: no torch, no transformers."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np, facescan\n"
        "r = facescan.analyze(np.zeros((120, 120, 3), np.uint8), attributes='age,gender,race,emotion')\n"
        "assert r.ok, r.error\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'tensorflow', 'openai', 'google.genai', 'peft')\n"
        "               if m in sys.modules)\n"
        "print('heavy:', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "heavy: []" in out.stdout


def test_a_backend_failure_on_one_image_costs_only_that_image():
    from facescan.pipeline import Analyzer
    from facescan.schema import AttributePrediction

    class Picky:
        name = "picky"

        def supported_attributes(self):
            return ("gender",)

        def predict(self, faces, attributes):
            if any(f.chip.mean() > 250 for f in faces):
                raise RuntimeError("cannot handle a white chip")
            return [{"gender": AttributePrediction.from_probabilities("gender", "gender", [0.7, 0.3], "picky", "m")}
                    for _ in faces]

    images = [np.full((64, 64, 3), v, np.uint8) for v in (90, 255, 120, 30)]
    results = list(Analyzer(backend=Picky(), attributes="gender", crops=True).analyze_many(images))
    assert [r.ok for r in results] == [True, False, True, True]
    assert "cannot handle a white chip" in results[1].error
    assert all(r.faces[0].attributes["gender"].label == "male" for r in results if r.ok)


def test_faces_in_flight_stay_near_one_backend_batch_however_crowded_the_photos():
    from facescan.detect.base import Detection
    from facescan.schema import AttributePrediction

    class Counting:
        name, batch_size = "counting", 64
        calls: list[int] = []

        def supported_attributes(self):
            return ("gender",)

        def predict(self, faces, attributes):
            self.calls.append(len(faces))
            return [{"gender": AttributePrediction.from_probabilities("gender", "gender", [0.6, 0.4], "c", "m")}
                    for _ in faces]

    class Crowd:  # a photo's face count is its first pixel's value
        name = "crowd"

        def detect(self, image):
            return [Detection(box=(4.0 * i, 4.0, 20.0, 20.0), score=0.9) for i in range(int(image[0, 0, 0]))]

    backend = Counting()
    for per_photo in (1, 5, 30):
        backend.calls.clear()
        photos = [np.full((120, 240, 3), per_photo, np.uint8) for _ in range(100)]
        results = list(Analyzer(backend=backend, detector=Crowd(), attributes="gender",
                                min_face_size=1).analyze_many(photos))
        assert [len(r.faces) for r in results] == [per_photo] * 100
        assert sum(backend.calls) == 100 * per_photo
        # the first chunk holds 8 photos; later ones one backend batch of faces, or a whole photo's faces
        assert max(backend.calls[1:]) <= max(64, per_photo), (per_photo, backend.calls)
        assert backend.calls[0] == 8 * per_photo
        if per_photo == 1:
            assert max(backend.calls) == 32  # photos with one face still go 32 at a time


@pytest.mark.parametrize("workers", [1, 2])
def test_the_next_chunk_is_loaded_and_detected_while_the_model_runs(workers):
    import threading

    from facescan.detect.base import Detection
    from facescan.schema import AttributePrediction

    started = threading.Event()

    class Slow:  # the model waits (up to 3 s) until a photo of the next chunk is being detected
        name, batch_size = "slow", 4
        overlapped: list[bool] = []

        def supported_attributes(self):
            return ("gender",)

        def predict(self, faces, attributes):
            started.clear()
            self.overlapped.append(started.wait(3))
            return [{"gender": AttributePrediction.from_probabilities("gender", "gender", [0.6, 0.4], "s", "m")}
                    for _ in faces]

    class Signalling:
        name = "signalling"

        def detect(self, image):
            started.set()
            return [Detection(box=(10.0, 10.0, 40.0, 40.0), score=0.9)]

    photos = [np.full((80, 80, 3), i, np.uint8) for i in range(20)]
    backend = Slow()
    analyzer = Analyzer(backend=backend, detector=Signalling(), attributes="gender")
    results = list(analyzer.analyze_many(photos, workers=workers))
    assert len(results) == 20 and all(len(r.faces) == 1 for r in results)
    # every chunk but the last had the next one prepared while the model ran on it
    assert backend.overlapped[:-1] and all(backend.overlapped[:-1]), backend.overlapped
    assert backend.overlapped[-1] is False
    # a caller that stops early leaves no work behind, on the analyzer's threads or on a pool of its own
    from concurrent.futures import ThreadPoolExecutor

    class Counting(Signalling):
        calls = 0

        def detect(self, image):
            Counting.calls += 1
            time.sleep(0.05)
            return super().detect(image)

    backend.overlapped.clear()
    quick = Analyzer(backend=backend, detector=Counting(), attributes="gender")
    with ThreadPoolExecutor(2) as pool:
        for kwargs in ({"workers": workers}, {"executor": pool}):
            stream = quick.analyze_many(photos, **kwargs)
            next(stream)
            stream.close()
            done = Counting.calls
            time.sleep(0.3)
            assert Counting.calls - done <= 2, kwargs  # at most the detections already under way
            # no pool of its own left running: only the caller's pool and the analyzer's preparing thread
            left = [t for t in threading.enumerate() if t.name.startswith("ThreadPoolExecutor")
                    and t not in pool._threads]
            assert not left, (kwargs, left)
            Counting.calls = 0


def test_an_input_iterator_that_fails_raises_after_the_photos_before_it_are_given():
    def photos():
        for i in range(12):
            yield np.full((64, 64, 3), 100 + i, np.uint8)
        raise OSError("the camera went away")

    stream = Analyzer(crops=True, attributes="gender").analyze_many(photos())
    given = []
    with pytest.raises(OSError, match="camera went away"):
        for r in stream:
            given.append(r)
    assert len(given) == 8 and all(r.ok for r in given)  # the first chunk; the partial next one never began

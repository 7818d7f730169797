"""Local transformers VLMs: tiny random-weight models of four families, built and saved by the tests,
loaded back through the path a user's folder takes (``hf:<folder>``)."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="VLM backend tests need torch (the vlm extra)")
pytest.importorskip("transformers", reason="VLM backend tests need transformers (the vlm extra)")

from typer.testing import CliRunner  # noqa: E402

from facescan import taxonomy  # noqa: E402
from facescan.backends.base import FaceInput, load_backend  # noqa: E402
from facescan.backends.hf import HFBackend, HFOptions  # noqa: E402
from facescan.backends.tiny import FAMILIES, build_tiny_vlm  # noqa: E402
from facescan.cli import app  # noqa: E402

from .conftest import shared  # noqa: E402


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_vlms")
    return {f: build_tiny_vlm(f, root / f) for f in FAMILIES}


@pytest.fixture(scope="module")
def backends(tiny_models):
    return {f: load_backend(f"hf:{folder}") for f, folder in tiny_models.items()}


def _chip(seed=0):
    return np.random.default_rng(seed).integers(0, 255, (56, 56, 3), dtype=np.uint8)


def _brute_force(backend, inputs, candidates):
    """One full forward per candidate over prefix + candidate tokens."""
    out = []
    prefix = inputs["input_ids"].shape[1]
    for c in candidates:
        kw = dict(inputs)
        kw["input_ids"] = torch.cat([inputs["input_ids"], torch.tensor([c])], 1)
        kw["attention_mask"] = torch.ones_like(kw["input_ids"])
        for key, fill in (("token_type_ids", 1), ("mm_token_type_ids", 0)):  # answer tokens: suffix / text
            if key in inputs:
                kw[key] = torch.cat([inputs[key], torch.full((1, len(c)), fill, dtype=inputs[key].dtype)], 1)
        with torch.no_grad():
            logp = torch.log_softmax(backend.model(**kw).logits[0].float(), -1)
        out.append(sum(float(logp[prefix - 1 + j, c[j]]) for j in range(len(c))))
    return np.array(out)


@pytest.mark.parametrize("family", FAMILIES)
def test_prefix_shared_scores_equal_one_forward_per_label(backends, family):
    from PIL import Image

    backend = backends[family]
    images = [Image.fromarray(_chip(0)), Image.fromarray(_chip(1))]
    for attr in ("age", "race"):
        question = backend.preset.question(attr)
        candidates = backend.candidate_ids(attr)
        fast = backend.score_candidates(backend.model_inputs(images, question), candidates)  # both faces at once
        assert fast.shape == (2, len(candidates))
        for k, image in enumerate(images):
            slow = _brute_force(backend, backend.model_inputs([image], question), candidates)
            assert np.abs(fast[k] - slow).max() < 1e-4, (family, attr, k)


@pytest.mark.parametrize("family", FAMILIES)
def test_scoring_gives_a_distribution_over_exactly_the_labels(backends, family):
    preds = backends[family].predict([FaceInput(_chip(1), 0.25), FaceInput(_chip(2), 0.25)],
                                     ["age", "gender", "race", "emotion"])
    for face in preds:
        for attr, p in face.items():
            ls = taxonomy.label_set(p.label_set)
            assert ls.attribute == attr and list(p.probabilities) == list(ls.labels)
            assert sum(p.probabilities.values()) == pytest.approx(1.0, abs=1e-6)
            assert p.valid and p.mode == "scoring" and p.prompt == "paper" and p.backend == "hf"
    # different images → different scores (the image reaches the model)
    assert preds[0]["age"].probabilities != preds[1]["age"].probabilities


@pytest.mark.parametrize("family", FAMILIES)
def test_cli_analyze_real_photo_in_both_modes(tiny_models, family, tmp_path):
    photo = shared("photos", "multi_face.jpg")
    runner = CliRunner()
    for mode in ("scoring", "generation"):
        out = tmp_path / f"{mode}.json"
        spec = f"hf:{tiny_models[family]}?mode={mode}&max_new_tokens=6"
        res = runner.invoke(app, ["analyze", str(photo), "--backend", spec, "--attributes", "age,gender,emotion",
                                  "--json", str(out), "-q"])
        assert res.exit_code == 0, res.output
        faces = json.loads(out.read_text())[0]["faces"]
        assert len(faces) == 5
        for face in faces:
            for attr in ("age", "gender", "emotion"):
                p = face["attributes"][attr]
                assert p["mode"] == mode and p["backend"] == "hf"
                if mode == "scoring":
                    assert p["label"] is not None
                else:  # random weights answer gibberish: recorded raw, and invalid unless it names a label
                    assert p["raw"] is not None
                    assert (p["label"] is None) == (p["error"] is not None)


def test_json_preset_generation_answers_every_attribute(tiny_models):
    backend = load_backend(f"hf:{tiny_models['idefics3']}?mode=generation&preset=json&max_new_tokens=4")
    pred = backend.predict([FaceInput(_chip(), 0.25)], ["age", "gender"])[0]
    assert set(pred) == {"age", "gender"} and pred["age"].raw == pred["gender"].raw


def test_facescan_paligemma_preset_runs_on_local_standins(tiny_models):
    folder = tiny_models["paligemma"]
    spec = "facescan-paligemma?" + "&".join(f"{a}={folder}" for a in ("age", "gender", "race", "emotion"))
    backend = load_backend(spec)
    pred = backend.predict([FaceInput(_chip(), 0.25)], ["age", "gender", "race", "emotion"])[0]
    assert {a: p.label_set for a, p in pred.items()} == {"age": "age5", "gender": "gender", "race": "race6",
                                                         "emotion": "affectnet8"}
    for p in pred.values():
        assert p.valid and p.backend == "facescan-paligemma" and p.prompt == "facescan-paligemma"
    # the preset's own answer vocabulary is what gets scored
    hf = backend.backend_for("age")
    assert hf.preset.options("age")[-1] == "more than 60"
    assert hf.preset.question("emotion") == "what is the emotion of the person in the image?"


def test_published_ids_are_the_preset_defaults():
    from facescan.backends.hf import FaceScanPaliGemmaBackend

    b = FaceScanPaliGemmaBackend("")
    assert b.models["gender"] == "NYUAD-ComNets/FaceScanPaliGemma_Gender"
    assert b.processor_source == "google/paligemma-3b-pt-224"


def test_spec_options_are_checked():
    with pytest.raises(ValueError, match="unknown hf backend option"):
        HFOptions.parse("some/model?temperature=1")
    with pytest.raises(ValueError, match="mode"):
        HFOptions.parse("some/model?mode=guess")
    with pytest.raises(ValueError, match="dtype"):
        HFOptions.parse("some/model?dtype=int3")
    o = HFOptions.parse("org/model?mode=generation&dtype=bf16&device=cpu&bits=4")
    assert (o.model, o.mode, o.dtype, o.bits) == ("org/model", "generation", "bf16", 4)


def test_4bit_needs_cuda(tiny_models):
    with pytest.raises(ValueError, match="CUDA"):
        HFBackend(f"{tiny_models['llava']}?bits=4&device=cpu")


def test_bf16_loading(tiny_models):
    backend = HFBackend(f"{tiny_models['llava']}?dtype=bf16&device=cpu")
    assert next(backend.model.parameters()).dtype == torch.bfloat16
    pred = backend.predict([FaceInput(_chip(), 0.25)], ["gender"])[0]["gender"]
    assert pred.valid and sum(pred.probabilities.values()) == pytest.approx(1.0)


def test_peft_adapter_folder_loads_on_its_base_model(tiny_models, tmp_path):
    peft = pytest.importorskip("peft", reason="needs peft (the vlm extra)")
    from transformers import AutoModelForImageTextToText

    base = AutoModelForImageTextToText.from_pretrained(tiny_models["llava"])
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    model = peft.get_peft_model(base, config)
    model.save_pretrained(tmp_path / "adapter")  # adapter_config.json names the base folder
    face = [FaceInput(_chip(), 0.25)]
    with_adapter = load_backend(f"hf:{tmp_path / 'adapter'}").predict(face, ["age"])[0]["age"]
    merged = model.merge_and_unload()
    reference = HFBackend(str(tiny_models["llava"]), model=merged).predict(face, ["age"])[0]["age"]
    plain = load_backend(f"hf:{tiny_models['llava']}").predict(face, ["age"])[0]["age"]
    for label, p in reference.probabilities.items():
        assert with_adapter.probabilities[label] == pytest.approx(p, abs=1e-5)
    assert max(abs(plain.probabilities[k] - with_adapter.probabilities[k]) for k in plain.probabilities) > 1e-4
    assert "adapter" in with_adapter.model


def test_tiny_vlm_explanation_without_a_final_answer_is_invalid_not_guessed(backends):
    from facescan.explain import explain_with_vlm

    text, pred = explain_with_vlm(backends["paligemma"], _chip(3))
    # random weights write no "Final answer: <emotion>" line: the text is kept, the label is not guessed
    assert pred.label is None and pred.raw == text and pred.mode == "explanation" and pred.error


@pytest.mark.parametrize("family", ["paligemma", "llava"])
def test_tiny_vlm_box_choice_runs_and_an_unusable_answer_is_invalid(backends, family):
    from facescan.ask import resolve_with_vlm
    from facescan.schema import Box, Face

    faces = [Face(index=i, box=Box(x=8 + 40 * i, y=10, width=30, height=30), score=1.0) for i in range(3)]
    image = np.random.default_rng(5).integers(0, 255, (64, 128, 3), dtype=np.uint8)
    answer = resolve_with_vlm(backends[family], image, "the person in the middle", faces)
    # random weights do not answer with exactly one box number: recorded, never guessed
    if answer.status == "answered":
        assert answer.face in (0, 1, 2)
    else:
        assert answer.status in ("invalid answer", "no match") and len(answer.candidates) == 3
    assert "the VLM answered" in answer.reasons[0]

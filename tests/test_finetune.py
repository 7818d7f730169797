"""facescan finetune on tiny models: LoRA touches only adapters, merge equals base + adapter,
resume continues at the checkpoint step with the same data order; instruction/CoT record schema."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="fine-tuning needs the finetune extra")
pytest.importorskip("peft", reason="fine-tuning needs the finetune extra (peft)")
pytest.importorskip("datasets", reason="fine-tuning needs the finetune extra (datasets)")

from facescan.explain import chain_of_thought  # noqa: E402
from facescan.train.finetune import FinetuneConfig, finetune, load_config  # noqa: E402
from facescan.train.instruct import RECORD_FIELDS, build_records, load_records  # noqa: E402

from .dataset_layouts import write_fairface  # noqa: E402


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("ff")
    write_fairface(root, n=24, split="train")
    write_fairface(root, n=8, split="val")
    return root


def _cfg(data, out, **kw):
    base = dict(dataset=f"fairface:{data}", out=str(out), attributes=["gender", "age"], method="lora",
                max_steps=6, batch_size=4, save_steps=3, logging_steps=1, tiny_hidden=32, tiny_layers=2,
                tiny_image_size=32, lr=5e-3, lora_r=4, lora_alpha=8, lora_dropout=0.0)
    base.update(kw)
    return FinetuneConfig(**base)


@pytest.mark.slow
def test_lora_changes_only_adapters_and_the_merged_model_equals_base_plus_adapter(data, tmp_path):
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForImageTextToText

    result = finetune(_cfg(data, tmp_path / "run"), evaluate=False)
    out = tmp_path / "run"
    adapter = load_file(out / "adapter" / "adapter_model.safetensors")
    assert adapter and all("lora_" in k for k in adapter)
    assert any(float(v.abs().max()) > 0 for k, v in adapter.items() if "lora_B" in k)  # B starts at zero

    base_a = AutoModelForImageTextToText.from_pretrained(out / "base")
    peft_model = PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(out / "base"), out / "adapter")
    inner = {k.replace("base_model.model.", "").replace(".base_layer", ""): v
             for k, v in peft_model.state_dict().items() if "lora_" not in k}
    for k, v in base_a.state_dict().items():
        assert torch.equal(v, inner[k]), f"base weight {k} changed"

    merged = AutoModelForImageTextToText.from_pretrained(result["model"])
    from facescan.backends.hf import load_processor

    proc = load_processor(str(result["model"]))
    from PIL import Image

    inputs = proc(text=["<image>what"], images=[[Image.fromarray(np.full((32, 32, 3), 120, np.uint8))]],
                  return_tensors="pt")
    inputs.pop("labels", None)
    with torch.no_grad():
        a = merged(**inputs).logits
        b = peft_model(**inputs).logits
        c = base_a(**inputs).logits
    assert torch.allclose(a, b, atol=1e-4)
    assert not torch.allclose(a, c, atol=1e-4)
    assert (out / "loss.png").stat().st_size > 1000


@pytest.mark.parametrize("family", ["paligemma", "llava"])  # the processor masks / the collator masks
def test_the_labels_cover_exactly_the_answer_tokens(family, tmp_path):
    from PIL import Image

    from facescan.backends.hf import load_processor
    from facescan.backends.tiny import build_tiny_vlm
    from facescan.train.finetune import _Collator

    processor = load_processor(str(build_tiny_vlm(family, tmp_path / family)))
    tok = processor.tokenizer
    image = Image.fromarray(np.full((32, 32, 3), 120, np.uint8))
    batch = [{"image": image, "question": "what is the age group of the person?", "answer": "young adult"},
             {"image": image, "question": "gender?", "answer": "a woman smiling at the camera"}]
    inputs = _Collator(processor, 32)(batch)
    assert inputs["labels"].shape == inputs["input_ids"].shape
    for row, record in enumerate(batch):
        ids, labels, mask = inputs["input_ids"][row], inputs["labels"][row], inputs["attention_mask"][row]
        kept = (labels != -100).nonzero().flatten().tolist()
        first, last = kept[0], kept[-1]
        assert kept == list(range(first, last + 1))  # one contiguous span ...
        assert int(mask[last + 1 :].sum()) == 0  # ... that ends where the padding begins
        assert int(mask[:first].sum()) == first  # everything before it is (unpadded) prompt, masked
        answer = tok(record["answer"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        assert labels[kept].tolist() == ids[kept].tolist() == answer
        assert tok.decode(labels[kept], skip_special_tokens=True) == record["answer"]


@pytest.mark.slow
def test_resume_continues_from_the_checkpoint_with_the_same_data_order(data, tmp_path):
    full = finetune(_cfg(data, tmp_path / "a", method="full"), evaluate=False)
    stopped = finetune(_cfg(data, tmp_path / "b", method="full", stop_after_steps=3), evaluate=False)
    assert stopped["steps"] == 3 and stopped["model"] is None
    assert (tmp_path / "b" / "checkpoints" / "checkpoint-3").exists()
    resumed = finetune(_cfg(data, tmp_path / "b", method="full"), evaluate=False)
    assert resumed["steps"] == 6
    losses_a = {h["step"]: h["loss"] for h in full["history"]}
    losses_b = {h["step"]: h["loss"] for h in resumed["history"]}
    state = json.loads((tmp_path / "b" / "checkpoints" / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    assert [h["step"] for h in stopped["history"]] == [1, 2, 3]
    for step in (4, 5, 6):
        assert losses_b[step] == pytest.approx(losses_a[step], rel=1e-4)


def test_instruction_and_cot_records_follow_the_schema(data, tmp_path):
    path = build_records(f"fairface:{data}", "val", tmp_path / "d", ["age", "gender", "race"], phrasings_per_item=2)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 8 * 3 * 2
    for r in rows:
        assert tuple(r) == RECORD_FIELDS and r["kind"] == "answer"
        assert r["label"] in __import__("facescan").taxonomy.label_set(r["label_set"]).labels
    ds = load_records(path)
    assert ds.column_names == list(RECORD_FIELDS) and ds[0]["image"].size == (48, 48)

    from facescan.explain.aus import AUReading

    readings = [AUReading("AU12", "lip corner puller", 3.2, 0.9, ("happy", "contempt")),
                AUReading("AU6", "cheek raiser (eye narrowing)", 2.1, 0.4, ("happy",)),
                AUReading("AU4", "brow lowerer", 0.2, 0.4, ("angry",))]
    text = chain_of_thought(readings, "happy", "fer7")
    lines = text.splitlines()
    assert lines[0] == "Key observations:" and lines[1].startswith("- AU12 (lip corner puller), intensity 3.2/5")
    assert "linked with happy" in lines[1] and "contempt" not in lines[1]  # fer7 has no contempt
    assert lines[-2].startswith("Overall interpretation: AU12 and AU6 point to happy")
    assert lines[-1] == "Final answer: happy"
    from facescan.backends.parsing import parse_answer

    assert parse_answer(lines[-1].split(": ", 1)[1], "fer7") == "happy"


def test_config_file_and_bad_method(tmp_path):
    cfg_path = tmp_path / "c.toml"
    cfg_path.write_text('dataset = "fairface:x"\n[train]\nmethod = "full"\nmax_steps = 5\n')
    cfg = load_config(cfg_path)
    assert cfg.method == "full" and cfg.max_steps == 5
    cfg_path.write_text('dataset = "fairface:x"\nlearning_rate = 1\n')
    with pytest.raises(ValueError, match="learning_rate"):
        load_config(cfg_path)
    with pytest.raises(ValueError, match="method"):
        FinetuneConfig(dataset="x", method="dpo")

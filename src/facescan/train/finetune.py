"""``facescan finetune CONFIG``: turn a VLM into a face-attribute specialist (the FaceScanPaliGemma recipe).

transformers' Trainer + peft: LoRA, QLoRA (4-bit base, CUDA) or full fine-tuning; loss on the
answer tokens only; gradient accumulation; checkpoints every ``save_steps`` and resume from the
last one (Trainer restores the step, optimizer, scheduler, RNG and data order); at the end the
adapter is merged, the model exported to ``OUT/model`` (loadable with ``--backend hf:OUT/model``,
prompts included) and evaluated with ``facescan eval`` in scoring mode.

The ``tiny`` base builds a small random-init model of the PaliGemma architecture with an offline
tokenizer, so the whole recipe runs on a CPU without a model hub.
"""

from __future__ import annotations

import json
import time
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path


@dataclass
class FinetuneConfig:
    """A fine-tuning run (a TOML file's keys, see ``configs/finetune-tiny.toml``)."""

    dataset: str
    out: str = "runs/finetune"
    base: str = "tiny"  # hub id, local folder, or "tiny"
    processor: str | None = None
    tiny_family: str = "paligemma"
    tiny_image_size: int = 48
    tiny_hidden: int = 64
    tiny_layers: int = 3
    attributes: list[str] = field(default_factory=lambda: ["age", "gender", "race"])
    train_split: str = "train"
    eval_split: str = "val"
    limit: int | None = None
    eval_limit: int | None = None
    phrasings: int = 1
    cot: bool = False
    method: str = "lora"  # lora | qlora | full
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    max_steps: int = 1000
    max_minutes: float | None = None  # a safety stop; the schedule is sized by max_steps
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    save_steps: int = 200
    logging_steps: int = 10
    stop_after_steps: int | None = None  # a deliberate interruption (checkpoint saved), for resume tests
    seed: int = 0
    dtype: str = "fp32"  # fp32 | bf16 | fp16
    threads: int | None = None

    def __post_init__(self):
        if self.method not in ("lora", "qlora", "full"):
            raise ValueError(f"method must be lora, qlora or full, not {self.method!r}")


def load_config(path: Path) -> FinetuneConfig:
    """Read a TOML config (top-level keys, or grouped in tables — table names are ignored)."""
    data = tomllib.loads(Path(path).read_text())
    flat: dict = {}
    for k, v in data.items():
        flat.update(v if isinstance(v, dict) else {k: v})
    known = {f.name for f in fields(FinetuneConfig)}
    unknown = set(flat) - known
    if unknown:
        raise ValueError(f"{path}: unknown keys {', '.join(sorted(unknown))}")
    return FinetuneConfig(**flat)


# ------------------------------------------------------------------------------- data
class _Collator:
    """Batches of (image, question, answer) → model inputs whose labels cover the answer only."""

    def __init__(self, processor, image_size: int = 224):
        from facescan.backends.hf import prompt_text

        self.processor, self.image_size, self._prompt = processor, image_size, prompt_text
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.paligemma = type(processor).__name__.startswith("PaliGemma")

    def __call__(self, batch: list[dict]):
        import torch

        images = [[r["image"].convert("RGB").resize((self.image_size, self.image_size))] for r in batch]
        prompts = [self._prompt(self.processor, r["question"]) for r in batch]
        if self.paligemma:  # PaliGemma's processor appends the suffix and masks the prefix itself
            inputs = self.processor(text=prompts, images=images, suffix=[r["answer"] for r in batch],
                                    return_tensors="pt", padding="longest")
            return dict(inputs)
        eos = self.tokenizer.eos_token or ""
        full = [p + r["answer"] + eos for p, r in zip(prompts, batch)]
        self.tokenizer.padding_side = "right"
        inputs = dict(self.processor(text=full, images=images, return_tensors="pt", padding=True))
        prompt_only = self.processor(text=prompts, images=images, return_tensors="pt", padding=True)
        labels = inputs["input_ids"].clone()
        prompt_len = prompt_only["attention_mask"].sum(1)
        for i, n in enumerate(prompt_len.tolist()):
            labels[i, :n] = -100
        labels[inputs["attention_mask"] == 0] = -100
        inputs["labels"] = labels
        return {k: v for k, v in inputs.items() if isinstance(v, torch.Tensor)}


def _write_preset(cfg: FinetuneConfig, label_sets: dict[str, str], folder: Path) -> None:
    """The prompts the model was trained with, stored next to it (HFBackend loads them)."""
    from facescan.backends.hf import FOLDER_PRESET
    from facescan.train.instruct import phrasings

    lines = ["# written by facescan finetune: the questions this model was trained to answer",
             'description = "fine-tuned by facescan finetune"', 'style = "per_attribute"', "", "[label_sets]"]
    lines += [f'{a} = "{s}"' for a, s in label_sets.items()] + ["", "[questions]"]
    lines += [f"{a} = {json.dumps(phrasings()[a][0])}" for a in label_sets]
    (folder / FOLDER_PRESET).write_text("\n".join(lines) + "\n")


# ------------------------------------------------------------------------------- run
def finetune(cfg: FinetuneConfig, evaluate: bool = True) -> dict:
    """Run (or resume) the recipe; returns {"model": folder, "eval": metrics or None, "steps": n}."""
    import torch

    from facescan.backends.hf import load_processor

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    base = _base_model(cfg, out)
    train_data, label_sets = _training_data(cfg, out)
    processor = load_processor(cfg.processor or base)
    resume = _last_checkpoint(out / "checkpoints")
    model = _load_model(cfg, base, resume)
    trainer = _trainer(cfg, out, model, processor, train_data)
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    steps = trainer.state.global_step
    history = [h for h in trainer.state.log_history if "loss" in h]
    if cfg.stop_after_steps and steps < cfg.max_steps:
        return {"model": None, "eval": None, "steps": steps, "history": history}
    (out / "loss.json").write_text(json.dumps(history))
    _plot_loss(history, out / "loss.png")
    folder = _export(cfg, trainer.model, processor, label_sets, out)
    metrics = _evaluate(cfg, folder, label_sets, out) if evaluate else None
    return {"model": folder, "eval": metrics, "steps": steps, "history": history}


def _base_model(cfg: FinetuneConfig, out: Path) -> str:
    """The base model to fine-tune: ``cfg.base``, or a tiny one built once into ``OUT/base``."""
    if cfg.base != "tiny":
        return cfg.base
    from facescan.backends.tiny import build_tiny_vlm

    base = out / "base"
    if not (base / "config.json").exists():
        build_tiny_vlm(cfg.tiny_family, str(base), seed=cfg.seed, image_size=cfg.tiny_image_size,
                       hidden=cfg.tiny_hidden, layers=cfg.tiny_layers)
    return str(base)


def _training_data(cfg: FinetuneConfig, out: Path):
    """The instruction records (built once into ``OUT/data``) and each attribute's label set."""
    from facescan.train.instruct import build_records, load_records

    records = out / "data" / f"{cfg.train_split}.jsonl"
    if not records.exists():
        build_records(cfg.dataset, cfg.train_split, out / "data", cfg.attributes, cfg.phrasings, cfg.cot,
                      cfg.limit, cfg.seed)
    train_data = load_records(records)
    label_sets: dict[str, str] = {}
    for row in train_data.select_columns(["attribute", "label_set"]).to_iterable_dataset():
        label_sets.setdefault(row["attribute"], row["label_set"])
    return train_data, label_sets


def _last_checkpoint(folder: Path) -> Path | None:
    """The newest ``checkpoint-N`` in ``folder`` (by step), or None."""
    checkpoints = sorted(folder.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    return checkpoints[-1] if checkpoints else None


def _torch_dtype(cfg: FinetuneConfig):
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[cfg.dtype]


def _load_kwargs(cfg: FinetuneConfig) -> dict:
    """``from_pretrained`` keyword arguments: the dtype, and 4-bit quantization for QLoRA."""
    import torch

    dtype = _torch_dtype(cfg)
    kwargs: dict = {"dtype": dtype}
    if cfg.method == "qlora":
        if not torch.cuda.is_available():
            raise ValueError("QLoRA needs a CUDA GPU (bitsandbytes 4-bit); use method = \"lora\" on CPU")
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                           bnb_4bit_compute_dtype=dtype)
    return kwargs


def _load_model(cfg: FinetuneConfig, base: str, resume: Path | None):
    """The model to train: the base (or a full fine-tune's checkpoint), wrapped in LoRA adapters for (Q)LoRA."""
    from transformers import AutoModelForImageTextToText

    kwargs = _load_kwargs(cfg)
    # The weights of a checkpoint are loaded with from_pretrained, which maps the saved key names
    # back to the model's; Trainer's own resume loading misses them for the VLM families (their
    # save converts keys), and would silently continue from the base weights.
    full_from = resume if (resume and cfg.method == "full") else base
    model = AutoModelForImageTextToText.from_pretrained(full_from, **kwargs)
    if cfg.method not in ("lora", "qlora"):
        return model
    from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training

    if cfg.method == "qlora":
        model = prepare_model_for_kbit_training(model)
    if resume:
        return PeftModel.from_pretrained(model, resume, is_trainable=True)
    return get_peft_model(model, LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                                            target_modules=cfg.target_modules, task_type="CAUSAL_LM"))


def _stop_callback(cfg: FinetuneConfig):
    """A callback that stops (and saves) after ``max_minutes`` or at ``stop_after_steps``."""
    from transformers import TrainerCallback

    class TimeLimit(TrainerCallback):
        def __init__(self):
            self.start = time.time()

        def on_step_end(self, args, state, control, **kw):
            late = cfg.max_minutes and time.time() - self.start > 60 * cfg.max_minutes
            if late or (cfg.stop_after_steps and state.global_step >= cfg.stop_after_steps):
                control.should_training_stop = True
                control.should_save = True

    return TimeLimit()


def _training_args(cfg: FinetuneConfig, out: Path):
    import torch
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(out / "checkpoints"), per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum, learning_rate=cfg.lr, weight_decay=cfg.weight_decay,
        max_steps=cfg.max_steps, warmup_steps=round(cfg.warmup_ratio * cfg.max_steps), lr_scheduler_type="cosine",
        logging_steps=cfg.logging_steps, save_steps=cfg.save_steps, save_total_limit=2, seed=cfg.seed,
        data_seed=cfg.seed,
        report_to=[], remove_unused_columns=False, dataloader_num_workers=0,
        bf16=cfg.dtype == "bf16", fp16=cfg.dtype == "fp16", use_cpu=not torch.cuda.is_available(),
        disable_tqdm=False,
    )


def _image_side(processor) -> int:
    """The square side the processor's images are resized to (224 when it does not say)."""
    image_size = getattr(getattr(processor, "image_processor", None), "size", {}) or {}
    return image_size.get("height") or image_size.get("shortest_edge") or 224


def _trainer(cfg: FinetuneConfig, out: Path, model, processor, train_data):
    from transformers import Trainer

    args = _training_args(cfg, out)
    return Trainer(model=model, args=args, train_dataset=train_data,
                   data_collator=_Collator(processor, _image_side(processor)), callbacks=[_stop_callback(cfg)])


def _export(cfg: FinetuneConfig, model, processor, label_sets: dict[str, str], out: Path) -> Path:
    """Save the adapter (LoRA), merge it, and write the model, its processor and prompts to ``OUT/model``."""
    if cfg.method in ("lora", "qlora"):
        model.save_pretrained(out / "adapter")
        model = model.merge_and_unload()
    folder = out / "model"
    model.save_pretrained(folder)
    (processor if hasattr(processor, "save_pretrained") else processor.tokenizer).save_pretrained(folder)
    if not hasattr(processor, "save_pretrained"):
        processor.image_processor.save_pretrained(folder)
    _write_preset(cfg, label_sets, folder)
    return folder


def _evaluate(cfg: FinetuneConfig, folder: Path, label_sets: dict[str, str], out: Path) -> dict:
    from facescan.evaluate import run_eval

    return run_eval(cfg.dataset, cfg.eval_split, f"hf:{folder}", out / "eval", attributes=list(label_sets),
                    limit=cfg.eval_limit, seed=cfg.seed, progress=True)


def _plot_loss(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([h["step"] for h in history], [h["loss"] for h in history])
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (answer tokens)")
    ax.set_yscale("log")
    ax.set_title("facescan finetune")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


"""Local VLMs through transformers: closed-set scoring (default) or free generation + parsing.

Spec: ``hf:<hub id or folder>[?option=value&…]`` with options ``mode`` (scoring | generation),
``preset`` (a prompt preset name or .toml file), ``device`` (cpu | cuda | cuda:N | mps),
``dtype`` (fp32 | bf16 | fp16), ``bits`` (4 | 8: bitsandbytes, CUDA only), ``adapter`` (a PEFT
adapter folder or id to load on top), ``revision``, ``processor`` (where the processor lives
when the weights folder has none), ``max_new_tokens``.

Scoring mode asks one question per attribute and scores every label's answer tokens: one
forward pass over image + question fills the KV cache, and one batched pass over all candidate
answers continues from it, so the answer is always a label with a probability.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facescan import prompts
from facescan.backends.base import FaceInput
from facescan.backends.parsing import parse_answer, parse_json_answer
from facescan.registry import parse_query, typed_options
from facescan.schema import AttributePrediction

FOLDER_PRESET = "facescan_preset.toml"  # written by `facescan finetune` next to the weights it exports
DTYPES = {"fp32": "float32", "float32": "float32", "bf16": "bfloat16", "bfloat16": "bfloat16",
          "fp16": "float16", "float16": "float16"}


@dataclass
class HFOptions:
    """Options of an ``hf:`` backend spec."""

    model: str
    mode: str = "scoring"
    preset: str | None = None  # default: the folder's facescan_preset.toml (fine-tuned models), else "paper"
    device: str | None = None
    dtype: str | None = None
    bits: int | None = None
    adapter: str | None = None
    revision: str | None = None
    processor: str | None = None
    max_new_tokens: int = 24
    min_new_tokens: int = 0  # benchmarks: answers of a fixed length, whatever the weights
    batch_size: int = 8
    chip_size: int = 224  # faces are resized to this square, so every face yields as many image tokens

    def __post_init__(self):
        if not self.model:
            raise ValueError("hf backend needs a model: hf:<hub id or local folder>")
        if self.mode not in ("scoring", "generation"):
            raise ValueError(f"hf backend mode must be scoring or generation, not {self.mode!r}")
        if self.dtype and self.dtype not in DTYPES:
            raise ValueError(f"hf backend dtype must be one of {', '.join(DTYPES)}, not {self.dtype!r}")
        if self.bits not in (None, 4, 8):
            raise ValueError(f"hf backend bits must be 4 or 8, not {self.bits}")

    @classmethod
    def build(cls, model: str, **options) -> HFOptions:
        """Options from a model and ``key=value`` strings (or typed values), with clear errors."""
        return cls(model=model, **typed_options(cls, options, "hf backend"))

    @classmethod
    def parse(cls, text: str) -> HFOptions:
        """``model?key=value&…`` → options."""
        model, _, query = text.partition("?")
        return cls.build(model, **parse_query(query, text))


def _serialized(method):
    """Run ``method`` under the backend's model lock: one model call at a time, whichever thread asks."""

    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with self._model_lock:
            return method(self, *args, **kwargs)

    return locked


def _pick_device(requested: str | None) -> str:
    import torch

    if requested:
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


class _PartsProcessor:
    """Image processor + tokenizer standing in for a family processor that cannot be built.

    transformers' Qwen2-VL / Qwen2.5-VL processors include a video processor that needs
    torchvision; where torchvision is missing, this builds the same model inputs: the image
    placeholder is expanded to one token per merged patch, as Qwen2VLProcessor does.
    """

    def __init__(self, image_processor, tokenizer, image_token: str, merge_size: int):
        self.image_processor, self.tokenizer = image_processor, tokenizer
        self.image_token, self.merge_size = image_token, merge_size
        self.chat_template = tokenizer.chat_template

    def apply_chat_template(self, messages, **kwargs):
        return self.tokenizer.apply_chat_template(messages, **kwargs)

    def __call__(self, text, images, return_tensors="pt", **kwargs):
        image_inputs = self.image_processor(images=images, return_tensors=return_tensors)
        grids = iter(image_inputs["image_grid_thw"].prod(-1).tolist())
        expanded = []
        for t in text:
            while self.image_token in t:
                t = t.replace(self.image_token, "<|placeholder|>" * (next(grids) // self.merge_size**2), 1)
            expanded.append(t.replace("<|placeholder|>", self.image_token))
        text_inputs = dict(self.tokenizer(expanded, return_tensors=return_tensors, padding=True))
        image_id = self.tokenizer.convert_tokens_to_ids(self.image_token)
        text_inputs["mm_token_type_ids"] = (text_inputs["input_ids"] == image_id).long()  # 1 = image token
        return {**text_inputs, **image_inputs}

    def batch_decode(self, *args, **kwargs):
        return self.tokenizer.batch_decode(*args, **kwargs)


#: Seconds to wait for the Hugging Face hub before saying it cannot be reached.
HUB_TIMEOUT_S = 10.0


def check_available(name: str, revision: str | None = None) -> None:
    """Fail fast, in one line, when ``name`` is neither a local folder, nor in the local hub cache,
    nor reachable on the hub (transformers would otherwise retry for minutes offline)."""
    if Path(name).exists():
        return
    import huggingface_hub

    if isinstance(huggingface_hub.try_to_load_from_cache(name, "config.json", revision=revision), str):
        return
    where = f"{name} is not a local folder and not in the Hugging Face cache ({huggingface_hub.constants.HF_HUB_CACHE})"
    if huggingface_hub.constants.HF_HUB_OFFLINE:
        raise ValueError(f"{where}, and HF_HUB_OFFLINE is set: download it where there is network, or name a folder")
    try:
        huggingface_hub.model_info(name, revision=revision, timeout=HUB_TIMEOUT_S)
    except (huggingface_hub.errors.RepositoryNotFoundError, huggingface_hub.errors.RevisionNotFoundError):
        raise ValueError(f"no model {name!r}{f' at revision {revision}' if revision else ''} on the Hugging Face "
                         "hub (check the spelling; a private or gated model needs `hf auth login`)") from None
    except huggingface_hub.errors.GatedRepoError:
        return  # it exists: from_pretrained will say what access it needs
    except Exception as e:  # noqa: BLE001 - no network, DNS, proxy, timeout: all mean the hub cannot be reached
        raise ValueError(f"{where}, and the hub cannot be reached ({type(e).__name__}: {e}): download it where "
                         "there is network, or name a local folder") from None


def load_processor(source: str, revision: str | None = None):
    """AutoProcessor, or the image processor + tokenizer where the family processor cannot be built here."""
    from transformers import AutoConfig, AutoImageProcessor, AutoProcessor, AutoTokenizer

    try:
        processor = AutoProcessor.from_pretrained(source, revision=revision)
        if hasattr(processor, "image_processor"):
            return processor
    except (ImportError, OSError, ValueError, TypeError):
        pass
    config = AutoConfig.from_pretrained(source, revision=revision)
    if config.model_type not in ("qwen2_vl", "qwen2_5_vl"):
        raise ValueError(f"cannot build a processor for {source} ({config.model_type})")
    image_processor = AutoImageProcessor.from_pretrained(source, revision=revision)
    tokenizer = AutoTokenizer.from_pretrained(source, revision=revision)
    return _PartsProcessor(image_processor, tokenizer, "<|image_pad|>", image_processor.merge_size)


def prompt_text(processor, question: str) -> str:
    """The text fed with the image: the chat template where the model has one."""
    tokenizer = getattr(processor, "tokenizer", processor)
    template = getattr(processor, "chat_template", None) or getattr(tokenizer, "chat_template", None)
    if not template:  # PaliGemma-style: the image token, then the question; the processor adds the rest
        return getattr(processor, "image_token", "") + question
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


class HFBackend:
    """A local transformers VLM answering one question per attribute (or one JSON question)."""

    name = "hf"
    # The service calls one backend from its batcher and from the VLM chooser's thread at once; the
    # model and its generation state are not thread-safe. Re-entrant: predict calls generate.
    _model_lock: threading.RLock

    def __init__(self, options: HFOptions | str, model=None, processor=None):
        """``options`` as :class:`HFOptions` or ``model?key=value&…``; ``model``/``processor`` reuse loaded ones."""
        import torch

        self._model_lock = threading.RLock()
        self.options = HFOptions.parse(options) if isinstance(options, str) else options
        o = self.options
        own = Path(o.model) / FOLDER_PRESET
        self.preset = prompts.load_preset(o.preset or (own if own.exists() else "paper"))
        self.device = _pick_device(o.device)
        if o.bits and not self.device.startswith("cuda"):
            raise ValueError("4/8-bit loading (bitsandbytes) needs a CUDA device")
        self.base, self.adapter = o.model, o.adapter
        if o.adapter is None and (Path(o.model) / "adapter_config.json").exists():
            self.adapter = o.model  # an adapter folder names its base model in its config
            self.base = json.loads((Path(o.model) / "adapter_config.json").read_text())["base_model_name_or_path"]
        if processor is None or model is None:
            for name in {self.base, o.processor or self.base}:
                check_available(name, o.revision)
        self.processor = processor or load_processor(o.processor or self.base, o.revision)
        self.model = model or self._load_model()
        self.model.eval()
        self.tokenizer = getattr(self.processor, "tokenizer", self.processor)
        self.model_id = (self.base + (f"@{o.revision}" if o.revision else "")
                         + (f"+adapter:{self.adapter}" if self.adapter else ""))
        self._torch = torch

    @classmethod
    def from_spec(cls, model: str, **options) -> HFBackend:
        """The registry's factory: ``hf:<model>?key=value&…``."""
        return cls(HFOptions.build(model, **options))

    def _load_model(self):
        import torch
        from transformers import AutoModelForImageTextToText

        o = self.options
        kwargs: dict = {"revision": o.revision}
        dtype = DTYPES.get(o.dtype or ("bf16" if self.device.startswith("cuda") else "fp32"))
        kwargs["dtype"] = getattr(torch, dtype)
        if o.bits:
            from transformers import BitsAndBytesConfig

            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=o.bits == 4, load_in_8bit=o.bits == 8, bnb_4bit_compute_dtype=kwargs["dtype"])
            kwargs["device_map"] = self.device
        model = AutoModelForImageTextToText.from_pretrained(self.base, **kwargs)
        if self.adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, self.adapter)
        return model if o.bits else model.to(self.device)

    # ------------------------------------------------------------------ interface
    def supported_attributes(self) -> tuple[str, ...]:
        return tuple(a for a in self.preset.label_sets if a in self.preset.questions)

    @_serialized
    def predict(self, faces: Sequence[FaceInput], attributes: Sequence[str]) -> list[dict[str, AttributePrediction]]:
        """One question per attribute (or one JSON question) for a batch of faces at a time."""
        unknown = set(attributes) - set(self.supported_attributes())
        if unknown:
            raise ValueError(f"prompt preset {self.preset.name!r} has no question for {', '.join(sorted(unknown))}")
        images = [_pil(f.chip, self.options.chip_size) for f in faces]
        results: list[dict[str, AttributePrediction]] = [{} for _ in faces]
        for start in range(0, len(images), self.options.batch_size):
            batch = images[start : start + self.options.batch_size]
            if self.options.mode == "generation" and self.preset.style == "json":
                answers = self.generate(batch, self.preset.json_question(list(attributes)))
                for i, answer in enumerate(answers):
                    results[start + i] = self._from_json_answer(answer, list(attributes))
                continue
            for attr in attributes:
                if self.options.mode == "scoring":
                    preds = self._score_attribute(batch, attr)
                else:
                    preds = [self._from_answer(attr, a) for a in self.generate(batch, self.preset.question(attr))]
                for i, pred in enumerate(preds):
                    results[start + i][attr] = pred
        return results

    # ------------------------------------------------------------------ prompting
    def prompt_text(self, question: str) -> str:
        return prompt_text(self.processor, question)

    def model_inputs(self, images: list, question: str) -> dict:
        """Processor outputs for the same question about each image (equal lengths: no padding)."""
        text = self.prompt_text(question)
        inputs = self.processor(text=[text] * len(images), images=[[im] for im in images], return_tensors="pt")
        dtype = next(self.model.parameters()).dtype
        return {k: (v.to(self.device, dtype) if v.is_floating_point() else v.to(self.device))
                for k, v in dict(inputs).items() if hasattr(v, "to") and k != "labels"}

    def candidate_ids(self, attribute: str) -> list[list[int]]:
        """Token ids of every label's answer, in label-set order."""
        return [self.tokenizer(text, add_special_tokens=False)["input_ids"] for text in self.preset.options(attribute)]

    # ------------------------------------------------------------------ scoring
    def _meta(self, attr: str) -> dict:
        return {"attribute": attr, "label_set": self.preset.label_set(attr).name, "backend": self.name,
                "model": self.model_id, "mode": self.options.mode, "prompt": self.preset.name}

    def _score_attribute(self, images: list, attr: str) -> list[AttributePrediction]:
        inputs = self.model_inputs(images, self.preset.question(attr))
        logprobs = self.score_candidates(inputs, self.candidate_ids(attr))
        m = self._meta(attr)
        preds = []
        for row in logprobs:
            probs = np.exp(row - row.max())
            preds.append(AttributePrediction.from_probabilities(
                attr, m["label_set"], (probs / probs.sum()).tolist(), self.name, self.model_id, mode=m["mode"],
                prompt=m["prompt"]))
        return preds

    def score_candidates(self, inputs: dict, candidates: list[list[int]]) -> np.ndarray:
        """Total log-probability of each candidate continuation of each prefix: shape (batch, candidates).

        One forward over the prefixes (image + prompt, one per face) keeps their KV cache; one
        batched forward of every face × candidate continues from the cache repeated per candidate.
        """
        torch = self._torch
        n, longest = len(candidates), max(len(c) for c in candidates)
        firsts = torch.tensor([c[0] for c in candidates], device=self.device)
        with torch.no_grad():
            out = self.model(**inputs, use_cache=True)
            batch = out.logits.shape[0]
            scores = torch.log_softmax(out.logits[:, -1].float(), -1)[:, firsts]  # (batch, n)
            if longest > 1:
                cache = out.past_key_values
                cache.batch_repeat_interleave(n)  # rows: face 0 × every candidate, face 1 × …
                pad = self.tokenizer.pad_token_id or 0
                fed = torch.full((n, longest - 1), pad, dtype=torch.long, device=self.device)
                for i, c in enumerate(candidates):
                    fed[i, : len(c) - 1] = torch.tensor(c[:-1])
                # The prefixes are unpadded, so no attention mask is needed: each candidate attends to
                # its whole prefix, causally among its own tokens; positions follow from the cache
                # (and from the M-RoPE deltas the prefix pass stored, for Qwen2-VL).
                cont = self.model(input_ids=fed.repeat(batch, 1), past_key_values=cache, use_cache=True)
                logp = torch.log_softmax(cont.logits.float(), -1).view(batch, n, longest - 1, -1)
                for i, c in enumerate(candidates):
                    if len(c) > 1:
                        steps = torch.arange(len(c) - 1, device=self.device)
                        scores[:, i] += logp[:, i, steps, torch.tensor(c[1:], device=self.device)].sum(-1)
        return scores.cpu().numpy().astype(np.float64)

    # ------------------------------------------------------------------ generation
    @_serialized
    def generate(self, images: list, question: str) -> list[str]:
        """Greedy answers to the same question about each image."""
        inputs = self.model_inputs(images, question)
        with self._torch.no_grad():
            out = self.model.generate(**inputs, max_new_tokens=self.options.max_new_tokens,
                                      min_new_tokens=self.options.min_new_tokens, do_sample=False)
        new = out[:, inputs["input_ids"].shape[1] :]
        return [t.strip() for t in self.tokenizer.batch_decode(new, skip_special_tokens=True)]

    @_serialized
    def ask_image(self, image: np.ndarray, prompt: str, max_new_tokens: int | None = None) -> str:
        """A free-text answer to ``prompt`` about a whole RGB image (numbered boxes, explanations)."""
        from PIL import Image

        inputs = self.model_inputs([Image.fromarray(np.ascontiguousarray(image[..., :3]))], prompt)
        with self._torch.no_grad():
            out = self.model.generate(**inputs, max_new_tokens=max_new_tokens or self.options.max_new_tokens,
                                      do_sample=False)
        return self.tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()

    def _from_answer(self, attr: str, answer: str | None) -> AttributePrediction:
        m = self._meta(attr)
        ls = self.preset.label_set(attr)
        spellings = {lab: self.preset.answer(attr, lab) for lab in ls.labels}
        label = parse_answer(answer, ls, spellings)
        if label is None:
            return AttributePrediction.invalid(attr, ls.name, self.name, self.model_id,
                                               "answer maps to no label", raw=answer, mode=m["mode"],
                                               prompt=m["prompt"])
        probs = [1.0 if lab == label else 0.0 for lab in ls.labels]
        return AttributePrediction.from_probabilities(attr, ls.name, probs, self.name, self.model_id, raw=answer,
                                                      mode=m["mode"], prompt=m["prompt"])

    def _from_json_answer(self, answer: str, attributes: list[str]) -> dict[str, AttributePrediction]:
        obj = parse_json_answer(answer) or {}
        out = {}
        for attr in attributes:
            pred = self._from_answer(attr, None if obj.get(attr) is None else str(obj[attr]))
            out[attr] = pred.model_copy(update={"raw": answer})
        return out


def _pil(chip: np.ndarray, size: int):
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(chip[..., :3] if chip.ndim == 3 else chip)).convert("RGB")
    return image.resize((size, size), Image.BICUBIC)


class FaceScanPaliGemmaBackend:
    """The paper's FaceScanPaliGemma: one fine-tuned PaliGemma per attribute, each asked its own
    question and answering in its own label set (age in 5 groups, AffectNet's 8 emotions, …).

    Spec: ``facescan-paligemma[?age=ID&gender=ID&race=ID&emotion=ID&processor=ID&mode=…&device=…&dtype=…&bits=…]``;
    ids default to the published models in the ``facescan-paligemma`` prompt preset. Each model
    is loaded the first time its attribute is asked for.
    """

    name = "facescan-paligemma"
    PRESET = "facescan-paligemma"

    def __init__(self, models: dict[str, str] | None = None, processor: str | None = None, **shared):
        """``models``: attribute → hub id or folder (default: the preset's); ``shared``: HFOptions for all four."""
        self.preset = prompts.load_preset(self.PRESET)
        self.models = {a: m for a, m in self.preset.models.items() if a != "processor"}
        unknown = set(models or {}) - set(self.models)
        if unknown:
            raise ValueError(f"facescan-paligemma has no model for {', '.join(sorted(unknown))}")
        self.models.update(models or {})
        self.processor_source = processor or self.preset.models.get("processor")
        allowed = ("mode", "device", "dtype", "bits", "revision", "max_new_tokens")
        bad = [k for k in shared if k not in allowed]
        if bad:
            raise ValueError(f"unknown facescan-paligemma option {bad[0]!r}; known: "
                             f"{', '.join([*self.models, 'processor', *allowed])}")
        self.shared = shared
        self._backends: dict[str, HFBackend] = {}

    @classmethod
    def from_spec(cls, target: str = "", **options) -> FaceScanPaliGemmaBackend:
        """The registry's factory: ``facescan-paligemma?age=ID&…&mode=…``."""
        preset = prompts.load_preset(cls.PRESET)
        models = {a: options.pop(a) for a in list(options) if a in preset.models and a != "processor"}
        return cls(models, options.pop("processor", None), **options)

    def supported_attributes(self) -> tuple[str, ...]:
        return tuple(self.models)

    def backend_for(self, attribute: str) -> HFBackend:
        if attribute not in self._backends:
            folder = Path(self.models[attribute])
            has_processor = any((folder / f).exists() for f in ("processor_config.json", "preprocessor_config.json"))
            processor = self.processor_source if self.processor_source and not has_processor else None
            options = HFOptions.build(self.models[attribute], preset=self.PRESET, processor=processor, **self.shared)
            self._backends[attribute] = HFBackend(options)
        return self._backends[attribute]

    def predict(self, faces: Sequence[FaceInput], attributes: Sequence[str]) -> list[dict[str, AttributePrediction]]:
        unknown = set(attributes) - set(self.models)
        if unknown:
            raise ValueError(f"facescan-paligemma cannot predict {', '.join(sorted(unknown))}")
        results: list[dict[str, AttributePrediction]] = [{} for _ in faces]
        for attr in attributes:
            for i, pred in enumerate(self.backend_for(attr).predict(faces, [attr])):
                results[i][attr] = pred[attr].model_copy(update={"backend": self.name})
        return results

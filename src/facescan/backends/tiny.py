"""Tiny random-weight VLMs of real architectures, built offline from a config.

They exist so that the transformers code paths (loading a local folder, processors, scoring,
generation, fine-tuning) run on any machine without a model hub: the tests, the benchmarks
and ``facescan finetune``'s ``tiny`` preset build one, ``save_pretrained`` it, and load it
back through the same code a user's folder takes. Their answers are meaningless until trained.

Each family gets a byte-level BPE tokenizer trained here on a small corpus (no download) with
the special tokens its processor expects, and the PIL image processor of the family.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from facescan import prompts, taxonomy

FAMILIES = ("paligemma", "llava", "qwen2_vl", "idefics3")

_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|' + message['role'] + '|>' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}{{ IMAGE }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{{ '<|end|>' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


def _corpus() -> list[str]:
    """Text the tokenizer is trained on: every prompt and label spelling facescan uses."""
    lines = ["the person in the image is a young adult man woman child smiling looking at the camera"]
    for preset in prompts.list_presets():
        p = prompts.load_preset(preset)
        lines += [t for t in p.questions.values()]
        if p.json_prompt:
            lines.append(p.json_prompt)
    for ls in taxonomy.LABEL_SETS.values():
        lines += [ls.pretty(lab) for lab in ls.labels] + list(ls.labels)
    lines += [f"{n} years old" for n in range(0, 100)]
    return lines


def build_tokenizer(special_tokens: list[str], vocab_size: int = 600, bos: str = "<bos>", eos: str = "<eos>",
                    pad: str = "<pad>"):
    """A byte-level BPE tokenizer trained on :func:`_corpus`, wrapped for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = [pad, bos, eos, *special_tokens]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_corpus(), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos, pad_token=pad,
                                   extra_special_tokens={}, additional_special_tokens=special_tokens)


def _text_config(vocab_size: int, hidden: int = 32, layers: int = 2, **extra) -> dict:
    return dict(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                num_attention_heads=4, num_key_value_heads=2, head_dim=hidden // 4, max_position_embeddings=2048,
                **extra)


class _Parts(NamedTuple):
    """A built tiny VLM: the model, and what its folder needs to load a processor back."""

    model: object
    tokenizer: object
    image_processor: object
    processor: object | None  # None: saved as tokenizer + image processor


_VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)


def build_tiny_vlm(family: str, folder: str | Path, seed: int = 0, image_size: int = 32, hidden: int = 32,
                   layers: int = 2) -> Path:
    """Build a random-weight VLM of ``family`` with its processor and save both to ``folder``.

    ``image_size``, ``hidden`` and ``layers`` size the PaliGemma family (the fine-tuning recipe's
    ``tiny`` preset uses a larger one than the tests); the other families keep the test size.
    """
    import torch

    if family not in FAMILIES:
        raise ValueError(f"unknown tiny family {family!r}; choose one of {', '.join(FAMILIES)}")
    folder = Path(folder)
    torch.manual_seed(seed)
    if family == "paligemma":
        parts = _paligemma(image_size, hidden, layers)
    else:
        parts = {"llava": _llava, "qwen2_vl": _qwen2_vl, "idefics3": _idefics3}[family]()
    _save(parts, folder)
    return folder


def _paligemma(image_size: int, hidden: int, layers: int) -> _Parts:
    import transformers as tf

    tokenizer = build_tokenizer(["<image>"])
    patch = 8
    pali_vision = dict(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                       num_attention_heads=4)
    config = tf.PaliGemmaConfig(
        vision_config=dict(model_type="siglip_vision_model", image_size=image_size, patch_size=patch,
                           **pali_vision),
        text_config=dict(model_type="gemma", **_text_config(len(tokenizer), hidden, layers)),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"), projection_dim=hidden, hidden_size=hidden,
        vocab_size=len(tokenizer),
    )
    config.text_config.num_image_tokens = (image_size // patch) ** 2
    config.vision_config.projection_dim = hidden
    model = tf.PaliGemmaForConditionalGeneration(config)
    image_processor = tf.SiglipImageProcessorPil(size={"height": image_size, "width": image_size})
    image_processor.image_seq_length = (image_size // patch) ** 2
    processor = tf.PaliGemmaProcessor(image_processor=image_processor, tokenizer=tokenizer)
    return _Parts(model, tokenizer, image_processor, processor)


def _llava() -> _Parts:
    import transformers as tf

    tokenizer = build_tokenizer(["<image>", "<|user|>", "<|assistant|>", "<|end|>"])
    image_size, patch = 32, 8
    config = tf.LlavaConfig(
        vision_config=dict(model_type="clip_vision_model", image_size=image_size, patch_size=patch,
                           projection_dim=32, **_VISION),
        text_config=dict(model_type="llama", **_text_config(len(tokenizer))),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"), vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    model = tf.LlavaForConditionalGeneration(config)
    image_processor = tf.CLIPImageProcessorPil(size={"shortest_edge": image_size},
                                               crop_size={"height": image_size, "width": image_size})
    processor = tf.LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=patch,
                                  vision_feature_select_strategy="default", num_additional_image_tokens=1,
                                  chat_template=_CHAT_TEMPLATE.replace("{{ IMAGE }}", "<image>"))
    return _Parts(model, tokenizer, image_processor, processor)


def _qwen2_vl() -> _Parts:
    import transformers as tf

    specials = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>", "<|user|>",
                "<|assistant|>", "<|end|>"]
    tokenizer = build_tokenizer(specials)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in specials}
    config = tf.Qwen2VLConfig(
        vision_config=dict(depth=2, embed_dim=32, hidden_size=32, num_heads=4, patch_size=8,
                           spatial_merge_size=2, temporal_patch_size=2, in_channels=3),
        text_config=dict(model_type="qwen2_vl_text", rope_parameters={"rope_type": "default",
                         "mrope_section": [1, 1, 2], "rope_theta": 10000.0},
                         **_text_config(len(tokenizer))),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    model = tf.Qwen2VLForConditionalGeneration(config)
    image_processor = tf.Qwen2VLImageProcessorPil(min_pixels=32 * 32, max_pixels=32 * 32, patch_size=8,
                                                  merge_size=2, temporal_patch_size=2)
    tokenizer.chat_template = _CHAT_TEMPLATE.replace(
        "{{ IMAGE }}", "<|vision_start|><|image_pad|><|vision_end|>")
    # Qwen2VLProcessor needs a video processor (torchvision): saved as parts instead
    return _Parts(model, tokenizer, image_processor, None)


def _idefics3() -> _Parts:
    import transformers as tf

    specials = ["<image>", "<fake_token_around_image>", "<global-img>", "<end_of_utterance>", "<|user|>",
                "<|assistant|>", "<|end|>"] + [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]
    tokenizer = build_tokenizer(specials)
    config = tf.Idefics3Config(
        vision_config=dict(image_size=32, patch_size=8, **_VISION),
        text_config=dict(model_type="llama", **_text_config(len(tokenizer))),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"), scale_factor=2,
    )
    model = tf.Idefics3ForConditionalGeneration(config)
    image_processor = tf.Idefics3ImageProcessorPil(
        size={"longest_edge": 32}, max_image_size={"longest_edge": 32}, do_image_splitting=False)
    processor = tf.Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_len=4,
                                     chat_template=_CHAT_TEMPLATE.replace("{{ IMAGE }}", "<image>"))
    return _Parts(model, tokenizer, image_processor, processor)


def _save(parts: _Parts, folder: Path) -> None:
    """Save the model (generation stops at the tokenizer's EOS, pads with its PAD) and its processor."""
    model, tokenizer = parts.model, parts.tokenizer
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(folder)
    if parts.processor is not None:
        parts.processor.save_pretrained(folder)
    else:
        tokenizer.save_pretrained(folder)
        parts.image_processor.save_pretrained(folder)

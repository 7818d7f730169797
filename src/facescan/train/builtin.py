"""Train the built-in CNNs and export them to ONNX.

Two tasks: ``fairface`` (one network, three heads: age group, gender, race) and ``fer2013``
(emotion). One seeded command reproduces the shipped weights::

    facescan train builtin fairface ../shared/data/fairface --out src/facescan/models
    facescan train builtin fer2013  ../shared/data/fer2013  --out src/facescan/models

``--also KIND:PATH`` adds another dataset's train split whose labels map onto the task's (RAF-DB's
expressions onto FER2013's), keeping a seeded part of it out as a development split; ``--balance sqrt``
repeats the images of rare classes.

Images are decoded once into a uint8 cache (``--cache``); augmentation runs on whole
batches in torch, so no data-loader workers are needed on a small CPU.
Needs the ``train`` extra (torch, onnx).
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from facescan import __version__, taxonomy
from facescan.backends.builtin_model import ModelSpec, prepare_input
from facescan.imageio import load_image

TASKS: dict[str, ModelSpec] = {
    "fairface": ModelSpec(
        name="facescan-fairface-resnet", file="fairface.onnx", input_padding=0.25, resize=90, crop=80,
        channels=3, outputs={"age": "age9", "gender": "gender", "race": "race7"},
    ),
    # FER2013's crops are framed like FairFace chips: MediaPipe's face box spans 86% of a
    # FER image and 85% of a FairFace chip (measured on 600 / 300 val images).
    "fer2013": ModelSpec(
        name="facescan-fer-resnet", file="emotion.onnx", input_padding=0.25, resize=48, crop=48,
        channels=1, outputs={"emotion": "fer7"},
    ),
}


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run (recorded in the model card)."""

    task: str
    epochs: int
    widths: tuple[int, ...]
    blocks: tuple[int, ...]
    batch_size: int = 128
    lr: float = 0.1
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    seed: int = 0
    threads: int = 1  # results are bit-reproducible for a given thread count
    train_pad: int = 4
    random_erasing: float = 0.0
    members: int = 1  # ensemble size: members are trained with seeds seed, seed+1, …
    # Per-member changes, e.g. {"resize": 72, "crop": 64, "epochs": 30, "seed_offset": 1}: a member
    # may see another input size (the exported graph resizes the model input for it).
    member_overrides: tuple[dict, ...] = ()
    precision: str = "int8"  # weights in the exported file: "int8" (static, calibrated), "fp16" or "fp32"
    # arithmetic of training: "bf16" (autocast, the shipped recipes) or "fp32". A CPU without native
    # bfloat16 (AVX-512 BF16 or AMX) emulates it: measured 27 s vs 2.4 s per step on an AVX2-only EPYC
    compute: str = "bf16"
    # class balance of a one-attribute task: "none", or "sqrt" (each class's images repeated
    # round(sqrt(largest class / its count)) times, 1 to 4)
    balance: str = "none"
    dev_fraction: float = 0.1  # of each --also dataset's train split, kept out of training as its dev split
    dev_seed: int = 17  # the permutation that picks that dev split
    exact_age: bool = False  # the age head predicts whole years (trained on exact ages where the data has them)
    age_sigma: float = 2.0  # years: the spread of an exact age's target distribution


#: The split of an ``--also`` dataset that is trained on (UTKFace has no official split: all of it).
TRAIN_SPLITS = {"utkface": "all"}

_FAIRFACE_64 = {"resize": 72, "crop": 64, "epochs": 30, "threads": 1}
DEFAULT_CONFIGS = {
    # three members: one at 80×80 (40 epochs) and two at 64×64 (seeds 0 and 1, 30 epochs)
    "fairface": TrainConfig("fairface", epochs=40, widths=(32, 64, 128, 256), blocks=(1, 2, 2, 1), threads=2,
                            members=3, member_overrides=({}, {**_FAIRFACE_64, "seed_offset": 0},
                                                         {**_FAIRFACE_64, "seed_offset": 1})),
    # float weights (stored as fp16): int8 cost the FER2013+RAF-DB model 2.4 points on FER2013 val and 5.2 on
    # RAF-DB's development split, whatever the calibration (min-max, percentile, entropy), for 1.6x its speed
    "fer2013": TrainConfig("fer2013", epochs=30, widths=(48, 96, 192, 384), blocks=(1, 1, 2, 1), random_erasing=0.5,
                           precision="fp16"),
}


# ------------------------------------------------------------------------------- data cache
def build_cache(task: str, data_root: Path, split: str, cache_dir: Path, progress: bool = True,
                spec: ModelSpec | None = None) -> dict:
    """Decode a split once into uint8 arrays at the model's ``resize`` size (cached as .npz), with its labels
    (:func:`label_arrays`): each attribute's index in the model's label set (-1: not known there), an index in
    a coarser set the data has instead (UTKFace's five races: ``y_race@race5_utk``), and exact ages in years
    (``y_age_years``, NaN where unknown)."""
    from facescan.datasets import open_dataset

    spec = spec or TASKS[task]
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"{task}_{split}_{spec.resize}.npz"
    root = str(Path(data_root).resolve())
    if path.exists():
        cached = dict(np.load(path))
        if str(cached.pop("root", root)) == root:  # a cache from before the root was recorded is taken as it is
            return cached
    samples = open_dataset(f"{task}:{data_root}", split)
    for a, set_name in spec.outputs.items():
        given = {s.label_sets.get(a) for s in samples}
        if any(s is None for s in given):
            raise ValueError(f"{task} has no {a} labels, which {spec.name} is trained on")
        for source in given - {set_name}:
            # a finer set maps onto the model's; a coarser one is kept as it is (the loss sums the model's
            # probabilities into it): never a guessed finer label
            if not taxonomy.has_mapping(source, set_name) and not taxonomy.has_mapping(set_name, source):
                raise ValueError(f"{task}'s {a} labels ({source}) do not map onto {set_name}")
    unmapped: dict[str, int] = {}
    for s in samples:  # a label with no equivalent in the model's set (AffectNet's contempt for FER2013's seven)
        for a, set_name in spec.outputs.items():
            source = s.label_sets[a]
            if taxonomy.has_mapping(source, set_name) and taxonomy.map_label(s.labels[a], source, set_name) is None:
                unmapped[f"{a} {s.labels[a]!r}"] = unmapped.get(f"{a} {s.labels[a]!r}", 0) + 1
    if unmapped:
        import warnings

        warnings.warn(f"{task}: left out {sum(unmapped.values())} image(s) whose label has no {spec.name} "
                      f"equivalent ({', '.join(f'{k}: {n}' for k, n in unmapped.items())})", stacklevel=2)
        samples = [s for s in samples if all(
            not taxonomy.has_mapping(s.label_sets[a], t) or taxonomy.map_label(s.labels[a], s.label_sets[a], t)
            is not None for a, t in spec.outputs.items())]
    images = np.zeros((len(samples), spec.resize, spec.resize, spec.channels), np.uint8)
    labels = {a: np.full(len(samples), -1, np.int64) for a in spec.outputs}
    for a, set_name in spec.outputs.items():
        for source in {s.label_sets[a] for s in samples} - {set_name}:
            if not taxonomy.has_mapping(source, set_name):
                labels[f"{a}@{source}"] = np.full(len(samples), -1, np.int64)
    if "age" in spec.outputs:
        labels["age_years"] = np.full(len(samples), np.nan, np.float32)
    iterator = samples
    if progress:
        from rich.progress import track

        iterator = track(samples, description=f"decode {task}/{split}")
    for i, s in enumerate(iterator):
        img = prepare_input(load_image(s.path).pixels, spec, padding_in=spec.input_padding, crop=False)
        images[i] = img.reshape(spec.resize, spec.resize, spec.channels)
        for a, set_name in spec.outputs.items():
            source = s.label_sets[a]
            if source == set_name or taxonomy.has_mapping(source, set_name):
                labels[a][i] = taxonomy.label_set(set_name).index(taxonomy.map_label(s.labels[a], source, set_name))
            else:
                labels[f"{a}@{source}"][i] = taxonomy.label_set(source).index(s.labels[a])
        if "age_years" in labels and s.exact_age is not None:
            labels["age_years"][i] = s.exact_age
    data = {"images": images, **{f"y_{a}": v for a, v in labels.items()}}
    np.savez(path, **data, root=np.array(root))
    return data


def label_arrays(data: dict) -> dict[str, np.ndarray]:
    """The label arrays of a cache: ``{"race": …, "race@race5_utk": …, "age_years": …}``."""
    return {k[2:]: v for k, v in data.items() if k.startswith("y_")}


def concat_labels(parts: list[dict[str, np.ndarray]], sizes: list[int]) -> dict[str, np.ndarray]:
    """Label arrays of several datasets one after the other; a kind one lacks is unknown there (-1, NaN)."""
    keys = list(dict.fromkeys(k for part in parts for k in part))
    out = {}
    for k in keys:
        fill = np.nan if k == "age_years" else -1
        dtype = np.float32 if k == "age_years" else np.int64
        out[k] = np.concatenate([part.get(k, np.full(n, fill, dtype)).astype(dtype) for part, n in zip(parts, sizes)])
    return out


# ------------------------------------------------------------------------------- model
def build_network(spec: ModelSpec, widths, blocks):
    """A small ResNet (basic blocks, batch norm) with one linear head per attribute."""
    import torch
    from torch import nn

    def conv_bn(cin, cout, stride):
        conv = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        return nn.Sequential(conv, nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.a = conv_bn(cin, cout, stride)
            self.b = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
            self.skip = (
                nn.Identity() if cin == cout and stride == 1
                else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            )

        def forward(self, x):
            return torch.relu(self.b(self.a(x)) + self.skip(x))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            layers = [conv_bn(spec.channels, widths[0], 2)]
            cin = widths[0]
            for stage, (cout, n) in enumerate(zip(widths, blocks)):
                for k in range(n):
                    layers.append(Block(cin, cout, 2 if (k == 0 and stage > 0) else 1))
                    cin = cout
            self.features = nn.Sequential(*layers)
            self.dropout = nn.Dropout(0.2)
            self.heads = nn.ModuleDict(
                {a: nn.Linear(cin, taxonomy.AGE_YEARS_TOP + 1 if a == "age" and spec.age_years
                              else len(taxonomy.label_set(s))) for a, s in spec.outputs.items()}
            )
            # Inputs arrive as 0..255 pixels; normalization is part of the exported graph.
            self.register_buffer("mean", torch.full((1, spec.channels, 1, 1), 127.5))
            self.register_buffer("scale", torch.full((1, spec.channels, 1, 1), 1 / 64.0))

        def forward(self, x):
            x = (x - self.mean) * self.scale
            f = self.features(x).mean((2, 3))
            f = self.dropout(f)
            return {a: head(f) for a, head in self.heads.items()}

    return Net()


def _probability_module(nets, names, sizes=None, input_size=None, year_groups=None, temperatures=None):
    """A module whose outputs are probabilities averaged over the ensemble members, one tensor per
    attribute (what the ONNX graph computes). The mirror-image view is not in the graph: the backend
    runs it only when asked (``builtin?tta=1``), as it doubles the compute.

    ``sizes`` gives each member's input side; a member whose side differs from the input's sees
    the input resized (bilinear) — the members share the chip's field of view. With ``year_groups`` (each
    year's age group, :func:`facescan.taxonomy.age_year_groups`) the age head predicts years: ``age`` is their
    sum per group, and a last output, ``age_years``, the distribution over years. ``temperatures``
    (``{attribute: T}``, :func:`fit_temperatures`) divides that head's logits by T before its softmax.
    """
    import torch
    import torch.nn.functional as F

    scale = {a: 1.0 / float(t) for a, t in (temperatures or {}).items() if t != 1.0}

    class Probabilities(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.nets = torch.nn.ModuleList(nets)
            # decided here, not in forward, so the exported graph has no shape-dependent branch
            self.sizes = [None if s is None or s == input_size else s for s in (sizes or [None] * len(nets))]
            if year_groups is not None:
                groups = torch.zeros(len(year_groups), max(year_groups) + 1)
                groups[torch.arange(len(year_groups)), torch.tensor(year_groups)] = 1.0
                self.register_buffer("year_groups", groups)
            else:
                self.year_groups = None

        def forward(self, x):
            outs = []
            for net, size in zip(self.nets, self.sizes):
                v = x if size is None else F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
                outs.append(net(v))
            probs = {a: sum(torch.softmax(o[a] * scale[a] if a in scale else o[a], 1) for o in outs) / len(outs)
                     for a in names}
            if self.year_groups is None:
                return tuple(probs[a] for a in names)
            years = probs["age"]
            return tuple(years @ self.year_groups if a == "age" else probs[a] for a in names) + (years,)

    return Probabilities().eval()  # inference only: an export that restores its mode leaves the nets in eval


# ------------------------------------------------------------------------------- augmentation
def augment(x, pad: int, erasing: float, color: bool, generator):
    """Random crop (reflect-padded), horizontal flip, brightness/contrast jitter, random erasing."""
    import torch
    import torch.nn.functional as F

    n, c, h, w = x.shape
    if pad:
        x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    # one random offset per image, gathered with unfold-free indexing
    oy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    ox = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    rows = (oy[:, None] + torch.arange(h)[None]).view(n, 1, h, 1).expand(n, c, h, x.shape[3])
    x = torch.gather(x, 2, rows)
    cols = (ox[:, None] + torch.arange(w)[None]).view(n, 1, 1, w).expand(n, c, h, w)
    x = torch.gather(x, 3, cols)
    flip = torch.rand(n, generator=generator) < 0.5
    x = torch.where(flip.view(n, 1, 1, 1), x.flip(3), x)
    if color:
        b = (torch.rand(n, 1, 1, 1, generator=generator) - 0.5) * 0.4 * 255
        k = 1 + (torch.rand(n, 1, 1, 1, generator=generator) - 0.5) * 0.5
        mean = x.mean((1, 2, 3), keepdim=True)
        x = ((x - mean) * k + mean + b).clamp(0, 255)
        if c == 3:
            gray = torch.rand(n, generator=generator) < 0.1
            x = torch.where(gray.view(n, 1, 1, 1), x.mean(1, keepdim=True).expand_as(x), x)
    if erasing > 0:
        er = torch.rand(n, generator=generator) < erasing
        eh = (torch.rand(n, generator=generator) * 0.3 + 0.1) * h
        ew = (torch.rand(n, generator=generator) * 0.3 + 0.1) * w
        ey = torch.rand(n, generator=generator) * (h - eh)
        ex = torch.rand(n, generator=generator) * (w - ew)
        yy = torch.arange(h).view(1, h, 1)
        xx = torch.arange(w).view(1, 1, w)
        mask = (
            (yy >= ey.view(n, 1, 1)) & (yy < (ey + eh).view(n, 1, 1))
            & (xx >= ex.view(n, 1, 1)) & (xx < (ex + ew).view(n, 1, 1)) & er.view(n, 1, 1)
        )
        noise = torch.rand(x.shape, generator=generator) * 255
        x = torch.where(mask.unsqueeze(1), noise, x)
    return x


# ------------------------------------------------------------------------------- training
def _center(x, crop):
    off = (x.shape[2] - crop) // 2
    return x[:, :, off : off + crop, off : off + crop]


def _to_tensor(images):
    import torch

    return torch.from_numpy(images).permute(0, 3, 1, 2).float().contiguous(memory_format=torch.channels_last)


def native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively (Linux's CPU flags; True where they cannot be read)."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return True
    return any(f in flags.split() for f in ("avx512_bf16", "amx_bf16"))


def evaluate_net(net, images, labels: dict, spec: ModelSpec, batch_size=512) -> dict[str, float]:
    """Top-1 accuracy per head on a cached split (development monitoring only); see :func:`evaluate_ensemble`."""
    import torch

    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=native_bfloat16()):
        return evaluate_ensemble([net], [spec.crop], (images, labels), spec, batch_size)


def evaluate_ensemble(nets, sizes, split, spec: ModelSpec, batch_size=512, temperatures=None) -> dict[str, float]:
    """Scores of the nets' averaged probabilities, as the exported graph computes them, on a cached split
    (images at the spec's input size): top-1 accuracy
    per head over the items labelled in its label set, ``race@race5_utk``-style accuracy in a coarser set the
    data has instead, and ``age_years_mae`` (years) where the age head predicts years and the data has them."""
    import torch

    from facescan.tables import age_from_years

    images, labels = split
    for net in nets:
        net.eval()
    names = list(spec.outputs)
    # the exported graph's computation (members of another input size see the input resized)
    model = _probability_module(nets, names, sizes, spec.crop,
                                taxonomy.age_year_groups(spec.outputs["age"]) if spec.age_years else None,
                                temperatures)
    right: dict[str, int] = {k: 0 for k in labels if k != "age_years"}
    counted: dict[str, int] = {k: 0 for k in right}
    errors: list[float] = []
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            x = _center(_to_tensor(images[i : i + batch_size]), spec.crop)
            outs = model(x)
            probs = {a: outs[k].float() for k, a in enumerate(names)}
            years = outs[-1].float().numpy() if spec.age_years else None
            for key in right:
                attr, _, coarse = key.partition("@")
                y = labels[key][i : i + batch_size]
                p = probs[attr].numpy()
                if coarse:
                    p = p @ _coarse_matrix(spec.outputs[attr], coarse)
                known = y >= 0
                right[key] += int((p.argmax(1)[known] == y[known]).sum())
                counted[key] += int(known.sum())
            if years is not None and "age_years" in labels:
                truth = labels["age_years"][i : i + batch_size]
                errors += [abs(age_from_years(p)[0] - t) for p, t in zip(years, truth) if not np.isnan(t)]
    out = {k: right[k] / counted[k] for k in right if counted[k]}
    if errors:
        out["age_years_mae"] = float(np.mean(errors))
    return out


def fit_temperatures(nets, sizes, devs: dict, spec: ModelSpec, batch_size: int = 512,
                     min_items: int = 50) -> tuple[dict, dict]:
    """Temperature scaling (Guo et al., 2017) fitted on the development splits: for each head, the T that
    minimizes the negative log-likelihood of the ensemble's averaged probabilities of softmax(logits / T)
    over a geometric grid from 0.5 to 3 (one member's top label never changes; an ensemble's, or an age
    group summed from years, can). Returns ``({attribute: T}, {attribute: record})``; the record's NLL and
    ECE before/after are measured out of sample, on one half of the development items with the T fitted on
    the other half (``temperature`` itself is fitted on all of them), and ``at_grid_edge`` says that T hit
    the grid's end. Written here: neither torch nor scikit-learn fits a temperature for a softmax ensemble."""
    import torch
    import torch.nn.functional as F

    from facescan.evaluate.metrics import expected_calibration_error

    for net in nets:
        net.eval()
    logits: dict[str, list] = {a: [[] for _ in nets] for a in spec.outputs}
    truth: dict[str, list] = {a: [] for a in spec.outputs}
    with torch.no_grad():
        for images, labels in devs.values():
            for i in range(0, len(images), batch_size):
                x = _center(_to_tensor(images[i : i + batch_size]), spec.crop)
                for k, (net, size) in enumerate(zip(nets, sizes)):
                    v = x if size == spec.crop else F.interpolate(x, size=(size, size), mode="bilinear",
                                                                  align_corners=False)
                    out = net(v)
                    for a in spec.outputs:
                        logits[a][k].append(out[a].float().numpy())
            for a in spec.outputs:
                truth[a].append(labels[a] if a in labels else np.full(len(images), -1))
    temperatures, report = {}, {}
    for attr in spec.outputs:
        y = np.concatenate(truth[attr])
        known = y >= 0
        if known.sum() < min_items:  # too few labelled development items to fit a temperature on
            continue
        members = [np.concatenate(parts)[known] for parts in logits[attr]]
        groups = _year_group_matrix(spec) if attr == "age" and spec.age_years else None
        y = y[known]
        best = _best_temperature(members, y, groups)
        half = np.random.default_rng(0).permutation(len(y)) < len(y) // 2
        fitted = _best_temperature([z[half] for z in members], y[half], groups)
        held = [z[~half] for z in members]
        before, after = _tempered(held, 1.0, groups), _tempered(held, fitted, groups)
        temperatures[attr] = round(best, 4)
        report[attr] = {"temperature": temperatures[attr], "fitted_on": list(devs), "n": int(len(y)),
                        "at_grid_edge": best in (TEMPERATURES[0], TEMPERATURES[-1]),
                        "held_out_n": int((~half).sum()), "held_out_temperature": round(fitted, 4),
                        "nll_before": _nll(before, y[~half]), "nll_after": _nll(after, y[~half]),
                        "ece_before": expected_calibration_error(before.max(1), before.argmax(1) == y[~half]),
                        "ece_after": expected_calibration_error(after.max(1), after.argmax(1) == y[~half])}
    return temperatures, report


#: The temperatures :func:`fit_temperatures` chooses from.
TEMPERATURES = tuple(float(t) for t in np.geomspace(0.5, 3.0, 91))


def _best_temperature(members: list[np.ndarray], y: np.ndarray, groups: np.ndarray | None) -> float:
    return min(TEMPERATURES, key=lambda t: _nll(_tempered(members, t, groups), y))


def _tempered(members: list[np.ndarray], t: float, groups: np.ndarray | None) -> np.ndarray:
    """The members' averaged softmax(logits / t), summed into groups where ``groups`` maps years onto them."""
    from scipy.special import softmax

    p = sum(softmax(z / t, axis=1) for z in members) / len(members)
    return p @ groups if groups is not None else p


def _nll(probabilities: np.ndarray, y: np.ndarray) -> float:
    return float(-np.log(np.clip(probabilities[np.arange(len(y)), y], 1e-12, None)).mean())


def _year_group_matrix(spec: ModelSpec) -> np.ndarray:
    """(years, groups) 0/1: which age group of the spec's age label set each whole year falls in."""
    groups = taxonomy.age_year_groups(spec.outputs["age"])
    m = np.zeros((len(groups), max(groups) + 1), np.float32)
    m[np.arange(len(groups)), groups] = 1.0
    return m


def _coarse_matrix(fine: str, coarse: str) -> np.ndarray:
    """(fine labels, coarse labels) 0/1: the taxonomy's mapping of ``fine`` onto ``coarse``."""
    f, c = taxonomy.label_set(fine), taxonomy.label_set(coarse)
    m = np.zeros((len(f.labels), len(c.labels)), np.float32)
    for i, label in enumerate(f.labels):
        m[i, c.index(taxonomy.map_label(label, f, c))] = 1.0
    return m


def task_spec(task: str, cfg: TrainConfig) -> ModelSpec:
    """The task's model spec as ``cfg`` trains it (an exact-age head with ``cfg.exact_age``)."""
    spec = TASKS[task]
    if cfg.exact_age and "age" not in spec.outputs:
        raise ValueError(f"--exact-age needs an age head, and {task} has none")
    return replace(spec, age_years=True) if cfg.exact_age else spec


def development_split(n: int, cfg: TrainConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The indices (sorted) of an ``--also`` dataset's ``n`` training items kept out as its development split,
    and of those trained on: ``cfg.dev_fraction`` of them, picked by a permutation seeded with ``cfg.dev_seed``."""
    cfg = cfg or DEFAULT_CONFIGS["fer2013"]
    perm = np.random.default_rng(cfg.dev_seed).permutation(n)
    cut = int(n * cfg.dev_fraction)
    return np.sort(perm[:cut]), np.sort(perm[cut:])


def with_also(task: str, images: np.ndarray, labels: dict, also, cache_dir: Path, cfg: TrainConfig,
              progress: bool = True, spec: ModelSpec | None = None) -> tuple[np.ndarray, dict, dict]:
    """The task's training data plus each ``also`` dataset's (``[(kind, root), …]``) train split less its
    development part, then rebalanced by ``cfg.balance``; returns ``(images, labels, dev sets by kind)``.

    Each development split is ``cfg.dev_fraction`` of that dataset, picked by a permutation seeded with
    ``cfg.dev_seed``, so it is the same in every run and never trained on."""
    spec = spec or task_spec(task, cfg)
    devs = {}
    for kind, root in also:
        extra = build_cache(kind, Path(root), TRAIN_SPLITS.get(kind, "train"), cache_dir, progress=progress,
                            spec=spec)
        extra_labels = label_arrays(extra)
        dev, kept = development_split(len(extra["images"]), cfg)
        if len(dev):  # too few images for a development part: all are trained on, none scored
            devs[kind] = (extra["images"][dev], {k: v[dev] for k, v in extra_labels.items()})
        labels = concat_labels([labels, {k: v[kept] for k, v in extra_labels.items()}], [len(images), len(kept)])
        images = np.concatenate([images, extra["images"][kept]])
    if cfg.balance == "sqrt":
        if len(spec.outputs) != 1:
            raise ValueError(f"--balance balances the classes of one attribute; {task} has {len(spec.outputs)}")
        y = labels[next(iter(spec.outputs))]
        counts = np.bincount(y, minlength=len(taxonomy.label_set(next(iter(spec.outputs.values()))).labels))
        repeat = np.clip(np.round(np.sqrt(counts.max() / np.maximum(counts, 1))), 1, 4).astype(int)
        idx = np.sort(np.concatenate([np.repeat(np.flatnonzero(y == c), repeat[c]) for c in range(len(counts))]))
        images, labels = images[idx], {a: v[idx] for a, v in labels.items()}
    elif cfg.balance != "none":
        raise ValueError(f"balance must be none or sqrt, not {cfg.balance!r}")
    return images, labels, devs


def train(task: str, data_root: Path, out_dir: Path, cache_dir: Path, config: TrainConfig | None = None,
          val_split: str | None = "val", run_dir: Path | None = None, stop_after: int | None = None,
          also=()) -> Path:
    """Train one built-in model, export it to ``out_dir/<spec.file>`` and return that path.

    ``also`` (``[(kind, root), …]``) adds those datasets' train splits, less a development part of each
    (:func:`with_also`), whose scores go into the model's training record.

    With ``config.members > 1`` the recipe trains that many networks (seeds ``seed``,
    ``seed + 1``, …) one after another and exports their average. Each epoch checkpoints to
    ``run_dir`` (member k > 0 to ``run_dir/member<k>``); a later call with the same config
    resumes there. ``stop_after`` ends the call after that many epochs of the member being
    trained (a deliberate interruption), returning its checkpoint path.
    """
    import torch

    from facescan.datasets.base import DATASET_KINDS

    cfg = config or DEFAULT_CONFIGS[task]
    spec = task_spec(task, cfg)
    if cfg.balance not in ("none", "sqrt"):  # refused before any image is decoded
        raise ValueError(f"balance must be none or sqrt, not {cfg.balance!r}")
    if cfg.balance != "none" and len(spec.outputs) != 1:
        raise ValueError(f"--balance balances the classes of one attribute (fer2013); {task} has "
                         f"{len(spec.outputs)}")
    if cfg.compute not in ("bf16", "fp32"):
        raise ValueError(f"compute must be bf16 or fp32, not {cfg.compute!r}")
    unknown = [kind for kind, _ in also if kind not in DATASET_KINDS]
    if unknown:
        raise ValueError(f"--also {', '.join(unknown)}: not a dataset kind ({', '.join(DATASET_KINDS)})")
    np.random.seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    run_dir = run_dir or (cache_dir / f"run_{task}")

    data = build_cache(task, data_root, "train", cache_dir)
    images = data["images"]
    labels = _for_spec(label_arrays(data), spec)
    images, labels, devs = with_also(task, images, labels, also, cache_dir, cfg, spec=spec)
    labels = _for_spec(labels, spec)
    devs = {kind: (dev_images, _for_spec(dev_labels, spec)) for kind, (dev_images, dev_labels) in devs.items()}
    val = None
    if val_split:
        vd = build_cache(task, data_root, val_split, cache_dir)
        val = (vd["images"], _for_spec(label_arrays(vd), spec))

    nets, histories, sizes = [], [], []
    for k in range(cfg.members):
        member_dir = run_dir if k == 0 else run_dir / f"member{k}"
        override = dict(cfg.member_overrides[k]) if k < len(cfg.member_overrides) else {}
        seed = cfg.seed + override.pop("seed_offset", k)
        m_spec = replace(spec, **{f: override.pop(f) for f in ("resize", "crop") if f in override})
        m_cfg = replace(cfg, **override)
        m_images, m_labels, m_val = images, labels, val
        if m_spec.resize != spec.resize:
            m_data = build_cache(task, data_root, "train", cache_dir, spec=m_spec)
            m_images, m_labels, _ = with_also(task, m_data["images"], _for_spec(label_arrays(m_data), spec), also,
                                              cache_dir, cfg, spec=m_spec)
            m_labels = _for_spec(m_labels, spec)
            if val_split:
                vd = build_cache(task, data_root, val_split, cache_dir, spec=m_spec)
                m_val = (vd["images"], _for_spec(label_arrays(vd), spec))
        torch.set_num_threads(m_cfg.threads)
        recipe = _recipe(m_spec, m_cfg, seed, [kind for kind, _ in also], m_images, m_labels)
        net, history, done = _train_member(m_spec, m_cfg, seed, m_images, m_labels, m_val, member_dir, stop_after,
                                           recipe)
        if not done:
            return member_dir / "checkpoint.pt"
        nets.append(net)
        histories.append(history)
        sizes.append(m_spec.crop)
    out_dir.mkdir(parents=True, exist_ok=True)
    out_path = out_dir / spec.file
    calibration = None
    if cfg.precision == "int8":
        pick = np.random.default_rng(cfg.seed).choice(len(images), min(512, len(images)), replace=False)
        calibration = _center(_to_tensor(images[np.sort(pick)]), spec.crop).numpy()
    info = {"config": asdict(cfg), "datasets": [task, *(kind for kind, _ in also)], "history": histories}
    temperatures = {}
    if devs:  # probabilities calibrated on data the recipe kept out of training
        temperatures, info["calibration"] = fit_temperatures(nets, sizes, devs, spec)
        info["dev"] = {kind: evaluate_ensemble(nets, sizes, dev, spec, temperatures=temperatures)
                       for kind, dev in devs.items()}
    export_onnx(nets, spec, out_path, info, cfg.precision, calibration, sizes=sizes, temperatures=temperatures)
    return out_path


def _recipe(spec: ModelSpec, cfg: TrainConfig, seed: int, also: list[str], images, labels) -> dict:
    """What decides a member's weights: its spec, its config (thread count and export precision aside), its
    seed, its added datasets and a digest of its training data. A checkpoint of another recipe is not resumed."""
    import hashlib

    digest = hashlib.sha1(np.ascontiguousarray(images[::7]).tobytes())
    for key in sorted(labels):
        digest.update(key.encode())
        digest.update(np.ascontiguousarray(labels[key]).tobytes())
    config = {k: v for k, v in asdict(cfg).items() if k not in ("threads", "precision")}
    return {"spec": asdict(spec), "config": json.loads(json.dumps(config)), "seed": seed, "also": list(also),
            "images": len(images), "data": digest.hexdigest()}


def _for_spec(labels: dict[str, np.ndarray], spec: ModelSpec) -> dict[str, np.ndarray]:
    """The label arrays a model of ``spec`` learns from (exact ages only for an exact-age head)."""
    return {k: v for k, v in labels.items() if k != "age_years" or spec.age_years}


def _loss(out: dict, labels: dict[str, np.ndarray], idx: np.ndarray, spec: ModelSpec, cfg: TrainConfig):
    """The batch's loss: cross-entropy per head (label-smoothed) over the items labelled in the model's set;
    for items labelled only in a coarser set, the negative log of the model's probability summed into it; for
    an exact-age head, a group label's summed probability over its years and, where the age is known,
    cross-entropy with a normal distribution around it (``cfg.age_sigma`` years). Each item counts once per
    head whatever kind of label it has."""
    import torch
    import torch.nn.functional as F

    batch = len(idx)
    total = 0.0
    for a, set_name in spec.outputs.items():
        logits = out[a].float()
        y = torch.from_numpy(labels[a][idx])
        if a == "age" and spec.age_years:
            log_years = F.log_softmax(logits, 1)
            log_fine = torch.logsumexp(log_years.unsqueeze(2) + _log_mask(_year_group_matrix(spec)), dim=1)
        else:
            log_fine = F.log_softmax(logits, 1)
        known = y >= 0
        if bool(known.any()):
            lf = log_fine[known]
            nll = -lf.gather(1, y[known].unsqueeze(1)).squeeze(1)
            eps = cfg.label_smoothing
            total = total + ((1 - eps) * nll - eps * lf.mean(1)).sum() / batch
        for key in (k for k in labels if k.startswith(f"{a}@")):
            yc = torch.from_numpy(labels[key][idx])
            coarse_known = yc >= 0
            if bool(coarse_known.any()):
                m = _log_mask(_coarse_matrix(set_name, key.partition("@")[2]))
                log_coarse = torch.logsumexp(log_fine[coarse_known].unsqueeze(2) + m, dim=1)
                total = total - log_coarse.gather(1, yc[coarse_known].unsqueeze(1)).sum() / batch
        if a == "age" and spec.age_years and "age_years" in labels:
            ages = torch.from_numpy(labels["age_years"][idx])
            exact = ~torch.isnan(ages)
            if bool(exact.any()):
                years = torch.arange(taxonomy.AGE_YEARS_TOP + 1, dtype=torch.float32) + 0.5
                centre = ages[exact].clamp(max=taxonomy.AGE_YEARS_TOP) + 0.5
                target = torch.softmax(-0.5 * ((years - centre.unsqueeze(1)) / cfg.age_sigma) ** 2, 1)
                total = total - (target * log_years[exact]).sum() / batch
    return total


def _log_mask(matrix: np.ndarray):
    """0 where ``matrix`` is 1, a large negative number elsewhere: adding it before ``logsumexp`` sums only the
    mapped entries (finite, so no NaN reaches the gradients of empty columns)."""
    import torch

    return torch.from_numpy(np.where(matrix > 0, 0.0, -1e9).astype(np.float32))


def _plain_labels(labels: dict[str, np.ndarray], spec: ModelSpec) -> bool:
    """Whether every item is labelled in every head's own set and nothing else: the recipes' original loss
    (``F.cross_entropy``) then applies, which the shipped weights were trained with, bit for bit."""
    return (not spec.age_years and set(labels) <= set(spec.outputs)
            and all(bool((labels[a] >= 0).all()) for a in spec.outputs))


def _train_member(spec: ModelSpec, cfg: TrainConfig, seed: int, images, labels, val, run_dir: Path,
                  stop_after: int | None, recipe: dict | None = None):
    """SGD + cosine schedule for one network; returns (net, history, finished). A checkpoint in ``run_dir`` is
    resumed, unless it records another ``recipe`` (:func:`_recipe`): that raises ValueError."""
    import torch
    import torch.nn.functional as F

    run_dir.mkdir(parents=True, exist_ok=True)
    if cfg.compute not in ("bf16", "fp32"):
        raise ValueError(f"compute must be bf16 or fp32, not {cfg.compute!r}")
    if cfg.compute == "bf16" and not native_bfloat16():
        print("warning: this CPU has no native bfloat16 (AVX-512 BF16 or AMX); bf16 training is emulated and "
              "about 10x slower here: --compute fp32 is faster (its weights differ from the bf16 recipe's)",
              file=sys.stderr, flush=True)
    torch.manual_seed(seed)
    # channels-last for bf16 (the recipe's speed); fp32 stays contiguous: torch 2.13's fp32 channels-last
    # backward corrupted the heap on narrow networks here ("free(): invalid pointer", widths 4-8)
    layout = torch.channels_last if cfg.compute == "bf16" else torch.contiguous_format
    net = build_network(spec, cfg.widths, cfg.blocks).to(memory_format=layout)
    decay, no_decay = [], []
    for p in net.parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    opt = torch.optim.SGD(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0}],
        lr=cfg.lr, momentum=0.9, nesterov=True,
    )
    steps_per_epoch = len(images) // cfg.batch_size
    total = steps_per_epoch * cfg.epochs
    warmup = steps_per_epoch

    def lr_at(step):
        if step < warmup:
            return cfg.lr * (step + 1) / warmup
        return 0.5 * cfg.lr * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    ckpt = run_dir / "checkpoint.pt"
    start_epoch, history = 0, []
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        if recipe is not None and state.get("recipe") not in (None, recipe):
            changed = sorted(k for k in recipe if state["recipe"].get(k) != recipe[k])
            raise ValueError(f"{ckpt} holds a network trained with another recipe (its {', '.join(changed)} "
                             "differ); remove it, or train into another --out folder")
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["opt"])
        if "torch_rng" in state:
            torch.set_rng_state(state["torch_rng"])  # dropout continues as if never interrupted
        start_epoch, history = state["epoch"], state["history"]
    gen = torch.Generator().manual_seed(seed)
    step = start_epoch * steps_per_epoch
    plain = _plain_labels(labels, spec)
    for epoch in range(start_epoch, cfg.epochs):
        if stop_after is not None and epoch >= stop_after:
            return net, history, False
        # data order and augmentation depend only on (seed, epoch): a resumed run sees the same batches
        perm = np.random.default_rng(seed * 1000 + epoch).permutation(len(images))
        gen.manual_seed(seed * 1000 + epoch)
        net.train()
        t0, loss_sum = time.time(), 0.0
        for b in range(steps_per_epoch):
            idx = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            x = _to_tensor(images[idx])
            x = augment(x, cfg.train_pad, cfg.random_erasing, color=True, generator=gen)
            x = _center(x, spec.crop).contiguous(memory_format=layout)
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.compute == "bf16"):
                out = net(x)
            if plain:
                loss = sum(
                    F.cross_entropy(out[a].float(), torch.from_numpy(labels[a][idx]),
                                    label_smoothing=cfg.label_smoothing)
                    for a in spec.outputs
                )
            else:
                loss = _loss(out, labels, idx, spec, cfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += float(loss.detach())
            step += 1
        record = {"seed": seed, "epoch": epoch + 1, "loss": loss_sum / steps_per_epoch, "seconds": time.time() - t0}
        if val is not None and ((epoch + 1) % 5 == 0 or epoch + 1 == cfg.epochs):
            record["val"] = evaluate_net(net, val[0], val[1], spec)
        history.append(record)
        print(json.dumps(record), flush=True)
        torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "epoch": epoch + 1, "history": history,
                    "torch_rng": torch.get_rng_state(), "recipe": recipe}, ckpt)
    return net, history, True


def export_onnx(nets, spec: ModelSpec, path: Path, training_info: dict, precision: str = "fp16",
                calibration: np.ndarray | None = None, sizes: list[int] | None = None,
                temperatures: dict[str, float] | None = None) -> None:
    """Export one net or a list of nets (averaged) to ONNX, probabilities out, spec stored as metadata.

    ``precision``: "fp32"; "fp16" stores large weights as float16 (computed in float32);
    "int8" quantizes convolutions and linear layers statically (per-channel weights, activation
    ranges calibrated on ``calibration``, NCHW float32 pixels), which onnxruntime runs with
    integer kernels ~3x faster on CPUs with VNNI. Softmax and the averaging stay float32, so
    probabilities still sum to 1. ``temperatures`` (:func:`fit_temperatures`) scale the heads' logits.
    """
    import onnx
    import torch

    if precision not in ("fp32", "fp16", "int8"):
        raise ValueError(f"precision must be fp32, fp16 or int8, not {precision!r}")
    if precision == "int8" and calibration is None:
        raise ValueError("int8 export needs calibration images")
    nets = [n.eval().float() for n in (nets if isinstance(nets, (list, tuple)) else [nets])]
    names = list(spec.outputs)
    year_groups = taxonomy.age_year_groups(spec.outputs["age"]) if spec.age_years else None
    wrapped = _probability_module(nets, names, sizes, spec.crop, year_groups, temperatures)
    outputs = names + (["age_years"] if spec.age_years else [])
    dummy = torch.zeros(2, spec.channels, spec.crop, spec.crop)
    torch.onnx.export(
        wrapped, (dummy,), str(path), input_names=["pixels"], output_names=outputs,
        dynamic_axes={"pixels": {0: "batch"}, **{n: {0: "batch"} for n in outputs}}, opset_version=18, dynamo=False,
    )
    if precision == "int8":
        _quantize_int8(path, calibration)
    model = onnx.load(str(path))
    if precision == "fp16":
        _store_weights_as_fp16(model)
    meta = model.metadata_props.add()
    meta.key, meta.value = "facescan_spec", json.dumps(asdict(spec))
    meta = model.metadata_props.add()
    meta.key, meta.value = "facescan_training", json.dumps(training_info)
    meta = model.metadata_props.add()
    meta.key, meta.value = "facescan_version", __version__
    onnx.save(model, str(path))


def _quantize_int8(path: Path, calibration: np.ndarray, batch_size: int = 64) -> None:
    """Static QDQ int8 quantization of Conv and Gemm nodes in place (onnxruntime.quantization)."""
    import tempfile

    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Batches(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(
                {"pixels": np.ascontiguousarray(calibration[i : i + batch_size], np.float32)}
                for i in range(0, len(calibration), batch_size)
            )

        def get_next(self):
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(path), str(prepared))
        quantize_static(
            str(prepared), str(path), Batches(), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, op_types_to_quantize=["Conv", "Gemm"],
        )


def _store_weights_as_fp16(model, min_size: int = 1024) -> None:
    """Halve the file: large float32 initializers are stored as float16 and cast back on load.

    onnxruntime folds the Cast nodes into float32 constants when it builds the session, so
    inference still runs in float32. Written here because the float16 converters we know
    (onnxconverter-common, onnxruntime.transformers) switch the computation itself to float16,
    which the CPU provider runs slowly or not at all.
    """
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    casts = []
    for init in list(graph.initializer):
        if init.data_type != TensorProto.FLOAT or np.prod(init.dims) < min_size:
            continue
        weights = numpy_helper.to_array(init)
        half = numpy_helper.from_array(weights.astype(np.float16), init.name + "_fp16")
        graph.initializer.remove(init)
        graph.initializer.append(half)
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT))
    for i, node in enumerate(casts):
        graph.node.insert(i, node)

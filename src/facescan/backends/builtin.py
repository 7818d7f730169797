"""The built-in backend: facescan's own ONNX models, run batched with onnxruntime."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from facescan.backends.base import FaceInput
from facescan.backends.builtin_model import ModelSpec, prepare_input
from facescan.schema import AttributePrediction
from facescan.tables import age_from_years

MODEL_FILES = ("fairface.onnx", "emotion.onnx")


def models_dir() -> Path:
    """The folder of the ONNX models shipped in the package."""
    return Path(str(resources.files("facescan") / "models"))


@dataclass
class _Model:
    spec: ModelSpec
    session: object
    model_id: str
    datasets: tuple[str, ...] = ()  # what it was trained on (dataset kinds, as `facescan eval --dataset` names them)


class BuiltinBackend:
    """Age, gender and race from one multi-task CNN; emotion from a second one.

    Only the models (and output heads) serving the requested attributes are run. With ``tta`` each face
    is also run mirrored and the two distributions averaged (test-time augmentation, the default; twice the
    compute: ``builtin?tta=0`` turns it off).
    """

    name = "builtin"

    def __init__(self, folder: str | Path | None = None, batch_size: int = 64, threads: int | None = None,
                 tta: bool = True):
        import onnxruntime as ort

        self.folder = Path(folder) if folder else models_dir()
        self.batch_size = batch_size
        self.tta = tta
        options = ort.SessionOptions()
        # Two sessions alternate batch by batch; an idle session's spinning worker threads would
        # otherwise compete with the running one for the cores (measured: 280 → 390 crops/s).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # A memory pattern is planned and kept per input shape, and batches come in many sizes (a photo's
        # faces): with it the arena grew with each new size (a 1,000-photo run peaked at 1.6x a 10-photo
        # one). Without it: less memory at the same speed (measured: 229 vs 346 MB at batch 64, 125 vs 114 crops/s).
        options.enable_mem_pattern = False
        if threads:
            options.intra_op_num_threads = threads
        self._models: list[_Model] = []
        for file in MODEL_FILES:
            path = self.folder / file
            if not path.exists():
                raise FileNotFoundError(f"built-in model {path} is missing; reinstall facescan or retrain it "
                                        "with `facescan train builtin`")
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            meta = session.get_modelmeta().custom_metadata_map
            spec = ModelSpec(**json.loads(meta["facescan_spec"]))
            self._models.append(_Model(spec, session, f"{spec.name}@{meta.get('facescan_version', 'dev')}",
                                       _training_datasets(meta.get("facescan_training"))))

    @classmethod
    def from_spec(cls, folder: str = "", batch_size: str | int = 64, threads: str | int | None = None,
                  tta: str | bool = True) -> BuiltinBackend:
        """The registry's factory: ``builtin[:<folder of ONNX models>][?batch_size=N&threads=N&tta=1]``."""
        return cls(folder or None, int(batch_size), int(threads) if threads else None, _flag(tta))

    def supported_attributes(self) -> tuple[str, ...]:
        return tuple(a for m in self._models for a in m.spec.outputs)

    def trained_on(self) -> dict[str, list[str]]:
        """The datasets each attribute's model was trained on, from its metadata: ``{"age": ["fairface"], …}``."""
        return {a: list(m.datasets) for m in self._models for a in m.spec.outputs if m.datasets}

    def predict(self, faces: Sequence[FaceInput], attributes: Sequence[str]) -> list[dict[str, AttributePrediction]]:
        """Distributions for every requested attribute of every face, in batches."""
        unknown = set(attributes) - set(self.supported_attributes())
        if unknown:
            raise ValueError(f"builtin backend cannot predict {', '.join(sorted(unknown))}")
        results: list[dict[str, AttributePrediction]] = [{} for _ in faces]
        for model in self._models:
            wanted = [a for a in model.spec.outputs if a in attributes]
            if not wanted or not faces:
                continue
            for start in range(0, len(faces), self.batch_size):
                chunk = faces[start : start + self.batch_size]
                batch = np.stack([prepare_input(f.chip, model.spec, f.padding) for f in chunk])
                # NCHW, C-contiguous: a strided view costs onnxruntime a slow copy
                batch = np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)
                # an exact-age model's distribution over years gives the age in years
                names = wanted + (["age_years"] if model.spec.age_years and "age" in wanted else [])
                outputs = model.session.run(names, {"pixels": batch})
                if self.tta:
                    mirrored = model.session.run(names, {"pixels": np.ascontiguousarray(batch[..., ::-1])})
                    outputs = [(a + b) / 2 for a, b in zip(outputs, mirrored)]
                for attr, probs in zip(wanted, outputs):
                    for i, p in enumerate(probs):
                        results[start + i][attr] = AttributePrediction.from_probabilities(
                            attr, model.spec.outputs[attr], p.tolist(), self.name, model.model_id
                        )
                if len(names) > len(wanted):
                    for i, years in enumerate(outputs[-1]):
                        value, low, high = age_from_years(years)
                        results[start + i]["age"].value, results[start + i]["age"].interval = value, (low, high)
        return [{a: r[a] for a in attributes if a in r} for r in results]


def _training_datasets(text: str | None) -> tuple[str, ...]:
    """A model's training datasets from its ``facescan_training`` metadata: its ``datasets`` list, or else its
    task, which names the one dataset it was trained on (``fairface``, ``fer2013``)."""
    try:
        training = json.loads(text) if text else {}
    except ValueError:
        return ()
    if not isinstance(training, dict):
        return ()
    datasets = training.get("datasets")
    if datasets is None:
        config = training.get("config")
        datasets = [config.get("task")] if isinstance(config, dict) else []
    if not isinstance(datasets, list) or not all(isinstance(d, str) and d for d in datasets):
        return ()  # metadata facescan did not write: the training data is not known
    return tuple(datasets)


def _flag(value: str | bool) -> bool:
    """A spec option's truth: ``1``, ``true``, ``yes``, ``on`` (any case) or True."""
    if isinstance(value, bool):
        return value
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"builtin option tta must be 0 or 1, not {value!r}")

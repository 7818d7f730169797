"""Prompt presets: the questions VLM backends ask, stored as TOML data files.

A preset names, per attribute, the label set its answers are in and the question to ask
(``{options}`` is replaced by that label set's labels). ``style = "json"`` presets ask one
question for all requested attributes. ``[answers.<label set>]`` spells labels the way a
model answers them (the candidates of scoring mode); by default a label is spelled as
:meth:`LabelSet.pretty` writes it. ``facescan models`` lists the presets; ``preset=FILE``
in a backend spec loads one from a file of the same shape.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from facescan import taxonomy


@dataclass(frozen=True)
class Preset:
    """A prompt preset (see the module docstring)."""

    name: str
    description: str
    style: str
    label_sets: dict[str, str]
    questions: dict[str, str]
    answers: dict[str, dict[str, str]] = field(default_factory=dict)
    json_prompt: str | None = None
    json_field: str | None = None
    models: dict[str, str] = field(default_factory=dict)

    def label_set(self, attribute: str) -> taxonomy.LabelSet:
        return taxonomy.label_set(self.label_sets.get(attribute, attribute))

    def answer(self, attribute: str, label: str) -> str:
        """How ``label`` is spelled in an answer (a scoring candidate)."""
        ls = self.label_set(attribute)
        return self.answers.get(ls.name, {}).get(label, ls.pretty(label))

    def options(self, attribute: str) -> list[str]:
        ls = self.label_set(attribute)
        return [self.answer(attribute, lab) for lab in ls.labels]

    def question(self, attribute: str) -> str:
        """The question about one attribute, with its options filled in."""
        if attribute not in self.questions:
            raise KeyError(f"prompt preset {self.name!r} has no question for {attribute!r}")
        return self.questions[attribute].format(options=", ".join(self.options(attribute)))

    def json_question(self, attributes: list[str]) -> str:
        """One question asking for a JSON object with every attribute in ``attributes``."""
        if not self.json_prompt or not self.json_field:
            raise ValueError(f"prompt preset {self.name!r} is not a JSON preset")
        fields = ", ".join(self.json_field.format(attribute=a, question=self.question(a)) for a in attributes)
        return self.json_prompt.format(fields=fields)


def _folder() -> Path:
    return Path(str(resources.files("facescan") / "prompts"))


def list_presets() -> list[str]:
    """Names of the presets shipped with facescan."""
    return sorted(p.stem for p in _folder().glob("*.toml"))


def load_preset(name_or_path: str | Path) -> Preset:
    """Load a shipped preset by name, or a preset file by path."""
    path = Path(name_or_path)
    if not path.suffix == ".toml":
        path = _folder() / f"{name_or_path}.toml"
        if not path.exists():
            raise ValueError(f"unknown prompt preset {name_or_path!r}; shipped: {', '.join(list_presets())}")
    elif not path.exists():
        raise FileNotFoundError(f"prompt preset file {path} does not exist")
    data = tomllib.loads(path.read_text())
    try:
        preset = Preset(
            name=path.stem, description=data.get("description", ""), style=data.get("style", "per_attribute"),
            label_sets=dict(data["label_sets"]), questions=dict(data["questions"]),
            answers={k: dict(v) for k, v in data.get("answers", {}).items()},
            json_prompt=data.get("json", {}).get("template"), json_field=data.get("json", {}).get("field"),
            models=dict(data.get("models", {})),
        )
    except KeyError as e:
        raise ValueError(f"prompt preset {path} lacks the [{e.args[0]}] table") from None
    if preset.style not in ("per_attribute", "json"):
        raise ValueError(f"prompt preset {path}: style must be per_attribute or json, not {preset.style!r}")
    for attribute, set_name in preset.label_sets.items():
        ls = taxonomy.label_set(set_name)
        if ls.attribute != attribute:
            raise ValueError(f"prompt preset {path}: {set_name} is not a label set of {attribute}")
        for label in preset.answers.get(ls.name, {}):
            taxonomy.canonical(ls, label)  # a misspelt label fails here, not at answer time
    return preset


def task_prompt(task: str, name: str, **values) -> str:
    """A prompt of :file:`tasks/tasks.toml` (``[task] name``), with ``{placeholders}`` filled from ``values``."""
    data = tomllib.loads(resources.files(__package__).joinpath("tasks", "tasks.toml").read_text(encoding="utf-8"))
    try:
        template = data[task][name]
    except KeyError:
        raise KeyError(f"no prompt {task}.{name} in tasks.toml") from None
    return template.format(**values)

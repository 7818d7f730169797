"""One lazy registry for everything chosen by a spec string: backends, detectors, dataset readers.

A spec is ``kind``, ``kind:target`` or either followed by ``?key=value&…``:
``builtin``, ``hf:google/paligemma-3b-mix-224?mode=generation``, ``openai:http://host/v1#model``,
``mediapipe:short``, ``fairface:../shared/data/fairface``. The registry maps each kind to
``module:attribute`` and imports that module only when a spec of its kind is built, so heavy
libraries load only when used. Options are parsed with :func:`urllib.parse.parse_qsl` and typed
from the dataclass that declares them (:func:`typed_options`).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl


@dataclass(frozen=True)
class Spec:
    """A parsed spec string."""

    kind: str
    target: str = ""
    options: Mapping[str, str] = field(default_factory=dict)


def parse_spec(text: str) -> Spec:
    """``kind[:target][?key=value&…]`` → :class:`Spec` (a repeated or malformed option is an error)."""
    head, _, query = text.partition("?")
    kind, _, target = head.partition(":")
    return Spec(kind.strip(), target, parse_query(query, text))


def parse_query(query: str, where: str) -> dict[str, str]:
    """``key=value&key=value`` → a dict (``where`` names the spec in errors)."""
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise ValueError(f"{where!r}: options must look like ?key=value&key=value") from None
    options: dict[str, str] = {}
    for key, value in pairs:
        if key in options:
            raise ValueError(f"{where!r}: option {key!r} is given twice")
        options[key] = value
    return options


@dataclass(frozen=True)
class Entry:
    """A registered kind: where its factory lives and what it offers."""

    kind: str
    target: str | Callable  # "module:attribute" (dotted), called as attribute(spec_target, **options)
    description: str = ""
    attributes: tuple[str, ...] = ()
    needs: str = ""  # the install command for its extra; empty when the default install has it
    fixed: Mapping[str, object] = field(default_factory=dict)  # keyword arguments every build gets


class Registry(Mapping[str, Entry]):
    """Kinds of one thing (``what``: "backend", "detector", "dataset"), built from spec strings."""

    def __init__(self, what: str):
        self.what = what
        self._entries: dict[str, Entry] = {}

    def register(self, kind: str, target: str | Callable, description: str = "", attributes: tuple[str, ...] = (),
                 needs: str = "", **fixed) -> None:
        """Make ``kind[:target][?options]`` specs call ``target`` (``module:attribute``)."""
        self._entries[kind] = Entry(kind, target, description, attributes, needs, fixed)

    def __getitem__(self, kind: str) -> Entry:
        return self._entries[kind]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def factory(self, kind: str):
        """The callable registered for ``kind`` (its module is imported now)."""
        target = self[kind].target
        if callable(target):
            return target
        module, _, attribute = target.partition(":")
        try:
            loaded = importlib.import_module(module)
        except ImportError as e:
            raise self._missing(kind, e) from e
        return functools.reduce(getattr, attribute.split("."), loaded)

    def _missing(self, kind: str, error: ImportError) -> ImportError:
        """The one-line error for a library ``kind`` needs and lacks, with the install command."""
        from facescan.extras import install_command

        command = install_command(error) or self[kind].needs
        library = (error.name or "a library").split(".")[0]
        hint = f": {command}" if command else f" ({error})"
        missing = ImportError(f"the {kind} {self.what} needs {library}, which is not installed{hint}")
        missing.name = error.name
        return missing

    def create(self, spec: str | Spec, **extra):
        """Build the object a spec names; ``extra`` keyword arguments are passed on."""
        parsed = parse_spec(spec) if isinstance(spec, str) else spec
        if parsed.kind not in self._entries:
            raise ValueError(f"unknown {self.what} {spec!r}; known: {', '.join(self._entries)}")
        factory = self.factory(parsed.kind)
        _check_options(factory, parsed.options, f"{self.what} {parsed.kind}")
        try:
            return factory(parsed.target, **{**self[parsed.kind].fixed, **parsed.options, **extra})
        except ModuleNotFoundError as e:  # a library imported when the object is built (torch, openai…)
            raise self._missing(parsed.kind, e) from e


def _check_options(factory: Callable, options: Mapping[str, str], what: str) -> None:
    """An option the factory does not take is an error naming it and the ones it does take."""
    import inspect

    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a builtin or C callable: nothing to check
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    known = [n for n, p in list(params.items())[1:] if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    unknown = [k for k in options if k not in known]
    if unknown:
        raise ValueError(f"the {what} has no option {unknown[0]!r}; its options: {', '.join(known) or 'none'}")


def typed_options(cls: type, options: Mapping[str, object], what: str) -> dict[str, object]:
    """Convert string option values to the types of dataclass ``cls``'s fields; unknown keys are errors."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    out: dict[str, object] = {}
    for key, value in options.items():
        if key not in names:
            raise ValueError(f"unknown {what} option {key!r}; known: {', '.join(names)}")
        out[key] = _convert(value, hints[key], f"{what} option {key}")
    return out


def _convert(value: object, hint, where: str) -> object:
    if not isinstance(value, str):
        return value
    args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    kinds = [a for a in args if a is not type(None)]
    if type(None) in args and value.lower() in ("", "none"):
        return None
    base = kinds[0] if kinds else str
    if base is bool:
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{where} must be true or false, not {value!r}")
    if base in (int, float):
        try:
            return base(value)
        except ValueError:
            raise ValueError(f"{where} must be a number, not {value!r}") from None
    return value

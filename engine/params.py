"""Declared method parameters: each method states its parameters once; Processing and the CLI are generated.

A :class:`Param` is what a user can set (name, type, default, range or choices, label, help); a
:class:`MethodSpec` is one fusion method with its parameters. :func:`bind` checks a user's parameters
against the declaration (unknown names, types, ranges, choices) and fills in the defaults, so a
misspelt name is refused with a typed error instead of being dropped. Nothing here imports GDAL, torch
or QGIS.
"""
from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

from .errors import InputError

# Param.kind: how a str parameter is entered (Processing widget, CLI check); "" = a plain value.
FILE, FILE_OUT, DEVICE = "file", "file_out", "device"
DEVICES = ("auto", "cpu", "cuda")  # the choices of a DEVICE parameter (the CLI also takes cuda:N)
DEVICE_LABELS = ("Automatic (CUDA GPU when available, else CPU)", "CPU", "CUDA GPU")


@dataclass(frozen=True)
class Param:
    """One parameter of a method.

    Attributes:
        name: keyword of the method's factory; CLI option ``--name-with-dashes``; ``-p name=value``.
        type: bool, int, float, str, dict or object (``object``: Python callers only).
        default: value used when the parameter is not given (or given as None).
        label: one line for the Toolbox and ``--help``.
        help: more text for the help page.
        minimum, maximum: inclusive range of a number.
        choices: the allowed values of a str.
        choice_labels: what the Toolbox's drop-down shows for each choice (default: the choices).
        key: Processing parameter name (default ``NAME``).
        kind: FILE / FILE_OUT (a path; Processing file widgets) or DEVICE (a choice, ``cuda:N`` allowed).
        extension: file extension of a FILE / FILE_OUT path.
        advanced: shown under the Toolbox's Advanced parameters.
        exposed: False for parameters only Python callers can set (no Processing widget, no CLI option).
    """

    name: str
    type: type
    default: Any
    label: str
    help: str = ""
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    choices: Optional[Tuple[str, ...]] = None
    choice_labels: Tuple[str, ...] = ()
    key: str = ""
    kind: str = ""
    extension: str = ""
    advanced: bool = True
    exposed: bool = True

    @property
    def processing_name(self) -> str:
        return self.key or self.name.upper()

    @property
    def cli_flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def check(self, value: Any, owner: str) -> Any:
        """``value`` converted to this parameter's type, or InputError naming the parameter and the rule."""
        what = f"{owner}: {self.name}"
        if value is None:
            return self.default
        if self.type is object:
            return value
        if self.type is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
                return value.lower() in ("true", "1", "yes")
            raise InputError(f"{what} must be true or false, got {value!r}")
        if self.type in (int, float):
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise InputError(f"{what} must be a number, got {value!r}")
            try:
                number = float(value)
            except ValueError:
                raise InputError(f"{what} must be a number, got {value!r}") from None
            if self.type is int:
                if not number.is_integer():
                    raise InputError(f"{what} must be a whole number, got {value!r}")
                number = int(number)
            if (self.minimum is not None and number < self.minimum) or \
                    (self.maximum is not None and number > self.maximum):
                raise InputError(f"{what} must be in {self.range_text()}, got {value!r}")
            return number
        if self.type is dict:
            if not isinstance(value, Mapping):
                raise InputError(f"{what} must be a JSON object ({{\"key\": value}}), got {value!r}")
            return dict(value)
        if self.kind in (FILE, FILE_OUT) and isinstance(value, os.PathLike):
            value = os.fspath(value)
        if not isinstance(value, str):
            raise InputError(f"{what} must be text, got {value!r}")
        if self.choices is not None:
            head = value.split(":", 1)[0] if self.kind == DEVICE else value
            if head not in self.choices:
                raise InputError(f"{what} {value!r} is not one of {', '.join(self.choices)}")
        return value

    def range_text(self) -> str:
        low = "-inf" if self.minimum is None else f"{self.minimum:g}"
        high = "inf" if self.maximum is None else f"{self.maximum:g}"
        return f"[{low}, {high}]"


@dataclass(frozen=True)
class MethodSpec:
    """One fusion method: its id, its Toolbox/CLI presentation and its declared parameters.

    Attributes:
        id: name for ``get_method`` and the CLI (``hsifusion fuse <id>``); Toolbox id ``fuse_<id>``.
        title: short name (messages, output layer names).
        factory: called with every declared parameter (defaults filled in) -> FusionMethod.
        params: the declared parameters, in Toolbox order.
        family: "baseline", "classical" or "network" (the Toolbox group and algorithm file).
        display_name: Toolbox name (default "Fuse with <title>").
        summary: one paragraph for the generated help.
    """

    id: str
    title: str
    factory: Callable[..., Any]
    params: Tuple[Param, ...]
    family: str
    display_name: str = ""
    summary: str = ""

    def __post_init__(self) -> None:
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise ValueError(f"method {self.id!r} declares a parameter twice: {names}")

    @property
    def toolbox_name(self) -> str:
        return self.display_name or f"Fuse with {self.title}"

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def defaults(self) -> Dict[str, Any]:
        return {p.name: p.default for p in self.params}


def bind(spec: MethodSpec, given: Mapping[str, Any]) -> Dict[str, Any]:
    """Every declared parameter of ``spec`` -> its checked value (``given`` or the default).

    Raises InputError for a name ``spec`` does not declare (naming the closest valid one and all of
    them) or a value of the wrong type, out of range or not among the choices.
    """
    known = [p.name for p in spec.params]
    unknown = [k for k in given if k not in known]
    if unknown:
        raise InputError(unknown_parameter_message(spec, unknown[0]))
    return {p.name: p.check(given.get(p.name), spec.id) for p in spec.params}


def unknown_parameter_message(spec: MethodSpec, name: str) -> str:
    """``gsa has no parameter 'mtf_gian' (did you mean mtf_gain?); its parameters: ...``."""
    known = [p.name for p in spec.params]
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return (f"{spec.id} has no parameter {name!r}{hint}; its parameters: "
            f"{', '.join(known) if known else 'none'}")


def help_text(spec: MethodSpec) -> str:
    """Plain-text help generated from the declaration (used when no help file exists)."""
    lines = [spec.summary or spec.title, ""]
    for p in spec.params:
        if not p.exposed:
            continue
        rule = f"one of {', '.join(p.choices)}" if p.choices else (
            p.range_text() if p.type in (int, float) and (p.minimum is not None or p.maximum is not None) else "")
        default = "" if p.default is None else f"default {p.default}"
        extra = "; ".join(x for x in (p.cli_flag, default, rule) if x)
        lines.append(f"{p.processing_name}: {p.label} ({extra})." + (f" {p.help}." if p.help else ""))
    return "\n".join(lines)


def declared_names(specs: Sequence[MethodSpec], name: str) -> Tuple[str, ...]:
    """Ids of the methods among ``specs`` that declare a parameter ``name``."""
    return tuple(s.id for s in specs if any(p.name == name for p in s.params))

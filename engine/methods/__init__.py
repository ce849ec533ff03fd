"""Fusion methods: one module each, all behind the :class:`~.base.FusionMethod` interface.

Every module of this package that defines ``METHODS`` (a list of :class:`~..params.MethodSpec`) is
found here; nothing lists them by hand, and the modules do not import this package's functions (no
import cycle). ``get_method(name, **params)`` builds one by name, checking ``params`` against its
declaration; ``list_methods()`` / ``method_specs()`` enumerate them (the CLI, the Toolbox, the tests and
the benchmarks all use these).
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Dict, List

from ..params import MethodSpec, bind
from .base import FusionMethod

_SPECS: Dict[str, MethodSpec] = {}
_DISCOVERED = False


def register_method(spec: MethodSpec) -> None:
    """Register a declared method (one not defined in this package, e.g. by a test); ids are unique."""
    if spec.id in _SPECS and _SPECS[spec.id] is not spec:
        raise ValueError(f"method {spec.id!r} registered twice")
    _SPECS[spec.id] = spec


def _discover() -> None:
    global _DISCOVERED
    if _DISCOVERED:
        return
    _DISCOVERED = True
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        try:
            module = importlib.import_module(f"{__name__}.{info.name}")
        except ModuleNotFoundError as exc:  # an optional dependency of that family is missing
            if exc.name and exc.name.split(".")[0] in ("torch", "scipy", "osgeo"):
                continue
            raise
        for spec in getattr(module, "METHODS", ()):
            register_method(spec)


def method_spec(name: str) -> MethodSpec:
    """The declaration of a method; KeyError naming the known ones."""
    _discover()
    if name not in _SPECS:
        raise KeyError(f"unknown method {name!r}; known: {', '.join(sorted(_SPECS))}")
    return _SPECS[name]


def method_specs(family: str = "") -> List[MethodSpec]:
    """Declarations of every method (of one family), sorted by id."""
    _discover()
    return [s for _, s in sorted(_SPECS.items()) if not family or s.family == family]


def get_method(name: str, **params) -> FusionMethod:
    """Build a registered method; KeyError lists the known names, InputError an unknown parameter."""
    spec = method_spec(name)
    return spec.factory(**bind(spec, params))


def list_methods() -> List[str]:
    _discover()
    return sorted(_SPECS)

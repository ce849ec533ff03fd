"""Fusion methods: one module each, all behind the :class:`~.base.FusionMethod` interface.

``get_method(name, **params)`` builds one by name; ``list_methods()`` enumerates them (the CLI, the
Toolbox and the benchmarks all use this list).
"""
from __future__ import annotations

from typing import Callable, Dict, List

from .base import FusionMethod

_FACTORIES: Dict[str, Callable[..., FusionMethod]] = {}


def register_method(name: str, factory: Callable[..., FusionMethod]) -> None:
    """Register a factory under a unique name."""
    _FACTORIES[name] = factory


def _load_builtin() -> None:
    from . import interpolate  # noqa: F401
    for optional in ("gsa", "glp", "sfim", "cnmf", "network"):
        try:
            __import__(f"{__name__}.{optional}")
        except ImportError as exc:  # a method family not written yet, or torch missing
            if "No module named" not in str(exc):
                raise


def get_method(name: str, **params) -> FusionMethod:
    """Build a registered method; KeyError lists the known names."""
    _load_builtin()
    if name not in _FACTORIES:
        raise KeyError(f"unknown method {name!r}; known: {', '.join(sorted(_FACTORIES))}")
    return _FACTORIES[name](**params)


def list_methods() -> List[str]:
    _load_builtin()
    return sorted(_FACTORIES)

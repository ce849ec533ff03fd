"""Name -> network spec: the single list the Toolbox, the engine and the tests enumerate.

Each network module registers one :class:`NetSpec` with :func:`register`. Nothing here imports the
engine or QGIS: ``models`` is torch only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional


def lcm(a: int, b: int) -> int:
    """Least common multiple (math.lcm without the 3.9 requirement)."""
    return a * b // math.gcd(a, b)


@dataclass(frozen=True)
class NetSpec:
    """What the engine needs to know about one network.

    Attributes:
        name: registry key, also the algorithm suffix (``fuse_<name>``).
        title: human name as in the paper.
        supervised: True for nets trained on (Y, Z, X) triples; False for per-pair optimisers.
        build: ``build(hsi_bands, msi_bands, ratio, **hyper) -> nn.Module``. Supervised nets map
            ``forward(y, z) -> x`` with ``y (B,C,h,w)``, ``z (B,c,H,W)``, ``x (B,C,H,W)``.
        margin: ``margin(ratio) -> int`` HR pixels of context a tile needs (docs/design.md#tiles-and-margins).
        align: ``align(ratio) -> int`` HR size/origin step (a multiple of ratio).
        min_hr_size: ``min_hr_size(ratio) -> int`` smallest HR side the net accepts.
        defaults: default hyper-parameters passed to ``build``.
        paper_params: parameter count reported by the paper at its settings, or None.
        reference: citation string.
        fit: for unsupervised nets, ``fit(y, z, ratio, srf=None, psf=None, iterations=..., callback=...)``
            returning a fitted object with ``predict(y, z) -> x`` (see each module's docstring).
    """

    name: str
    title: str
    supervised: bool
    build: Callable[..., Any]
    margin: Callable[[int], int]
    align: Callable[[int], int]
    min_hr_size: Callable[[int], int]
    defaults: Dict[str, Any] = field(default_factory=dict)
    paper_params: Optional[int] = None
    reference: str = ""
    fit: Optional[Callable[..., Any]] = None


_REGISTRY: Dict[str, NetSpec] = {}


def register(spec: NetSpec) -> NetSpec:
    """Add a network spec; names are unique."""
    if spec.name in _REGISTRY and _REGISTRY[spec.name] is not spec:
        raise ValueError(f"network {spec.name!r} registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def _load_all() -> None:
    # Import for the side effect of registration; each module calls register() at import time.
    from . import amsf_net, cofusion, ssjcn, uds2c2, umsft  # noqa: F401


def get_spec(name: str) -> NetSpec:
    """Spec of a registered network, or KeyError naming the known ones."""
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown network {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def list_networks() -> List[str]:
    """Registered network names, sorted."""
    _load_all()
    return sorted(_REGISTRY)


def count_parameters(module: Any) -> int:
    """Trainable parameters taking part in the forward pass (docs/networks.md#shared-blocks)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)

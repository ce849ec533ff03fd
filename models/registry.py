"""Network id -> :class:`~.spec.NetSpec`, loaded from the model module the catalogue names.

Torch is imported only when a spec is loaded. The model modules import :mod:`.spec`, never this module,
so there is no import cycle: this module finds them through :data:`.catalogue.NETWORKS`.
"""
from __future__ import annotations

import importlib
from typing import Any, List

from .catalogue import NETWORKS, SUPERVISED, NetworkEntry, entry
from .spec import NetSpec


def get_spec(network_id: str) -> NetSpec:
    """The model module's ``SPEC`` for a catalogued network; KeyError naming the known ids."""
    return load_spec(entry(network_id))


def load_spec(e: NetworkEntry) -> NetSpec:
    """Import ``models.<e.module>`` and check that its ``SPEC`` declares what the entry's kind needs."""
    module = importlib.import_module(f"{__package__}.{e.module}")
    spec = getattr(module, "SPEC", None)
    if not isinstance(spec, NetSpec):
        raise TypeError(f"models.{e.module} (network {e.id!r}) defines no SPEC = NetSpec(...)")
    needs = ("loss", "default_optimizer") if e.kind == SUPERVISED else ("fit",)
    needs += ("fit_per_tile",) if e.per_tile_option else ()
    missing = [name for name in needs if getattr(spec, name) is None]
    if missing:
        raise TypeError(f"models.{e.module}.SPEC (a {e.kind} network) must declare {', '.join(missing)}")
    return spec


def list_networks() -> List[str]:
    """Catalogued network ids, sorted."""
    return sorted(e.id for e in NETWORKS)


def count_parameters(module: Any) -> int:
    """Trainable parameters taking part in the forward pass (README, "The networks")."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)

""":class:`NetSpec`: the torch side of one network, declared by its model module as ``SPEC``.

Facts the rest of the plugin needs without torch (id, title, kind, default budgets) are in
:mod:`.catalogue`, not here. Nothing here imports torch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Tuple


def lcm(a: int, b: int) -> int:
    """Least common multiple (math.lcm without the 3.9 requirement)."""
    return a * b // math.gcd(a, b)


@dataclass(frozen=True)
class NetSpec:
    """What the engine calls to build, place, train and fit one network.

    Attributes:
        build: ``build(hsi_bands, msi_bands, ratio, **hyper) -> nn.Module``. Supervised nets map
            ``forward(y, z) -> x`` with ``y (B,C,h,w)``, ``z (B,c,H,W)``, ``x (B,C,H,W)``.
        margin: ``margin(ratio) -> int`` HR pixels of context a tile needs (README, "The networks").
        lite_margin: the same for the ``lite`` configuration where its smaller receptive field needs less
            (measured per network, docs/networks.md); None: ``margin``. Use :meth:`margin_of`.
        align: ``align(ratio) -> int`` HR size/origin step (a multiple of ratio).
        min_hr_size: ``min_hr_size(ratio) -> int`` smallest HR side the net accepts.
        defaults: default hyper-parameters passed to ``build`` (and, for unsupervised nets, to ``fit``).
        loss: supervised nets: ``loss(x_hat, x) -> scalar tensor`` of the paper's recipe.
        default_optimizer: supervised nets: ``default_optimizer(params, iterations) -> (optimizer,
            scheduler or None)``, the paper's recipe for a run of ``iterations`` steps.
        fit: unsupervised nets: ``fit(y, z, ratio, srf=..., iterations=..., callback=..., seed=...,
            device=..., **defaults)``; fit-once nets return an object with ``predict(y, z) -> x``
            (the LR-HSI and HR-MSI tiles; a map that needs only ``z`` ignores ``y``), per-tile
            nets return ``(x, info)``.
        fit_per_tile: a fit-once net that can also be optimised on every tile (catalogue
            ``per_tile_option``): that ``fit``, returning ``(x, info)``.
        tile: HR core tile side the engine uses when the user leaves TILE_SIZE automatic (0): chosen per
            network from measured CPU inference speed (docs/benchmarks.md, "Whole scenes with the networks").
        heap_tiles: the configurations (``"paper"``, ``"lite"``) whose tile loop keeps its activations on the
            heap between tiles (engine/pipeline/memory.py ``activations_on_heap``): measured per configuration,
            since a forward with many large activations of many sizes fragments the heap past the 2 GB goal
            (the paper configurations of AMSF-Net, 5.4-6.9 GB against 4.0 GB without, and CoFusion, 2.1-2.3
            GB against 1.7-1.8; benchmarks/NOTES.md).
        paper_params: parameter count reported by the paper at its settings, or None.
        reference: citation string.
    """

    build: Callable[..., Any]
    margin: Callable[[int], int]
    align: Callable[[int], int]
    min_hr_size: Callable[[int], int]
    defaults: Dict[str, Any] = field(default_factory=dict)
    loss: Optional[Callable[..., Any]] = None
    default_optimizer: Optional[Callable[..., Any]] = None
    fit: Optional[Callable[..., Any]] = None
    lite_margin: Optional[Callable[[int], int]] = None
    fit_per_tile: Optional[Callable[..., Any]] = None
    tile: int = 256
    heap_tiles: Tuple[str, ...] = ("paper", "lite")
    paper_params: Optional[int] = None
    reference: str = ""

    def margin_of(self, ratio: int, lite: bool = False) -> int:
        """HR context a tile needs for the configuration built (``lite`` or not)."""
        return (self.lite_margin if lite and self.lite_margin is not None else self.margin)(ratio)

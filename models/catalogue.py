"""The network catalogue: every fact about a network the rest of the plugin needs, importable without torch.

One :class:`NetworkEntry` per network. The Toolbox (one ``fuse_<id>`` algorithm per entry, ``train``'s
drop-down), the engine (:class:`~hsifusion.engine.methods.network.NetworkMethod` dispatches on ``kind``),
the command line, the tests and the benchmarks all enumerate :data:`NETWORKS`; none of them names a
network. The torch side of a network (builder, geometry, loss, optimiser) is the ``SPEC`` of its model
module, loaded by :func:`hsifusion.models.registry.get_spec`.

Adding a network: write ``models/<module>.py`` with a module-level ``SPEC = NetSpec(...)``, add one entry
here, add its test (README, "How to add a method / a network").
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

SUPERVISED = "supervised"  # trained on (Y, Z, X) triples: a checkpoint, or scene-adaptive training in fit()
FIT_ONCE = "fit-once"  # unsupervised, optimised once per scene on a crop; a fixed map applied per tile
PER_TILE = "per-tile"  # unsupervised, optimised on every tile (global attention: no scene-wide model)
KINDS = (SUPERVISED, FIT_ONCE, PER_TILE)


@dataclass(frozen=True)
class NetworkEntry:
    """One network, as the engine, the Toolbox and the CLI see it.

    Attributes:
        id: method name, checkpoint ``network`` field and algorithm suffix (``fuse_<id>``).
        title: short human name (Toolbox labels, messages).
        long_title: the paper's name with its expansion (recorded in the output's metadata).
        module: model module under ``hsifusion.models`` whose ``SPEC`` (a NetSpec) builds the network.
        kind: SUPERVISED, FIT_ONCE or PER_TILE: how the network runs by default.
        per_tile_option: FIT_ONCE nets that can also be optimised on every tile instead (the PER_TILE
            parameter, declared by engine/methods/network.py).
        seconds_per_mpx: measured CPU cost (2 cores, s per HR Mpx, fit excluded) of each way the network runs,
            by kind; the PER_TILE parameter's help quotes it.
        lite: True when the network has a non-paper, faster ``lite`` configuration (a declared parameter).
        lite_by_default: the LITE parameter's default. True where the paper configuration cannot serve a whole
            scene on a CPU (docs/benchmarks.md "Whole scenes with the networks": AMSF-Net's costs 9.3 TFLOP
            and CoFusion's 2.7 TFLOP per Mpx) nor train within the default MAX_SECONDS; the paper
            configuration stays one switch away, its cost quoted in the parameter's help.
        config_seconds_per_mpx: measured CPU inference (2 cores, s per HR Mpx from a checkpoint, 224 bands,
            docs/benchmarks.md "Whole scenes with the networks") of the ``paper`` and ``lite`` configurations;
            the LITE parameter's help quotes it.
        iterations: default training / optimisation steps of a run (minutes on a CPU for the supervised
            and fit-once nets; per tile when optimised per tile).
        sample_budget: method parameters at which the network beats bicubic upsampling in PSNR and SAM on
            the bundled sample (10-90 s each on 2 CPU cores): asserted by the sample test, used by the
            benchmarks' standard run.
        stage_shares: FIT_ONCE only: shares of ``iterations`` given to each stage of the model's ``fit``.
        fit_crop_lr: LR pixels a side of the crop an unsupervised net is optimised on (the CROP_SIZE default).
        metadata_spans: the model's blind SRF is restricted to band groups derived from the band metadata
            (docs/design.md#srf-spans).
        checkpoint_fallbacks: hyper-parameters a checkpoint saved before they existed implicitly had.
    """

    id: str
    title: str
    long_title: str
    module: str
    kind: str
    per_tile_option: bool = False
    seconds_per_mpx: Dict[str, float] = field(default_factory=dict)
    lite: bool = False
    lite_by_default: bool = False
    config_seconds_per_mpx: Dict[str, float] = field(default_factory=dict)
    iterations: int = 300
    sample_budget: Dict[str, Any] = field(default_factory=dict)
    stage_shares: Tuple[float, ...] = ()
    fit_crop_lr: int = 128
    metadata_spans: bool = False
    checkpoint_fallbacks: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"network {self.id!r}: kind {self.kind!r} is not one of {KINDS}")
        if self.lite_by_default and not self.lite:
            raise ValueError(f"network {self.id!r}: lite_by_default without a lite configuration")

    @property
    def supervised(self) -> bool:
        return self.kind == SUPERVISED


NETWORKS: Tuple[NetworkEntry, ...] = (
    NetworkEntry(
        id="amsfnet", title="AMSF-Net", long_title="AMSF-Net", module="amsf_net", kind=SUPERVISED, lite=True,
        lite_by_default=True,
        config_seconds_per_mpx={"paper": 143.0, "lite": 11.0},
        iterations=300, sample_budget={"iterations": 100},
        checkpoint_fallbacks={"hsi_skip": False},  # saved before the REC bicubic skip existed
    ),
    NetworkEntry(
        id="cofusion", title="CoFusion", long_title="CoFusion", module="cofusion", kind=SUPERVISED, lite=True,
        lite_by_default=True,
        config_seconds_per_mpx={"paper": 65.0, "lite": 12.0},
        iterations=300, sample_budget={"iterations": 200, "lite": True},
    ),
    NetworkEntry(
        id="ssjcn", title="SSJCN", long_title="SSJCN (spatial-spectral joint correction network)",
        module="ssjcn", kind=SUPERVISED, iterations=400, sample_budget={"iterations": 200},
    ),
    NetworkEntry(
        id="uds2c2", title="UDS2C2",
        long_title="UDS2C2 (unsupervised, deep spectral-spatial collaborative constraint)", module="uds2c2",
        kind=FIT_ONCE, iterations=600, sample_budget={"iterations": 300, "max_seconds": 0},
        stage_shares=(0.4, 0.4, 0.2),  # the proportions of the model's fast profile (4000/4000/2000)
    ),
    NetworkEntry(
        id="spectralmlp", title="Spectral MLP",
        long_title="Spectral MLP (per-pixel MSI-to-HSI map after SpectraLift, Shah & Duarte 2025; re-implemented "
                   "from the published description)",
        module="spectral_mlp", kind=FIT_ONCE, iterations=600, sample_budget={"iterations": 600},
        stage_shares=(1.0,),  # one stage
    ),
    NetworkEntry(
        id="umsft", title="UMSFT", long_title="UMSFT (unsupervised multi-level spatio-spectral fusion transformer)",
        module="umsft", kind=FIT_ONCE, per_tile_option=True, lite=True, iterations=200,
        # fit once: the distilled map's tiles through the engine on 2 shared cores (docs/networks.md#umsft-fit-once);
        # per tile: docs/benchmarks.md (10 + 3 x 10 steps a tile, before the fit-once default)
        seconds_per_mpx={FIT_ONCE: 14.0, PER_TILE: 1874.0},
        sample_budget={"iterations": 100, "lite": True, "max_seconds": 0},
        stage_shares=(0.2, 0.2, 0.2, 0.2, 0.2),  # SpeD init, SpaD init, coupled init, main loop, distil
        fit_crop_lr=32,  # 128 HR px at x4: the lite fit peaks at 1.3 GB RSS there, 3.5 GB on 256 px
        metadata_spans=True,
    ),
)

# The network the ``train`` algorithm offers first.
DEFAULT_TRAINING_NETWORK = "ssjcn"


def network_ids(kind: Optional[str] = None) -> Tuple[str, ...]:
    """Ids of the catalogued networks (of one kind), in catalogue order."""
    return tuple(e.id for e in NETWORKS if kind is None or e.kind == kind)


def entry(network_id: str) -> NetworkEntry:
    """The entry of ``network_id``; KeyError naming the known ids."""
    for e in NETWORKS:
        if e.id == network_id:
            return e
    raise KeyError(f"unknown network {network_id!r}; known: {', '.join(sorted(network_ids()))}")

"""hsifusion:fuse_<method> — one Toolbox entry per classical HS-MS fusion method of ``engine/methods``.

The same HSI, MSI, TILE_SIZE, OUTPUT as every fusion algorithm, plus the method's declared parameters.
Global statistics are estimated once at the LR scale, then the tiles are streamed through the engine
(CPU, no GPU needed).
"""
from __future__ import annotations

from ..engine.methods import method_specs
from ..provider.fusion import fusion_algorithm

ALGORITHMS = [fusion_algorithm(spec, "Classical fusion", "classical") for spec in method_specs("classical")]

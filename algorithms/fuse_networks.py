"""hsifusion:fuse_<network> — one Toolbox entry per network of the catalogue (``models/catalogue.py``).

Without a CHECKPOINT a supervised net is trained on the pair itself at reduced resolution
(scene-adaptive); unsupervised nets are optimised on the pair. Either way the run shows the loss per
iteration and stops within one step on cancel. The parameters are the networks' declared ones
(``engine/methods/network.py::network_params``).
"""
from __future__ import annotations

from ..engine.methods import method_specs
from ..provider.fusion import fusion_algorithm

ALGORITHMS = [fusion_algorithm(spec, "Deep fusion networks", "networks") for spec in method_specs("network")]

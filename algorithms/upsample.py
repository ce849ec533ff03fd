"""hsifusion:upsample — the LR-HSI interpolated onto the HR-MSI grid (the baseline of every fusion)."""
from __future__ import annotations

from ..engine.methods import method_spec
from ..provider.fusion import fusion_algorithm

UpsampleAlgorithm = fusion_algorithm(method_spec("upsample"), "Baselines", "baselines", algorithm_id="upsample",
                                     output_label="Upsampled HSI", layer_name="Upsampled HSI")

ALGORITHMS = [UpsampleAlgorithm]

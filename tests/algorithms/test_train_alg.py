"""hsifusion:train through QGIS Processing, tiny budget on the bundled sample."""
import pytest
import torch
from qgis.core import QgsProcessingException

from rasterkit import REFERENCE, SAMPLE_HSI


def test_train_via_processing(run_alg, tmp_path):
    out = str(tmp_path / "ck.pt")
    res = run_alg("hsifusion:train", {"NETWORK": 2, "REFERENCES": [str(REFERENCE)], "RATIO": 4, "EPOCHS": 1,
                                      "STEPS_PER_EPOCH": 1, "PATCH_SIZE": 32, "BATCH_SIZE": 1, "VALIDATION": 0.3,
                                      "DEVICE": 1, "OUTPUT": out})
    assert res["OUTPUT"] == out and res["LOG"].endswith("_log.csv") and res["PLOT"].endswith(".png")
    assert torch.load(out, weights_only=True)["network"] == "ssjcn"


def test_unpaired_lists_are_refused(run_alg, tmp_path):
    with pytest.raises(QgsProcessingException, match="pairs need one MSI per HSI"):
        run_alg("hsifusion:train", {"LR_HSI": [str(SAMPLE_HSI)], "OUTPUT": str(tmp_path / "x.pt")})

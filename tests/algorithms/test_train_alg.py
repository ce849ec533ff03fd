"""hsifusion:train through QGIS Processing, tiny budget on the bundled sample."""
import pytest
import torch
from qgis.core import QgsProcessingException

from hsifusion.models.catalogue import DEFAULT_TRAINING_NETWORK, SUPERVISED, network_ids
from rasterkit import REFERENCE, SAMPLE_HSI

NETWORK_INDEX = network_ids(SUPERVISED).index(DEFAULT_TRAINING_NETWORK)  # NETWORK lists them in this order


def test_train_via_processing(run_alg, tmp_path):
    out = str(tmp_path / "ck.pt")
    res = run_alg("hsifusion:train", {"NETWORK": NETWORK_INDEX, "REFERENCES": [str(REFERENCE)], "RATIO": 4, "EPOCHS": 1,
                                      "STEPS_PER_EPOCH": 1, "PATCH_SIZE": 32, "BATCH_SIZE": 1, "VALIDATION": 0.3,
                                      "DEVICE": 1, "OUTPUT": out})
    assert res["OUTPUT"] == out and res["LOG"].endswith("_log.csv") and res["PLOT"].endswith(".png")
    assert torch.load(out, weights_only=True)["network"] == DEFAULT_TRAINING_NETWORK


def test_unpaired_lists_are_refused(run_alg, tmp_path):
    with pytest.raises(QgsProcessingException, match="pairs need one MSI per HSI"):
        run_alg("hsifusion:train", {"LR_HSI": [str(SAMPLE_HSI)], "OUTPUT": str(tmp_path / "x.pt")})

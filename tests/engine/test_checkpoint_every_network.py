"""Every supervised network saves a checkpoint that a later run loads and applies (paper configuration)."""
import numpy as np
import pytest

from hsifusion.engine import api
from hsifusion.models.catalogue import SUPERVISED, network_ids
from rasterkit import read, synthetic_pair


@pytest.mark.parametrize("net", network_ids(SUPERVISED))
def test_checkpoint_saved_then_loaded(tmp_path, net):
    hsi, msi = synthetic_pair(tmp_path, ratio=4, lr_size=(16, 16), bands=6, msi_bands=3)
    ck = str(tmp_path / f"{net}.pt")
    api.fuse(hsi, msi, str(tmp_path / "a.tif"), net,
             {"iterations": 1, "device": "cpu", "batch_size": 1, "patch_size": 32, "save_checkpoint": ck})
    api.fuse(hsi, msi, str(tmp_path / "b.tif"), net, {"checkpoint": ck, "device": "cpu"})
    out = read(tmp_path / "b.tif")
    assert out.shape == (6, 64, 64) and np.isfinite(out).all()

"""Without torch the provider still loads, classical algorithms run, and networks name the install command."""
import sys

import pytest
from qgis.core import QgsProcessingException

from rasterkit import synthetic_pair


@pytest.fixture()
def no_torch(monkeypatch):
    """Make ``import torch`` fail as on a QGIS without PyTorch (modules already imported are hidden)."""
    for name in list(sys.modules):
        if name == "torch" or name.startswith("torch."):
            monkeypatch.delitem(sys.modules, name)
    for name in [n for n in sys.modules if n.startswith("hsifusion.models") or n == "hsifusion.engine.methods.network"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "torch", None)


def test_network_algorithm_names_the_install_command(no_torch, run_alg, tmp_path):
    hsi, msi = synthetic_pair(tmp_path)
    with pytest.raises(QgsProcessingException, match=r"PyTorch is not installed.*pip install"):
        run_alg("hsifusion:fuse_ssjcn", {"HSI": hsi, "MSI": msi, "OUTPUT": str(tmp_path / "o.tif")})
    assert not (tmp_path / "o.tif").exists()


def test_classical_and_nearest_run_without_torch(no_torch, run_alg, tmp_path):
    hsi, msi = synthetic_pair(tmp_path)
    run_alg("hsifusion:fuse_gsa", {"HSI": hsi, "MSI": msi, "OUTPUT": str(tmp_path / "g.tif")})
    run_alg("hsifusion:upsample", {"HSI": hsi, "MSI": msi, "METHOD": 0, "OUTPUT": str(tmp_path / "n.tif")})
    assert (tmp_path / "g.tif").exists() and (tmp_path / "n.tif").exists()


def test_provider_discovers_every_algorithm_without_torch(no_torch):
    from hsifusion.provider.provider import discover_algorithm_classes

    classes, errors = discover_algorithm_classes()
    ids = {c.ID for c in classes}
    assert errors == []
    assert {"upsample", "fuse_gsa", "fuse_ssjcn", "assess", "simulate"} <= ids

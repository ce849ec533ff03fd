"""DASK_SCHEDULER: an advanced parameter of every fusion algorithm, same path as --scheduler."""
import pytest
from qgis.core import QgsProcessingException

from hsifusion.engine.methods import list_methods
from rasterkit import synthetic_pair

FUSION_IDS = ["upsample"] + [f"fuse_{m}" for m in list_methods() if m != "upsample"]


def test_every_fusion_algorithm_has_an_advanced_optional_scheduler(hsifusion_provider):
    from hsifusion.provider.compat import FLAG_ADVANCED, FLAG_OPTIONAL

    algs = {a.name(): a for a in hsifusion_provider.algorithms()}
    assert set(FUSION_IDS) <= set(algs)
    for name in FUSION_IDS:
        p = algs[name].parameterDefinition("DASK_SCHEDULER")
        assert p is not None, name
        assert p.flags() & FLAG_ADVANCED and p.flags() & FLAG_OPTIONAL
        assert p.defaultValue() in ("", None)


def test_bad_scheduler_is_a_processing_exception(run_alg, tmp_path):
    hsi, msi = synthetic_pair(tmp_path)
    with pytest.raises(QgsProcessingException, match="scheduler 'nowhere' not understood"):
        run_alg("hsifusion:upsample", {"HSI": hsi, "MSI": msi, "DASK_SCHEDULER": "nowhere",
                                       "OUTPUT": str(tmp_path / "o.tif")})
    assert not (tmp_path / "o.tif").exists()


def test_empty_scheduler_runs_in_process(run_alg, tmp_path):
    hsi, msi = synthetic_pair(tmp_path)
    out = str(tmp_path / "o.tif")
    assert run_alg("hsifusion:upsample", {"HSI": hsi, "MSI": msi, "DASK_SCHEDULER": "", "OUTPUT": out})["OUTPUT"] == out

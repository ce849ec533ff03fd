"""hsifusion:fuse_auto through QGIS Processing: the chosen method, the table in the metadata, the CSV."""
import json

from osgeo import gdal

from rasterkit import synthetic_pair


def test_fuse_auto_via_processing(run_alg, tmp_path, hsifusion_provider):
    alg = next(a for a in hsifusion_provider.algorithms() if a.id() == "hsifusion:fuse_auto")
    assert "Reference" in alg.shortHelpString()
    hsi, msi = synthetic_pair(tmp_path)
    out, table = str(tmp_path / "auto.tif"), str(tmp_path / "auto.csv")
    res = run_alg("hsifusion:fuse_auto", {"HSI": hsi, "MSI": msi, "CANDIDATES": [0, 2], "OUTPUT": out,
                                          "OUTPUT_TABLE": table})
    assert res["OUTPUT"] == out and res["CHOSEN"] in ("upsample", "glp")
    rows = json.loads(gdal.Open(out).GetMetadataItem("HSIFUSION_AUTO_TABLE"))
    assert rows[0]["method"] == res["CHOSEN"] and {r["method"] for r in rows} == {"upsample", "glp"}
    assert open(table).read().splitlines()[0].startswith("rank,method,PSNR,SAM")


def test_gains_and_weights_reach_the_engine(run_alg, tmp_path):
    hsi, msi = synthetic_pair(tmp_path)
    for alg_id, extra, want in [("hsifusion:fuse_gsa", {}, {"gains": "reduced_scale"}),
                                ("hsifusion:fuse_sfim", {"GAINS": 1}, {"gains": "classic"}),
                                ("hsifusion:fuse_glp", {"WEIGHTS": 1}, {"weights": "free"})]:
        out = str(tmp_path / f"{alg_id[-4:]}.tif")
        run_alg(alg_id, {"HSI": hsi, "MSI": msi, "OUTPUT": out, **extra})
        meta = json.loads(gdal.Open(out).GetMetadataItem("HSIFUSION_METHOD"))
        assert want.items() <= meta.items(), (alg_id, meta)

"""An output never overwrites an input, however the input is named.

Through a VRT (also nested), a /vsizip/ archive, an ENVI header, a symbolic link, a relative path, for
every algorithm that writes. Each case: a typed OutputError naming the file, and the folder
byte-for-byte as before.
"""

import os
import zipfile

import numpy as np
import pytest
from osgeo import gdal

from hsifusion.engine import api
from hsifusion.engine.errors import OutputError
from hsifusion.engine.io.outputs import input_files
from rasterkit import make_raster, synthetic_pair


@pytest.fixture()
def pair(tmp_path):
    return synthetic_pair(tmp_path, lr_size=(6, 5), bands=8)


def _fuse(hsi, msi, out, **kw):
    return api.fuse(hsi, msi, str(out), "upsample", {"mode": "bilinear"}, **kw)


def _refused(fingerprint, folder, call, match):
    before = fingerprint(folder)
    with pytest.raises(OutputError, match=match):
        call()
    assert fingerprint(folder) == before


def test_output_is_the_hsi_itself(tmp_path, pair, fingerprint):
    hsi, msi = pair
    _refused(fingerprint, tmp_path, lambda: _fuse(hsi, msi, hsi), "one of the inputs")


def test_output_is_the_source_of_an_hsi_vrt(tmp_path, pair, fingerprint):
    hsi, msi = pair
    vrt = str(tmp_path / "h.vrt")
    gdal.Translate(vrt, hsi, format="VRT")
    _refused(fingerprint, tmp_path, lambda: _fuse(vrt, msi, hsi), "hsi.tif is one of the inputs")


def test_output_is_the_middle_of_a_nested_vrt(tmp_path, pair, fingerprint):
    """GDAL's GetFileList names only the leaf file; the guard follows every SourceFilename."""
    hsi, msi = pair
    inner, outer = str(tmp_path / "inner.vrt"), str(tmp_path / "outer.vrt")
    gdal.Translate(inner, msi, format="VRT")
    gdal.Translate(outer, msi, format="VRT")
    with open(outer) as fh:
        text = fh.read().replace(">msi.tif<", ">inner.vrt<")  # outer -> inner -> msi.tif
    with open(outer, "w") as fh:
        fh.write(text)
    a, b = gdal.Open(outer), gdal.Open(msi)
    assert np.array_equal(a.ReadAsArray(), b.ReadAsArray())
    a = b = None
    assert os.path.realpath(inner) in input_files(outer)
    _refused(fingerprint, tmp_path, lambda: _fuse(hsi, outer, inner), "inner.vrt is one of the inputs")


@pytest.mark.parametrize("braces", [False, True])
def test_output_is_the_zip_holding_the_hsi(tmp_path, pair, fingerprint, braces):
    hsi, msi = pair
    archive = tmp_path / "pair.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(hsi, "h.tif")
    inside = f"/vsizip/{{{archive}}}/h.tif" if braces else f"/vsizip/{archive}/h.tif"
    _refused(fingerprint, tmp_path, lambda: _fuse(inside, msi, archive), "pair.zip is one of the inputs")


def test_output_is_the_header_of_an_envi_hsi(tmp_path, pair, fingerprint):
    hsi, msi = pair
    envi = str(tmp_path / "h.dat")
    gdal.Translate(envi, hsi, format="ENVI")
    _refused(fingerprint, tmp_path, lambda: _fuse(envi, msi, tmp_path / "h.hdr"), "h.hdr is one of the inputs")


def test_envi_output_whose_header_is_the_inputs_header(tmp_path, pair, fingerprint):
    """Writing ENVI ``h.bsq`` also writes ``h.hdr``: the header of the ENVI input ``h.dat``."""
    hsi, msi = pair
    envi = str(tmp_path / "h.dat")
    gdal.Translate(envi, hsi, format="ENVI")
    _refused(fingerprint, tmp_path, lambda: _fuse(envi, msi, tmp_path / "h.bsq"), r"its file .*h\.hdr")


def test_output_is_a_link_to_the_msi(tmp_path, pair, fingerprint):
    hsi, msi = pair
    link = tmp_path / "link.tif"
    os.symlink(msi, link)
    _refused(fingerprint, tmp_path, lambda: _fuse(hsi, msi, link), "one of the inputs")


def test_output_is_the_msi_by_a_relative_detour(tmp_path, pair, fingerprint, monkeypatch):
    hsi, msi = pair
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    _refused(fingerprint, tmp_path, lambda: _fuse(hsi, msi, "../sub/../msi.tif"), "one of the inputs")


def test_assess_sam_map_and_report_cannot_hit_inputs(tmp_path, pair, fingerprint):
    hsi, msi = pair
    est = str(tmp_path / "est.tif")
    _fuse(hsi, msi, est)
    ref = str(tmp_path / "ref.tif")
    gdal.Translate(ref, est)
    vrt = str(tmp_path / "ref.vrt")
    gdal.Translate(vrt, ref, format="VRT")
    _refused(fingerprint, tmp_path, lambda: api.assess(vrt, est, 4, out_sam=ref), "OUTPUT_SAM")
    _refused(fingerprint, tmp_path, lambda: api.assess(vrt, est, 4, out_report=ref), "OUTPUT_REPORT")


def test_assess_outputs_must_differ_from_each_other(tmp_path, pair, fingerprint):
    hsi, msi = pair
    est = str(tmp_path / "est.tif")
    _fuse(hsi, msi, est)
    same = str(tmp_path / "same.csv")
    _refused(fingerprint, tmp_path, lambda: api.assess(est, est, 4, out_table=same, out_report=same),
             "OUTPUT_TABLE and OUTPUT_REPORT are the same file")


def test_simulate_outputs_cannot_hit_the_reference_or_each_other(tmp_path, fingerprint):
    rng = np.random.default_rng(1)
    ref = make_raster(tmp_path / "ref.tif", rng.random((12, 16, 16)) + 1, (0, 10, 0, 160, 0, -10),
                      wavelengths=np.linspace(450, 900, 12))
    vrt = str(tmp_path / "ref.vrt")
    gdal.Translate(vrt, ref, format="VRT")
    _refused(fingerprint, tmp_path, lambda: api.simulate(vrt, ref, None, ratio=2), "OUTPUT_HSI")
    both = str(tmp_path / "x.tif")
    _refused(fingerprint, tmp_path, lambda: api.simulate(ref, both, both, ratio=2), "same file")


def test_spectral_resample_cannot_overwrite_the_envi_header(tmp_path, fingerprint):
    rng = np.random.default_rng(2)
    src = make_raster(tmp_path / "src.tif", rng.random((40, 8, 8)) + 1, wavelengths=np.linspace(420, 2400, 40))
    envi = str(tmp_path / "s.dat")
    gdal.Translate(envi, src, format="ENVI")
    _refused(fingerprint, tmp_path, lambda: api.spectral_resample(envi, str(tmp_path / "s.hdr")),
             "s.hdr is one of the inputs")


def test_estimate_csv_and_report_cannot_hit_inputs(tmp_path, pair, fingerprint):
    hsi, msi = pair
    vrt = str(tmp_path / "m.vrt")
    gdal.Translate(vrt, msi, format="VRT")
    _refused(fingerprint, tmp_path, lambda: api.estimate_srf_psf(hsi, vrt, msi), "OUTPUT_SRF")
    # the default report name (<csv stem>_report.txt) is checked too
    os.symlink(hsi, tmp_path / "est_report.txt")
    _refused(fingerprint, tmp_path, lambda: api.estimate_srf_psf(hsi, msi, str(tmp_path / "est.csv")),
             "OUTPUT_REPORT")


def test_train_checkpoint_cannot_hit_an_input(tmp_path, pair, fingerprint):
    pytest.importorskip("torch")
    hsi, msi = pair
    vrt = str(tmp_path / "m.vrt")
    gdal.Translate(vrt, msi, format="VRT")
    _refused(fingerprint, tmp_path, lambda: api.train("ssjcn", msi, pairs=[(hsi, vrt)]), "OUTPUT")


def test_fuse_save_checkpoint_cannot_hit_an_input(tmp_path, pair, fingerprint):
    pytest.importorskip("torch")
    hsi, msi = pair
    from hsifusion.engine.methods import get_method

    method = get_method("ssjcn", save_checkpoint=hsi, iterations=1)
    _refused(fingerprint, tmp_path, lambda: api.fuse(hsi, msi, str(tmp_path / "o.tif"), method),
             "SAVE_CHECKPOINT")


def test_cli_names_the_input_and_exits_1(tmp_path, pair, fingerprint, cli_run):
    hsi, msi = pair
    vrt = str(tmp_path / "h.vrt")
    gdal.Translate(vrt, hsi, format="VRT")
    before = fingerprint(tmp_path)
    code, out, err = cli_run("fuse", "upsample", "--hsi", vrt, "--msi", msi, "-o", hsi)
    assert code == 1 and "hsi.tif is one of the inputs" in err and out == ""
    assert fingerprint(tmp_path) == before


def test_processing_run_refuses_the_vrt_source_with_qgs_exception(tmp_path, pair, fingerprint, run_alg):
    from qgis.core import QgsProcessingException

    hsi, msi = pair
    vrt = str(tmp_path / "m.vrt")
    gdal.Translate(vrt, msi, format="VRT")
    before = fingerprint(tmp_path)
    with pytest.raises(QgsProcessingException, match="msi.tif is one of the inputs"):
        run_alg("hsifusion:upsample", {"HSI": hsi, "MSI": vrt, "OUTPUT": msi})
    assert fingerprint(tmp_path) == before

"""``hsifusion`` command line: help, exit codes and messages, results equal the engine's."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from osgeo import gdal

from hsifusion.engine import api, cli
from hsifusion.engine.errors import DistributedError
from hsifusion.engine.methods import list_methods
from hsifusion.models.catalogue import network_ids
from rasterkit import ROOT, make_raster, read, synthetic_pair


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return synthetic_pair(tmp_path_factory.mktemp("cli"), ratio=4, lr_size=(10, 9), bands=8, msi_bands=3)


@pytest.fixture(scope="module")
def package_path(tmp_path_factory):
    """A folder holding an ``hsifusion`` link to the repo root: what PYTHONPATH needs without pip install."""
    d = tmp_path_factory.mktemp("pkgpath")
    os.symlink(ROOT, d / "hsifusion")
    return str(d)


def run_main(capsys, *argv):
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_help_lists_every_method_and_option(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    top = capsys.readouterr().out
    for cmd in ("fuse", "simulate", "assess"):
        assert cmd in top
    with pytest.raises(SystemExit):
        cli.main(["fuse", "--help"])
    text = capsys.readouterr().out
    for name in list_methods():
        assert name in text
    for name in ("upsample", "gsa", *network_ids()):
        assert name in list_methods()
    for opt in ("--hsi", "--msi", "--output", "--tile-size", "--device", "--checkpoint", "--seed", "--scheduler",
                "--tile-dir", "--max-in-flight"):
        assert opt in text
    for sub, opts in (("simulate", ("--reference", "--ratio", "--psf", "--sensor", "--snr-hsi", "--output-hsi")),
                      ("assess", ("--estimate", "--reference", "--lr-hsi", "--output-sam", "--border"))):
        with pytest.raises(SystemExit):
            cli.main([sub, "--help"])
        text = capsys.readouterr().out
        for opt in opts:
            assert opt in text


def test_fuse_upsample_equals_api(capsys, pair, tmp_path):
    hsi, msi = pair
    code, out, err = run_main(capsys, "fuse", "upsample", "--hsi", hsi, "--msi", msi, "-o",
                              str(tmp_path / "cli.tif"), "--tile-size", "16", "--mode", "bilinear")
    assert code == 0, err
    result = json.loads(out)
    assert result["OUTPUT"] == str(tmp_path / "cli.tif") and result["RATIO"] == 4
    assert "100.0 %" in err
    api.fuse(hsi, msi, str(tmp_path / "api.tif"), "upsample", {"mode": "bilinear"}, tile_size=16)
    np.testing.assert_array_equal(read(tmp_path / "cli.tif"), read(tmp_path / "api.tif"))
    a, b = gdal.Open(str(tmp_path / "cli.tif")), gdal.Open(str(tmp_path / "api.tif"))
    assert a.GetGeoTransform() == b.GetGeoTransform() and a.GetProjection() == b.GetProjection()


@pytest.mark.parametrize("argv, message", [
    (["--msi", "{msi}", "--hsi", "{tmp}/missing.tif"], "cannot open raster"),
    (["--hsi", "{hsi}", "--msi", "{hsi}"], "the HSI must be coarser"),
    (["--hsi", "{hsi}", "--msi", "{msi}", "--tile-size", "-4"], "TILE_SIZE"),
    (["--hsi", "{hsi}", "--msi", "{msi}", "--checkpoint", "x.pt"], "only for the networks"),
    (["--hsi", "{hsi}", "--msi", "{msi}", "--scheduler", "nowhere"], "scheduler 'nowhere' not understood"),
    (["--hsi", "{hsi}", "--msi", "{msi}", "--tile-dir", "{tmp}/tiles"], "needs a Dask scheduler"),
])
def test_bad_input_exits_nonzero_with_the_engine_message(capsys, pair, tmp_path, argv, message):
    hsi, msi = pair
    argv = [a.format(hsi=hsi, msi=msi, tmp=tmp_path) for a in argv]
    code, out, err = run_main(capsys, "fuse", "upsample", *argv, "-o", str(tmp_path / "o.tif"))
    assert code == 1
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "o.tif").exists() and not list(tmp_path.glob(".o.tif*"))


def test_output_over_an_input_is_refused(capsys, pair):
    hsi, msi = pair
    code, _, err = run_main(capsys, "fuse", "gsa", "--hsi", hsi, "--msi", msi, "-o", msi)
    assert code == 1 and "is one of the inputs" in err


def test_unknown_method_is_a_usage_error(capsys, pair, tmp_path):
    hsi, msi = pair
    with pytest.raises(SystemExit) as e:
        cli.main(["fuse", "nosuch", "--hsi", hsi, "--msi", msi, "-o", str(tmp_path / "o.tif")])
    assert e.value.code == 2
    assert "invalid choice: 'nosuch'" in capsys.readouterr().err


def test_simulate_then_assess(capsys, tmp_path):
    rng = np.random.default_rng(1)
    ref = make_raster(tmp_path / "ref.tif", rng.random((24, 32, 32)).astype(np.float32) + 0.1,
                      (500000.0, 10.0, 0.0, 5800000.0, 0.0, -10.0), wavelengths=np.linspace(420, 2400, 24))
    code, out, err = run_main(capsys, "simulate", "--reference", ref, "--ratio", "4", "--output-hsi",
                              str(tmp_path / "lr.tif"), "--output-msi", str(tmp_path / "ms.tif"), "-q")
    assert code == 0, err
    sim = json.loads(out)
    assert sim["RATIO"] == 4 and os.path.exists(sim["OUTPUT_HSI"]) and os.path.exists(sim["OUTPUT_MSI"])
    code, out, err = run_main(capsys, "fuse", "gsa", "--hsi", sim["OUTPUT_HSI"], "--msi", sim["OUTPUT_MSI"],
                              "-o", str(tmp_path / "fused.tif"), "-q")
    assert code == 0, err
    code, out, err = run_main(capsys, "assess", "--reference", ref, "--estimate", str(tmp_path / "fused.tif"),
                              "--ratio", "4", "-q")
    assert code == 0, err
    metrics = json.loads(out)
    assert metrics["PSNR"] > 10 and 0 <= metrics["SAM"] < 30
    code, _, err = run_main(capsys, "simulate", "--reference", ref, "--ratio", "2.5", "--output-hsi",
                            str(tmp_path / "x.tif"))
    assert code == 1 and "RATIO must be an integer >= 2" in err


def test_module_entry_point_runs_without_qgis(pair, tmp_path, package_path):
    """``python -m hsifusion.engine.cli`` (what the console script calls) runs, and imports no QGIS module."""
    hsi, msi = pair
    argv = ["hsifusion", "fuse", "upsample", "--hsi", hsi, "--msi", msi, "-o", str(tmp_path / "m.tif"), "-q"]
    code = ("import runpy, sys\n"
            f"sys.argv = {argv!r}\n"
            "try:\n"
            "    runpy.run_module('hsifusion.engine.cli', run_name='__main__', alter_sys=True)\n"
            "except SystemExit as e:\n"
            "    rc = e.code\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('qgis', 'PyQt5', 'PyQt6')]\n"
            "assert not bad, bad\n"
            "sys.exit(rc)\n")
    p = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=package_path),
                       cwd=str(tmp_path), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["TILES"] >= 1


def test_missing_dask_names_the_install_command(monkeypatch, pair, tmp_path):
    from hsifusion.engine.pipeline import distributed

    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(DistributedError, match=r'pip install "dask\[distributed\]"'):
        distributed.import_distributed()
    hsi, msi = pair
    with pytest.raises(DistributedError, match="Dask distributed is not installed"):
        api.fuse(hsi, msi, str(tmp_path / "o.tif"), "upsample", scheduler="local:1")
    assert not (tmp_path / "o.tif").exists()


def test_gdal_block_cache_is_capped_unless_the_user_set_it(monkeypatch):
    before = gdal.GetCacheMax()
    try:
        monkeypatch.delenv("GDAL_CACHEMAX", raising=False)
        gdal.SetCacheMax(2**31)
        cli.cap_gdal_cache(256)
        assert gdal.GetCacheMax() == 256 * 2**20
        monkeypatch.setenv("GDAL_CACHEMAX", "2048")
        gdal.SetCacheMax(2**31)
        cli.cap_gdal_cache(256)
        assert gdal.GetCacheMax() == 2**31
    finally:
        gdal.SetCacheMax(before)

"""A full disk never loses the previous output or leaves a corrupt file behind.

Unprivileged: the child process gets ``RLIMIT_FSIZE`` with SIGXFSZ ignored, so write() fails with
EFBIG as on a full disk.
"""

import os
import subprocess

import numpy as np
from osgeo import gdal

from rasterkit import make_raster, synthetic_pair

FSIZE_LIMIT = 64 * 1024  # bytes: far below the outputs below, above the GeoTIFF header


def _limit(nbytes: int) -> str:
    return ("import resource, signal\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({nbytes}, {nbytes}))\n")


def _run(cli_child, argv, nbytes=FSIZE_LIMIT):
    p = cli_child(argv, prelude=_limit(nbytes))
    try:
        out, err = p.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        p.kill()
        raise
    return p.returncode, out, err


def _previous_output(path) -> bytes:
    make_raster(path, np.arange(12, dtype=np.float32).reshape(1, 3, 4))
    with open(path, "rb") as fh:
        return fh.read()


def _assert_failed_cleanly(code, out, err, folder, path, old: bytes):
    assert code == 1, err
    assert "Traceback" not in err and out == ""
    assert "disk full or file size limit" in err and "File too large" in err
    with open(path, "rb") as fh:
        assert fh.read() == old                                  # the previous output is intact
    assert not [n for n in os.listdir(folder) if "partial" in n]   # no temporary file left


def test_disk_full_at_close_keeps_the_previous_output(tmp_path, cli_child, fingerprint):
    """Tiles of 8 px on 32-px blocks: nothing is flushed per tile, everything hits the disk at close."""
    hsi, msi = synthetic_pair(tmp_path, lr_size=(10, 8), bands=64)
    out = tmp_path / "fused.tif"
    old = _previous_output(out)
    inputs = fingerprint(tmp_path)
    code, stdout, err = _run(cli_child, ["fuse", "upsample", "--hsi", hsi, "--msi", msi, "-o", out,
                                         "--tile-size", "8", "-q"])
    _assert_failed_cleanly(code, stdout, err, tmp_path, out, old)
    assert "the previous file, if any, is unchanged" in err  # raised by the checked close
    assert fingerprint(tmp_path) == inputs


def test_disk_full_while_writing_tiles_is_an_output_error(tmp_path, cli_child):
    """256-px tiles on 256-px blocks are flushed as they are written: the first one fails mid-run."""
    hsi, msi = synthetic_pair(tmp_path, lr_size=(80, 80), bands=8)
    out = tmp_path / "fused.tif"
    old = _previous_output(out)
    code, stdout, err = _run(cli_child, ["fuse", "upsample", "--hsi", hsi, "--msi", msi, "-o", out, "-q"])
    _assert_failed_cleanly(code, stdout, err, tmp_path, out, old)
    assert "cannot write" in err


def test_disk_full_in_simulate_keeps_both_previous_outputs(tmp_path, cli_child):
    """Two outputs that belong together: neither replaces its old file unless both were written."""
    rng = np.random.default_rng(4)
    ref = make_raster(tmp_path / "ref.tif", rng.random((40, 64, 64)) + 1, (0, 10, 0, 640, 0, -10),
                      wavelengths=np.linspace(420, 2400, 40))
    lr, ms = tmp_path / "lr.tif", tmp_path / "ms.tif"
    old_lr, old_ms = _previous_output(lr), _previous_output(ms)
    code, stdout, err = _run(cli_child, ["simulate", "--reference", ref, "--ratio", "4", "--output-hsi", lr,
                                         "--output-msi", ms, "--tile-size", "8", "-q"])
    _assert_failed_cleanly(code, stdout, err, tmp_path, ms, old_ms)
    with open(lr, "rb") as fh:
        assert fh.read() == old_lr


def test_same_run_without_the_limit_succeeds(tmp_path, cli_child):
    """The control: the failures above come from the size limit, not from the arguments."""
    hsi, msi = synthetic_pair(tmp_path, lr_size=(10, 8), bands=64)
    out = tmp_path / "fused.tif"
    _previous_output(out)
    code, stdout, err = _run(cli_child, ["fuse", "upsample", "--hsi", hsi, "--msi", msi, "-o", out,
                                         "--tile-size", "8", "-q"], nbytes=2**40)
    assert code == 0, err
    ds = gdal.Open(str(out))
    assert (ds.RasterXSize, ds.RasterYSize, ds.RasterCount) == (32, 40, 64)
    assert ds.GetRasterBand(64).Checksum() >= 0  # every block readable


def test_disk_full_through_the_engine_api_is_an_output_error(tmp_path, package_path):
    """assess() with a SAM map, CSV and report: the write that fails raises OutputError."""
    import sys

    hsi, msi = synthetic_pair(tmp_path, lr_size=(10, 8), bands=64)
    code = (_limit(FSIZE_LIMIT) +
            "from hsifusion.engine import api\n"
            "from hsifusion.engine.errors import OutputError\n"
            "try:\n"
            f"    api.assess({msi!r}, {msi!r}, 4, out_sam={str(tmp_path / 'sam.tif')!r},\n"
            f"               out_table={str(tmp_path / 't.csv')!r}, out_report={str(tmp_path / 'r.html')!r})\n"
            "except OutputError as exc:\n"
            "    print('OutputError:', exc)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PYTHONPATH=package_path, PYTHONDONTWRITEBYTECODE="1"))
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    # the small SAM map and CSV fit under the limit; the report (with its quick-look images) does not
    assert p.stdout.startswith(f"OutputError: cannot write {tmp_path / 'r.html'}") and "too large" in p.stdout
    assert not (tmp_path / "r.html").exists() and not [n for n in os.listdir(tmp_path) if "partial" in n]
    ds = gdal.Open(str(tmp_path / "sam.tif"))  # what was written is complete
    assert ds.GetRasterBand(1).Checksum() >= 0

"""A run stopped by SIGTERM or SIGHUP leaves no temporary raster, as Ctrl-C does.

A closed terminal or a job scheduler sends them. A temporary file is never named like a raster and
is removed at interpreter exit.
"""

import os
import signal
import subprocess
import sys
import time

import pytest

from rasterkit import synthetic_pair

# Makes every tile write slow and announces it, so the signal arrives mid-run with a temporary file open.
SLOW_WRITES = """
import sys, time
from hsifusion.engine.io import writer
_write = writer.RasterWriter.write
def _slow_write(self, *a, **k):
    _write(self, *a, **k)
    print("TILE WRITTEN", file=sys.stderr, flush=True)
    time.sleep(0.2)
writer.RasterWriter.write = _slow_write
"""


def _wait_for(p, marker: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        line = p.stderr.readline()
        if marker in line:
            return
        if not line and p.poll() is not None:
            break
    p.kill()
    pytest.fail(f"the child never printed {marker!r} (exit {p.poll()})")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_terminating_signal_removes_the_temporary_file(tmp_path, cli_child, sig):
    hsi, msi = synthetic_pair(tmp_path, lr_size=(10, 8), bands=4)
    out = tmp_path / "fused.tif"
    p = cli_child(["fuse", "upsample", "--hsi", hsi, "--msi", msi, "-o", out, "--tile-size", "8"],
                  prelude=SLOW_WRITES)
    _wait_for(p, "TILE WRITTEN")
    assert [n for n in os.listdir(tmp_path) if n.endswith(".partial")]  # mid-run: the temporary file exists
    p.send_signal(sig)
    try:
        _, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        raise
    assert p.returncode == 128 + sig
    assert f"stopped by {signal.Signals(sig).name}" in err and "Traceback" not in err
    assert sorted(os.listdir(tmp_path)) == ["hsi.tif", "msi.tif"]


def test_temporary_file_is_removed_at_exit_and_not_named_like_a_raster(tmp_path, package_path):
    """A writer abandoned without commit or abort (the process just exits) leaves nothing behind."""
    code = ("import sys, numpy as np\n"
            "from hsifusion.engine.io.writer import RasterWriter\n"
            f"w = RasterWriter({str(tmp_path / 'o.tif')!r}, 8, 8, 2, (0, 1, 0, 8, 0, -1), '')\n"
            "w.write(np.ones((2, 8, 8), np.float32), 0, 0)\n"
            "print(w.tmp_path)\n"
            "sys.exit(3)\n")
    p = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=package_path),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 3, p.stderr
    tmp = p.stdout.strip()
    assert os.path.dirname(tmp) == str(tmp_path) and os.path.basename(tmp).startswith(".o.tif.")
    assert not tmp.endswith((".tif", ".tiff", ".img", ".dat", ".bsq")) and tmp.endswith(".partial")
    assert os.listdir(tmp_path) == []

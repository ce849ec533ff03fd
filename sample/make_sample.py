"""Rebuild the bundled simulated pair from the bundled EnMAP reference (Wald's protocol).

    cd <plugin folder> && python sample/make_sample.py

Writes ``potsdam_lr_hsi_x4.tif`` (LR-HSI, ratio 4, 120 m) and ``potsdam_msi_s2a.tif`` (HR-MSI, 30 m,
Sentinel-2A bands B1-B9, B8A, B11, B12) next to this script, through ``hsifusion.engine.sensors.simulate``:
Gaussian PSF with FWHM = 4 HR pixels (the default), block-centred decimation, no noise.
"""
from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# S2A bands inside EnMAP's good bands: B10 (cirrus, 1375 nm) falls in EnMAP's bad bands 130-135.
S2A_BANDS = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12"]
RATIO = 4
CREATION = ["COMPRESS=DEFLATE", "PREDICTOR=3", "ZLEVEL=9"]


def _import_package():
    sys.path.insert(0, str(ROOT / "tools"))
    from repo_package import register_package

    register_package()
    from hsifusion.engine.sensors.simulate import simulate
    return simulate


def main(out_dir: Path = HERE) -> dict:
    simulate = _import_package()
    return simulate(str(HERE / "enmap_potsdam_reference.tif"),
                    str(Path(out_dir) / "potsdam_lr_hsi_x4.tif"),
                    str(Path(out_dir) / "potsdam_msi_s2a.tif"),
                    ratio=RATIO, psf={"kind": "gaussian", "fwhm": float(RATIO)},
                    sensor="sentinel2a_msi", bands=S2A_BANDS, snr_hsi=None, snr_msi=None, seed=0,
                    creation_options=CREATION)


if __name__ == "__main__":
    res = main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
    print(res)

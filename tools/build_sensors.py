"""Rebuild the sensor response CSVs of engine/sensors/ from their sources (provenance record; not run by tests).

Usage: python tools/build_sensors.py [--s2a GEOJSON] [--py6s PY6S_WAVELENGTH_PY] [--enmap-csv CSV] [--gaussians]
       [--colour-dslr COLOUR_SENSITIVITIES_PY]

Each CSV has ``# key: value`` header lines (title, kind, source, note), then ``wavelength_nm,<band>...``.
``# format: centre_fwhm`` files instead list ``band,centre_nm,fwhm_nm``.
``kind`` is ``measured`` (a published relative spectral response table) or ``gaussian`` (built here from
published centre wavelengths and FWHM / band edges, because no measured table could be obtained offline).
"""
from __future__ import annotations

import argparse
import ast
import json
import math
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parents[1] / "engine" / "sensors"


def write_csv(name, title, kind, source, wl, names, curves, note="", extra=None):
    curves = np.asarray(curves, dtype=np.float64)
    keep = curves.max(axis=0) > 0
    idx = np.flatnonzero(keep)
    lo, hi = max(idx[0] - 1, 0), min(idx[-1] + 1, len(wl) - 1)
    wl, curves = np.asarray(wl)[lo:hi + 1], curves[:, lo:hi + 1]
    lines = [f"# title: {title}", f"# kind: {kind}", f"# source: {source}"]
    if note:
        lines.append(f"# note: {note}")
    for k, v in (extra or {}).items():
        lines.append(f"# {k}: {v}")
    lines.append("wavelength_nm," + ",".join(names))
    for i, w in enumerate(wl):
        lines.append(f"{w:g}," + ",".join(f"{v:.6g}" for v in curves[:, i]))
    (HERE / f"{name}.csv").write_text("\n".join(lines) + "\n")


def gaussian_curves(centres, fwhms, step=1.0):
    centres, fwhms = np.asarray(centres, float), np.asarray(fwhms, float)
    lo = math.floor((centres - 1.5 * fwhms).min())
    hi = math.ceil((centres + 1.5 * fwhms).max())
    wl = np.arange(lo, hi + step, step)
    curves = np.exp(-4 * math.log(2) * (wl[None] - centres[:, None]) ** 2 / fwhms[:, None] ** 2)
    curves[curves < 1e-4] = 0.0
    return wl, curves


def build_s2a(geojson: Path) -> None:
    d = json.loads(Path(geojson).read_text())
    names, curves, wl = [], [], None
    for f in d["features"]:
        p = f["properties"]
        names.append(p["name"].split(" ")[0])
        x = np.asarray(p["response"]["x"], float)
        wl = x if wl is None else wl
        assert np.array_equal(wl, x)
        curves.append(p["response"]["y"])
    write_csv("sentinel2a_msi", "Sentinel-2A MSI", "measured",
              "ESA Sentinel-2A MSI relative spectral responses (ESA Sentinel-2 document library), 1 nm; "
              "copied from EnMAP-Box (GPL-3.0) enmapboxprocessing/algorithm/spectralresampling/"
              "sentinel2a_msi.geojson at commit f9e8f486c9614813410cc9d715bb056e6ad3cfd5",
              wl, names, curves)


def _py6s_tables(path: Path):
    tree = ast.parse(Path(path).read_text())
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and \
                isinstance(node.value, ast.Tuple) and len(node.value.elts) == 4:
            name = node.targets[0].id
            try:
                start = ast.literal_eval(node.value.elts[1])
                end = ast.literal_eval(node.value.elts[2])
                arr = ast.literal_eval(node.value.elts[3].args[0])
            except Exception:
                continue
            out[name] = (float(start) * 1000, float(end) * 1000, np.asarray(arr, float))
    return out


def _regrid(tables, keys):
    """Py6S tables are 2.5 nm samples from start to end (µm); put them on one 2.5 nm grid."""
    lo = min(tables[k][0] for k in keys)
    hi = max(tables[k][1] for k in keys)
    wl = np.round(np.arange(lo - 2.5, hi + 5.0, 2.5), 3)
    curves = []
    for k in keys:
        s, e, y = tables[k]
        x = s + 2.5 * np.arange(len(y))
        curves.append(np.interp(wl, x, y, left=0.0, right=0.0))
    return wl, np.clip(np.array(curves), 0, None)


def build_py6s(path: Path) -> None:
    t = _py6s_tables(path)
    keys = [f"S2B_MSI_{b}" for b in ("01", "02", "03", "04", "05", "06", "07", "08", "8A", "09", "10", "11", "12")]
    names = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12"]
    wl, c = _regrid(t, keys)
    write_csv("sentinel2b_msi", "Sentinel-2B MSI", "measured",
              "ESA Sentinel-2B MSI spectral responses (S2-SRF), resampled to 2.5 nm; copied from Py6S 1.9.2 "
              "(LGPL-3.0) Py6S/Params/wavelength.py, PredefinedWavelengths.S2B_MSI_*", wl, names, c)
    keys = [f"LANDSAT_OLI_B{i}" for i in range(1, 10)]
    names = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B9"]
    wl, c = _regrid(t, keys)
    write_csv("landsat8_oli", "Landsat 8 OLI", "measured",
              "NASA/USGS Landsat 8 OLI relative spectral responses (band averages), resampled to 2.5 nm; "
              "copied from Py6S 1.9.2 (LGPL-3.0) Py6S/Params/wavelength.py, PredefinedWavelengths.LANDSAT_OLI_*",
              wl, names, c, note="B8 = panchromatic")


# Published centre / FWHM (nm) for sensors without a measured table available offline.
GAUSSIAN_SENSORS = {
    "landsat9_oli2": ("Landsat 9 OLI-2", [
        ("B1", 442.96, 15.98), ("B2", 482.04, 60.04), ("B3", 561.41, 57.33), ("B4", 654.59, 37.47),
        ("B5", 864.67, 28.25), ("B6", 1608.86, 84.72), ("B7", 2200.73, 186.66), ("B8", 589.50, 172.40),
        ("B9", 1373.43, 20.39)],
        "OLI band centres and FWHM from the band-average relative spectral responses (Barsi et al. 2014, "
        "Remote Sensing 6:10232), used as design values for OLI-2, which has the same band specification "
        "(USGS Landsat 9 Data Users Handbook); Gaussian built here, NOT the measured OLI-2 RSR"),
    "worldview3_vnir": ("WorldView-3 VNIR (8 MS bands)", [
        ("Coastal", 425, 50), ("Blue", 480, 60), ("Green", 545, 70), ("Yellow", 605, 40),
        ("Red", 660, 60), ("RedEdge", 725, 40), ("NIR1", 832.5, 125), ("NIR2", 950, 180)],
        "Maxar WorldView-3 datasheet band edges (400-450, 450-510, 510-580, 585-625, 630-690, 705-745, "
        "770-895, 860-1040 nm): centre = middle, FWHM = edge-to-edge width; Gaussian built here, NOT the "
        "measured RSR"),
    "planetscope_superdove": ("PlanetScope SuperDove (PSB.SD, 8 bands)", [
        ("CoastalBlue", 441.5, 21), ("Blue", 490, 50), ("GreenI", 531, 36), ("Green", 565, 36),
        ("Yellow", 610, 20), ("Red", 665, 30), ("RedEdge", 705, 16), ("NIR", 865, 40)],
        "Planet PlanetScope product specification, SuperDove (PSB.SD) band edges (431-452, 465-515, "
        "513-549, 547-583, 600-620, 650-680, 697-713, 845-885 nm): centre = middle, FWHM = edge-to-edge "
        "width; Gaussian built here, NOT the measured RSR"),
}


def write_centre_fwhm(name, title, source, bands, note=""):
    """A Gaussian sensor stored as its published table: ``band,centre_nm,fwhm_nm`` (format centre_fwhm)."""
    lines = [f"# title: {title}", "# kind: gaussian", "# format: centre_fwhm", f"# source: {source}"]
    if note:
        lines.append(f"# note: {note}")
    lines.append("band,centre_nm,fwhm_nm")
    lines += [f"{b},{c:g},{f:g}" for b, c, f in bands]
    (HERE / f"{name}.csv").write_text("\n".join(lines) + "\n")


def build_gaussians() -> None:
    for key, (title, bands, src) in GAUSSIAN_SENSORS.items():
        write_centre_fwhm(key, title, src, bands)


def build_nikon(path: Path) -> None:
    """Nikon 5100 (NPL) camera sensitivities from colour-science's sensitivities.py (BSD-3-Clause)."""
    tree = ast.parse(Path(path).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "DATA_CAMERA_SENSITIVITIES_DSLR":
            data = ast.literal_eval(node.value)["Nikon 5100 (NPL)"]
    wl = np.array(sorted(data))
    curves = np.clip(np.array([data[w] for w in wl]).T, 0, None)
    write_csv("nikon5100_rgb", "Nikon 5100 DSLR RGB camera (NPL)", "measured",
              "Measured camera spectral sensitivities, Darrodi et al. (2015) JOSA A 32(3):381, NPL data set, "
              "5 nm; copied from colour-science 0.4.7 (BSD-3-Clause) colour/characterisation/datasets/cameras/"
              "dslr/sensitivities.py", wl, ["R", "G", "B"], curves,
              note="an RGB camera of the kind used to make CAVE/Harvard RGB images (those used a Nikon D700, "
                   "whose curves could not be obtained offline)")


def build_enmap(csv_path: Path) -> None:
    rows = [ln.split(",") for ln in Path(csv_path).read_text().splitlines()[1:] if ln.strip()]
    c = [float(r[1]) for r in rows]
    f = [float(r[2]) for r in rows]
    write_centre_fwhm("enmap_hsi", "EnMAP HSI (224 bands)",
                      "EnMAP L2A band centres and FWHM from the metadata of the EnMAP L2A scene "
                      "ENMAP01-____L2A-DT0000001867_20220724T104526Z (EnMAP-Box test data, commit "
                      "f9e8f486c9614813410cc9d715bb056e6ad3cfd5); Gaussian built from centre/FWHM",
                      [(f"band{int(r[0]) + 1}", c[i], f[i]) for i, r in enumerate(rows)],
                      note="bands 130-135 (1331-1391 nm) are EnMAP bad bands (bbl=0)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--s2a")
    ap.add_argument("--py6s")
    ap.add_argument("--enmap-csv")
    ap.add_argument("--gaussians", action="store_true")
    ap.add_argument("--colour-dslr", help="colour-science .../cameras/dslr/sensitivities.py")
    a = ap.parse_args()
    if a.s2a:
        build_s2a(Path(a.s2a))
    if a.py6s:
        build_py6s(Path(a.py6s))
    if a.enmap_csv:
        build_enmap(Path(a.enmap_csv))
    if a.gaussians:
        build_gaussians()
    if a.colour_dslr:
        build_nikon(Path(a.colour_dslr))


if __name__ == "__main__":
    main()

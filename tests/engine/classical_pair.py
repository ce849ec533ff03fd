"""A small Wald-protocol pair (x4) made from the bundled EnMAP reference, for the classical-method tests.

Used only until ``sample/potsdam_lr_hsi_x4.tif`` + ``sample/potsdam_msi_s2a.tif`` exist: the tests
prefer those. Spatial: Gaussian PSF of FWHM = 4 HR px, block-centred decimation. Spectral: MSI bands
are plain means of the HSI bands inside Sentinel-2-like windows.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from osgeo import gdal

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "sample" / "enmap_potsdam_reference.tif"
SAMPLE_HSI = ROOT / "sample" / "potsdam_lr_hsi_x4.tif"
SAMPLE_MSI = ROOT / "sample" / "potsdam_msi_s2a.tif"
# (centre, width) nm, Sentinel-2A-like 10/20 m bands
S2_BANDS = [(492, 66), (560, 36), (665, 31), (704, 15), (740, 15), (783, 20), (833, 106), (865, 21),
            (1614, 91), (2202, 175)]


def read(path):
    ds = gdal.Open(str(path))
    return ds.ReadAsArray().astype(np.float32), ds


def reference_cube():
    ref, ds = read(REFERENCE)
    wl = np.array([float(ds.GetRasterBand(i + 1).GetMetadataItem("wavelength")) for i in range(ds.RasterCount)])
    nodata = ds.GetRasterBand(1).GetNoDataValue()
    good = ~(ref == nodata).all(axis=(1, 2))
    return ref, wl, good, ds


def gaussian_degrade(x, r, fwhm, ext=None):
    """Independent of the engine.

    Dense 2-D block-centred Gaussian weights, reflect padding; the support reaches ``ext`` HR pixels beyond
    the block (default ceil(3 sigma)).
    """
    sigma = fwhm / 2.3548
    ext = int(math.ceil(3 * sigma)) if ext is None else ext
    pos = np.arange(-ext, r + ext) - (r - 1) / 2
    k1 = np.exp(-0.5 * (pos / sigma) ** 2)
    k1 /= k1.sum()
    k2 = np.outer(k1, k1)
    C, H, W = x.shape
    xp = np.pad(x, ((0, 0), (ext, ext), (ext, ext)), mode="reflect")
    out = np.zeros((C, H // r, W // r), dtype=np.float64)
    for i in range(H // r):
        for j in range(W // r):
            out[:, i, j] = (xp[:, r * i:r * i + len(k1), r * j:r * j + len(k1)] * k2).sum(axis=(1, 2))
    return out.astype(np.float32)


def write(path, data, gt, wkt, nodata=None, wavelengths=None, fwhm=None, good=None):
    drv = gdal.GetDriverByName("GTiff")
    ds = drv.Create(str(path), data.shape[2], data.shape[1], data.shape[0], gdal.GDT_Float32)
    ds.SetGeoTransform(gt)
    ds.SetProjection(wkt)
    for i in range(data.shape[0]):
        b = ds.GetRasterBand(i + 1)
        b.WriteArray(data[i])
        if nodata is not None:
            b.SetNoDataValue(nodata)
        if wavelengths is not None:
            b.SetMetadataItem("wavelength", f"{wavelengths[i]:g}")
            b.SetMetadataItem("wavelength_units", "Nanometers")
            if fwhm is not None:
                b.SetMetadataItem("fwhm", f"{fwhm[i]:g}")
        if good is not None:
            b.SetMetadataItem("bbl", "1" if good[i] else "0")
    ds = None
    return str(path)


def make_wald_pair(folder, r=4):
    """Write (hsi, msi) paths in ``folder`` and return them with the reference array."""
    ref, wl, good, ds = reference_cube()
    gt, wkt = ds.GetGeoTransform(), ds.GetProjection()
    nodata = ds.GetRasterBand(1).GetNoDataValue()
    refg = np.where(good[:, None, None], ref, 0.0).astype(np.float32)
    lr = gaussian_degrade(refg, r, fwhm=float(r))
    lr[~good] = nodata
    msi = np.stack([refg[good & (np.abs(wl - c) <= w / 2)].mean(axis=0) for c, w in S2_BANDS])
    lr_gt = (gt[0], gt[1] * r, 0.0, gt[3], 0.0, gt[5] * r)
    folder = Path(folder)
    hsi = write(folder / "wald_hsi.tif", lr, lr_gt, wkt, nodata, wl, good=good)
    msi_p = write(folder / "wald_msi.tif", msi.astype(np.float32), gt, wkt, None,
                  [c for c, _ in S2_BANDS], [w for _, w in S2_BANDS])
    return hsi, msi_p, ref, good


def psnr(est, ref, good):
    """Mean over good bands of 10 log10(peak_b^2 / MSE_b), peak_b = the band's reference maximum."""
    e = est[good].astype(np.float64)
    t = ref[good].astype(np.float64)
    mse = ((e - t) ** 2).mean(axis=(1, 2))
    peak = t.max(axis=(1, 2))
    return float(np.mean(10 * np.log10(peak ** 2 / np.maximum(mse, 1e-30))))

"""Presets rendered headless.

The styled fusion output picks EnMAP's true-colour bands, the SAM map uses the fixed degree scale; both
rendered to PNG with QgsMapRendererParallelJob.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsMapRendererParallelJob, QgsMapSettings, QgsProcessingException, QgsRasterLayer
from qgis.PyQt.QtCore import QSize
from qgis.PyQt.QtGui import QColor, QImage

from conftest import SAMPLE

REF = SAMPLE / "enmap_potsdam_reference.tif"


def render(layer, path, size=(256, 128)) -> QImage:
    settings = QgsMapSettings()
    settings.setLayers([layer])
    settings.setDestinationCrs(layer.crs())
    settings.setExtent(layer.extent())
    settings.setOutputSize(QSize(*size))
    settings.setBackgroundColor(QColor(255, 255, 255))
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    img = job.renderedImage()
    assert img.save(str(path), "PNG")
    return img


def pixels(img: QImage, step: int = 8):
    return np.array([[QColor(img.pixel(x, y)).getRgb()[:3] for x in range(0, img.width(), step)]
                     for y in range(0, img.height(), step)])


@pytest.fixture()
def hsi_copy(tmp_path):
    dst = tmp_path / "fused.tif"
    shutil.copy(REF, dst)
    return dst


def test_style_writes_qml_and_renders_true_colour(run_alg, hsi_copy, tmp_path):
    res = run_alg("hsifusion:style", {"INPUT": str(hsi_copy), "PRESET": 0})
    qml = tmp_path / "fused.qml"
    assert res["OUTPUT"] == str(qml) and qml.exists()
    layer = QgsRasterLayer(str(hsi_copy), "fused")           # picks up the sidecar as default style
    assert layer.isValid()
    r = layer.renderer()
    assert r.type() == "multibandcolor"
    ds = gdal.Open(str(hsi_copy))
    wl = np.array([float(ds.GetRasterBand(b).GetMetadataItem("wavelength")) for b in range(1, 225)])
    ds = None
    expected = [int(np.argmin(np.abs(wl - t))) + 1 for t in (640, 550, 470)]
    assert [r.redBand(), r.greenBand(), r.blueBand()] == expected
    assert all(abs(wl[b - 1] - t) < 5 for b, t in zip(expected, (640, 550, 470)))
    ce = r.redContrastEnhancement()
    assert 0 <= ce.minimumValue() < ce.maximumValue() < 1        # QGIS units (scale 1e-4 applied)
    img = render(layer, tmp_path / "true_colour.png")
    px = pixels(img)
    assert px.std() > 10                                          # an image, not a flat fill
    assert (np.abs(px[..., 0] - px[..., 2]) > 5).mean() > 0.2     # colour, not grey
    assert res["BANDS"].startswith("preset true_colour: R = band %d" % expected[0])


def test_post_processor_styles_fusion_output_and_custom_presets(run_alg, hsi_copy, tmp_path):
    from hsifusion.provider.styling import _ALIVE, post_processor_for

    proc = post_processor_for(str(hsi_copy), "hsi")
    assert proc in _ALIVE
    layer = QgsRasterLayer(str(hsi_copy), "fused")
    proc.postProcessLayer(layer, None, None)
    assert layer.renderer().type() == "multibandcolor" and "true_colour" in proc.description
    res = run_alg("hsifusion:style", {"INPUT": str(hsi_copy), "PRESET": 4, "WAVELENGTHS": "1600, 860, 470"})
    lay2 = QgsRasterLayer(str(hsi_copy), "agri")
    assert lay2.renderer().redBand() != layer.renderer().redBand()
    render(lay2, tmp_path / "custom.png")
    assert "custom" in res["BANDS"]


def test_unavailable_preset_is_an_error(run_alg, tmp_path):
    vnir = tmp_path / "vnir.tif"
    gdal.Translate(str(vnir), str(REF), bandList=list(range(1, 60)))     # 418-~900 nm only
    with pytest.raises(QgsProcessingException, match="unavailable"):
        run_alg("hsifusion:style", {"INPUT": str(vnir), "PRESET": 2})
    assert not (tmp_path / "vnir.qml").exists()


def test_sam_map_renders_on_fixed_scale(run_alg, tmp_path):
    from hsifusion.provider.styling import post_processor_for

    path = tmp_path / "sam.tif"
    ds = gdal.GetDriverByName("GTiff").Create(str(path), 64, 32, 1, gdal.GDT_Float32)
    src = gdal.Open(str(REF))
    ds.SetProjection(src.GetProjection())
    ds.SetGeoTransform(src.GetGeoTransform())
    a = np.full((32, 64), 0.0, np.float32)
    a[:, 32:] = 30.0                                  # above the 20-degree top of the scale
    a[:4, :4] = -9999
    ds.GetRasterBand(1).WriteArray(a)
    ds.GetRasterBand(1).SetNoDataValue(-9999)
    ds = None
    layer = QgsRasterLayer(str(path), "sam")
    post_processor_for(str(path), "sam").postProcessLayer(layer, None, None)
    legend = [item.label for item in layer.renderer().shader().rasterShaderFunction().colorRampItemList()]
    assert legend == ["0°", "2°", "5°", "10°", "15°", "≥ 20°"]
    img = render(layer, tmp_path / "sam.png", (64, 32))
    left = QColor(img.pixel(16, 20)).getRgb()[:3]
    right = QColor(img.pixel(48, 20)).getRgb()[:3]
    corner = QColor(img.pixel(1, 1)).getRgb()[:3]
    assert left == (0x1a, 0x98, 0x50)                  # 0 degrees: dark green
    assert right == (0x7f, 0x00, 0x00)                 # >= 20 degrees: top colour
    assert corner == (255, 255, 255)                   # nodata: transparent over the white background
    res = run_alg("hsifusion:style", {"INPUT": str(path), "PRESET": 5})
    assert res["OUTPUT"].endswith("sam.qml")

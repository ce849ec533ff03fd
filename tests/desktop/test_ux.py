"""What the desktop shows, checked without a GUI.

Help text, style output, layer names, drop-down labels, decimals, the SAM legend, import errors and
cross-parameter checks.
"""
from __future__ import annotations

import html
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from qgis.core import (
    QgsLayerTreeModel,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingOutputLayerDefinition,
    QgsProcessingParameterNumber,
    QgsProject,
    QgsRasterLayer,
)
from qgis.PyQt.QtCore import Qt

from rasterkit import REFERENCE, synthetic_pair

# --- help text ---------------------------------------------------------------------------------------


def test_definition_lines_get_labels_and_the_rest_a_closing_list():
    from hsifusion.provider.helptext import OTHERS_HEADING, label_parameters

    text = ("Uses HSI and TILE_SIZE.\nHSI, MSI (both rasters): same CRS (HSI grid).\n"
            "ERGAS: 100 / RATIO x error.\nTILE_SIZE (advanced): memory.\n")
    labels = {"HSI": "Low-res HSI", "MSI": "High-res MSI", "TILE_SIZE": "Tile size", "RATIO": "Ratio"}
    out = label_parameters(text, labels)
    lines = out.split("\n")
    assert lines[0] == "Uses HSI and TILE_SIZE."                       # running text keeps ids
    assert lines[1] == "Low-res HSI [HSI], High-res MSI [MSI] (both rasters): same CRS (HSI grid)."
    assert lines[2] == "ERGAS: 100 / RATIO x error."                    # not a definition of RATIO
    assert lines[3] == "Tile size [TILE_SIZE] (advanced): memory."
    assert out.rstrip().endswith(f"{OTHERS_HEADING} Ratio [RATIO].")


def test_help_is_escaped_for_the_dialog_and_plain_for_qgis_process(hsifusion_provider):
    from hsifusion.provider.helptext import help_string

    alg = hsifusion_provider.algorithm("assess")
    for_dialog, for_cli = help_string(alg, "desktop"), help_string(alg, "qgis_process")
    assert "arccos(<x,y>" in for_cli and "<x,y>" not in for_dialog
    assert html.unescape(for_dialog) == for_cli


def test_qgis_process_prints_the_help_as_plain_text(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "algorithms"))
    from test_upsample_alg import QGIS_PROCESS, qgis_process_env

    if not os.path.exists(QGIS_PROCESS):
        pytest.skip("qgis_process.bin not installed")
    proc = subprocess.run([QGIS_PROCESS, "help", "hsifusion:assess"], env=qgis_process_env(tmp_path),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "arccos(<x,y> / (|x| |y|))" in proc.stdout and "&lt;" not in proc.stdout
    assert "Tile size (HR pixels) [TILE_SIZE]" in proc.stdout


# --- style output ------------------------------------------------------------------------------------


@pytest.fixture()
def raster_in_folder(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    dst = folder / "scene.tif"
    shutil.copy(REFERENCE, dst)
    return dst


def test_style_writes_to_output_and_restyles_the_project_layer(run_alg, raster_in_folder, tmp_path):
    project = QgsProject()
    shown = QgsRasterLayer(str(raster_in_folder), "scene in the project")
    assert shown.isValid() and project.addMapLayer(shown) is not None
    before = (shown.renderer().redBand(), shown.renderer().greenBand(), shown.renderer().blueBand())
    context = QgsProcessingContext()
    context.setProject(project)
    target = tmp_path / "styles" / "true.qml"
    target.parent.mkdir()
    res = run_alg("hsifusion:style", {"INPUT": str(raster_in_folder), "PRESET": 0, "OUTPUT": str(target)},
                  context=context)
    assert res["OUTPUT"] == str(target) and target.exists()
    assert not [f for f in os.listdir(raster_in_folder.parent) if f.endswith(".qml")]   # none next to the input
    after = (shown.renderer().redBand(), shown.renderer().greenBand(), shown.renderer().blueBand())
    assert after != before and f"band {after[0]}" in res["BANDS"]
    reloaded = QgsRasterLayer(str(raster_in_folder), "fresh")
    reloaded.loadNamedStyle(str(target))
    assert reloaded.renderer().redBand() == after[0]


def test_style_to_an_unwritable_place_names_it(run_alg, raster_in_folder, tmp_path, monkeypatch):
    with pytest.raises(QgsProcessingException, match="does not exist"):
        run_alg("hsifusion:style", {"INPUT": str(raster_in_folder), "OUTPUT": str(tmp_path / "no" / "x.qml")})
    # a read-only data folder (faked: root may write anywhere): the default style file cannot go next to it
    from hsifusion.provider import styling

    real_access = os.access
    monkeypatch.setattr(styling.os, "access", lambda path, mode: (
        False if os.path.realpath(path) == os.path.realpath(raster_in_folder.parent) else real_access(path, mode)))
    with pytest.raises(QgsProcessingException, match=r"data is not writable.*\(OUTPUT\)"):
        run_alg("hsifusion:style", {"INPUT": str(raster_in_folder)})
    assert not [f for f in os.listdir(raster_in_folder.parent) if f.endswith(".qml")]
    res = run_alg("hsifusion:style", {"INPUT": str(raster_in_folder), "OUTPUT": str(tmp_path / "elsewhere.qml")})
    assert os.path.exists(res["OUTPUT"])


# --- layer names -------------------------------------------------------------------------------------


def _loaded_name(run_alg, project, params, output):
    """Run upsample as the dialog does (output loaded into ``project``); the layer name it gets."""
    context = QgsProcessingContext()
    context.setProject(project)
    res = run_alg("hsifusion:upsample", {**params, "OUTPUT": QgsProcessingOutputLayerDefinition(output, project)},
                  context=context)
    details = context.layerToLoadOnCompletionDetails(res["OUTPUT"])
    layer = QgsRasterLayer(res["OUTPUT"], details.name)
    project.addMapLayer(layer)                    # what Processing does when the run completes
    return details.name


def test_repeated_runs_get_distinct_layer_names(run_alg, tmp_path):
    hsi, msi = synthetic_pair(tmp_path)
    project = QgsProject()
    pair = {"HSI": hsi, "MSI": msi}
    first = _loaded_name(run_alg, project, pair, "TEMPORARY_OUTPUT")
    second = _loaded_name(run_alg, project, pair, "TEMPORARY_OUTPUT")
    assert first and first != second and second.startswith(first)
    named = _loaded_name(run_alg, project, pair, str(tmp_path / "bicubic_x4.tif"))
    assert "bicubic_x4" in named and named not in (first, second)


# --- drop-downs and decimals -------------------------------------------------------------------------


def test_sensor_drop_downs_show_titles_and_map_back_to_keys(hsifusion_provider):
    from hsifusion.engine.sensors.srf import list_sensors, sensor_titles
    from hsifusion.provider import params as P

    titles = sensor_titles()
    for alg_id, keys in (("simulate", list_sensors()), ("train", [k for k in list_sensors() if k != "enmap_hsi"])):
        p = hsifusion_provider.algorithm(alg_id).parameterDefinition("SENSOR")
        assert p.options() == [titles[k] for k in keys], alg_id
        assert keys[p.defaultValue()] == "sentinel2a_msi"
    alg = hsifusion_provider.algorithm("simulate")
    context = QgsProcessingContext()
    k = list_sensors().index("landsat8_oli")
    assert P.sensor_value(alg, {"SENSOR": k}, context) == "landsat8_oli"
    device = hsifusion_provider.algorithm("train").parameterDefinition("DEVICE")
    assert not {"auto", "cpu", "cuda"} & set(device.options())


def test_every_decimal_field_shows_its_default_exactly(hsifusion_provider):
    from hsifusion.provider.compat import NUMBER_DOUBLE

    seen = 0
    for alg in hsifusion_provider.algorithms():
        for p in alg.parameterDefinitions():
            if isinstance(p, QgsProcessingParameterNumber) and p.dataType() == NUMBER_DOUBLE:
                decimals = p.metadata()["widget_wrapper"]["decimals"]
                if p.defaultValue() is not None:
                    assert round(p.defaultValue(), decimals) == pytest.approx(p.defaultValue(), abs=1e-12)
                assert 2 <= decimals <= 8, (alg.id(), p.name())
                seen += 1
    assert seen > 10
    validation = hsifusion_provider.algorithm("train").parameterDefinition("VALIDATION")
    assert validation.metadata()["widget_wrapper"]["decimals"] == 2
    rate = hsifusion_provider.algorithm("train").parameterDefinition("LEARNING_RATE")
    assert rate.metadata()["widget_wrapper"]["decimals"] >= 5          # 1e-4 must be typeable


# --- SAM legend --------------------------------------------------------------------------------------


def test_sam_legend_reads_degrees(tmp_path):
    from osgeo import gdal

    from hsifusion.provider.styling import SAM_LEGEND_TITLE, post_processor_for

    path = tmp_path / "sam.tif"
    ds = gdal.GetDriverByName("GTiff").Create(str(path), 8, 8, 1, gdal.GDT_Float32)
    ds.SetGeoTransform((0, 1, 0, 0, 0, -1))
    ds.GetRasterBand(1).SetDescription("SAM (degrees)")
    ds = None
    project = QgsProject()
    layer = QgsRasterLayer(str(path), "sam")
    project.addMapLayer(layer)
    context = QgsProcessingContext()
    context.setProject(project)
    model = QgsLayerTreeModel(project.layerTreeRoot())     # the Layers panel exists before the result loads
    post_processor_for(str(path), "sam").postProcessLayer(layer, context, None)
    nodes = model.layerLegendNodes(project.layerTreeRoot().findLayer(layer.id()))
    texts = [n.data(Qt.ItemDataRole.DisplayRole) for n in nodes]
    assert texts[0] == SAM_LEGEND_TITLE and "Band 1" not in texts[0] and "Gray" not in texts[0]
    assert texts[1:] == ["0°", "2°", "5°", "10°", "15°", "≥ 20°"]


# --- import errors -----------------------------------------------------------------------------------


@pytest.fixture()
def fake_algorithms(tmp_path, monkeypatch):
    """A throw-away algorithms package: ``write(name, source)`` adds a module; returns (package, write)."""
    package = f"fake_algs_{os.getpid()}_{len(sys.modules)}"
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(name, source):
        (tmp_path / package / f"{name}.py").write_text(textwrap.dedent(source))

    return package, write


def test_missing_optional_package_skips_the_module_with_its_install_command(fake_algorithms):
    from hsifusion.provider.provider import discover_algorithm_classes

    package, write = fake_algorithms
    write("needs_dask", "raise ModuleNotFoundError(\"No module named 'dask'\", name='dask')\n")
    write("fine", "ALGORITHMS = [int]\n")
    classes, errors = discover_algorithm_classes(package)
    assert classes == [int]
    assert [m for m, _ in errors] == ["needs_dask"] and "pip install" in errors[0][1]


def test_internal_import_error_is_raised_not_reported_as_missing_package(fake_algorithms):
    from hsifusion.provider.provider import discover_algorithm_classes

    package, write = fake_algorithms
    write("broken", "from hsifusion.engine.api import no_such_function\n")
    with pytest.raises(ImportError, match="broken cannot be imported.*no_such_function") as info:
        discover_algorithm_classes(package)
    assert "pip install" not in str(info.value)


def test_internal_import_error_at_run_time_is_not_a_missing_package(hsifusion_provider, monkeypatch):
    from hsifusion.provider.base import missing_optional_package

    assert missing_optional_package(ModuleNotFoundError("x", name="torch.nn")) == "torch"
    assert missing_optional_package(ImportError("cannot import name X", name="hsifusion.engine.api")) is None
    alg = hsifusion_provider.algorithm("assess").create()

    def broken(*_args, **_kw):
        raise ImportError("cannot import name X from hsifusion.engine.api", name="hsifusion.engine.api")

    monkeypatch.setattr(alg, "execute", broken)
    with pytest.raises(ImportError, match="cannot import name X"):
        alg.processAlgorithm({}, QgsProcessingContext(), None)


# --- cross-parameter checks before the run -----------------------------------------------------------


def test_train_pairs_are_checked_before_the_run(hsifusion_provider, tmp_path):
    hsi, msi = synthetic_pair(tmp_path)
    alg = hsifusion_provider.algorithm("train")
    out = tmp_path / "net.pt"
    ok, msg = alg.checkParameterValues({"LR_HSI": [hsi, hsi], "HR_MSI": [msi], "OUTPUT": str(out)},
                                       QgsProcessingContext())
    assert not ok and "2 LR-HSI and 1 HR-MSI" in msg
    ok, msg = alg.checkParameterValues({"REFERENCES": [hsi], "LR_HSI": [hsi], "HR_MSI": [msi], "OUTPUT": str(out)},
                                       QgsProcessingContext())
    assert not ok and "not both" in msg
    ok, msg = alg.checkParameterValues({"LR_HSI": [hsi], "HR_MSI": [msi], "OUTPUT": str(out)}, QgsProcessingContext())
    assert ok, msg
    assert not out.exists()


def test_style_cuts_are_checked_before_the_run(hsifusion_provider):
    alg = hsifusion_provider.algorithm("style")
    ok, msg = alg.checkParameterValues({"INPUT": str(REFERENCE), "LOWER": 60, "UPPER": 40}, QgsProcessingContext())
    assert not ok and "lower cut" in msg
    ok, msg = alg.checkParameterValues({"INPUT": str(REFERENCE), "PRESET": 4}, QgsProcessingContext())
    assert not ok and "three wavelengths" in msg


def test_assess_and_simulate_inputs_are_checked_before_the_run(hsifusion_provider, tmp_path):
    hsi, msi = synthetic_pair(tmp_path)
    assess = hsifusion_provider.algorithm("assess")
    ok, msg = assess.checkParameterValues({"ESTIMATE": str(REFERENCE)}, QgsProcessingContext())
    assert not ok and "reference" in msg
    ok, msg = assess.checkParameterValues({"ESTIMATE": str(REFERENCE), "LR_HSI": hsi}, QgsProcessingContext())
    assert not ok and "both" in msg
    ok, msg = assess.checkParameterValues({"ESTIMATE": str(REFERENCE), "LR_HSI": hsi, "MSI": msi},
                                          QgsProcessingContext())
    assert ok, msg
    simulate = hsifusion_provider.algorithm("simulate")
    params = {"REFERENCE": str(REFERENCE), "PSF": 2, "OUTPUT_HSI": str(tmp_path / "lr.tif"),
              "OUTPUT_MSI": str(tmp_path / "ms.tif")}
    ok, msg = simulate.checkParameterValues(params, QgsProcessingContext())
    assert not ok and "kernel file" in msg

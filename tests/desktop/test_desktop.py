"""Desktop smoke test: dialogs, their help, the shipped model in the modeler and run with defaults.

Every algorithm's dialog builds and shows its whole help, the shipped model opens in the graphical
modeler valid and laid out, and runs with its defaults through the Processing API.

The GUI parts run in a child process (desktop_checks.py) with a GUI-enabled QgsApplication on Qt's
offscreen platform: this test session's app is built without GUI (pytest.ini qgis_gui_enabled=false).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from osgeo import gdal

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def desktop(tmp_path_factory):
    out = tmp_path_factory.mktemp("desktop")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HOME=str(out))
    proc = subprocess.run([sys.executable, str(HERE / "desktop_checks.py"), str(out), "--run-model"],
                          env=env, capture_output=True, text=True, timeout=600)
    report_path = out / "desktop_report.json"
    assert report_path.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(report_path.read_text())
    assert report["errors"] == {}, report["errors"]
    return report


def _words(text: str) -> str:
    return " ".join(text.split())


def test_every_algorithm_dialog_builds(desktop, hsifusion_provider):
    expected = {a.id() for a in hsifusion_provider.algorithms()}
    assert set(desktop["algorithms"]) == expected and len(expected) >= 16


def test_help_renders_without_lost_text(desktop):
    from hsifusion.provider.helptext import OTHERS_HEADING

    for alg_id, state in desktop["algorithms"].items():
        source, shown = state["source"], state["help_plain"]
        assert source.strip(), f"{alg_id} has no help"
        labels = state["parameter_labels"]
        body = shown.split(OTHERS_HEADING)[0]
        # every parameter is shown once as "Label [ID]" (in a definition line or the closing list)
        for name, label in labels.items():
            assert f"{label} [{name}]" in shown, (alg_id, name)
        # with the labels taken back out, the rendered text is the source, word for word
        for name, label in labels.items():
            body = body.replace(f"{label} [{name}]", name)
        rendered = _words(body)
        assert rendered.endswith(_words(source)), (alg_id, rendered[-400:], _words(source)[-400:])


@pytest.mark.parametrize("alg_id, fragment", [
    ("hsifusion:assess", "arccos(<x,y> / (|x| |y|))"),
    ("hsifusion:train", "fuse_<network> reuses"),
    ("hsifusion:train", "<name>_log.csv"),
    ("hsifusion:simulate", '"wavelength,<band name>,..."'),
    ("hsifusion:spectral_resample", '"wavelength,<band name>,..."'),
])
def test_angle_brackets_survive(desktop, alg_id, fragment):
    assert fragment in desktop["algorithms"][alg_id]["help_plain"]


def test_model_valid_in_modeler_and_laid_out(desktop):
    state = desktop["modeler"]
    assert state["valid"] and state["issues"] == [], state["issues"]
    assert all(v == [] for v in state["child_issues"].values()), state["child_issues"]
    assert state["missing_algorithms"] == []
    rects = state["rects"]
    assert len(rects) == 9                    # 3 inputs, 3 steps, 3 outputs
    for i, a in enumerate(rects):
        assert a["w"] > 0 and a["h"] > 0
        for b in rects[i + 1:]:
            apart_x = abs(a["x"] - b["x"]) >= (a["w"] + b["w"]) / 2
            apart_y = abs(a["y"] - b["y"]) >= (a["h"] + b["h"]) / 2
            assert apart_x or apart_y, (a["name"], b["name"])


def test_model_runs_with_defaults(desktop):
    outputs = desktop["model_run"]["outputs"]
    fused = gdal.Open(outputs["fuse_cofusion:Fused HR-HSI"])
    sam = gdal.Open(outputs["assess:SAM map"])
    assert fused.RasterCount == 224 and sam.RasterCount == 1
    assert (fused.RasterXSize, fused.RasterYSize) == (sam.RasterXSize, sam.RasterYSize)
    assert os.path.getsize(outputs["assess:Quality report"]) > 1000


def test_drop_downs_show_labels_not_ids(desktop):
    from hsifusion.engine.sensors.srf import list_sensors

    keys = set(list_sensors())
    for alg_id in ("hsifusion:simulate", "hsifusion:spectral_resample", "hsifusion:train"):
        items = [i for combo in desktop["algorithms"][alg_id]["combos"] for i in combo]
        assert not keys & set(items), alg_id
        assert not [i for i in items if re.search(r"\((%s)\)$" % "|".join(keys), i)], alg_id
        assert any(i.startswith("Sentinel-2A MSI") for i in items), alg_id
    for alg_id, state in desktop["algorithms"].items():
        items = {i for combo in state["combos"] for i in combo}
        assert not [i for i in items if re.fullmatch(r"[a-z][a-z0-9_]*", i)], (alg_id, items)   # no raw ids


def test_number_fields_show_sensible_decimals(desktop):
    from hsifusion.provider.params import FINE_DECIMALS

    for alg_id, state in desktop["algorithms"].items():
        for name, text in state["double_spins"]:
            if name not in FINE_DECIMALS:         # learning rates keep the digits 1e-4 needs
                assert not re.search(r"\.\d*0000$", text), (alg_id, name, text)

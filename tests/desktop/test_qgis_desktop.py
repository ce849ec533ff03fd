"""The real QGIS desktop application (under Xvfb) with the plugin enabled.

Results the Toolbox loads get distinct names, styles and a SAM legend in degrees; hsifusion:style
restyles a layer of the project.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from rasterkit import ROOT, SAMPLE

QGIS, XVFB = shutil.which("qgis"), shutil.which("xvfb-run")
PROFILE_INI = "[PythonPlugins]\nhsifusion=true\nprocessing=true\n\n[qgis]\nshowTips=false\ncheckVersion=false\n"


@pytest.fixture(scope="module")
def desktop_run(tmp_path_factory):
    if not (QGIS and XVFB):
        pytest.skip("the QGIS desktop application or xvfb-run is not installed")
    work = tmp_path_factory.mktemp("qgis_desktop")
    home, plugins = work / "home", work / "plugins"
    ini = home / ".local/share/QGIS/QGIS3/profiles/default/QGIS/QGIS3.ini"
    ini.parent.mkdir(parents=True)
    ini.write_text(PROFILE_INI)
    plugins.mkdir()
    (plugins / "hsifusion").symlink_to(ROOT, target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    env.update(HOME=str(home), QGIS_PLUGINPATH=str(plugins), HSIFUSION_DESKTOP_OUT=str(work),
               HSIFUSION_SAMPLE=str(SAMPLE),
               PYTHONPATH=os.pathsep.join(p for p in sys.path if "site-packages" in p))
    script = ROOT / "tests" / "desktop" / "qgis_desktop_script.py"
    proc = subprocess.run([XVFB, "-a", QGIS, "--nologo", "--noversioncheck", "--code", str(script)], env=env,
                          capture_output=True, text=True, timeout=300)
    result = work / "result.json"
    assert result.exists(), proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads(result.read_text())
    assert "error" not in report, report["error"]
    return report


def test_plugin_loads_in_the_desktop(desktop_run):
    assert "hsifusion" in desktop_run["plugins"]


def test_loaded_results_have_distinct_names_and_styles(desktop_run):
    layers = desktop_run["layers"]
    fused = sorted(name for name in layers if name.startswith("GSA fusion"))
    assert fused == ["GSA fusion", "GSA fusion (2)"]
    assert all(layers[name]["renderer"] == "multibandcolor" for name in fused)
    sam = [name for name in layers if layers[name]["source"].endswith("gsa_sam.tif")]
    assert sam == ["SAM (degrees): gsa_sam"]
    assert layers[sam[0]]["renderer"] == "singlebandpseudocolor"
    assert layers[sam[0]]["legend"] == ["SAM (degrees)", "0°", "2°"]


def test_style_restyles_the_layer_in_the_project(desktop_run):
    style = desktop_run["style"]
    assert style["red_after"] != style["red_before"]
    assert f"R = band {style['red_after']} " in style["bands"] and "colour_infrared" in style["bands"]
    assert os.path.exists(style["qml"])

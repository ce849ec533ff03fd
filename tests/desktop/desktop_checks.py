"""Desktop checks in a QGIS application with its GUI (the test session's own app has none).

Run as a script by test_desktop.py; writes one JSON object with what it found. Headless through Qt's
offscreen platform (or under xvfb-run).

Usage: python desktop_checks.py OUT_DIR [--run-model]
"""
from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "modeler" / "wald_protocol_cofusion.model3"

sys.path.insert(0, str(ROOT / "tools"))
from qgis_app import start_app  # noqa: E402


def dialog_help(alg) -> dict:
    """Build the algorithm's dialog; its help panel as plain text, and the parameter widgets' labels."""
    from processing.gui.AlgorithmDialog import AlgorithmDialog
    from qgis.PyQt.QtWidgets import QLabel, QTextBrowser

    dlg = AlgorithmDialog(alg.create())
    browser = dlg.findChild(QTextBrowser, "textShortHelp")
    labels = [w.text() for w in dlg.findChildren(QLabel) if w.text()]
    combos = {}
    from qgis.PyQt.QtWidgets import QComboBox

    for combo in dlg.findChildren(QComboBox):
        combos[combo.objectName() or str(len(combos))] = [combo.itemText(i) for i in range(combo.count())]
    spin_texts = []
    from qgis.PyQt.QtWidgets import QDoubleSpinBox

    for name, wrapper in dlg.mainWidget().wrappers.items():
        widget = getattr(wrapper, "wrappedWidget", lambda: None)()
        spins = ([widget] if isinstance(widget, QDoubleSpinBox) else
                 widget.findChildren(QDoubleSpinBox) if widget is not None else [])
        spin_texts.extend((name, spin.text()) for spin in spins)
    result = {"help_plain": browser.toPlainText() if browser is not None else None,
              "labels": labels, "combos": list(combos.values()), "double_spins": spin_texts,
              "title": dlg.windowTitle()}
    dlg.close()
    dlg.deleteLater()
    return result


def modeler_state() -> dict:
    """Open the shipped model in ModelerDialog: validation issues and the canvas rectangles of items."""
    from processing.modeler.ModelerDialog import ModelerDialog
    from qgis.core import QgsProcessingModelAlgorithm

    model = QgsProcessingModelAlgorithm()
    assert model.fromFile(str(MODEL)), MODEL
    dlg = ModelerDialog(model)
    loaded = dlg.model()
    ok, issues = loaded.validate()
    comps = []
    for name, comp in loaded.parameterComponents().items():
        comps.append(("input", name, comp))
    for cid, child in loaded.childAlgorithms().items():
        comps.append(("child", cid, child))
        for out_name, out in child.modelOutputs().items():
            comps.append(("output", f"{cid}:{out_name}", out))
    rects = [{"kind": kind, "name": name, "x": c.position().x(), "y": c.position().y(),
              "w": c.size().width(), "h": c.size().height()} for kind, name, c in comps]
    child_issues = {cid: list(loaded.validateChildAlgorithm(cid)[1]) for cid in loaded.childAlgorithms()}
    missing_algs = [cid for cid, child in loaded.childAlgorithms().items() if child.algorithm() is None]
    dlg.close()
    return {"valid": ok, "issues": list(issues), "child_issues": child_issues, "rects": rects,
            "missing_algorithms": missing_algs}


def run_model(out_dir: Path) -> dict:
    """The model through the Processing API with its defaults, one training iteration."""
    import shutil

    import processing
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback, QgsProcessingModelAlgorithm

    ref = out_dir / "reference.tif"
    shutil.copy(ROOT / "sample" / "enmap_potsdam_reference.tif", ref)
    outputs = {"fuse_cofusion:Fused HR-HSI": str(out_dir / "fused.tif"),
               "assess:SAM map": str(out_dir / "sam.tif"), "assess:Quality report": str(out_dir / "report.html")}
    model = QgsProcessingModelAlgorithm()
    assert model.fromFile(str(MODEL)), MODEL
    res = processing.run(model, {"reference": str(ref), "iterations": 1, **outputs},
                         feedback=QgsProcessingFeedback(), context=QgsProcessingContext())
    return {"outputs": outputs, "results": {k: str(v) for k, v in res.items()}}


def main() -> int:
    out_dir = Path(sys.argv[1])
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {"errors": {}}
    app, provider = start_app()
    report["algorithms"] = {}
    for alg in provider.algorithms():
        from hsifusion.provider.helptext import help_source, parameter_labels

        try:
            state = dialog_help(alg)
        except Exception:
            report["errors"][alg.id()] = traceback.format_exc()
            continue
        state["source"] = help_source(alg.name())
        state["parameter_labels"] = parameter_labels(alg)
        report["algorithms"][alg.id()] = state
    try:
        report["modeler"] = modeler_state()
    except Exception:
        report["errors"]["modeler"] = traceback.format_exc()
    if "--run-model" in sys.argv:
        try:
            report["model_run"] = run_model(out_dir)
        except Exception:
            report["errors"]["model_run"] = traceback.format_exc()
    (out_dir / "desktop_report.json").write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

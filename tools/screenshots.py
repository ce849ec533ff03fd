"""Screenshots of the plugin in QGIS' own widgets for the README.

The Processing Toolbox, an algorithm dialog, a fused result styled on load with its SAM map and legend,
and the example model in the modeler.

Run headless from the repository root (a standalone GUI QgsApplication; no QGIS window needed):
    QT_QPA_PLATFORM=offscreen .venv/bin/python tools/screenshots.py [docs]
or under X: ``xvfb-run -a .venv/bin/python tools/screenshots.py``. Writes docs/screenshot_*.png (scaled
so each stays small) after fusing the bundled sample with GSA and assessing it (about a minute).
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_WIDTH = 1000

sys.path.insert(0, str(ROOT / "tools"))
from qgis_app import start_app  # noqa: E402


def settle(app, rounds: int = 20) -> None:
    for _ in range(rounds):
        app.processEvents()


def save(widget_or_image, path: Path, max_width: int = MAX_WIDTH) -> Path:
    """Grab a widget (or take a QImage/QPixmap), scale it to ``max_width``, save as PNG."""
    from qgis.PyQt.QtCore import Qt
    from qgis.PyQt.QtGui import QImage, QPixmap

    image = widget_or_image
    if not isinstance(image, (QImage, QPixmap)):
        image = widget_or_image.grab()
    if image.width() > max_width:
        image = image.scaledToWidth(max_width, Qt.TransformationMode.SmoothTransformation)
    assert image.save(str(path), "PNG"), path
    print(path, f"{path.stat().st_size // 1024} KB")
    return path


def toolbox(app, out: Path) -> Path:
    """The Processing Toolbox tree with the HSI Fusion provider expanded."""
    from qgis.core import QgsApplication
    from qgis.gui import QgsProcessingToolboxTreeView

    view = QgsProcessingToolboxTreeView(None, QgsApplication.processingRegistry())
    view.setWindowTitle("Processing Toolbox")
    view.setHeaderHidden(True)
    view.resize(540, 560)
    view.setFilterString("hsi fusion")
    view.expandAll()
    view.show()
    settle(app)
    return save(view, out / "screenshot_toolbox.png")


def dialog(app, out: Path, alg_id: str, params: dict, show_in_help: str = "") -> Path:
    """An algorithm's dialog with its help panel, parameters filled in."""
    from processing.gui.AlgorithmDialog import AlgorithmDialog
    from qgis.core import QgsApplication, QgsProcessingContext

    alg = QgsApplication.processingRegistry().createAlgorithmById(alg_id)
    dlg = AlgorithmDialog(alg)
    dlg.resize(1100, 700)
    panel = dlg.mainWidget()
    for name, value in params.items():
        wrapper = panel.wrappers.get(name)
        if wrapper is not None:
            wrapper.setParameterValue(value, QgsProcessingContext())
    dlg.show()
    settle(app)
    from qgis.PyQt.QtWidgets import QSplitter, QTextBrowser

    splitter = dlg.findChild(QSplitter)
    if splitter is not None:
        splitter.setSizes([620, 460])
    browser = dlg.findChild(QTextBrowser, "textShortHelp")
    if browser is not None and show_in_help:
        browser.find(show_in_help)        # the help scrolled to a labelled parameter, its line on top
        bar = browser.verticalScrollBar()
        bar.setValue(bar.value() + browser.cursorRect().top() - 8)
    settle(app)
    path = save(dlg, out / f"screenshot_dialog_{alg_id.split(':')[1]}.png")
    dlg.close()
    return path


def fused_result(app, out: Path, work: Path):
    """GSA on the bundled sample and its assessment, loaded as the desktop loads results.

    Names and styles come from the plugin; returns the layers in the project.
    """
    import processing
    from processing.gui.Postprocessing import handleAlgorithmResults
    from qgis.core import (
        QgsApplication,
        QgsProcessingContext,
        QgsProcessingFeedback,
        QgsProcessingOutputLayerDefinition,
        QgsProject,
    )

    project = QgsProject.instance()
    sample = ROOT / "sample"
    for name in ("potsdam_lr_hsi_x4.tif", "potsdam_msi_s2a.tif", "enmap_potsdam_reference.tif"):
        shutil.copy(sample / name, work / name)

    def run(alg_id, params):
        context = QgsProcessingContext()
        context.setProject(project)
        feedback = QgsProcessingFeedback()
        alg = QgsApplication.processingRegistry().createAlgorithmById(alg_id)
        res = processing.run(alg, params, context=context, feedback=feedback)
        handleAlgorithmResults(alg, context, feedback, True, params)
        return res

    fused = str(work / "potsdam_gsa.tif")
    run("hsifusion:fuse_gsa", {"HSI": str(work / "potsdam_lr_hsi_x4.tif"), "MSI": str(work / "potsdam_msi_s2a.tif"),
                               "OUTPUT": QgsProcessingOutputLayerDefinition(fused, project)})
    run("hsifusion:assess", {"REFERENCE": str(work / "enmap_potsdam_reference.tif"), "ESTIMATE": fused, "RATIO": 4,
                             "OUTPUT_SAM": QgsProcessingOutputLayerDefinition(str(work / "potsdam_gsa_sam.tif"),
                                                                              project),
                             "OUTPUT_REPORT": str(work / "report.html")})
    settle(app)
    return list(project.mapLayers().values())


def render(layer, width: int, height: int):
    from qgis.core import QgsMapRendererParallelJob, QgsMapSettings
    from qgis.PyQt.QtCore import QSize
    from qgis.PyQt.QtGui import QColor

    settings = QgsMapSettings()
    settings.setLayers([layer])
    settings.setDestinationCrs(layer.crs())
    settings.setExtent(layer.extent())
    settings.setOutputSize(QSize(width, height))
    settings.setBackgroundColor(QColor(255, 255, 255))
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    return job.renderedImage()


def styled_result(app, out: Path, layers) -> Path:
    """Layers panel (names and legends as loaded) next to both maps as QGIS renders them."""
    from qgis.core import QgsLayerTreeModel, QgsProject
    from qgis.gui import QgsLayerTreeView
    from qgis.PyQt.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

    project = QgsProject.instance()
    model = QgsLayerTreeModel(project.layerTreeRoot())
    tree = QgsLayerTreeView()
    tree.setModel(model)
    tree.setFixedWidth(400)
    tree.expandAll()
    window = QWidget()
    window.setWindowTitle("Fused result, styled on load")
    row = QHBoxLayout(window)
    row.addWidget(tree)
    maps = QVBoxLayout()
    for layer in sorted(layers, key=lambda lyr: lyr.name()):
        caption = QLabel(layer.name())
        picture = QLabel()
        from qgis.PyQt.QtGui import QPixmap

        picture.setPixmap(QPixmap.fromImage(render(layer, 560, 250)))
        maps.addWidget(caption)
        maps.addWidget(picture)
    row.addLayout(maps)
    window.resize(1000, 620)
    window.show()
    settle(app)
    return save(window, out / "screenshot_styled_result.png")


def modeler(app, out: Path) -> Path:
    """The example model open in the graphical modeler."""
    from processing.modeler.ModelerDialog import ModelerDialog
    from qgis.core import QgsProcessingModelAlgorithm

    model = QgsProcessingModelAlgorithm()
    assert model.fromFile(str(ROOT / "modeler" / "wald_protocol_cofusion.model3"))
    dlg = ModelerDialog(model)
    dlg.resize(1400, 700)
    dlg.show()
    settle(app)
    view = dlg.view() if hasattr(dlg, "view") else dlg
    scene = view.scene()
    view.fitInView(scene.itemsBoundingRect().adjusted(-20, -20, 20, 20))
    settle(app)
    path = save(dlg, out / "screenshot_modeler.png")
    dlg.close()
    return path


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs"
    out.mkdir(parents=True, exist_ok=True)
    app, _provider = start_app()
    toolbox(app, out)
    sample = ROOT / "sample"
    from qgis.core import QgsProject, QgsRasterLayer

    reference = QgsRasterLayer(str(sample / "enmap_potsdam_reference.tif"), "enmap_potsdam_reference")
    QgsProject.instance().addMapLayer(reference)       # chosen in the dialog as a layer of the project
    dialog(app, out, "hsifusion:simulate", {"REFERENCE": reference}, show_in_help="[SENSOR]")
    QgsProject.instance().removeMapLayer(reference.id())
    modeler(app, out)
    with tempfile.TemporaryDirectory() as work:
        layers = fused_result(app, out, Path(work))
        styled_result(app, out, layers)
        QgsProject.instance().removeAllMapLayers()
    return 0


if __name__ == "__main__":
    sys.exit(main())

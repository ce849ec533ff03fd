"""Test set-up: register the repo root as package ``hsifusion`` whatever the clone's folder name."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "real"
SAMPLE = ROOT / "sample"


sys.path.insert(0, str(ROOT / "tools"))
from repo_package import register_package  # noqa: E402

register_package()
sys.path.insert(0, str(Path(__file__).resolve().parent))


def pytest_addoption(parser):
    parser.addoption("--device", action="store", default="cpu", help="torch device for network tests")


@pytest.fixture(scope="session")
def torch_device(request):
    return request.config.getoption("--device")


@pytest.fixture(scope="session")
def shared_data():
    """Path of ../shared/data/real, or skip when a user's clone has no ../shared."""
    if not SHARED.is_dir():
        pytest.skip("../shared/data/real not present")
    return SHARED


@pytest.fixture(scope="session")
def hsifusion_provider(qgis_app, qgis_processing):
    """The hsifusion provider registered in the test QGIS application (once per session)."""
    from qgis.core import QgsApplication

    from hsifusion.provider.provider import HsiFusionProvider

    registry = QgsApplication.processingRegistry()
    provider = registry.providerById("hsifusion")
    if provider is None:
        provider = HsiFusionProvider()
        assert registry.addProvider(provider)
    return provider


@pytest.fixture()
def run_alg(hsifusion_provider):
    """``run_alg("hsifusion:upsample", params, feedback=None) -> results`` via processing.run."""
    import processing
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    def _run(alg_id, params, feedback=None, context=None):
        return processing.run(alg_id, params, feedback=feedback or QgsProcessingFeedback(),
                              context=context or QgsProcessingContext())

    return _run

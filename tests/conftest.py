"""Test set-up: register the repo root as package ``hsifusion`` whatever the clone's folder name."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "real"
SAMPLE = ROOT / "sample"


def _register_package() -> None:
    if "hsifusion" in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(
        "hsifusion", ROOT / "__init__.py", submodule_search_locations=[str(ROOT)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["hsifusion"] = module
    spec.loader.exec_module(module)


_register_package()
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

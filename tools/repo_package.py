"""Import the repository root as package ``hsifusion``, whatever the clone's folder is called.

Scripts and tests run from a checkout (not an installed package) call :func:`register_package` first.
"""
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def register_package():
    """Register ``ROOT`` as ``hsifusion`` in ``sys.modules`` (once) and return the module."""
    if "hsifusion" not in sys.modules:
        spec = importlib.util.spec_from_file_location("hsifusion", ROOT / "__init__.py",
                                                      submodule_search_locations=[str(ROOT)])
        module = importlib.util.module_from_spec(spec)
        sys.modules["hsifusion"] = module
        spec.loader.exec_module(module)
    return sys.modules["hsifusion"]

"""The version lives in engine/version.py; QGIS reads metadata.txt, which must repeat it."""
import configparser

from conftest import ROOT
from hsifusion import __version__
from hsifusion.engine.version import __version__ as engine_version


def test_plugin_metadata_repeats_the_engine_version():
    meta = configparser.ConfigParser()
    meta.read(ROOT / "metadata.txt", encoding="utf-8")
    assert __version__ == engine_version == meta["general"]["version"]

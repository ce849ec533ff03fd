"""The version of hsifusion (plugin, engine and command line share it; metadata.txt repeats it for QGIS)."""

__version__ = "0.1.0"

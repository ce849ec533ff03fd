"""QGIS side of the plugin: the Processing provider, the algorithm base, parameters and styling."""

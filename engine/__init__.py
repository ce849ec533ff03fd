"""QGIS-free fusion engine: raster I/O, pair validation, tiling, methods, degradation, metrics.

Algorithms (QGIS) and the command line call :mod:`.api`; nothing here imports qgis.
"""

"""Raster I/O and grids.

Open and describe rasters, wavelengths, windows, pair validation, the scene, the
output guard and the checked writer, band presets.
"""

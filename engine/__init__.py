"""QGIS-free fusion engine; its folders show its jobs (README.md, "Architecture").

- ``io/``: raster I/O and grids; ``pipeline/``: the tile loop, memory, devices, Dask;
  ``methods/``: the fusion methods; ``sensors/``: SRFs, degradation, simulation;
  ``quality/``: metrics, assessment, reports; ``learning/``: training and checkpoints.
- At the top: the entry points (:mod:`.api`, :mod:`.auto`, :mod:`.cli`) and what every folder
  uses (:mod:`.errors`, :mod:`.feedback`, :mod:`.params`).

Algorithms (QGIS) and the command line call :mod:`.api`; nothing here imports qgis.
"""

"""Typed errors of the engine. Each also inherits the matching builtin so callers may catch either.

The QGIS layer turns any :class:`FusionError` into a ``QgsProcessingException`` with the same text.
"""


class FusionError(Exception):
    """Base class of every error the engine raises on purpose (message is user-facing)."""


class InputError(FusionError, ValueError):
    """A parameter or input raster is unusable (generic)."""


class RasterOpenError(FusionError, OSError):
    """A raster could not be opened or read."""


class CrsMismatchError(InputError):
    """HSI and MSI are in different coordinate reference systems."""


class GridError(InputError):
    """Pixel sizes give no integer ratio, or the grids are not aligned, or extents do not overlap."""


class BandError(InputError):
    """Too few bands, more MSI than HSI bands, or a band count that does not match a checkpoint."""


class WavelengthError(InputError):
    """Wavelengths are missing, unsorted or do not cover what a sensor response needs."""


class OutputError(FusionError, OSError):
    """The output cannot be written (missing/read-only folder, would overwrite an input)."""


class NoValidDataError(InputError):
    """The overlap of the inputs holds no valid (non-nodata) pixel."""


class CheckpointError(FusionError, ValueError):
    """A checkpoint is corrupt, foreign, or does not match the inputs."""


class DeviceError(FusionError, RuntimeError):
    """The requested compute device is unavailable."""


class Cancelled(FusionError):
    """The user cancelled; partial outputs have been removed."""


class DistributedError(FusionError, RuntimeError):
    """A Dask scheduler could not be reached, has no workers, or lost the run (``--scheduler``)."""


class WorkerEnvironmentError(DistributedError):
    """A Dask worker lacks hsifusion or runs other package versions than the client."""

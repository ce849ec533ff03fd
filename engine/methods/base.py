"""The one interface every fusion method implements (numpy float32 in and out; torch stays inside)."""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np

DEFAULT_TILE = 256


class FusionMethod:
    """A fusion method driven by the single tile loop in :mod:`engine.pipeline.tiling`.

    ``apply`` gets an LR-HSI tile (C, h, w) and the matching HR-MSI tile (c, r*h, r*w), both padded by
    ``margin(r)`` HR pixels (margin/r LR pixels) with invalid pixels already filled, and returns the
    (C, r*h, r*w) estimate. The tiler crops the margin. ``fit`` runs once per scene, before the tiles,
    for statistics that must not vary per tile.
    """

    name = "base"
    needs_torch = False
    thread_safe = False  # True lets the tile loop compute two tiles at once (stateless apply, numpy)
    crops_itself = False  # True: the tile loop calls apply_cropped (CPU only: no out-of-memory retry)
    keeps_activations_on_heap = False  # True: the tile loop keeps large allocations on the heap (pipeline/memory.py)

    def margin(self, ratio: int) -> int:
        """HR pixels of context a tile needs on each side."""
        return 0

    def align(self, ratio: int) -> int:
        """Tile origin/size step in HR pixels (a multiple of ``ratio``)."""
        return ratio

    def min_hr_size(self, ratio: int) -> int:
        return ratio

    def preferred_tile(self, ratio: int) -> int:
        """HR core tile side used when TILE_SIZE is automatic (0).

        256 keeps a numpy method's working set in the caches and a tile's arrays small.
        """
        return DEFAULT_TILE

    def fit(self, scene, feedback=None) -> None:
        """Scene-level preparation (statistics, training); default none."""

    def apply(self, lr: np.ndarray, hr: np.ndarray, ratio: int, feedback=None) -> np.ndarray:
        raise NotImplementedError

    def apply_cropped(self, lr: np.ndarray, hr: np.ndarray, ratio: int, crop: Tuple[int, int, int, int],
                      feedback=None) -> np.ndarray:
        """The estimate of the tile's core only, contiguous.

        ``crop`` = (top, bottom, left, right) HR pixels of context to drop. Used by the tile loop when
        ``crops_itself`` is True (CPU methods that can skip computing the context: no wasted work, no crop
        copy); default: apply + crop.
        """
        est = self.apply(lr, hr, ratio, feedback)
        top, bottom, left, right = crop
        return np.array(est[:, top:est.shape[1] - bottom, left:est.shape[2] - right], dtype=np.float32)

    def describe(self) -> Dict[str, str]:
        """Parameters recorded in the output's metadata."""
        return {"method": self.name}

    def fallback_to_cpu(self) -> bool:
        """Move to the CPU after repeated out-of-memory; False when already there."""
        return False

    @property
    def device_reason(self) -> Optional[str]:
        return None

"""TILE_SIZE 0 = automatic: the method's preferred tile (a network's is declared in its NetSpec)."""
import math

import pytest

from hsifusion.engine import api
from hsifusion.engine.errors import InputError
from hsifusion.engine.methods import get_method
from hsifusion.engine.methods.interpolate import Upsample
from hsifusion.engine.pipeline.tile_geometry import AUTO_TILE, tile_geometry
from hsifusion.models.catalogue import NETWORKS
from hsifusion.models.registry import load_spec
from rasterkit import synthetic_pair


class SmallTileUpsample(Upsample):
    """Bicubic upsampling that prefers 16-px tiles, so the automatic tile is visible in the tile count."""

    def preferred_tile(self, ratio: int) -> int:
        return 16


def test_automatic_tile_is_the_methods_preferred_tile(tmp_path):
    hsi, msi = synthetic_pair(tmp_path, lr_size=(13, 11))  # HR 52 x 44
    auto = api.fuse(hsi, msi, str(tmp_path / "a.tif"), SmallTileUpsample(), tile_size=AUTO_TILE)
    assert auto["TILES"] == math.ceil(52 / 16) * math.ceil(44 / 16)
    default = api.fuse(hsi, msi, str(tmp_path / "b.tif"), "upsample")  # the engine's default is automatic
    assert default["TILES"] == 1  # 256 px covers the raster


@pytest.mark.parametrize("e", NETWORKS, ids=lambda e: e.id)
def test_every_network_declares_a_usable_tile(e):
    method = get_method(e.id, device="cpu", base="none")
    step, _, tile = tile_geometry(method, 4, AUTO_TILE)
    assert tile == max(step, (load_spec(e).tile // step) * step) and tile >= method.min_hr_size(4)


def test_negative_tile_is_refused(tmp_path):
    hsi, msi = synthetic_pair(tmp_path)
    with pytest.raises(InputError, match="TILE_SIZE"):
        api.fuse(hsi, msi, str(tmp_path / "a.tif"), "upsample", tile_size=-1)
    assert not (tmp_path / "a.tif").exists()

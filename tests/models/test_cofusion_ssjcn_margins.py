"""CoFusion's and SSJCN's tiling margins cover their receptive fields (docs/networks.md, their defaults).

Both networks pool over the whole tile (CoFusion: channel maxima in SpeCAM and SSCFM; SSJCN: the SE means),
so a tile's output depends on the tile's extent whatever its margin: no margin's job. With the pooled
vectors of the whole-image run shared by every tile, what is left is the local receptive field: tiled ==
whole within the suite's tile tolerance at the spec's margin, and ten times further off at one alignment step
(the check sees the receptive field). Weights: a few training steps on a crop of the bundled sample
(15 of its bands, no bad band) towards its real HR reference, so they are trained, not the initial ones.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from osgeo import gdal

from hsifusion.models import blocks, cofusion, ssjcn
from invariance import assert_tile_invariant

SAMPLE = Path(__file__).resolve().parents[2] / "sample"
BANDS = list(range(20, 200, 12))  # spread over 418-2446 nm, clear of the bad bands 130-135
RATIO, CORE = 4, 32
NETS = {"cofusion": lambda c: cofusion.build(c, 12, RATIO, lite=True),
        "cofusion paper": lambda c: cofusion.build(c, 12, RATIO),
        "ssjcn": lambda c: ssjcn.build(c, 12, RATIO)}
MODULES = {"cofusion": cofusion, "cofusion paper": cofusion, "ssjcn": ssjcn}
LITE = {"cofusion"}  # built with lite=True: tiled at the lite margin (NetSpec.margin_of)


def _read(name, bands=None):
    a = gdal.Open(str(SAMPLE / name)).ReadAsArray().astype(np.float32)
    a = a if bands is None else a[bands]
    a[a < -1000] = 0  # nodata
    return torch.from_numpy(a / np.abs(a).max())[None]


class SharedPooling:
    """A global pooling that records its vectors on one forward and replays them, in call order, after."""

    def __init__(self, pool):
        self.pool, self.saved, self.replay = pool, [], None

    def record(self):
        self.saved, self.replay = [], None

    def rewind(self):
        self.replay = iter(range(len(self.saved)))

    def __call__(self, t):
        if self.replay is None:
            self.saved.append(self.pool(t))
            return self.saved[-1]
        return self.saved[next(self.replay)]


def _trained(name):
    """The network after a few Adam steps on a 32 px crop; the 64 px crop it is then tiled on."""
    y, z = _read("potsdam_lr_hsi_x4.tif", BANDS), _read("potsdam_msi_s2a.tif")
    x = _read("enmap_potsdam_reference.tif", BANDS)
    torch.manual_seed(0)
    net = NETS[name](len(BANDS))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(4):
        opt.zero_grad()
        F.l1_loss(net(y[..., :8, :8], z[..., :32, :32]), x[..., :32, :32]).backward()
        opt.step()
    return net.eval(), y[..., :16, :16], z[..., :64, :64]


def _share_pooling(name, monkeypatch) -> SharedPooling:
    if name.startswith("cofusion"):
        shared = SharedPooling(cofusion.global_max)
        monkeypatch.setattr(cofusion, "global_max", shared)
    else:  # SE as in models/blocks.py, its spatial mean shared
        shared = SharedPooling(lambda t: t.mean(dim=(2, 3), keepdim=True))
        def se_gate(se, t):  # SE.forward and SSJCN's fused reconstruction both take their weights here
            return torch.sigmoid(se.excite(F.relu(se.squeeze(shared(t)))))

        monkeypatch.setattr(blocks.SE, "gate", se_gate)
    return shared


def _tiled_and_whole(net, y, z, margin, shared):
    """Core tiles of CORE px with ``margin`` of context cut from one edge-padded pair, and the whole pair."""
    m, ml = margin, margin // RATIO
    yp, zp = F.pad(y, (ml,) * 4, mode="replicate"), F.pad(z, (m,) * 4, mode="replicate")
    H, W = z.shape[-2:]
    with torch.no_grad():
        shared.record()
        whole = net(yp, zp)[..., m:m + H, m:m + W]
        tiled = torch.empty_like(whole)
        for ty in range(0, H, CORE):
            for tx in range(0, W, CORE):
                shared.rewind()
                lr = yp[..., ty // RATIO:(ty + CORE) // RATIO + 2 * ml, tx // RATIO:(tx + CORE) // RATIO + 2 * ml]
                out = net(lr, zp[..., ty:ty + CORE + 2 * m, tx:tx + CORE + 2 * m])
                tiled[..., ty:ty + CORE, tx:tx + CORE] = out[..., m:m + CORE, m:m + CORE]
    return tiled[0].numpy(), whole[0].numpy()


@pytest.mark.parametrize("name", sorted(NETS))
def test_margin_covers_the_receptive_field(name, monkeypatch):
    net, y, z = _trained(name)
    shared = _share_pooling(name, monkeypatch)
    spec = MODULES[name].SPEC
    margin, step = spec.margin_of(RATIO, name in LITE), spec.align(RATIO)
    tiled, whole = _tiled_and_whole(net, y, z, margin, shared)
    assert_tile_invariant(tiled, whole, f"{name} margin {margin}")
    near, whole_near = _tiled_and_whole(net, y, z, step, shared)
    assert np.abs(near - whole_near).max() > 10 * max(np.abs(tiled - whole).max(), 1e-7 * np.abs(whole).max())

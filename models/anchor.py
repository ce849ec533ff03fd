"""A network as a zero-initialised residual on a classical base estimate (REC).

``x = base + g * (net(y, z) - bicubic(y))`` with ``g`` one gain per band, initialised at 0, so the
untrained wrapper returns the base exactly. ``net(y, z) - bicubic(y)`` is the part of the network's
estimate beyond the bicubic upsampling the papers skip-connect: for SSJCN and AMSF-Net (whose outputs
are ``bicubic(y) + branch``) it is exactly their branch, i.e. their bicubic skip is replaced by the
base; CoFusion has no image-level skip, so its whole estimate minus bicubic is the correction added.
AMSF-Net's own ReZero gain (``skip_gain``, zero at build) would leave both gains with zero gradient at
step 0, so :func:`open_inner_gain` sets it to 1 and ``g`` alone gates the residual.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from .blocks import core_box, upsample_box


class ResidualOnBase(nn.Module):
    """``forward(y, z, base) = base + gain * (net(y, z) - bicubic(y))``; ``gain`` (C,) starts at 0.

    ``crop`` (inference, a net with ``crops_hr_stage``): ``base`` is the core's, and the net and bicubic(y) are
    computed for the core only (models/amsf_net.py AMSFNet.forward).
    """

    def __init__(self, net: nn.Module, bands: int) -> None:
        super().__init__()
        self.net = net
        self.gain = nn.Parameter(torch.zeros(bands))
        open_inner_gain(net)

    @property
    def crops_hr_stage(self) -> bool:
        return bool(getattr(self.net, "crops_hr_stage", False))

    def residual(self, y: torch.Tensor, z: torch.Tensor, crop: Optional[Sequence[int]] = None) -> torch.Tensor:
        ratio = z.shape[-1] // y.shape[-1]
        up = upsample_box(y, ratio, None if crop is None else core_box(z.shape, crop), "bicubic")
        return (self.net(y, z) if crop is None else self.net(y, z, crop=crop)) - up

    def forward(self, y: torch.Tensor, z: torch.Tensor, base: torch.Tensor,
                crop: Optional[Sequence[int]] = None) -> torch.Tensor:
        return base + self.gain.view(1, -1, 1, 1) * self.residual(y, z, crop)


def open_inner_gain(net: nn.Module) -> None:
    """Set a network's own zero-initialised skip gain (AMSF-Net's ``skip_gain``) to 1.

    See the module docstring. No-op for networks without one.
    """
    gain = getattr(net, "skip_gain", None)
    if isinstance(gain, nn.Parameter):
        with torch.no_grad():
            gain.fill_(1.0)

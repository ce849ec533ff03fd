"""SSJCN — Spatial–Spectral Joint Correction Network (supervised HS–MS fusion).

Source: the paper text ("a coarse-to-fine HS-MSI fusion network" made of a
degradation block, an error-map fusion block and a reconstruction block, iterated twice). No code was
published. The stage structure (degradations -> residuals -> error-map fusion -> attention-weighted
correction, two stages) is **DOC**; every width, kernel size and activation below is **REC**
(docs/networks.md#ssjcn-what-is-reconstructed): the project's definition of the network until better
sources appear.

One stage ``S_k`` maps ``X_{k-1} -> X_k`` (project symbols: Y LR-HSI, Z HR-MSI, X HR-HSI)::

    Zh = PReLU(PW C->c (X))                        # learned spectral degradation D_spe
    Yh = PReLU(DW k_r x k_r, stride r (X))         # learned spatial degradation D_spa (block-centred)
    u  = DWConvT k_r x k_r, stride r (Y - Yh)      # per-band learnable deconvolution, back to H
    fy = PReLU(Conv3x3/2 C->n (u))                 # H/2
    fx0 = PReLU(Conv3x3 c->n (Z - Zh)); fx = PReLU(Conv3x3/2 n->n (fx0))
    g1 = SE(2n,16)(PReLU(Conv3x3 (cat[fx, fy]))); g2 = PReLU(Conv3x3 (g1)); g3 = PReLU(Conv3x3/2 (g2))
    u1 = PReLU(ConvT4/2 2n->n (PReLU(Conv3x3 2n->2n (g3))))
    u2 = PReLU(ConvT4/2 n->n (PReLU(Conv3x3 3n->n (cat[u1, g2]))))
    E  = Conv3x3 n->C (PReLU(Conv3x3 2n->n (cat[u2, fx0])))
    X_k = X_{k-1} + SA7(SE(C,4)(E))

Network: ``X0 = bicubic(Y, xr)``, ``X^ = S2(S1(X0))`` with separate weights (``share_stages=True``
ties them). Loss L1 (DOC); optimiser recipe REC (docs/networks.md#ssjcn-losses-and-training).

Size rule: H, W multiples of ``lcm(4, r)``, ``Y`` exactly ``(H/r, W/r)``. CAVE 31/3 x4: 2 105 882
parameters (spec ≈ 2.11 M).

Anchored default (REC; engine/methods/anchored.py, models/anchor.py): the output is
``base + g * (SSJCN(y, z) - bicubic(y))`` with ``g`` per band, zero-initialised: the correction SSJCN adds
to its own bicubic start ``X_0`` is added to the classical base instead, i.e. the bicubic skip is replaced
by the base. The stages themselves are unchanged.
"""
from __future__ import annotations

from typing import Iterable, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import SA7, SE, block_kernel
from .spec import NetSpec, lcm

REFERENCE = (
    "SSJCN: spatial-spectral joint correction network for hyperspectral and multispectral image fusion "
    "(paper text; venue not given). Tensor-level design REC (docs/networks.md#ssjcn)."
)


def _prelu() -> nn.PReLU:
    return nn.PReLU(num_parameters=1, init=0.25)


class SSJCNStage(nn.Module):
    """One correction stage ``X_{k-1} -> X_k`` (degradation + error-map fusion + reconstruction)."""

    def __init__(self, hsi_bands: int, msi_bands: int, ratio: int, width: int = 64) -> None:
        super().__init__()
        C, c, n = hsi_bands, msi_bands, width
        k, s, p = block_kernel(ratio)
        # Degradation block (D_spe, D_spa).
        self.d_spe = nn.Conv2d(C, c, 1)
        self.d_spe_act = _prelu()
        self.d_spa = nn.Conv2d(C, C, k, stride=s, padding=p, groups=C)
        self.d_spa_act = _prelu()
        # Error-map fusion block.
        self.y_up = nn.ConvTranspose2d(C, C, k, stride=s, padding=p, groups=C)
        self.y_down = nn.Conv2d(C, n, 3, stride=2, padding=1)
        self.y_down_act = _prelu()
        self.z_feat = nn.Conv2d(c, n, 3, padding=1)
        self.z_feat_act = _prelu()
        self.z_down = nn.Conv2d(n, n, 3, stride=2, padding=1)
        self.z_down_act = _prelu()
        self.fuse1 = nn.Conv2d(2 * n, 2 * n, 3, padding=1)
        self.fuse1_act = _prelu()
        self.fuse1_se = SE(2 * n, 16)
        self.fuse2 = nn.Conv2d(2 * n, 2 * n, 3, padding=1)
        self.fuse2_act = _prelu()
        self.down3 = nn.Conv2d(2 * n, 2 * n, 3, stride=2, padding=1)
        self.down3_act = _prelu()
        self.rec1 = nn.Conv2d(2 * n, 2 * n, 3, padding=1)
        self.rec1_act = _prelu()
        self.up1 = nn.ConvTranspose2d(2 * n, n, 4, stride=2, padding=1)
        self.up1_act = _prelu()
        self.rec2 = nn.Conv2d(3 * n, n, 3, padding=1)
        self.rec2_act = _prelu()
        self.up2 = nn.ConvTranspose2d(n, n, 4, stride=2, padding=1)
        self.up2_act = _prelu()
        self.tail1 = nn.Conv2d(2 * n, n, 3, padding=1)
        self.tail1_act = _prelu()
        self.tail2 = nn.Conv2d(n, C, 3, padding=1)
        # Reconstruction block: channel then spatial attention on the error map (CBAM order).
        self.err_se = SE(C, 4)
        self.err_sa = SA7()

    def forward(self, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor,
                out: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Correct ``x`` (B,C,H,W) using the residuals against ``y`` (B,C,h,w) and ``z`` (B,c,H,W).

        Outside autograd the reconstruction ``x + SA7(SE(E))`` is one in-place scaling of ``E`` and one fused
        multiply-add, written into ``out`` when given (the network's NCHW result): two fewer all-band HR
        tensors than the three-step form (83 MB each for a 224-band 304² tile).
        """
        z_hat = self.d_spe_act(self.d_spe(x))
        y_hat = self.d_spa_act(self.d_spa(x))
        u = self.y_up(y - y_hat)
        fy = self.y_down_act(self.y_down(u))
        fx0 = self.z_feat_act(self.z_feat(z - z_hat))
        fx = self.z_down_act(self.z_down(fx0))
        g1 = self.fuse1_se(self.fuse1_act(self.fuse1(torch.cat([fx, fy], 1))))
        g2 = self.fuse2_act(self.fuse2(g1))
        g3 = self.down3_act(self.down3(g2))
        u1 = self.up1_act(self.up1(self.rec1_act(self.rec1(g3))))
        u2 = self.up2_act(self.up2(self.rec2_act(self.rec2(torch.cat([u1, g2], 1)))))
        e = self.tail2(self.tail1_act(self.tail1(torch.cat([u2, fx0], 1))))
        if torch.is_grad_enabled():
            return x + self.err_sa(self.err_se(e))
        e.mul_(self.err_se.gate(e))
        return torch.addcmul(x, e, self.err_sa.mask(e), out=out)


class SSJCN(nn.Module):
    """SSJCN: ``forward(y, z) -> x`` with y (B,C,h,w), z (B,c,H,W), x (B,C,H,W).

    Args:
        hsi_bands: C.
        msi_bands: c (1 = PAN).
        ratio: r = H/h.
        width: feature width n of the error-map fusion block (REC, 64).
        share_stages: tie the weights of the two stages (default False; see
            docs/networks.md#ssjcn-what-is-reconstructed).
    """

    def __init__(
        self, hsi_bands: int, msi_bands: int, ratio: int, width: int = 64, share_stages: bool = False
    ) -> None:
        super().__init__()
        if ratio < 1 or hsi_bands < 1 or msi_bands < 1:
            raise ValueError("hsi_bands, msi_bands and ratio must be positive")
        self.hsi_bands, self.msi_bands, self.ratio = hsi_bands, msi_bands, ratio
        self.share_stages = share_stages
        self.stage1 = SSJCNStage(hsi_bands, msi_bands, ratio, width)
        self.stage2 = self.stage1 if share_stages else SSJCNStage(hsi_bands, msi_bands, ratio, width)

    @staticmethod
    def margin(ratio: int) -> int:
        """Tiling margin, HR px: ``max(24, 6 r)`` rounded up to ``align(r)`` (24 up to x4, 48 at x8)."""
        return _margin(ratio)

    @staticmethod
    def align(ratio: int) -> int:
        """HR size/origin step ``lcm(4, r)``."""
        return _align(ratio)

    @staticmethod
    def min_hr_size(ratio: int) -> int:
        """Smallest HR side: ``max(16, lcm(4, r))`` rounded up to a multiple of ``align(r)``."""
        return _min_hr_size(ratio)

    def check_inputs(self, y: torch.Tensor, z: torch.Tensor) -> None:
        """Raise ValueError unless y, z have the bands, ratio and size rule of this net."""
        if y.dim() != 4 or z.dim() != 4:
            raise ValueError(f"SSJCN expects 4-D tensors (B,C,h,w) and (B,c,H,W); got {tuple(y.shape)}, "
                             f"{tuple(z.shape)}")
        if y.shape[0] != z.shape[0]:
            raise ValueError(f"batch sizes differ: y {y.shape[0]}, z {z.shape[0]}")
        if y.shape[1] != self.hsi_bands:
            raise ValueError(f"y has {y.shape[1]} bands, the net was built for {self.hsi_bands}")
        if z.shape[1] != self.msi_bands:
            raise ValueError(f"z has {z.shape[1]} bands, the net was built for {self.msi_bands}")
        r = self.ratio
        H, W = z.shape[-2:]
        h, w = y.shape[-2:]
        if (H, W) != (r * h, r * w):
            raise ValueError(f"z is {H}x{W} but y is {h}x{w}: HR size must be exactly ratio {r} x LR size")
        a = lcm(4, r)
        if H % a or W % a:
            raise ValueError(f"HR size {H}x{W} must be a multiple of lcm(4, ratio) = {a}")

    def forward(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Runs channels-last (oneDNN's native layout on the CPU: no per-convolution reorders); returns NCHW.

        Outside autograd the second stage writes its result straight into an NCHW tensor.
        """
        self.check_inputs(y, z)
        y = y.contiguous(memory_format=torch.channels_last)
        z = z.contiguous(memory_format=torch.channels_last)
        x0 = F.interpolate(y, size=z.shape[-2:], mode="bicubic", align_corners=False)
        x1 = self.stage1(x0, y, z)
        del x0
        if torch.is_grad_enabled():
            return self.stage2(x1, y, z).contiguous()
        out = torch.empty(x1.shape, dtype=x1.dtype, device=x1.device)  # NCHW: no conversion copy after
        return self.stage2(x1, y, z, out=out)


def loss(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Training loss (DOC): mean absolute error between the output and the reference."""
    return F.l1_loss(x_hat, x)


def default_optimizer(params: Iterable[torch.nn.Parameter], iterations: int) -> Tuple:
    """Optimiser recipe (REC): Adam 1e-4, betas (0.9, 0.999), step decay x0.5.

    See docs/networks.md#ssjcn-losses-and-training.

    The spec's StepLR(100 epochs, 0.5) over 500 epochs is mapped to iterations: the scheduler is meant
    to be stepped once per iteration and halves the rate every ``max(1, iterations // 5)`` iterations.

    Returns:
        (optimizer, scheduler).
    """
    opt = torch.optim.Adam(params, lr=1e-4, betas=(0.9, 0.999), eps=1e-8)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, int(iterations) // 5), gamma=0.5)
    return opt, sched


def build(hsi_bands: int, msi_bands: int, ratio: int, **hyper) -> SSJCN:
    """Registry builder: ``SSJCN(hsi_bands, msi_bands, ratio, width=64, share_stages=False)``."""
    return SSJCN(hsi_bands, msi_bands, ratio, **hyper)


def _align(r: int) -> int:
    return lcm(4, r)


def _margin(r: int) -> int:
    # Measured at x4 on the bundled sample with trained weights (docs/networks.md#ssjcn-defaults): with the
    # global SE pooling shared, tiles differ from the whole image by 4e-5 of the max at 16 px, 2e-7 at 24.
    # Beyond x4 the degradation kernels (2r) widen the reach: 6r, not measured.
    base = max(24, 6 * r)
    a = _align(r)
    return -(-base // a) * a


def _min_hr_size(r: int) -> int:
    # max(16, lcm(4, r)) rounded up to a multiple of the alignment step (r = 3: 24, not 16).
    a = _align(r)
    return -(-max(16, a) // a) * a


SPEC = NetSpec(
    build=build,
    loss=loss,
    default_optimizer=default_optimizer,
    margin=_margin,
    align=_align,
    min_hr_size=_min_hr_size,
    defaults={"width": 64, "share_stages": False},
    # 384 px amortises the margin better (1.27x vs 1.41x input px per output px) but its forward alone peaks
    # at 1.5 GiB RSS (512: 2.4 GiB), which the engine's tile queues would take past 2 GB; 256 stays well under.
    tile=256,
    paper_params=None,
    reference=REFERENCE,
)

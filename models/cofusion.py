"""CoFusion: MS/HS fusion via spectral coordinate attention (docs/networks.md#cofusion).

B. Li, arXiv 2604.10584v2 (2026). No code was published, so the paper fixes only the module names and data
flow (DOC, docs/networks.md#cofusion-what-the-paper-gives); every tensor-level choice below is the project's
REC design, which is its definition of the network. Ambiguity resolutions followed
(docs/networks.md#cofusion-what-is-reconstructed): SpaCAM max-pool 3x3 stride 1; GSB softmax over channels,
three GSBs in series, d = 1, 2, 4; one-level Haar, "high" = LH + HL + HH, bilinear ↑2 back, learnable-weighted
outer-product expansion, Eq. 4 taken literally with K = 8; LKA softmax across the 3x3/5x5 pair, masks gate the
HSI-stream features and V the MSI-stream ones, mask dropout in training only; block counts N chosen to match
the paper's 4.91 M (ablation deltas ignored); local MSI-guided stream -> SpaCAM, global HSI-driven stream ->
SpeCAM.
Size rule: H, W multiples of lcm(8, r) (two ↓2 levels and a Haar split at H/4).

Anchored default (REC; engine/methods/anchored.py, models/anchor.py): CoFusion has no
image-level skip, so its whole estimate minus bicubic(y) is the correction, added to the classical base
through a per-band gain initialised at 0: ``base + g * (CoFusion(y, z) - bicubic(y))``. Architecture
unchanged.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import Box, LN2d, box_within, check_pair, core_box, haar, upsample_box, widen_box, window
from .spec import NetSpec, lcm

WIDTH = 64
TOP_K = 8
PAPER_BLOCKS = (6, 12, 21)
LITE_BLOCKS = (2, 2, 2)
# Tile margins (HR px, before rounding up to the align step), measured as in docs/networks.md#cofusion-defaults:
# the fewer dual blocks of lite see less far (2e-5 of the largest value at 40 px, 3e-6 at 48).
PAPER_MARGIN, LITE_MARGIN = 64, 48
# HR px of context the layers after the level-1 dual blocks keep around the kept core when forward() is given a
# crop: the level merge is 1x1 and up1, tail1, tail2 are 3x3, so a core pixel sees 3 px of them.
TAIL_CONTEXT = 3


def _to_align_step(px: int, ratio: int) -> int:
    """``px`` rounded up to the size/origin step ``lcm(8, ratio)`` (:meth:`CoFusion.align`)."""
    a = lcm(8, ratio)
    return -(-px // a) * a


def _resize(t: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Bilinear, align_corners=False, no antialias."""
    return F.interpolate(t, size=(int(size[0]), int(size[1])), mode="bilinear", align_corners=False)


def _softmax_channels(t: torch.Tensor) -> torch.Tensor:
    """``softmax(t, dim=1)`` taken over the last axis of the NHWC view: the channels are contiguous there.

    The network runs channels-last (``CoFusion.forward``), where torch's dim-1 softmax is three times slower.
    """
    return torch.softmax(t.permute(0, 2, 3, 1), dim=-1).permute(0, 3, 1, 2)


def global_max(t: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C): the network's only non-local operation (SpeCAM, SSCFM).

    It pools over the tile, so a tile's output depends on the tile's extent beyond any margin
    (docs/networks.md#cofusion-defaults); everything else reaches a bounded neighbourhood.
    """
    return t.amax(dim=(2, 3))


def _dw(n: int, k: int = 3, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(n, n, k, padding=dilation * (k // 2), dilation=dilation, groups=n)


class DWSep(nn.Sequential):
    """Depthwise 3x3 (dilation d, bias) then pointwise D->D (bias)."""

    def __init__(self, n: int, dilation: int = 1) -> None:
        super().__init__(_dw(n, 3, dilation), nn.Conv2d(n, n, 1))


class GatedSpatialBlock(nn.Module):
    """``x + softmax_c(DWSep_d(MaxPool3(x))) ⊙ GELU(DWSep_1(x))``; channel softmax keeps it tile-local."""

    def __init__(self, n: int, dilation: int) -> None:
        super().__init__()
        self.gate = DWSep(n, dilation)
        self.value = DWSep(n, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.gate(F.max_pool2d(x, 3, stride=1, padding=1))
        return _softmax_channels(a) * F.gelu(self.value(x)) + x


class SpaCAM(nn.Sequential):
    """Spatial coordinate attention: three gated spatial blocks, dilations 1, 2, 4 (28 800 params at D=64)."""

    def __init__(self, n: int) -> None:
        super().__init__(*(GatedSpatialBlock(n, d) for d in (1, 2, 4)))


class SpeCAM(nn.Module):
    """Spectral coordinate attention (Alg. 1): Haar split, top-K coordinate mixing, channel re-weighting.

    18 497 params at D=64. ReLU in the expansion makes the zeros of Eq. 4 reachable.
    """

    def __init__(self, n: int, top_k: int = TOP_K) -> None:
        super().__init__()
        if top_k > n:
            raise ValueError(f"top_k={top_k} exceeds width {n}")
        self.top_k = top_k
        self.dw_lo = _dw(n)
        self.dw_hi = _dw(n)
        self.squeeze = nn.Linear(2 * n, n)
        self.expand_weight = nn.Parameter(torch.ones(n, n))
        self.z0 = nn.Parameter(torch.zeros(n))
        self.mix = nn.Linear(n, n)
        self.alpha_raw = nn.Parameter(torch.zeros(()))
        self.dw_mid = _dw(n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ll, lh, hl, hh = haar(x)
        f_lo = F.gelu(self.dw_lo(ll))
        f_hi = F.gelu(self.dw_hi(lh + hl + hh))
        z = F.gelu(self.squeeze(torch.cat([global_max(f_lo), global_max(f_hi)], dim=1)))
        e = F.relu(z.unsqueeze(2) * z.unsqueeze(1) * self.expand_weight)  # (B, D, D)
        m = torch.topk(e, self.top_k, dim=2, largest=True, sorted=True).values  # (B, D, K)
        s = self.z0.expand_as(z)
        for k in range(self.top_k):  # Eq. 4: take candidate k where it is non-zero
            s = torch.where(m[:, :, k] != 0, m[:, :, k], s)
        a = torch.sigmoid(self.mix(s))[:, :, None, None]
        alpha = torch.sigmoid(self.alpha_raw)
        mid = F.gelu(self.dw_mid(f_lo * a * alpha + f_hi * a * (1 - alpha)))
        return _resize(mid, x.shape[-2:]) + x


class SSCFM(nn.Module):
    """Spatial-spectral cross fusion -> residual map f (60 112 params at D=64).

    The four per-group 3x3 convs (D/2 -> D/4) are held as one grouped conv: same weights, same count.
    Outside training the 3x3/5x5 mask pair is evaluated as ``a5 + sigmoid(a3 - a5) (a3 - a5)``: the same
    two-way softmax without stacking the pair (mask dropout exists in training only).
    """

    def __init__(self, n: int, mask_dropout: float = 0.1) -> None:
        super().__init__()
        if n % 4:
            raise ValueError("width must be a multiple of 4")
        self.norm_a = LN2d(n)
        self.norm_b = LN2d(n)
        self.lka3 = _dw(n, 3)
        self.lka5 = _dw(n, 5)
        self.mask_dropout = mask_dropout
        self.sse1 = nn.Linear(n, n // 4)
        self.sse2 = nn.Linear(n // 4, n)
        self.groups = nn.Conv2d(2 * n, n, 3, padding=1, groups=4)
        self.out = nn.Conv2d(n, n, 3, padding=1)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        s, t = self.norm_a(a), self.norm_b(b)
        a3, a5 = self.lka3(s), self.lka5(s)
        if self.training:
            w = F.dropout(torch.softmax(torch.stack([a3, a5]), dim=0), self.mask_dropout, True)
            sa = w[0] * a3 + w[1] * a5
        else:
            d = a3 - a5
            sa = torch.addcmul(a5, torch.sigmoid(d), d)
        v = torch.sigmoid(self.sse2(F.relu(self.sse1(global_max(t)))))[:, :, None, None]
        o = F.gelu(self.groups(_interleave_groups(sa * t, v * s, 4)))
        return self.out(o)


def _interleave_groups(p: torch.Tensor, q: torch.Tensor, groups: int) -> torch.Tensor:
    """``[p_1, q_1, ..., p_g, q_g]`` along the channels (each split into ``groups`` parts), in ``p``'s layout.

    Written into one buffer through a (B, g, 2, n/g, H, W) view, so a channels-last input stays channels-last
    (a 5-D ``cat`` + reshape would return a contiguous NCHW tensor and slow every later convolution).
    """
    bsz, n, hh, ww = p.shape
    out = torch.empty((bsz, 2 * n, hh, ww), dtype=p.dtype, device=p.device, memory_format=_layout(p))
    view = out.unflatten(1, (groups, 2, n // groups))
    view[:, :, 0].copy_(p.unflatten(1, (groups, n // groups)))
    view[:, :, 1].copy_(q.unflatten(1, (groups, n // groups)))
    return out


def _layout(t: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if t.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format


class Enc(nn.Sequential):
    """``Conv3x3 (n_in->D) -> GELU -> Conv3x3 (D->D)``."""

    def __init__(self, cin: int, n: int) -> None:
        super().__init__(nn.Conv2d(cin, n, 3, padding=1), nn.GELU(), nn.Conv2d(n, n, 3, padding=1))


class DualBlock(nn.Module):
    """One SpaCAM / SpeCAM / SSCFM step; f is added to both streams."""

    def __init__(self, n: int, top_k: int) -> None:
        super().__init__()
        self.spa = SpaCAM(n)
        self.spe = SpeCAM(n, top_k)
        self.fuse = SSCFM(n)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        a = self.spa(a)
        b = self.spe(b)
        f = self.fuse(a, b)
        return a + f, b + f


class Level(nn.Module):
    """N dual blocks on (local, global) features of one pyramid level, merged by a PW 2D->D."""

    def __init__(self, n: int, blocks: int, top_k: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(DualBlock(n, top_k) for _ in range(blocks))
        self.merge = nn.Conv2d(2 * n, n, 1)

    def forward(self, a: torch.Tensor, b: torch.Tensor, box: Optional[Box] = None) -> torch.Tensor:
        """The merged level; with ``box`` the merge (1x1) runs on that window of the blocks' output only."""
        for block in self.blocks:
            a, b = block(a, b)
        if box is not None:
            a, b = window(a, box), window(b, box)
        return self.merge(torch.cat([a, b], dim=1))


class CoFusion(nn.Module):
    """CoFusion ``forward(y, z) -> x`` (REC tensor design); H, W multiples of ``lcm(8, r)``.

    ``blocks`` = dual blocks per level (H, H/2, H/4): paper config (6, 12, 21), lite (2, 2, 2).
    """

    def __init__(
        self,
        hsi_bands: int,
        msi_bands: int,
        ratio: int,
        blocks: Sequence[int] = PAPER_BLOCKS,
        width: int = WIDTH,
        top_k: int = TOP_K,
    ) -> None:
        super().__init__()
        if ratio < 1 or len(tuple(blocks)) != 3:
            raise ValueError("ratio must be >= 1 and blocks a triple")
        n = width
        self.bands = (hsi_bands, msi_bands)
        self.ratio = ratio
        self.blocks = tuple(int(b) for b in blocks)
        self.head_y = nn.Conv2d(hsi_bands, n, 1)
        self.head_z = nn.Conv2d(msi_bands, n, 1)
        self.head_y3 = nn.Conv2d(hsi_bands, n, 1)
        self.enc_l1, self.enc_l2, self.enc_l3 = Enc(2 * n, n), Enc(n, n), Enc(n, n)
        self.enc_g3, self.enc_g2, self.enc_g1 = Enc(2 * n, n), Enc(n, n), Enc(n, n)
        self.levels = nn.ModuleList(Level(n, nb, top_k) for nb in self.blocks)
        self.up2 = nn.Conv2d(n, n, 3, padding=1)
        self.up1 = nn.Conv2d(n, n, 3, padding=1)
        self.tail1 = nn.Conv2d(n, n, 3, padding=1)
        self.tail2 = nn.Conv2d(n, hsi_bands, 3, padding=1)

    @staticmethod
    def align(ratio: int) -> int:
        return lcm(8, ratio)

    @staticmethod
    def margin(ratio: int) -> int:
        return _to_align_step(PAPER_MARGIN, ratio)

    @staticmethod
    def lite_margin(ratio: int) -> int:
        return _to_align_step(LITE_MARGIN, ratio)

    @staticmethod
    def min_hr_size(ratio: int) -> int:
        a = lcm(8, ratio)
        return -(-32 // a) * a  # >= 32 and a multiple of the align step (48 at r = 3)

    @property
    def crops_hr_stage(self) -> bool:
        """``forward`` takes a ``crop`` (inference): every layer after the dual blocks is local."""
        return True

    def forward(self, y: torch.Tensor, z: torch.Tensor, crop: Optional[Sequence[int]] = None) -> torch.Tensor:
        """Runs channels-last (oneDNN's native layout on the CPU: no per-convolution reorders); returns NCHW.

        ``head_y`` (1x1) is applied before the bilinear up-sampling, not after: both are linear and the
        bilinear weights sum to 1, so the order does not change the result, only the cost (LR, not HR).
        The up-sampled HSI (all bands at HR) is made only for the final residual, and outside autograd the
        residual is written straight into the NCHW result: two fewer all-band HR tensors at the peak.

        ``crop`` = (top, bottom, left, right) HR px (inference only; REC): the encoders and the dual blocks run
        on the whole input as without it (their reach sets the tile margin, and their tile-wide maxima see the
        whole tile); the level-1 merge, ``up1``, the tail and the bilinear skip run on the kept core plus
        ``TAIL_CONTEXT`` px, and only the core is returned. Those layers reach 3 px, so the core equals
        ``forward(y, z)`` cut to it up to float rounding; the tail is about a third of the arithmetic at HR.
        """
        check_pair(y, z, *self.bands, self.ratio, self.align(self.ratio))
        core = box = inner = None
        if crop is not None:
            if self.training or torch.is_grad_enabled():
                raise ValueError("crop is for inference only (eval mode, no autograd)")
            core = core_box(z.shape, crop)
            box = widen_box(core, TAIL_CONTEXT, z.shape)
            inner = box_within(core, box)
        y = y.contiguous(memory_format=torch.channels_last)
        z = z.contiguous(memory_format=torch.channels_last)
        hh, ww = z.shape[-2:]
        sizes = [(hh, ww), (hh // 2, ww // 2), (hh // 4, ww // 4)]
        hz = self.head_z(z)
        l1 = self.enc_l1(torch.cat([hz, _resize(self.head_y(y), sizes[0])], dim=1))
        l2 = self.enc_l2(_resize(l1, sizes[1]))
        l3 = self.enc_l3(_resize(l2, sizes[2]))
        y3 = self.head_y3(_resize(y, sizes[2]))
        g3 = self.enc_g3(torch.cat([y3, _resize(hz, sizes[2])], dim=1))
        g2 = self.enc_g2(_resize(g3, sizes[1]))
        g1 = self.enc_g1(_resize(g2, sizes[0]))
        r3 = self.levels[2](l3, g3)
        x2 = self.levels[1](l2, g2) + self.up2(_resize(r3, sizes[1]))
        del l2, g2, l3, g3, r3
        up = _resize(x2, sizes[0])
        x1 = self.levels[0](l1, g1, box) + self.up1(up if box is None else window(up, box))
        del up
        t = self.tail2(F.gelu(self.tail1(x1)))
        if inner is not None:
            t = t[..., inner[0]:inner[1], inner[2]:inner[3]]
        skip = upsample_box(y, self.ratio, core, "bilinear")
        if torch.is_grad_enabled():
            return (t + skip).contiguous()
        out = torch.empty(t.shape, dtype=t.dtype, device=t.device)
        return torch.add(t, skip, out=out)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    g = torch.exp(-((torch.arange(size, dtype=torch.float64) - size // 2) ** 2) / (2 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g)


def ssim_map(x_hat: torch.Tensor, x: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-pixel, per-band SSIM: 11x11 Gaussian window (σ 1.5), zero 'same' padding, C1/C2 at 0.01/0.03."""
    bands = x.shape[1]
    win = _gaussian_window().to(dtype=x.dtype, device=x.device).expand(bands, 1, 11, 11)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, win, padding=5, groups=bands)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_a, mu_b = blur(x_hat), blur(x)
    var_a = blur(x_hat * x_hat) - mu_a**2
    var_b = blur(x * x) - mu_b**2
    cov = blur(x_hat * x) - mu_a * mu_b
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))


def ssim(x_hat: torch.Tensor, x: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM: map averaged over pixels, then over bands (and batch)."""
    return ssim_map(x_hat, x, data_range).mean(dim=(2, 3)).mean()


def loss(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``L1 + 0.1 (1 - SSIM)`` (DOC, docs/networks.md#cofusion-losses-and-training)."""
    return F.l1_loss(x_hat, x) + 0.1 * (1 - ssim(x_hat, x))


def default_optimizer(params, iterations: int):
    """AdamW 4e-4, wd 1e-4, cosine to 1e-6 over ``iterations`` scheduler steps (AdamW DOC, rest REC)."""
    opt = torch.optim.AdamW(params, lr=4e-4, betas=(0.9, 0.999), weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(int(iterations), 1), eta_min=1e-6)
    return opt, sched


def build(hsi_bands: int, msi_bands: int, ratio: int, **hyper) -> CoFusion:
    """Registry builder: ``lite=True`` overrides ``blocks`` with (2, 2, 2); also ``width``, ``top_k``."""
    blocks = LITE_BLOCKS if hyper.get("lite", False) else tuple(hyper.get("blocks", PAPER_BLOCKS))
    return CoFusion(
        hsi_bands, msi_bands, ratio, blocks=blocks, width=hyper.get("width", WIDTH), top_k=hyper.get("top_k", TOP_K)
    )


SPEC = NetSpec(
    build=build,
    loss=loss,
    default_optimizer=default_optimizer,
    margin=CoFusion.margin,
    lite_margin=CoFusion.lite_margin,
    align=CoFusion.align,
    min_hr_size=CoFusion.min_hr_size,
    defaults={"blocks": PAPER_BLOCKS, "lite": False},
    # Forward peak RSS at 224 bands, margin 64: 1.1 GiB for 256 px tiles, 1.55 GiB for 384 (lite 512: 2.5 GiB);
    # with the engine's queued tiles 384 would approach 2 GB (docs/networks.md#cofusion-defaults).
    tile=256,
    # The paper configuration's 132 MB all-band activations (384² tiles) fragmented the heap to 2.06-2.27 GB
    # (benchmarks/NOTES.md, "Large activations kept on the heap"): lite only.
    heap_tiles=("lite",),
    paper_params=4_910_000,
    reference=(
        "B. Li, 'CoFusion: Multispectral and Hyperspectral Image Fusion via Spectral Coordinate "
        "Attention', arXiv:2604.10584v2 (2026)"
    ),
)

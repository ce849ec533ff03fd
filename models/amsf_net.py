"""AMSF-Net: Asymptotic Multiscale Symmetric Fusion Network (docs/networks.md#amsf-net).

Liu, Shao, Liu, Li, Zhang, IEEE TGRS 63 (2025) 5503016. Written from a text description only: the authors'
code (``cvmdsp/AMSF-Net``) has no licence, so none of it is reused here.

Status: blocks and forward pass are DOC for r = 4 (the authors hard-wire factors 4 and 1/4). For r != 4
the LR-grid / HR-grid hops use explicit ``resize`` to (h, w) and (H, W) — a REC generalisation that is
identical to the code at r = 4 (docs/networks.md#amsf-net-architecture). The fixed ``↓4`` / ``↑4`` between
h and h/4 stay 4. Layers that exist in the code but are never used in its forward pass are not implemented.
Size rule: H, W multiples of 8r (LFE pooling and the 2x2 DRSA windows at h/4).
Scene-adaptive recipe (REC; not in the paper; reasons in docs/networks.md#amsf-net-what-is-reconstructed,
measurements in benchmarks/NOTES.md): the published net has no image-level skip from the up-sampled
LR-HSI (only the feature-level ``f3 + d``, d = ATT(↑ HSI features)), so it must synthesise every band
from Xavier-random weights. ``hsi_skip=True`` (the registry default) adds ``X̂ = bicubic(Y) + g · net(Y, Z)``
with one learnable gain ``g`` initialised at 0 (ReZero), so training starts exactly at the bicubic image
and the net learns a correction; ``hsi_skip=False`` is the published net. :func:`default_optimizer` maps
the paper's StepLR(500, 0.95) over 20 000 iterations onto the run length (40 decays of 0.95 in any run).
In eval mode the skip variant floors every band at ``min(0, min of that band in Y)``
(:func:`floor_at_input_minimum`), which keeps dark water spectra from going negative.
Deviation from the published block signature: the LFE mask width inside MFF is e = 32 (= w), not 16 — the
only reading that gives the measured parameter counts exactly (see :class:`MFF`). Conv biases keep
PyTorch's init.
Anchored default (REC; engine/methods/anchored.py, models/anchor.py): ``hsi_skip=True`` with
``skip_gain`` set to 1, wrapped as ``base + g * (AMSF-Net(y, z) - bicubic(y))`` = ``base + g * net(y, z)``,
``g`` per band initialised at 0: the bicubic skip is replaced by the classical base, and the zero-initialised
gate is ``g`` (two zero gains in series would both get zero gradient at step 0).
Lite (REC, non-paper, ``lite=True``; docs/networks.md#amsf-net-lite): width 12, the HR head on a 32-channel
spectral code decoded by the LR-HSI's principal subspace (:class:`SpectralBasis`), and no tile-wide
statistics (:class:`ChannelGate` for CAttn, DRSA without its grid windows), so tiling is exact within the
suite's tolerance at the ``40r`` margin; 9.4x fewer FLOPs per pixel at 224 bands. Inference (eval, no
autograd) runs the body channels-last and keeps one band-sized HR tensor, updated in place.
Cropped HR stage (REC, inference only, lite): ``forward(y, z, crop)`` runs the LR-resolution stages on the
whole tile and the HR-resolution stage (94 % of lite's arithmetic) on the kept core plus ``HR_STAGE_MARGIN``
px only, returning the core: the same arithmetic up to that stage's receptive field, whose error was
measured with trained weights (docs/networks.md#amsf-net-lite).
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import (
    Box,
    LN2d,
    box_within,
    check_pair,
    core_box,
    floor_at_input_minimum,
    upsample_box,
    widen_box,
    window,
)
from .spec import NetSpec

WIDTH = 32
# Lite configuration (REC, non-paper; docs/networks.md#amsf-net-lite): narrower, a spectral code at HR instead
# of every band, and no tile-wide statistics, so a tile's output depends only on its neighbourhood.
LITE_WIDTH = 12
LITE_CODE = 32
# HR px of context the HR-resolution stage keeps around the kept core when forward() is given a crop (lite only;
# measured with trained weights, docs/networks.md#amsf-net-lite). The window's offsets are rounded to HR_STAGE_STEP:
# LFE's 2x2 max-pooling and DRSA's 2x2 windows must keep their phase.
HR_STAGE_MARGIN = 32
HR_STAGE_STEP = 2


def _resize(t: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Bilinear, align_corners=False, no antialias (PyTorch's default, as the authors' code leaves it)."""
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False)


def _lrelu(t: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(t, 0.05)


def _conv3(cin: int, cout: int, bias: bool = True, **kw) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=kw.pop("padding", 1), bias=bias, **kw)


class CAttn(nn.Module):
    """Channel attention: one bias-free MLP shared by the GAP and GMP descriptors."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(n, n // 4, 1, bias=False)
        self.fc2 = nn.Conv2d(n // 4, n, 1, bias=False)

    def _mlp(self, s: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(s)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = x.mean(dim=(2, 3), keepdim=True)
        mx = x.amax(dim=(2, 3), keepdim=True)
        return x * torch.sigmoid(self._mlp(avg) + self._mlp(mx))


class ChannelGate(nn.Module):
    """Lite's channel attention: ``x * sigmoid(p)`` with one learned logit per channel (zero at build).

    CAttn pools the whole tile, so its output depends on the tile's extent; a scene-adaptive net sees one
    scene, for which a per-channel gain is what pooled statistics become once they are fixed.
    """

    def __init__(self, n: int) -> None:
        super().__init__()
        self.logit = nn.Parameter(torch.zeros(n, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.logit)


def _channel_attention(n: int, local: bool) -> nn.Module:
    return ChannelGate(n) if local else CAttn(n)


class SAttn(nn.Module):
    """Spatial attention with a 3x3 bias-free conv on [mean_c, max_c]."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(pooled))


class ATT(nn.Module):
    """``SAttn ∘ CAttn``; the network holds a single instance used four times (as coded)."""

    def __init__(self, n: int, local: bool = False) -> None:
        super().__init__()
        self.channel = _channel_attention(n, local)
        self.spatial = SAttn()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(self.channel(x))


class DWSep(nn.Module):
    """Depthwise 3x3 then pointwise, both with bias."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(n, n, 3, padding=1, groups=n)
        self.pw = nn.Conv2d(n, n, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x))


class BSP(nn.Module):
    """Bidirectional strip conv: 1xk on one channel half, kx1 on the other, then CAttn and a residual."""

    def __init__(self, n: int, k: int, local: bool = False) -> None:
        super().__init__()
        half = n // 2
        self.half = half
        self.row = nn.Conv2d(half, half, (1, k), padding=(0, k // 2))
        self.row_sep = DWSep(half)
        self.col = nn.Conv2d(n - half, n - half, (k, 1), padding=(k // 2, 0))
        self.col_sep = DWSep(n - half)
        self.attn = _channel_attention(n, local)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = x[:, : self.half], x[:, self.half :]
        y = torch.cat([self.row_sep(self.row(x1)), self.col_sep(self.col(x2))], dim=1)
        y = self.attn(y)
        return y.add_(x) if not torch.is_grad_enabled() else y + x


class _CBR(nn.Sequential):
    """``Conv, BatchNorm, ReLU``; in inference the BatchNorm's affine map and the ReLU act in place."""

    def __init__(self, cin: int, cout: int, k: int) -> None:
        super().__init__(nn.Conv2d(cin, cout, k, padding=k // 2), nn.BatchNorm2d(cout), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv, bn, _ = self
        if bn.training or torch.is_grad_enabled() or bn.running_var is None:
            return super().forward(x)
        scale = bn.running_var.add(bn.eps).rsqrt_()
        if bn.weight is not None:
            scale.mul_(bn.weight)
        shift = -bn.running_mean * scale
        if bn.bias is not None:
            shift.add_(bn.bias)
        x = conv(x)
        return x.mul_(scale.view(1, -1, 1, 1)).add_(shift.view(1, -1, 1, 1)).relu_()


def _cbr(cin: int, cout: int, k: int) -> nn.Sequential:
    return _CBR(cin, cout, k)


class PCP(nn.Module):
    """Dilated pyramid with cascaded strip-conv refinement (four BSPs, four CBR1s, one CBR3)."""

    def __init__(self, n: int, k: int, dilations: Sequence[int], local: bool = False) -> None:
        super().__init__()
        self.entry = _cbr(n, n, 1)
        self.branches = nn.ModuleList(_conv3(n, n, padding=d, dilation=d) for d in dilations)
        self.strips = nn.ModuleList(BSP(n, k, local) for _ in dilations)
        self.reduce = nn.ModuleList(_cbr(n, n, 1) for _ in dilations)
        self.out = _cbr(n, n, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inplace = not torch.is_grad_enabled()  # inference: fewer n-channel HR tensors alive at once
        x = self.entry(x)
        total: Optional[torch.Tensor] = None
        prev: Optional[torch.Tensor] = None
        for branch, strip, reduce in zip(self.branches, self.strips, self.reduce):
            t = F.relu(branch(x), inplace=inplace)
            if prev is not None:
                t = t.add_(prev) if inplace else t + prev
            prev = strip(t)
            del t
            r = reduce(prev)
            total = r if total is None else (total.add_(r) if inplace else total + r)
        del x, prev
        return self.out(total)


class LFE(nn.Module):
    """Local feature extraction: a conv body gated by a pooled spatial mask (RLFN/ESA style)."""

    def __init__(self, n: int, e: int = 16) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(n, e, 1)
        self.pooled = _conv3(e, e)
        self.expand = nn.Conv2d(e, n, 1)
        self.body1 = _conv3(n, n)
        self.body2 = _conv3(n, n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.reduce(x)
        p = self.pooled(F.max_pool2d(u, 2))
        mask = torch.sigmoid(self.expand(u + _resize(p, u.shape[-2:])))
        body = _lrelu(self.body2(_lrelu(self.body1(x))))
        return body * mask


class RB1(nn.Module):
    """``x + PW(LReLU(PW(x)))``."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.pw1 = nn.Conv2d(n, n, 1)
        self.pw2 = nn.Conv2d(n, n, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pw2(_lrelu(self.pw1(x)))


def _to_windows(t: torch.Tensor, grid: bool) -> torch.Tensor:
    """(B, n, H, W) -> (B, H/2, W/2, n, 4): 2x2 block windows, or grid windows H/2, W/2 apart."""
    b, n, h, w = t.shape
    if grid:
        t = t.reshape(b, n, 2, h // 2, 2, w // 2).permute(0, 3, 5, 1, 2, 4)
    else:
        t = t.reshape(b, n, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return t.reshape(b, h // 2, w // 2, n, 4)


def _from_windows(t: torch.Tensor, grid: bool) -> torch.Tensor:
    """Inverse of :func:`_to_windows`."""
    b, hh, ww, n, _ = t.shape
    t = t.reshape(b, hh, ww, n, 2, 2)
    if grid:
        t = t.permute(0, 3, 4, 1, 5, 2)
    else:
        t = t.permute(0, 3, 1, 4, 2, 5)
    return t.reshape(b, n, 2 * hh, 2 * ww)


class SpAttn(nn.Module):
    """Multi-head self-attention among the 4 pixels of each window (2 heads of n/2, no position bias)."""

    def __init__(self, n: int, grid: bool, dropout: float = 0.1) -> None:
        super().__init__()
        self.grid = grid
        self.heads = 2
        self.scale = (n // self.heads) ** -0.5
        self.qkv = nn.Linear(n, 3 * n, bias=False)
        self.proj = nn.Linear(n, n, bias=False)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, h, w = x.shape
        win = _to_windows(x, self.grid)  # (B, h/2, w/2, n, 4)
        tokens = win.permute(0, 1, 2, 4, 3).reshape(-1, 4, n)
        q, k, v = self.qkv(tokens).chunk(3, dim=-1)
        q, k, v = (t.reshape(-1, 4, self.heads, n // self.heads).transpose(1, 2) for t in (q, k, v))
        attn = self.drop(torch.softmax((q @ k.transpose(-2, -1)) * self.scale, dim=-1))
        out = (attn @ v).transpose(1, 2).reshape(-1, 4, n)
        out = self.drop(self.proj(out))
        out = out.reshape(b, h // 2, w // 2, 4, n).permute(0, 1, 2, 4, 3)
        return _from_windows(out, self.grid)


class ChAttn(nn.Module):
    """Channel attention inside each window: heads of 2 channels, q/k L2-normalised over the 4 pixels."""

    def __init__(self, n: int, grid: bool) -> None:
        super().__init__()
        self.grid = grid
        self.heads = n // 2
        self.temperature = nn.Parameter(torch.ones(self.heads, 1, 1))
        self.qkv = nn.Conv2d(n, 3 * n, 1, bias=False)
        self.qkv_dw = nn.Conv2d(3 * n, 3 * n, 3, padding=1, groups=3 * n, bias=False)
        self.proj = nn.Conv2d(n, n, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, h, w = x.shape
        q, k, v = self.qkv_dw(self.qkv(x)).chunk(3, dim=1)
        shape = (b, h // 2, w // 2, self.heads, n // self.heads, 4)
        q, k, v = (_to_windows(t, self.grid).reshape(shape) for t in (q, k, v))
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attn = torch.softmax((q @ k.transpose(-2, -1)) * self.temperature, dim=-1)
        out = (attn @ v).reshape(b, h // 2, w // 2, n, 4)
        return self.proj(_from_windows(out, self.grid))


class _PreNorm(nn.Module):
    """``u + f(LN(u))``: the residual each DRSA sub-block carries."""

    def __init__(self, n: int, fn: nn.Module, eps: float) -> None:
        super().__init__()
        self.norm = LN2d(n, eps=eps)
        self.fn = fn

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return u + self.fn(self.norm(u))


class DRSA(nn.Module):
    """Omni-SR style block/grid spatial and channel attention; the extra ``x +`` is kept as coded.

    ``local`` (lite) keeps the block pair only: a grid window joins pixels half a tile apart, so the grid
    pair's output depends on the tile size whatever the margin.
    """

    def __init__(self, n: int, dropout: float = 0.1, local: bool = False) -> None:
        super().__init__()
        self.bsa = _PreNorm(n, SpAttn(n, grid=False, dropout=dropout), eps=1e-5)  # nn.LayerNorm default
        self.bca = _PreNorm(n, ChAttn(n, grid=False), eps=1e-6)  # LN2d of the Omni-SR layernorm file
        self.gsa = None if local else _PreNorm(n, SpAttn(n, grid=True, dropout=dropout), eps=1e-5)
        self.gca = None if local else _PreNorm(n, ChAttn(n, grid=True), eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.bsa(x)
        x2 = self.bca(x + x1)
        if self.gsa is None:
            return x2
        x3 = self.gsa(x + x2)
        return self.gca(x + x3)


class _Refine(nn.Sequential):
    """``Conv3x3, LReLU, RB1, Conv3x3, LReLU`` (the MFF R1/R2 stacks)."""

    def __init__(self, cin: int, n: int) -> None:
        super().__init__(_conv3(cin, n), nn.LeakyReLU(0.05), RB1(n), _conv3(n, n), nn.LeakyReLU(0.05))


class MFF(nn.Module):
    """Multi-level feature fusion of two same-size streams; ``P`` is one module used by both branches.

    The LFE mask width is ``e = n`` (32), not the ``e=16`` signature default: only e = n
    reproduces the spec's measured counts (31/3: 6 947 689, 46/3: 6 991 894, 110/8: 7 318 454) exactly;
    e = 16 leaves every one of them 95 616 short (= 12 LFEs x 7 968).
    """

    def __init__(self, n: int, lfe_channels: Optional[int] = None, local: bool = False) -> None:
        super().__init__()
        e = n if lfe_channels is None else lfe_channels
        self.lfe_a, self.lfe_b, self.lfe_c, self.lfe_d = (LFE(n, e) for _ in range(4))
        self.p = _conv3(n, n)
        self.r1 = _Refine(2 * n, n)
        self.r2 = _Refine(n, n)
        self.merge = _conv3(3 * n, n)
        self.drsa = DRSA(n, local=local)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x1 = self.lfe_a(x)
        x2 = self.lfe_c(_lrelu(self.p(x1)))
        y1 = self.lfe_b(y)
        y2 = self.lfe_d(_lrelu(self.p(y1)))
        z1 = self.r1(torch.cat([x, y], dim=1))
        z2 = self.r2(z1 + x1 + y1)
        return self.drsa(_lrelu(self.merge(torch.cat([x2 + x, y2 + y, z2], dim=1))))


class SpectralBasis(nn.Module):
    """Decode ``k`` code channels to ``C`` bands with the LR-HSI's principal subspace (lite, REC).

    The basis (the top ``k`` left singular vectors of the LR-HSI's spectra, uncentred: the correction to
    bicubic(Y) is a mix of the scene's spectra) is a buffer fixed by the first training forward pass, i.e. on
    the scene the net is fitted to, and saved with the weights; ``ready`` says whether it has been fixed.
    Direction ``i`` is scaled by ``s_i / s_1``, so code channels of equal size make corrections in proportion
    to the scene's spectral variety: unscaled, a 32-channel code scored 3 dB below a 16-channel one on the
    bundled sample, its minor directions adding spectral noise.
    """

    def __init__(self, bands: int, k: int) -> None:
        super().__init__()
        self.register_buffer("weight", torch.zeros(bands, k))
        self.register_buffer("ready", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def fit_once(self, y: torch.Tensor) -> None:
        if bool(self.ready):
            return
        spectra = y.detach().transpose(0, 1).reshape(y.shape[1], -1).double()
        u, s, _ = torch.linalg.svd(spectra, full_matrices=False)
        k = min(self.weight.shape[1], u.shape[1])
        self.weight.zero_()
        if float(s[0]) > 0:  # each direction scaled by its share of the spectra (s_i / s_1): see the docstring
            self.weight[:, :k] = (u[:, :k] * (s[:k] / s[0])).to(self.weight.dtype)
        self.ready.fill_(True)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return F.conv2d(code, self.weight[:, :, None, None])

    @torch.no_grad()
    def decode_into(self, out: torch.Tensor, code: torch.Tensor, gain: float) -> None:
        """``out += gain * decode(code)`` without a second band-sized tensor (inference; NCHW contiguous).

        The code is brought to the basis' dtype: under bfloat16 autocast it comes out of the head in bfloat16.
        """
        for o, c in zip(out, code):
            o.view(o.shape[0], -1).addmm_(self.weight, c.reshape(c.shape[0], -1).to(self.weight.dtype), alpha=gain)


class AMSFNet(nn.Module):
    """AMSF-Net ``forward(y, z) -> x``; H, W must be multiples of ``align(ratio) = 8 r``."""

    def __init__(self, hsi_bands: int, msi_bands: int, ratio: int, width: int = WIDTH,
                 hsi_skip: bool = False, code: int = 0, local: bool = False) -> None:
        super().__init__()
        if ratio < 1 or width % 4:
            raise ValueError("ratio must be >= 1 and width a multiple of 4")
        if code and not hsi_skip:
            raise ValueError("a spectral code (lite) needs hsi_skip: it codes the correction to bicubic(Y)")
        c_hsi, w = hsi_bands, width
        self.bands = (hsi_bands, msi_bands)
        self.ratio = ratio
        self.local = local
        self.hr_stage_margin = HR_STAGE_MARGIN  # forward(crop=...): context of the HR stage (benchmarks vary it)
        self.z_head = _conv3(msi_bands, w)
        self.y_head1 = _conv3(c_hsi, 2 * w)
        self.y_head2 = _conv3(2 * w, w)
        self.att = ATT(w, local)  # shared by all four uses
        self.mff1, self.mff2, self.mff3 = (MFF(w, local=local) for _ in range(3))
        self.pcp1 = PCP(3 * w, 3, (1, 2, 1, 2), local)
        self.pcp2 = PCP(6 * w, 9, (1, 2, 3, 6), local)
        self.pcp3 = PCP(6 * w, 9, (1, 2, 3, 6), local)
        self.post1 = _conv3(3 * w, 3 * w)
        self.post2 = _conv3(6 * w, 3 * w)
        self.post3 = _conv3(6 * w, w)
        # The HR head works on every band (paper) or on ``code`` coefficients of a fixed spectral basis (lite).
        c_out = min(code, c_hsi) if code else c_hsi
        self.out1 = _conv3(w, c_out)
        self.out2 = _conv3(c_out, c_out)
        self.res1 = _conv3(c_out, c_out)
        self.res2 = _conv3(c_out, c_out)
        self.basis = SpectralBasis(c_hsi, c_out) if code else None
        # REC (module docstring): gain of the correction added to bicubic(Y); 0 = start at bicubic.
        self.skip_gain = nn.Parameter(torch.zeros(())) if hsi_skip else None
        # Inference layout: oneDNN runs these narrow convolutions on channels-last (NHWC) tensors without
        # reordering every input to its blocked layout and back (docs/networks.md#amsf-net-lite, measured).
        self.channels_last = True
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform on every Conv2d / Linear weight, as the authors do before training.

        See docs/networks.md#amsf-net-losses-and-training.

        Biases keep PyTorch's default init (the spec names the weights only); LayerNorm stays 1 / 0.
        """
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)

    @staticmethod
    def align(ratio: int) -> int:
        return 8 * ratio

    @staticmethod
    def margin(ratio: int) -> int:
        return 40 * ratio  # already a multiple of align = 8 r

    @staticmethod
    def min_hr_size(ratio: int) -> int:
        return 8 * ratio

    @property
    def crops_hr_stage(self) -> bool:
        """Whether ``forward`` takes a ``crop``: only without tile-wide statistics (lite), with the bicubic skip."""
        return self.local and self.skip_gain is not None

    def hr_stage_box(self, hr_shape: Sequence[int], core: Box) -> Box:
        """The HR window the HR stage runs on: the kept ``core`` plus ``hr_stage_margin`` px, at even offsets."""
        return widen_box(core, self.hr_stage_margin, hr_shape, HR_STAGE_STEP)

    def forward(self, y: torch.Tensor, z: torch.Tensor, crop: Optional[Sequence[int]] = None) -> torch.Tensor:
        """``x (B, C, H, W)``, or with ``crop`` = (top, bottom, left, right) HR px only the core that leaves.

        ``crop`` (inference, lite only; REC): the LR-resolution stages run on the whole input as without it,
        the HR-resolution stage (``d``, ``mff3``, ``f2``, ``pcp3``, the head, bicubic(Y), the decode) on the
        core plus ``HR_STAGE_MARGIN`` px (:meth:`hr_stage_box`): about 94 % of lite's arithmetic is at HR, and
        the tile margin (``40r``) is set by the far-seeing LR stages. Equal to ``forward(y, z)`` cut to the core
        within the stage's receptive-field error (docs/networks.md#amsf-net-lite, measured).
        """
        check_pair(y, z, *self.bands, self.ratio, self.align(self.ratio))
        core = box = None
        if crop is not None:
            if not self.crops_hr_stage:
                raise ValueError("crop needs the lite configuration (no tile-wide statistics, bicubic skip)")
            if self.training or torch.is_grad_enabled():
                raise ValueError("crop is for inference only (eval mode, no autograd)")
            core = core_box(z.shape, crop)
            box = self.hr_stage_box(z.shape, core)
        if self.training and self.basis is not None:
            self.basis.fit_once(y)
        fast = self.channels_last and not self.training
        if fast:
            layout = torch.channels_last
            x = self._correction(y.contiguous(memory_format=layout), z.contiguous(memory_format=layout), box)
        else:
            x = self._correction(y, z, box)
        if box is not None:  # the code (or correction) of the window, cut to the core
            x = window(x, box_within(core, box))
        if self.skip_gain is None:
            return x.contiguous()
        up = upsample_box(y, self.ratio, core, "bicubic")
        if self.training or torch.is_grad_enabled():
            x = up + self.skip_gain * (x if self.basis is None else self.basis(x))
            return x if self.training else floor_at_input_minimum(x, y)
        # Inference: one band-sized HR tensor (4 C bytes per HR pixel), updated in place; lite decodes its
        # code straight into it.
        gain = float(self.skip_gain)
        if self.basis is None:
            up.add_(x, alpha=gain)
        else:
            self.basis.decode_into(up, x, gain)
        del x
        return torch.maximum(up, y.amin(dim=(-2, -1), keepdim=True).clamp_max(0), out=up)

    def _correction(self, y: torch.Tensor, z: torch.Tensor, box: Optional[Box] = None) -> torch.Tensor:
        """The network proper: the HR estimate (published net) or the correction to bicubic(Y) (skip).

        ``box``: the HR stage runs on that window of the HR grid only (see :meth:`forward`).
        """
        h, w = y.shape[-2:]
        quarter = (h // 4, w // 4)
        r = z.shape[-1] // w
        zf = F.relu(self.z_head(z))
        a = self.att(_resize(zf, (h, w)))
        b = self.att(_resize(a, quarter))
        yf = F.relu(self.y_head2(F.relu(self.y_head1(y))))
        c_ = self.att(_resize(yf, quarter))
        d = self.att(upsample_box(yf, r, box))
        e = self.mff1(b, c_)
        f1 = F.relu(self.post1(_resize(self.pcp1(torch.cat([b, c_, e], dim=1)), (h, w))))
        g = self.mff2(a, yf)
        f2 = F.relu(self.post2(upsample_box(self.pcp2(torch.cat([a, yf, g, f1], dim=1)), r, box)))
        if box is not None:
            zf = window(zf, box)
        hh = self.mff3(d, zf)
        cat = torch.cat([d, zf, hh, f2], dim=1)
        del zf, hh, f2  # HR features: released before the largest stage
        f3 = F.relu(self.post3(self.pcp3(cat)))
        del cat
        if self.basis is None:
            x = F.relu(self.out2(F.relu(self.out1(f3 + d), inplace=True)), inplace=True)
            return self.res2(F.relu(self.res1(x), inplace=True)).add_(x)
        # lite: a signed code (no ReLU on it) in the plain layout; forward() decodes it with the fixed basis
        x = self.out2(F.relu(self.out1(f3 + d), inplace=True))
        return self.res2(F.relu(self.res1(x), inplace=True)).add_(x).contiguous()


def _diff(t: torch.Tensor, dim: int) -> torch.Tensor:
    return t.narrow(dim, 1, t.shape[dim] - 1) - t.narrow(dim, 0, t.shape[dim] - 1)


def loss(x_hat: torch.Tensor, x: torch.Tensor, edge_loss: bool = False) -> torch.Tensor:
    """MSE; ``edge_loss`` adds the SSR-NET finite-difference terms (0.5 rows, 0.5 cols, 1 bands)."""
    value = F.mse_loss(x_hat, x)
    if edge_loss:
        value = value + 0.5 * F.mse_loss(_diff(x_hat, 2), _diff(x, 2)) + 0.5 * F.mse_loss(
            _diff(x_hat, 3), _diff(x, 3)
        )
        if x.shape[1] > 1:
            value = value + F.mse_loss(_diff(x_hat, 1), _diff(x, 1))
    return value


def default_optimizer(params, iterations: int = 20000):
    """Adam 1e-4 + StepLR(0.95) stepped per iteration.

    The paper's 500-step period over its 20 000 iterations, scaled to the run (``iterations // 40``, REC) so a
    short run decays as far as the paper's.
    """
    opt = torch.optim.Adam(params, lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, int(iterations) // 40), gamma=0.95)
    return opt, sched


def build(hsi_bands: int, msi_bands: int, ratio: int, **hyper) -> AMSFNet:
    """Registry builder: ``width`` (paper 32), ``hsi_skip`` (REC bicubic skip, default on), ``code``, ``local``.

    ``lite=True`` (REC, non-paper) sets width ``LITE_WIDTH``, a ``LITE_CODE``-channel spectral code and the
    local attention (docs/networks.md#amsf-net-lite); ``width`` given explicitly still wins.
    """
    lite = bool(hyper.get("lite", False))
    return AMSFNet(hsi_bands, msi_bands, ratio, width=hyper.get("width", LITE_WIDTH if lite else WIDTH),
                   hsi_skip=bool(hyper.get("hsi_skip", True)), code=int(hyper.get("code", LITE_CODE if lite else 0)),
                   local=bool(hyper.get("local", lite)))


SPEC = NetSpec(
    build=build,
    loss=loss,
    default_optimizer=default_optimizer,
    margin=AMSFNet.margin,
    align=AMSFNet.align,
    min_hr_size=AMSFNet.min_hr_size,
    # Larger tiles amortise the 40r margin but break the 2 GB process goal, with the HR stage cropped too
    # (measured, docs/networks.md#amsf-net-lite).
    heap_tiles=("lite",),  # the paper configuration's 576² tiles fragment the heap to 5.4-6.9 GB (NOTES.md)
    tile=256,
    defaults={"hsi_skip": True, "lite": False},
    paper_params=None,
    reference=(
        "S. Liu, T. Shao, S. Liu, B. Li, Y.-D. Zhang, 'AMSF-Net: Asymptotic Multiscale Symmetric "
        "Fusion Network for hyperspectral and multispectral image fusion', IEEE TGRS 63 (2025) 5503016"
    ),
)

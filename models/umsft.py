"""UMSFT — Unsupervised Multi-level Spatio-spectral Fusion Transformer (per-pair optimisation).

Paper: X. Cao et al., "Unsupervised Multi-level Spatio-spectral Fusion Transformer for Hyperspectral
Image Super-resolution", Optics & Laser Technology (~2023); the README of ``Caoxuheng/UMSFT``
states the code was merged into FeafusFormer in ``Caoxuheng/HIFtool`` (MIT). **DOC** from that
code as described in docs/networks.md#umsft; written from that description, no code copied.

Structure, three levels (H/8, H/2, H): at each level a DIP "skip" U-Net (Spa-FM) gives V from
``cat[previous estimate, MSI at that level]``; Spe-FCA attends along the spectral axis with Q from
VGG16-BN features of the MSI and K from those of the up-sampled HSI (code order; ``qk_from="hsi"``
swaps); an MSI-residual refinement RM (holding the shared SpeD) closes each level. Learned PSF (SpaD)
and SRF (SpeD) are initialised in three steps and then optimised jointly with the net
(docs/networks.md#umsft-losses-and-training).

Deviations (docs/networks.md#umsft-what-is-reconstructed): VGG16-BN layers built by hand up to index 23
with Kaiming init (ImageNet weights unavailable offline; ``vgg_weights`` loads a local torchvision-style
state dict); ``lite=True`` (Skip width 64, skip 8) is **not** the paper's configuration, for CPU use.
BatchNorm always uses batch statistics (the code runs in training mode, batch 1); a map with a single value
per channel (Skip₁'s deepest level at H = 64) normalises to the BN bias instead of raising.

REC changes for scene-adaptive use (not in the paper or the code; reasons in
docs/networks.md#umsft-what-is-reconstructed, measurements in benchmarks/NOTES.md):
- SpeD's per-band ``Conv1d`` smoothing is initialised as the identity (taps 0, 1, 0; bias 0), so each
  SRF row starts as the normalised Gaussian instead of half the rows starting dead.
- ``hsi_skip=True`` (registry default; ``fit``'s default stays the coded net): Skip₃ drops its sigmoid
  and gets a zero-initialised head, and ``V3 = bicubic(Y) + Skip₃(...)``; the level-3 Spe-FCA output
  projection and RM's last 1x1 conv are zero-initialised too, so the first X̂ is the bicubic image. The
  returned X̂ is floored at ``min(0, band minimum of Y)`` (:func:`~.blocks.floor_at_input_minimum`).
- The engine passes SRF spans derived from the band metadata (docs/design.md#srf-spans; all bands only
  without wavelengths).
- ``output_ema`` (registry default 0.7; ``fit``'s default 0 returns the last iterate as coded): X̂ is the
  exponential average ``a·X̂ + (1 - a)·out`` of the main-loop outputs (Deep Image Prior's averaging).

Size rule of the net: H, W multiples of ``lcm(64, r)``, Y exactly (H/r, W/r); :func:`fit_once` and
:func:`fit_any_size` mirror their inputs to it (:func:`mirror_to_size_rule`).

Fit once (REC, the engine's default; docs/networks.md#umsft-fit-once): UMSFT optimises an image, and its
attention, batch norms and H/8 branch make every pixel depend on the whole input, so it cannot be applied per
tile. :func:`fit_once` optimises it once on a crop and distils its estimate into a small local map
(:class:`LocalMap`, receptive field 3·r + 2 HR px) applied to every tile; optimising every tile
(:func:`fit_any_size`) stays an option of the engine (PER_TILE).

Parameters, CAVE 31/3 x4: non-VGG 6 790 812 (Skips, Spe-FCAs, Merges, RM without SpeD; spec figure),
SpeD 48, SpaD 25, two truncated VGGs 3 491 712 (spec 3 491 712).

Cancel: ``callback(stage, i, n, loss)`` after every iteration, stages ``"sped_init"``,
``"spad_init"``, ``"coupled_init"``, ``"main"``; returning ``False`` stops :func:`fit`, which returns
the X̂ of the last main-loop forward (None if the main loop had not started) and
``info["cancelled"] = True``.

Anchored default (REC; engine/methods/anchored.py): the fit once is first run on the pair degraded once
more by the ratio, and the map's estimate is blended with the classical base, ``base + g * (map - base)``,
one g in [0, 1] fitted on a training area and scored on a held-out one.
"""
from __future__ import annotations

import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import floor_at_input_minimum, psf_downsample, psf_geometry, spans_from_srf, srf_apply, zero_mean
from .spec import NetSpec, lcm

REFERENCE = (
    "X. Cao et al., 'Unsupervised Multi-level Spatio-spectral Fusion Transformer for Hyperspectral Image "
    "Super-resolution', Optics & Laser Technology (~2023); code merged into FeafusFormer in "
    "Caoxuheng/HIFtool (MIT). docs/networks.md#umsft."
)

# VGG16-BN "features" layout up to index 23: conv widths per block; 'M' = max-pool.
_VGG_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M"]
_TAPS = (5, 12, 23)


class BatchStatNorm2d(nn.Module):
    """BatchNorm2d that always normalises with the batch statistics (no running averages).

    Parameters ``weight``/``bias`` as nn.BatchNorm2d (2n). A single value per channel normalises to
    ``bias`` (PyTorch's BN refuses that case in training mode).
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        var = x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
        xn = (x - mean) * torch.rsqrt(var + self.eps)
        return xn * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class VGGFeatures(nn.Module):
    """VGG16-BN feature layers 0..23 with taps after indices 5, 12, 23 (64 ch /1, 128 ch /2, 256 ch /8).

    Input is scaled ``(x - 0.5) / 0.5``. ``n_in != 3`` gets a fresh first conv (n_in -> 64). Kaiming
    init (fan_out, ReLU) as torchvision's VGG; BN weight 1, bias 0.
    """

    def __init__(self, n_in: int = 3) -> None:
        super().__init__()
        layers: List[nn.Module] = []
        ch = n_in
        for v in _VGG_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(ch, v, 3, padding=1), BatchStatNorm2d(v), nn.ReLU(inplace=True)]
                ch = v
        self.layers = nn.Sequential(*layers)
        self.n_in = n_in
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def load_vgg_state(self, state: Dict[str, torch.Tensor]) -> int:
        """Copy matching conv/BN weights from a torchvision ``vgg16_bn`` state dict.

        Accepts ``features.N.*`` or ``N.*`` keys; skips the first conv when ``n_in != 3``. Returns the number
        of tensors copied.
        """
        copied = 0
        own = dict(self.layers.named_parameters())
        for key, value in state.items():
            name = key[len("features."):] if key.startswith("features.") else key
            idx = name.split(".")[0]
            if not idx.isdigit() or int(idx) > 23 or name not in own:
                continue
            if int(idx) == 0 and self.n_in != 3:
                continue
            if own[name].shape != value.shape:
                raise ValueError(f"VGG weight {key} has shape {tuple(value.shape)}, expected "
                                 f"{tuple(own[name].shape)}")
            with torch.no_grad():
                own[name].copy_(value)
            copied += 1
        return copied

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        t = (x - 0.5) / 0.5
        taps = []
        for i, layer in enumerate(self.layers):
            t = layer(t)
            if i in _TAPS:
                taps.append(t)
        return taps[0], taps[1], taps[2]


def _conv(n_in: int, n_out: int, k: int, stride: int = 1, pad: str = "zero") -> nn.Module:
    p = k // 2
    if pad == "reflection" and p > 0:
        return nn.Sequential(nn.ReflectionPad2d(p), nn.Conv2d(n_in, n_out, k, stride=stride))
    return nn.Conv2d(n_in, n_out, k, stride=stride, padding=p)


def _cba(n_in: int, n_out: int, k: int, stride: int = 1, pad: str = "zero") -> nn.Sequential:
    return nn.Sequential(_conv(n_in, n_out, k, stride, pad), BatchStatNorm2d(n_out), nn.LeakyReLU(0.2, True))


def _centre_crop(t: torch.Tensor, hh: int, ww: int) -> torch.Tensor:
    dh, dw = (t.shape[-2] - hh) // 2, (t.shape[-1] - ww) // 2
    return t[..., dh:dh + hh, dw:dw + ww]


class _SkipLevel(nn.Module):
    def __init__(self, n_in: int, width: int, skip: int, depth: int, pad: str, up: str) -> None:
        super().__init__()
        self.skip = _cba(n_in, skip, 1, pad=pad)
        self.down = nn.Sequential(_cba(n_in, width, 3, 2, pad), _cba(width, width, 3, 1, pad))
        self.deeper = _SkipLevel(width, width, skip, depth - 1, pad, up) if depth > 1 else None
        self.up = up
        self.merge = nn.Sequential(BatchStatNorm2d(skip + width), _cba(skip + width, width, 3, 1, pad),
                                   _cba(width, width, 1, 1, pad))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.down(x)
        if self.deeper is not None:
            d = self.deeper(d)
        d = F.interpolate(d, scale_factor=2, mode=self.up, align_corners=False)
        s = self.skip(x)
        hh, ww = min(s.shape[-2], d.shape[-2]), min(s.shape[-1], d.shape[-1])
        return self.merge(torch.cat([_centre_crop(s, hh, ww), _centre_crop(d, hh, ww)], 1))


class Skip(nn.Module):
    """DIP skip U-Net (Spa-FM): ``scales`` stride-2 levels, width 191 / skip 20 (lite: 64 / 8)."""

    def __init__(self, n_in: int, n_out: int, scales: int, pad: str = "zero", up: str = "bilinear",
                 sigmoid: bool = True, width: int = 191, skip: int = 20) -> None:
        super().__init__()
        self.body = _SkipLevel(n_in, width, skip, scales, pad, up)
        self.head = _conv(width, n_out, 1)
        self.sigmoid = sigmoid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head(self.body(x))
        return torch.sigmoid(out) if self.sigmoid else out


class SpeFCA(nn.Module):
    """Spectral feature cross attention.

    Heads n = 5 of d = ⌊C/5⌋ channels; d x d attention over all pixels, temperature √C; returns
    ``V + ZM(Lin_o(A v))``.
    """

    def __init__(self, bands: int, heads: int = 5) -> None:
        super().__init__()
        self.heads = heads
        self.d = max(1, bands // heads)
        inner = heads * self.d
        self.scale = bands ** -0.5
        self.q = nn.Linear(bands, inner, bias=False)
        self.k = nn.Linear(bands, inner, bias=False)
        self.v = nn.Linear(bands, inner, bias=False)
        self.o = nn.Linear(inner, bands, bias=False)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        b, c, hh, ww = v.shape

        def tokens(t: torch.Tensor, lin: nn.Linear) -> torch.Tensor:  # (b, heads, d, HW)
            t = lin(t.flatten(2).transpose(1, 2))
            return t.reshape(b, hh * ww, self.heads, self.d).permute(0, 2, 3, 1)

        qh, kh, vh = tokens(q, self.q), tokens(k, self.k), tokens(v, self.v)
        attn = torch.softmax((qh * self.scale) @ kh.transpose(-2, -1), dim=-1)  # (b, heads, d, d)
        o = (attn @ vh).permute(0, 3, 1, 2).reshape(b, hh * ww, self.heads * self.d)
        o = self.o(o).transpose(1, 2).reshape(b, c, hh, ww)
        return v + zero_mean(o)


class Merge(nn.Module):
    """Feature -> C bands: ``Conv k (n -> C) -> ELU -> Conv 3x3 (C -> C)``."""

    def __init__(self, n_feat: int, bands: int, k: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv(n_feat, bands, k), nn.ELU(), _conv(bands, bands, 3))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.body(t)


class SpeD(nn.Module):
    """Blind SRF, or the fixed matrix when ``srf`` is given.

    Blind: per MSI band k a vector s_k over span_k (init normalised Gaussian σ = 2 bands) through its own
    ``Conv1d(1->1, 3, same) + ReLU`` -> weights; ``Z_k = Σ_b w_k[b] X[span_k[b]]``.
    """

    def __init__(self, hsi_bands: int, msi_bands: int, spans=None, srf=None) -> None:
        super().__init__()
        self.hsi_bands, self.msi_bands = hsi_bands, msi_bands
        self.blind = srf is None
        if srf is not None:
            r = torch.as_tensor(srf, dtype=torch.float32).clone()
            if tuple(r.shape) != (msi_bands, hsi_bands):
                raise ValueError(f"SRF must be {msi_bands}x{hsi_bands}, got {tuple(r.shape)}")
            self.register_buffer("srf", r / r.sum(dim=1, keepdim=True))
            return
        if spans is None:
            spans = spans_from_srf(None, hsi_bands, msi_bands)
        if len(spans) != msi_bands or any(len(s) == 0 for s in spans):
            raise ValueError(f"need {msi_bands} non-empty spans")
        self.spans = [list(map(int, s)) for s in spans]
        self.vectors = nn.ParameterList()
        self.smooth = nn.ModuleList()
        for k, s in enumerate(self.spans):
            t = torch.arange(len(s), dtype=torch.float32) - (len(s) - 1) / 2
            g = torch.exp(-(t ** 2) / (2 * 2.0 ** 2))
            self.vectors.append(nn.Parameter(g / g.sum()))
            conv = nn.Conv1d(1, 1, 3, padding=1)
            # REC: identity init (taps 0, 1, 0; bias 0), so the initial response IS the normalised Gaussian.
            # PyTorch's default init made rows start dead (ReLU of a negative kernel: all-zero, no gradient)
            # or dominated by the bias (added to every band of the span: row sums ~100 over all bands).
            with torch.no_grad():
                conv.weight.zero_()
                conv.weight[0, 0, 1] = 1.0
                conv.bias.zero_()
            self.smooth.append(conv)
            self.register_buffer(f"index{k}", torch.tensor(s, dtype=torch.long), persistent=False)

    def matrix(self) -> torch.Tensor:
        """Current (c x C) spectral response."""
        if not self.blind:
            return self.srf
        rows = []
        for k, (vec, conv) in enumerate(zip(self.vectors, self.smooth)):
            w = F.relu(conv(vec.view(1, 1, -1))).view(-1)
            rows.append(w.new_zeros(self.hsi_bands).index_add(0, getattr(self, f"index{k}"), w))
        return torch.stack(rows)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return srf_apply(x, self.matrix())


class SpaD(nn.Module):
    """Blind PSF, bands as batch.

    ``AvgPool r (x) + ELU(Conv (r+1)², stride r, circular pad 1 (ZM x))``, kernel init normalised Gaussian
    (σ = r//2). Non-blind (``psf`` given): block-centred fixed PSF.
    """

    def __init__(self, ratio: int, psf=None) -> None:
        super().__init__()
        self.ratio = ratio
        self.blind = psf is None
        if psf is not None:
            self.register_buffer("kernel", psf_geometry(psf, ratio))
            return
        k = ratio + 1
        t = torch.arange(k, dtype=torch.float32) - (k - 1) / 2
        sigma = max(ratio // 2, 1e-3)
        g = torch.exp(-(t ** 2) / (2 * sigma ** 2))
        g2 = g[:, None] * g[None, :]
        self.weight = nn.Parameter((g2 / g2.sum()).view(1, 1, k, k))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.blind:
            return psf_downsample(x, self.kernel, self.ratio)
        b, n, hh, ww = x.shape
        t = x.reshape(b * n, 1, hh, ww)
        avg = F.avg_pool2d(t, self.ratio)
        conv = F.conv2d(F.pad(zero_mean(t), (1, 1, 1, 1), mode="circular"), self.weight, stride=self.ratio)
        out = avg + F.elu(conv)
        return out.reshape(b, n, out.shape[-2], out.shape[-1])


class RM(nn.Module):
    """MSI-residual refinement (the code's ``SpaFM``): ``ELU(ZM(ELU(PW 2c->C (ELU(PW c->2c (M - SpeD x))))) + x)``."""

    def __init__(self, hsi_bands: int, msi_bands: int, spe_d: SpeD) -> None:
        super().__init__()
        self.spe_d = spe_d
        self.pw1 = nn.Conv2d(msi_bands, 2 * msi_bands, 1)
        self.pw2 = nn.Conv2d(2 * msi_bands, hsi_bands, 1)

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        e = F.elu(self.pw2(F.elu(self.pw1(m - self.spe_d(x)))))
        return F.elu(zero_mean(e) + x)


class UMSFTNet(nn.Module):
    """The fusion net ``MultiLevelFus``: ``forward(y, z) -> X^`` (batch 1). Holds the shared SpeD via RM."""

    def __init__(self, hsi_bands: int, msi_bands: int, ratio: int, spe_d: SpeD, lite: bool = False,
                 qk_from: str = "msi", heads: int = 5, hsi_skip: bool = False) -> None:
        super().__init__()
        if qk_from not in ("msi", "hsi"):
            raise ValueError("qk_from must be 'msi' or 'hsi'")
        C, c = hsi_bands, msi_bands
        self.hsi_bands, self.msi_bands, self.ratio, self.qk_from = C, c, ratio, qk_from
        width, skip = (64, 8) if lite else (191, 20)
        self.vgg_h = VGGFeatures(C)
        self.vgg_m = VGGFeatures(c)
        self.skip1 = Skip(C + c, C, 3, "zero", "bicubic", True, width, skip)
        self.skip2 = Skip(C + c, C, 2, "reflection", "bilinear", False, width, skip)
        # hsi_skip (REC): V3 = bicubic(Y) + Skip3(...) with a linear, zero-initialised head, so X^ starts near Yc.
        self.hsi_skip = hsi_skip
        self.skip3 = Skip(C + c, C, 2, "reflection", "bilinear", not hsi_skip, width, skip)
        if hsi_skip:
            nn.init.zeros_(self.skip3.head.weight)
            nn.init.zeros_(self.skip3.head.bias)
        self.merge_h = nn.ModuleList([Merge(256, C, 3), Merge(128, C, 1), Merge(64, C, 1)])
        self.merge_m = nn.ModuleList([Merge(256, C, 1), Merge(128, C, 1), Merge(64, C, 1)])
        self.fca = nn.ModuleList([SpeFCA(C, heads) for _ in range(3)])
        self.rm = RM(C, c, spe_d)
        if hsi_skip:  # the level-3 attention and the shared RM add nothing at init either: X^ = Yc
            nn.init.zeros_(self.fca[2].o.weight)
            nn.init.zeros_(self.rm.pw2.weight)
            nn.init.zeros_(self.rm.pw2.bias)

    def check_inputs(self, y: torch.Tensor, z: torch.Tensor) -> None:
        """Raise ValueError unless y (1,C,h,w), z (1,c,H,W) with H = r·h and H, W multiples of lcm(64, r)."""
        if y.dim() != 4 or z.dim() != 4:
            raise ValueError(f"UMSFT expects y (1,C,h,w) and z (1,c,H,W); got {tuple(y.shape)}, {tuple(z.shape)}")
        if y.shape[0] != 1 or z.shape[0] != 1:
            raise ValueError("UMSFT optimises one pair: batch size must be 1")
        if y.shape[1] != self.hsi_bands or z.shape[1] != self.msi_bands:
            raise ValueError(f"expected {self.hsi_bands} HSI / {self.msi_bands} MSI bands, got "
                             f"{y.shape[1]} / {z.shape[1]}")
        r = self.ratio
        h, w = y.shape[-2:]
        H, W = z.shape[-2:]
        if (H, W) != (r * h, r * w):
            raise ValueError(f"z is {H}x{W} but ratio {r} and y {h}x{w} need {r * h}x{r * w}")
        a = lcm(64, r)
        if H % a or W % a or H == 0 or W == 0:
            raise ValueError(f"UMSFT needs H, W multiples of lcm(64, ratio) = {a}; got {H}x{W} (pad first)")

    def forward(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        H, W = z.shape[-2:]
        yc = F.interpolate(y, size=(H, W), mode="bilinear", align_corners=False)
        y8 = F.interpolate(y, size=(H // 8, W // 8), mode="nearest")
        z8 = F.interpolate(z, size=(H // 8, W // 8), mode="nearest")
        z2 = F.interpolate(z, size=(H // 2, W // 2), mode="nearest")
        th, tm = self.vgg_h(yc), self.vgg_m(z)
        if self.qk_from == "hsi":
            tm, th = th, tm
            mq, mk = self.merge_h, self.merge_m
        else:
            mq, mk = self.merge_m, self.merge_h
        x = self.skip1(torch.cat([y8, z8], 1))
        x = self.rm(self.fca[0](mq[0](tm[2]), mk[0](th[2]), x), z8)
        v = self.skip2(torch.cat([F.interpolate(x, size=(H // 2, W // 2), mode="nearest"), z2], 1))
        x = self.rm(self.fca[1](mq[1](tm[1]), mk[1](th[1]), v), z2)
        v = self.skip3(torch.cat([F.interpolate(x, size=(H, W), mode="nearest"), z], 1))
        if self.hsi_skip:
            v = v + F.interpolate(y, size=(H, W), mode="bicubic", align_corners=False)
        return self.rm(self.fca[2](mq[2](tm[0]), mk[2](th[0]), v), z)


class UMSFT(nn.Module):
    """Container: fusion net ``net``, the shared ``spe_d`` (also ``net.rm.spe_d``) and ``spa_d``.

    Args:
        hsi_bands, msi_bands, ratio: C, c, r.
        spans: SRF band groups of the blind SpeD (default from ``srf``, else all bands).
        srf: (c x C) SRF -> frozen SpeD; psf: 2-D kernel -> frozen SpaD.
        lite: Skip width 64 / skip 8 (non-paper, CPU).
        vgg_weights: path of a local torchvision ``vgg16_bn`` state dict (default: Kaiming init).
        qk_from: ``"msi"`` (code: Q from MSI features) or ``"hsi"`` (abstract's order).
    """

    def __init__(self, hsi_bands: int, msi_bands: int, ratio: int, spans=None, srf=None, psf=None,
                 lite: bool = False, vgg_weights: Optional[str] = None, qk_from: str = "msi",
                 heads: int = 5, hsi_skip: bool = False) -> None:
        super().__init__()
        if spans is None and srf is not None:
            spans = spans_from_srf(srf)
        self.spe_d = SpeD(hsi_bands, msi_bands, spans, srf)
        self.spa_d = SpaD(ratio, psf)
        self.net = UMSFTNet(hsi_bands, msi_bands, ratio, self.spe_d, lite, qk_from, heads, hsi_skip)
        if vgg_weights:
            state = torch.load(vgg_weights, map_location="cpu", weights_only=True)
            if isinstance(state, dict) and "state_dict" in state:
                state = state["state_dict"]
            if self.net.vgg_h.load_vgg_state(state) + self.net.vgg_m.load_vgg_state(state) == 0:
                raise ValueError(f"no VGG16-BN feature weights found in {vgg_weights}")

    @staticmethod
    def margin(ratio: int) -> int:
        """Tile context, HR px: 8·r (32 at x4).

        Covers the fit-once map's receptive field (:class:`LocalMap`: 3·r + 2) exactly; per tile, the overlap
        of the optimised tiles.
        """
        return 8 * ratio

    @staticmethod
    def align(ratio: int) -> int:
        """HR origin step r: the fit-once map is aligned on the LR grid (the per-tile net pads each tile itself)."""
        return ratio

    @staticmethod
    def min_hr_size(ratio: int) -> int:
        """Smallest HR side r.

        :func:`fit_once` and :func:`fit_any_size` mirror their inputs to the net's size rule (multiples of
        ``lcm(64, r)``).
        """
        return ratio

    def forward(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        self.net.check_inputs(y, z)
        return self.net(y, z)


def _neg_psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    mse = ((pred - target) ** 2).mean(dim=(0, 2, 3)).clamp_min(1e-12)
    return (10 * torch.log10(mse)).mean()


def fit(y, z, ratio: int, spans=None, srf=None, psf=None, iterations: int = 300,
        init_steps: Union[int, Sequence[int]] = 500,
        lite: bool = False, callback: Optional[Callable[[str, int, int, float], bool]] = None, seed: int = 0,
        device="cpu", vgg_weights: Optional[str] = None, qk_from: str = "msi",
        subspace_rank: int = 3, hsi_skip: bool = False,
        output_ema: float = 0.0) -> Tuple[Optional[torch.Tensor], dict]:
    """Optimise UMSFT on one pair and return ``(x_hat, info)`` (docs/networks.md#umsft-losses-and-training).

    Steps: 0 rank-K subspace of Y (Φ = U_K S_K, A = V_Kᵀ); 1 SpeD init (Adam 1e-2, wd 1e-4, StepLR 50/0.9,
    L1 to an LR MSI); 2 SpaD init (Adam 5e-4, StepLR 50/0.5, -PSNR to SpeD(Y)); 3 coupled init (AdamW
    5e-3, wd 1e-4, StepLR 50/0.8); each ``init_steps`` long and skipped for frozen operators.
    4 main loop of ``iterations``: fusion net AdamW 2e-3, StepLR(100, 0.99); SpaD/SpeD AdamW 1e-5 in the
    last two thirds, where the consistency terms ``|SpaD(Z) - SpeD(Y)| + |SpaD(Z) - SpeD(Φ)A|`` join the
    loss ``|SpaD(X^) - Y| + |SpeD(X^) - Z|``. SpeD is also stepped by the fusion optimiser (DOC).

    Args:
        y: LR-HSI (1, C, h, w) float32 in [0, 1].
        z: HR-MSI (1, c, H, W), H, W multiples of lcm(64, r).
        ratio: r.
        spans: SRF band groups of the blind SpeD, as :class:`UMSFT`.
        srf: fixed SRF matrix (frozen SpeD), as :class:`UMSFT`.
        psf: fixed PSF kernel (frozen SpaD), as :class:`UMSFT`.
        iterations: main-loop length T (HIFtool 300).
        init_steps: length of each init step (500), or one length per init step.
        lite: non-paper CPU config.
        callback: ``callback(stage, i, n, loss) -> bool``; ``False`` cancels.
        seed: initialisation seed (global RNG restored afterwards).
        device: torch device.
        vgg_weights: path of a local torchvision ``vgg16_bn`` state dict for the feature extractors.
        qk_from: ``"msi"`` (code order: Q from the MSI features) or ``"hsi"`` (the abstract's order).
        subspace_rank: K of the rank-K subspace of Y used by the coupled initialisation (3).
        hsi_skip: REC bicubic skip (module docstring).
        output_ema: REC average of the X̂ iterates (0: off).

    Returns:
        ``x_hat`` (1, C, H, W) detached on ``device`` — X̂ of the last main-loop forward (None when
        cancelled before the main loop) — and ``info``: ``losses`` (per stage lists; ``main_data``
        holds the main loop's data terms ``|SpaD(X^) - Y| + |SpeD(X^) - Z|`` alone), ``cancelled``,
        ``model`` (the :class:`UMSFT`), ``seconds``.
    """
    t0 = time.perf_counter()
    y = torch.as_tensor(y, dtype=torch.float32)
    z = torch.as_tensor(z, dtype=torch.float32)
    C, c = y.shape[1], z.shape[1]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = UMSFT(C, c, ratio, spans, srf, psf, lite, vgg_weights, qk_from, hsi_skip=hsi_skip)
        model.net.check_inputs(y, z)
        device = torch.device(device)
        model.to(device)
        y, z = y.to(device), z.to(device)
        losses: Dict[str, list] = {"sped_init": [], "spad_init": [], "coupled_init": [], "main": [],
                                   "main_data": []}
        info = {"losses": losses, "cancelled": False, "model": model, "seconds": 0.0}
        spe_d, spa_d, net = model.spe_d, model.spa_d, model.net
        l1 = F.l1_loss

        def report(stage: str, i: int, n: int, loss: torch.Tensor) -> bool:
            value = float(loss.detach())
            losses[stage].append(value)
            return not (callback is not None and callback(stage, i + 1, n, value) is False)

        # 0. rank-K subspace of Y.
        k = min(subspace_rank, C, y.shape[-2] * y.shape[-1])
        u_, s_, vh = torch.linalg.svd(y[0].reshape(C, -1), full_matrices=False)
        phi = (u_[:, :k] * s_[:k]).reshape(1, C, k, 1)
        coef = vh[:k]

        def sped_phi_a() -> torch.Tensor:
            return (spe_d(phi).reshape(c, k) @ coef).reshape(1, c, *y.shape[-2:])

        def run(stage, n, opt, sched, loss_fn) -> bool:
            for i in range(n):
                opt.zero_grad(set_to_none=True)
                loss = loss_fn()
                loss.backward()
                opt.step()
                sched.step()
                if not report(stage, i, n, loss):
                    return False
            return True

        ok = True
        n_sped, n_spad, n_coupled = (init_steps,) * 3 if isinstance(init_steps, int) else init_steps
        # 1. SpeD init.
        if spe_d.blind and n_sped > 0:
            z_lr = F.avg_pool2d(F.pad(z, (ratio,) * 4, mode="reflect"), 2 * ratio + 1, stride=ratio)
            y_s = F.avg_pool2d(F.pad(y, (1, 1, 1, 1), mode="reflect"), 3, stride=1)
            opt = torch.optim.Adam(spe_d.parameters(), lr=1e-2, weight_decay=1e-4)
            ok = run("sped_init", n_sped, opt, torch.optim.lr_scheduler.StepLR(opt, 50, 0.9),
                     lambda: l1(spe_d(y_s), z_lr))
        # 2. SpaD init.
        if ok and spa_d.blind and n_spad > 0:
            with torch.no_grad():
                target = spe_d(y)
            opt = torch.optim.Adam(spa_d.parameters(), lr=5e-4)
            ok = run("spad_init", n_spad, opt, torch.optim.lr_scheduler.StepLR(opt, 50, 0.5),
                     lambda: _neg_psnr(spa_d(z), target))
        # 3. Coupled init.
        deg_params = [p for p in list(spa_d.parameters()) + list(spe_d.parameters()) if p.requires_grad]
        if ok and deg_params and n_coupled > 0:
            opt = torch.optim.AdamW(deg_params, lr=5e-3, weight_decay=1e-4)
            ok = run("coupled_init", n_coupled, opt, torch.optim.lr_scheduler.StepLR(opt, 50, 0.8),
                     lambda: l1(spa_d(z), sped_phi_a()) + l1(spa_d(z), spe_d(y)))
        # 4. Main loop.
        x_hat = None
        if ok and iterations > 0:
            opt_f = torch.optim.AdamW(net.parameters(), lr=2e-3)
            sched_f = torch.optim.lr_scheduler.StepLR(opt_f, 100, 0.99)
            opt_d = torch.optim.AdamW(deg_params, lr=1e-5) if deg_params else None
            joint_from = iterations / 3
            net.train()
            for i in range(iterations):
                joint = i >= joint_from
                opt_f.zero_grad(set_to_none=True)
                if opt_d is not None:
                    opt_d.zero_grad(set_to_none=True)
                out = net(y, z)
                loss = l1(spa_d(out), y) + l1(spe_d(out), z)
                losses["main_data"].append(float(loss.detach()))
                if joint and opt_d is not None:
                    sz = spa_d(z)
                    loss = loss + l1(sz, spe_d(y)) + l1(sz, sped_phi_a())
                loss.backward()
                opt_f.step()
                sched_f.step()
                if joint and opt_d is not None:
                    opt_d.step()
                # output_ema > 0 (REC): exponential average of the X^ iterates, as Deep Image Prior does.
                x_hat = out.detach() if x_hat is None or not output_ema else (
                    output_ema * x_hat + (1 - output_ema) * out.detach())
                if not report("main", i, iterations, loss):
                    ok = False
                    break
    if hsi_skip and x_hat is not None:
        x_hat = floor_at_input_minimum(x_hat, y)
    info["cancelled"] = not ok
    info["seconds"] = time.perf_counter() - t0
    return x_hat, info


class LocalMap(nn.Module):
    """UMSFT's fit-once form (REC): a small local map distilled from UMSFT's estimate on the fit crop.

    ``X = bicubic(Y) + H(cat[bicubic(Y), Z, Z - bicubic(AvgPool_r Z)])`` with ``H`` = 1x1 conv (-> 32), LeakyReLU,
    3x3 conv (32 -> 32), LeakyReLU, 1x1 conv (32 -> C, zero-initialised, so the untrained map is bicubic). UMSFT's
    own net cannot be applied per tile: its attention and batch norms are image-wide, and its coarsest branch
    (a 3-level U-Net at H/8) makes every pixel depend on the whole input (frozen at the crop's statistics, tiles
    with 128 px of context still differed by 17 % of the maximum). The map's receptive field is 3·r + 2 HR px
    (bicubic: 2 LR px; the 3x3 conv: 1 px), so with :meth:`UMSFT.margin` tiles equal the whole image.
    The output is floored at ``min(0, band minimum of the crop's Y)``, as the net's (docs/networks.md#umsft-fit-once).
    """

    def __init__(self, hsi_bands: int, msi_bands: int, ratio: int, width: int = 32) -> None:
        super().__init__()
        self.ratio = ratio
        self.hsi_bands, self.msi_bands = hsi_bands, msi_bands
        self.body = nn.Sequential(nn.Conv2d(hsi_bands + 2 * msi_bands, width, 1), nn.LeakyReLU(0.2),
                                  nn.Conv2d(width, width, 3, padding=1), nn.LeakyReLU(0.2),
                                  nn.Conv2d(width, hsi_bands, 1))
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)
        self.register_buffer("floor", torch.full((1, hsi_bands, 1, 1), -torch.inf))
        self.cancelled = False
        self.info: dict = {}

    def forward(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        r, C = self.ratio, self.hsi_bands

        def up(t: torch.Tensor) -> torch.Tensor:
            return F.interpolate(t, scale_factor=r, mode="bicubic", align_corners=False)

        first = self.body[0]
        # body[0](cat[up(y), z, z - zl]) with its bicubic part mixed at LR first: the 1x1 conv commutes with the
        # upsampling, so the C bands are mixed down to ``width`` on 1/r² of the pixels and never concatenated.
        zd = torch.cat([z, z - up(F.avg_pool2d(z, r))], 1)
        h = up(F.conv2d(y, first.weight[:, :C])) + F.conv2d(zd, first.weight[:, C:], first.bias)
        x = self.body[1:](h)
        return x.add_(up(y)) if torch.is_inference_mode_enabled() else x + up(y)

    def predict(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """HR-HSI tile ``(1, C, r·h, r·w)`` from an LR-HSI tile ``y`` and its HR-MSI tile ``z`` (inference mode)."""
        p = self.floor
        y, z = y.to(device=p.device, dtype=p.dtype), z.to(device=p.device, dtype=p.dtype)
        if y.shape[1] != self.hsi_bands or z.shape[1] != self.msi_bands or \
                tuple(z.shape[-2:]) != (self.ratio * y.shape[-2], self.ratio * y.shape[-1]):
            raise ValueError(f"predict expects y (1,{self.hsi_bands},h,w), z (1,{self.msi_bands},{self.ratio}h,"
                             f"{self.ratio}w); got {tuple(y.shape)}, {tuple(z.shape)}")
        with torch.inference_mode():
            x = self(y, z)
            return torch.maximum(x, self.floor, out=x)


def mirror_to_size_rule(y: torch.Tensor, z: torch.Tensor, ratio: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Mirror (half-sample symmetric, repeated as needed) a pair at the bottom/right to multiples of ``lcm(64, r)``."""
    a = lcm(64, ratio) // ratio

    def index(n: int, target: int) -> torch.Tensor:
        i = torch.arange(target) % (2 * n)
        return torch.where(i < n, i, 2 * n - 1 - i)

    h, w = y.shape[-2:]
    th, tw = -(-h // a) * a, -(-w // a) * a
    if (th, tw) == (h, w):
        return y, z
    H, W = z.shape[-2:]
    return (y[..., index(h, th), :][..., index(w, tw)],
            z[..., index(H, th * ratio), :][..., index(W, tw * ratio)])


def fit_any_size(y, z, ratio: int, **options) -> Tuple[Optional[torch.Tensor], dict]:
    """:func:`fit` on a pair of any size: mirrored to the size rule first, the estimate cropped back."""
    y = torch.as_tensor(y, dtype=torch.float32)
    z = torch.as_tensor(z, dtype=torch.float32)
    H, W = z.shape[-2:]
    x_hat, info = fit(*mirror_to_size_rule(y, z, ratio), ratio, **options)
    return (None if x_hat is None else x_hat[..., :H, :W]), info


def distil(local: LocalMap, y: torch.Tensor, z: torch.Tensor, target: torch.Tensor, steps: int,
           report: Callable[[int, int, float], bool], lr: float = 2e-3) -> bool:
    """Fit ``local`` to ``target`` (UMSFT's estimate of the crop): L1, Adam, full crop; False when stopped."""
    opt = torch.optim.Adam(local.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    local.train()
    for i in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = F.l1_loss(local(y, z), target)
        loss.backward()
        opt.step()
        sched.step()
        if not report(i, steps, float(loss.detach())):
            return False
    return True


def fit_once(y, z, ratio: int, iterations: Sequence[int] = (40, 40, 40, 40, 40),
             callback: Optional[Callable[[str, int, int, float], bool]] = None, seed: int = 0, device="cpu",
             **options) -> LocalMap:
    """Optimise UMSFT once on a crop (:func:`fit`) and distil its estimate into a :class:`LocalMap`.

    ``iterations`` = the steps of the five stages: SpeD init, SpaD init, coupled init, main loop (as
    :func:`fit`), then ``"distil"``. The other options are :func:`fit`'s; ``init_steps`` is replaced by the
    stage counts. Stopped by ``callback`` (returning ``False``), the map fitted so far is returned with
    ``cancelled = True`` (the bicubic map if UMSFT's main loop had not started).
    """
    *init, main, steps = (int(n) for n in iterations)
    options.pop("init_steps", None)
    y, z = mirror_to_size_rule(torch.as_tensor(y, dtype=torch.float32), torch.as_tensor(z, dtype=torch.float32), ratio)
    x_hat, info = fit(y, z, ratio, iterations=main, init_steps=tuple(init), callback=callback, seed=seed,
                      device=device, **options) if main > 0 else (None, {"cancelled": False})
    device = torch.device(device)
    y, z = y.to(device), z.to(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        local = LocalMap(y.shape[1], z.shape[1], ratio).to(device)
    local.info = {k: v for k, v in info.items() if k != "model"}
    ok = not info["cancelled"]
    if x_hat is not None and ok:
        ok = distil(local, y, z, x_hat, steps,
                    lambda i, n, loss: callback is None or callback("distil", i + 1, n, loss) is not False)
    local.floor = y.amin(dim=(-2, -1), keepdim=True).clamp_max(0)
    local.cancelled = not ok
    local.eval()
    return local


def build(hsi_bands: int, msi_bands: int, ratio: int, **hyper) -> UMSFT:
    """Registry builder: an unfitted :class:`UMSFT` (``spans, srf, psf, lite, vgg_weights, qk_from``)."""
    return UMSFT(hsi_bands, msi_bands, ratio, **hyper)


SPEC = NetSpec(
    build=build,
    margin=UMSFT.margin,
    align=UMSFT.align,
    min_hr_size=UMSFT.min_hr_size,
    defaults={"lite": False, "qk_from": "msi", "init_steps": 500, "hsi_skip": True,
              "output_ema": 0.7},
    paper_params=None,
    reference=REFERENCE,
    tile=256,  # fit-once map, engine on 2 cores: 13 s/Mpx at 256 and 384, peak RSS 1.65 vs 2.56 GB (1024^2 x 224)
    fit=fit_once,
    fit_per_tile=fit_any_size,
)

"""Layers shared by several networks (docs/networks.md#shared-blocks): SE, SA7, LN2d, Haar, ZM.

Torch only. Each block is small and named after the spec so network files read like the spec.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn


class SE(nn.Module):
    """Squeeze-and-excitation: ``x * sigmoid(PW(ReLU(PW(GAP(x)))))``, widths n -> max(n/red, 4) -> n."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.squeeze = nn.Conv2d(channels, hidden, 1)
        self.excite = nn.Conv2d(hidden, channels, 1)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """The (B, C, 1, 1) channel weights ``forward`` multiplies ``x`` by."""
        return torch.sigmoid(self.excite(F.relu(self.squeeze(x.mean(dim=(2, 3), keepdim=True)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class SA7(nn.Module):
    """CBAM spatial attention: ``x * sigmoid(Conv7x7(cat[mean_c x, max_c x]))``."""

    def __init__(self, kernel_size: int = 7, bias: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=bias)

    def mask(self, x: torch.Tensor) -> torch.Tensor:
        """The (B, 1, H, W) spatial weights ``forward`` multiplies ``x`` by."""
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(pooled))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mask(x)


class LN2d(nn.Module):
    """LayerNorm over the channel axis at every pixel (affine, weight 1 / bias 0 at init)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def haar(x: torch.Tensor):
    """One-level Haar transform of an even-sized map -> (LL, LH, HL, HH), each half size."""
    a = x[..., 0::2, 0::2]
    b = x[..., 1::2, 0::2]
    c = x[..., 0::2, 1::2]
    d = x[..., 1::2, 1::2]
    ll = (a + b + c + d) / 2
    lh = (-a - b + c + d) / 2
    hl = (-a + b - c + d) / 2
    hh = (a - b - c + d) / 2
    return ll, lh, hl, hh


def zero_mean(t: torch.Tensor) -> torch.Tensor:
    """``ZM(t) = t - GAP(t)``: per-channel spatial mean removed (UMSFT's Zm_Bn)."""
    return t - t.mean(dim=(2, 3), keepdim=True)


def block_kernel(ratio: int) -> tuple:
    """Block-centred strided kernel geometry (docs/design.md#area-convention): (kernel, stride, padding).

    Kernel 2r with padding r/2 for even r, 2r-1 with padding (r-1)/2 for odd r; stride r. The transposed
    conv with the same triple maps h back to exactly H = r*h.
    """
    if ratio % 2 == 0:
        return 2 * ratio, ratio, ratio // 2
    return 2 * ratio - 1, ratio, (ratio - 1) // 2


def check_pair(y: torch.Tensor, z: torch.Tensor, hsi_bands: int, msi_bands: int, ratio: int, align: int) -> None:
    """Raise ValueError unless ``y`` and ``z`` fit the built network.

    ``y (B,C,h,w)``, ``z (B,c,H,W)`` must have the built band counts, H = r*h, W = r*w, and H, W positive
    multiples of ``align`` (the engine pads to that step; docs/design.md#tiles-and-margins).
    """
    if y.dim() != 4 or z.dim() != 4:
        raise ValueError(f"expected 4-D y and z, got y{tuple(y.shape)} z{tuple(z.shape)}")
    if y.shape[0] != z.shape[0]:
        raise ValueError(f"batch sizes differ: y{tuple(y.shape)} z{tuple(z.shape)}")
    if y.shape[1] != hsi_bands or z.shape[1] != msi_bands:
        raise ValueError(
            f"expected {hsi_bands} HSI and {msi_bands} MSI bands, got {y.shape[1]} and {z.shape[1]}"
        )
    (h, w), (hh, ww) = tuple(y.shape[-2:]), tuple(z.shape[-2:])
    if (hh, ww) != (ratio * h, ratio * w):
        raise ValueError(f"z is {hh}x{ww} but ratio {ratio} and y {h}x{w} need {ratio * h}x{ratio * w}")
    if hh <= 0 or ww <= 0 or hh % align or ww % align:
        raise ValueError(f"HR size {hh}x{ww} must be a positive multiple of {align} at ratio {ratio}; pad first")


# --- Degradation operators shared by the unsupervised nets (docs/design.md#degradation-model) ---


def gaussian_kernel2d(size: int, sigma: float, centre: float = None) -> torch.Tensor:
    """Normalised 2-D Gaussian on a ``size x size`` grid centred at ``centre`` (default: grid centre)."""
    c = (size - 1) / 2 if centre is None else centre
    t = torch.arange(size, dtype=torch.float64) - c
    g = torch.exp(-(t ** 2) / (2 * max(float(sigma), 1e-6) ** 2))
    k = g[:, None] * g[None, :]
    return (k / k.sum()).float()


def gaussian_psf(ratio: int, fwhm: float = None) -> torch.Tensor:
    """Block-centred Gaussian PSF with FWHM in HR pixels (project default FWHM = ratio).

    The engine's degradation (docs/design.md#degradation-model): side ``2 ceil(3 sigma) + ratio`` (same parity as the
    ratio), for :func:`psf_downsample`.
    """
    fwhm = float(ratio if fwhm is None else fwhm)
    sigma = fwhm / 2.3548
    size = 2 * int(math.ceil(3 * sigma)) + ratio
    size += (size - ratio) % 2
    return gaussian_kernel2d(size, sigma)


def psf_geometry(kernel, ratio: int) -> torch.Tensor:
    """Make a fixed PSF kernel usable by :func:`psf_downsample` with exact block centring.

    A kernel whose side has the other parity than ``ratio`` is centred on a pixel, not on a block
    centre; it is re-centred by a half-pixel average ([0.5, 0.5] along that axis). Kernels smaller than
    the block are zero-padded to the block size. Returns a float32 2-D kernel normalised to sum 1.
    """
    k = torch.as_tensor(kernel, dtype=torch.float32)
    if k.dim() != 2:
        raise ValueError(f"PSF must be a 2-D kernel, got shape {tuple(k.shape)}")
    if (k.shape[0] - ratio) % 2:
        k = 0.5 * (F.pad(k, (0, 0, 1, 0)) + F.pad(k, (0, 0, 0, 1)))
    if (k.shape[1] - ratio) % 2:
        k = 0.5 * (F.pad(k, (1, 0, 0, 0)) + F.pad(k, (0, 1, 0, 0)))
    ph = max(0, (ratio - k.shape[0]) // 2)
    pw = max(0, (ratio - k.shape[1]) // 2)
    if ph or pw:
        k = F.pad(k, (pw, pw, ph, ph))
    return k / k.sum()


def psf_downsample(x: torch.Tensor, kernel: torch.Tensor, ratio: int) -> torch.Tensor:
    """Block-centred blur + decimation ``(x * PSF)↓r`` with one kernel shared by all bands.

    ``kernel`` (Kh, Kw) with ``K - ratio`` even and ``K >= ratio`` (see :func:`psf_geometry`); the input
    is reflect-padded by ``(K - ratio)/2`` on each side (replicate when the map is too small to
    reflect), so LR pixel ``(i, j)`` is the PSF-weighted mean centred on HR block ``(i, j)``.
    """
    b, n, hh, ww = x.shape
    kh, kw = kernel.shape[-2:]
    ph, pw = (kh - ratio) // 2, (kw - ratio) // 2
    t = x.reshape(b * n, 1, hh, ww)
    if ph or pw:
        mode = "reflect" if (ph < hh and pw < ww) else "replicate"
        t = F.pad(t, (pw, pw, ph, ph), mode=mode)
    out = F.conv2d(t, kernel.reshape(1, 1, kh, kw).to(t.dtype), stride=ratio)
    return out.reshape(b, n, out.shape[-2], out.shape[-1])


def srf_apply(x: torch.Tensor, srf: torch.Tensor) -> torch.Tensor:
    """Spectral degradation ``Z[k] = sum_b R[k, b] X[b]`` for ``R`` (c x C), per pixel."""
    return torch.einsum("kc,bchw->bkhw", srf.to(x.dtype), x)


def spans_from_srf(srf, hsi_bands: int = None, msi_bands: int = None, threshold: float = 0.01):
    """SRF band groups: per MSI band k, the HSI bands where ``R[k] >= threshold·max R[k]``.

    See docs/design.md#srf-spans.

    Without an SRF (``srf=None``) every span is all HSI bands (``hsi_bands``, ``msi_bands`` required).
    Returns a list of ``c`` lists of band indices (never empty: the peak band always qualifies).
    """
    if srf is None:
        if hsi_bands is None or msi_bands is None:
            raise ValueError("spans_from_srf(None) needs hsi_bands and msi_bands")
        return [list(range(hsi_bands)) for _ in range(msi_bands)]
    r = torch.as_tensor(srf, dtype=torch.float64)
    if r.dim() != 2:
        raise ValueError(f"SRF must be a (c x C) matrix, got shape {tuple(r.shape)}")
    spans = []
    for row in r:
        peak = float(row.max())
        if peak <= 0:
            raise ValueError("every SRF row needs a positive response")
        spans.append([int(i) for i in torch.nonzero(row >= threshold * peak).flatten()])
    return spans


def floor_at_input_minimum(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """No band of ``x`` below ``min(0, that band's minimum in the LR-HSI y)``.

    REC, used by the bicubic-skip variants of AMSF-Net and UMSFT on their final estimate: non-negative data
    (reflectance) get a floor of 0. Their corrections pushed 4-9 % of the dark (water) spectra of the bundled
    sample below 0, which alone raised SAM above bicubic's.
    """
    lo = y.amin(dim=(-2, -1), keepdim=True).clamp_max(0)
    return torch.maximum(x, lo)


Box = Tuple[int, int, int, int]  # (row0, row1, col0, col1) of an HR window, end-exclusive


def core_box(hr_shape: Sequence[int], crop: Optional[Sequence[int]]) -> Box:
    """The HR window left after dropping ``crop`` = (top, bottom, left, right) px of an ``hr_shape`` (.., H, W)."""
    H, W = int(hr_shape[-2]), int(hr_shape[-1])
    top, bottom, left, right = (0, 0, 0, 0) if crop is None else (int(c) for c in crop)
    if min(top, bottom, left, right) < 0 or top + bottom >= H or left + right >= W:
        raise ValueError(f"crop {tuple(crop)} leaves nothing of a {H}x{W} HR input")
    return top, H - bottom, left, W - right


def widen_box(core: Box, px: int, hr_shape: Sequence[int], step: int = 1) -> Box:
    """``core`` widened by ``px`` on every side within the ``hr_shape`` (.., H, W) image.

    Each side's distance from the image edge is rounded down to a multiple of ``step`` (a layer whose pooling
    or windows must keep their phase), so the window is at least ``core`` plus ``px`` where the image allows.
    """
    r0, r1, c0, c1 = core
    H, W = int(hr_shape[-2]), int(hr_shape[-1])

    def start(c: int) -> int:
        return max(0, c - px) // step * step

    return start(r0), H - start(H - r1), start(c0), W - start(W - c1)


def box_within(inner: Box, outer: Box) -> Box:
    """``inner`` in the coordinates of a window cut at ``outer`` (``window(window(t, outer), result)``)."""
    return inner[0] - outer[0], inner[1] - outer[0], inner[2] - outer[2], inner[3] - outer[2]


def window(t: torch.Tensor, box: Box) -> torch.Tensor:
    """``t[..., r0:r1, c0:c1]`` as a tensor of its own, in ``t``'s layout (channels-last stays channels-last)."""
    r0, r1, c0, c1 = box
    part = t[..., r0:r1, c0:c1]
    last = t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()
    return part.contiguous(memory_format=torch.channels_last if last else torch.contiguous_format)


def upsample_box(t: torch.Tensor, ratio: int, box: Optional[Box], mode: str = "bilinear") -> torch.Tensor:
    """``interpolate(t, r x size, mode, align_corners=False)[..., r0:r1, c0:c1]`` without the full-size tensor.

    The LR input is cut to the LR pixels the window's samples reach plus 2 (bicubic's taps reach
    ``floor(src) - 1 .. floor(src) + 2``), up-sampled by exactly ``r`` and cut to the window: at an integer
    scale every HR pixel maps to the same LR position less the integer offset, so the values equal the
    full-size result's (up to rounding of the sample positions). ``box`` None: the whole up-sampled image.
    """
    h, w = t.shape[-2:]
    if box is None:
        return F.interpolate(t, size=(h * ratio, w * ratio), mode=mode, align_corners=False)
    r0, r1, c0, c1 = box
    a0, a1 = max(0, r0 // ratio - 2), min(h, -(-r1 // ratio) + 2)
    b0, b1 = max(0, c0 // ratio - 2), min(w, -(-c1 // ratio) + 2)
    up = F.interpolate(t[..., a0:a1, b0:b1], size=((a1 - a0) * ratio, (b1 - b0) * ratio), mode=mode,
                       align_corners=False)
    if (r0, r1, c0, c1) == (a0 * ratio, a1 * ratio, b0 * ratio, b1 * ratio):
        return up
    return window(up, (r0 - a0 * ratio, r1 - a0 * ratio, c0 - b0 * ratio, c1 - b0 * ratio))

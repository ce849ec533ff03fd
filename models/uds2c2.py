"""UDS2C2 — unsupervised HS–MS fusion with a deep spectral–spatial collaborative constraint.

Paper: H. Yu, Z. Ling, K. Zheng, L. Gao, J. Li, J. Chanussot, IEEE TGRS 62 (2024),
doi 10.1109/TGRS.2024.3472226 (seed = abstract only; no official code). **REC** design on top of the
documented UDALN three-stage scheme (J. Li et al., GRSL 2022, as in ``Caoxuheng/HIFtool``,
``Networks/UDALN``, MIT), docs/networks.md#uds2c2. Written from that description; no code copied.

Modules (all REC except where the UDALN ancestor is DOC):

- :class:`SpaD` learned PSF + decimation (UDALN: one r x r kernel, stride r, shared by all bands,
  init 1/r²; option ``psf_kernel='kr'``: block-centred k_r kernel, reflect padding). Non-blind: frozen.
- :class:`SpeD` learned SRF: per MSI band a weight vector over its span, normalised by its sum (UDALN,
  init Gaussian σ = 3.5 bands). Non-blind: frozen SRF matrix.
- :class:`SCFConv` dynamic conv with spatial, input-channel and filter attention (ODConv with one
  kernel, BN omitted); per-sample kernels through a grouped conv over the batch; attention can be frozen.
- :class:`GCE` group-convolution enhancement on the LR-MSI predicted from the HSI (identity at init).
- :class:`SpeU` spectral up-mapping c -> C (UDALN doubling chain + SCFConv residual, 1x1 by default,
  so the map is pixel-wise and a map learned at LR applies at HR).

:func:`fit` runs the three stages (docs/networks.md#uds2c2-losses-and-training) on the whole pair and returns
the fitted :class:`UDS2C2`, whose :meth:`UDS2C2.predict` maps an HR-MSI tile to the HR-HSI tile. After
fitting, the SpeU attention vectors are computed once on the whole HR-MSI and frozen, so with ``k_scf=1``
tiled prediction equals whole-image prediction exactly (margin 0; the registry declares 4 to cover
``k_scf=3``).

Cancel: ``callback(stage, i, n, loss)`` is called after every iteration with ``stage`` in
``("s1", "s2", "s3")``, ``i`` 1-based, ``n`` that stage's iteration count and the float loss. Returning
``False`` (not merely falsy: ``None`` continues) stops the fit: :func:`fit` returns early with the
current weights, attention frozen, and ``fitted.cancelled = True``.

CAVE 31/3 x4 parameters: SpeU 2 988 (k_scf=1) / 7 732 (k_scf=3), GCE 1 224, SpaD 16, SpeD 36 (spans
R 20-30, G 10-22, B 0-11), as in the spec.

Anchored default (REC; engine/methods/anchored.py): the three stages run unchanged on the
pair degraded once more by the ratio (inputs normalised by their own 0.1-99.9th percentile range, so an
MSI in other units cannot scale the output); the pixel-wise map's estimate is blended with the classical
base, ``base + g * (UDS2C2 - base)``, one g in [0, 1] fitted on a training area and scored on a
held-out one; without a held-out gain the output is the base.
"""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import block_kernel, gaussian_kernel2d, psf_downsample, psf_geometry, spans_from_srf, srf_apply
from .spec import NetSpec

__all__ = [
    "SpaD", "SpeD", "SCFConv", "GCE", "SpeU", "UDS2C2", "fit", "spans_from_srf",
    "PAPER_ITERATIONS", "FAST_ITERATIONS", "TEST_ITERATIONS",
]

REFERENCE = (
    "H. Yu, Z. Ling, K. Zheng, L. Gao, J. Li, J. Chanussot, 'Unsupervised Hyperspectral and Multispectral "
    "Image Fusion With Deep Spectral-Spatial Collaborative Constraint', IEEE TGRS 62 (2024), "
    "doi:10.1109/TGRS.2024.3472226. Design REC on UDALN (docs/networks.md#uds2c2)."
)

#: UDALN official example run (DOC): iterations per stage.
PAPER_ITERATIONS = (20000, 30000, 15000)
#: Fast CPU profile (REC): ≤ 10 min on a 256² pair.
FAST_ITERATIONS = (4000, 4000, 2000)
#: Tiny budget for tests and previews.
TEST_ITERATIONS = (40, 40, 10)
#: Learning rates (DOC, UDALN example run) and fraction of each stage after which the lr decays
#: linearly to 0 (20000/10000, 30000/20000, 15000/5000).
STAGE_LR = (1e-3, 1e-3, 6e-5)
STAGE_DECAY_FROM = (0.5, 2.0 / 3.0, 1.0 / 3.0)
#: HR rows per strip of stage 3's HR terms (:func:`cross_terms`): 64 rows of a 512-px crop keep one strip's
#: activations near 250 MB.
STRIP_ROWS = 64
#: ...and only on HR-MSIs of more pixels than this: below (the anchored default's reduced-scale pair, small
#: crops) the whole image's graph stays under ~1 GB at 224 bands. Time, quiet machine, 224 bands, one step of
#: the HR terms with backward: 512² HR 3.6 s in strips vs 6.4 s whole (the 4 GB graph's memory traffic),
#: 256² 0.90 vs 1.22 s; on a machine loaded ~9x the strips were 3.5-7.6x slower at 256², hence the bound.
STRIP_MIN_PIXELS = 256 * 256

def _lrelu(t: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(t, 0.2)


class SpaD(nn.Module):
    """Spatial degradation (PSF + block-centred decimation), one kernel shared by all bands.

    Args:
        ratio: r.
        psf: fixed 2-D kernel (non-blind, frozen) or None (blind, learned).
        psf_kernel: blind kernel size: ``"r"`` (UDALN, r x r, pad 0, init 1/r²) or ``"kr"`` (k_r of
            docs/design.md#area-convention, reflect padding, init Gaussian with FWHM r).
    """

    def __init__(self, ratio: int, psf=None, psf_kernel: str = "r") -> None:
        super().__init__()
        self.ratio = ratio
        self.blind = psf is None
        if psf is not None:
            self.register_buffer("kernel", psf_geometry(psf, ratio))
        elif psf_kernel == "r":
            self.kernel = nn.Parameter(torch.full((ratio, ratio), 1.0 / ratio ** 2))
        elif psf_kernel == "kr":
            k = block_kernel(ratio)[0]
            self.kernel = nn.Parameter(gaussian_kernel2d(k, ratio / 2.3548))
        else:
            raise ValueError(f"psf_kernel must be 'r' or 'kr', got {psf_kernel!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return psf_downsample(x, self.kernel, self.ratio)


class SpeD(nn.Module):
    """Spectral degradation: per MSI band k, normalised weights over ``spans[k]`` (UDALN SpeDNet).

    Args:
        hsi_bands: C.
        msi_bands: c.
        spans: list of c lists of HSI band indices (None: all bands for every MSI band).
        srf: fixed (c x C) SRF (non-blind, frozen; rows normalised to sum 1) or None (blind).
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
            self.spans: List[List[int]] = spans_from_srf(r)
            return
        if spans is None:
            spans = spans_from_srf(None, hsi_bands, msi_bands)
        if len(spans) != msi_bands or any(len(s) == 0 for s in spans):
            raise ValueError(f"need {msi_bands} non-empty spans, got {spans!r}")
        if any(b < 0 or b >= hsi_bands for s in spans for b in s):
            raise ValueError(f"span band indices must lie in 0..{hsi_bands - 1}")
        self.spans = [list(map(int, s)) for s in spans]
        self.weights = nn.ParameterList()
        for s in self.spans:
            t = torch.arange(len(s), dtype=torch.float32) - (len(s) - 1) / 2
            g = torch.exp(-(t ** 2) / (2 * 3.5 ** 2))
            self.weights.append(nn.Parameter(g / g.sum()))
        for k, s in enumerate(self.spans):
            self.register_buffer(f"index{k}", torch.tensor(s, dtype=torch.long), persistent=False)

    def matrix(self) -> torch.Tensor:
        """The current (c x C) SRF matrix."""
        if not self.blind:
            return self.srf
        rows = []
        for k, w in enumerate(self.weights):
            row = w.new_zeros(self.hsi_bands)
            rows.append(row.index_add(0, getattr(self, f"index{k}"), w / w.sum()))
        return torch.stack(rows)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return srf_apply(x, self.matrix())


class SCFConv(nn.Module):
    """Dynamic conv with spatial (k·k), input-channel (n_in) and filter (n_out) attention factors.

    ``W_b = W ⊙ α_s ⊙ α_c ⊙ α_f`` per sample, attention from ``GAP -> PW(n_in -> max(n_in/16, 16), no
    bias) -> ReLU -> three PW heads + sigmoid`` (ODConv with one kernel; BN omitted since batch is 1).
    No bias. :meth:`freeze` fixes the attention (computed once per scene) for tiled inference.
    """

    def __init__(self, n_in: int, n_out: int, kernel_size: int = 1, groups: int = 1, reduction: int = 16,
                 min_hidden: int = 16) -> None:
        super().__init__()
        if n_in % groups or n_out % groups:
            raise ValueError("n_in and n_out must be divisible by groups")
        self.n_in, self.n_out, self.k, self.groups = n_in, n_out, kernel_size, groups
        self.weight = nn.Parameter(torch.empty(n_out, n_in // groups, kernel_size, kernel_size))
        nn.init.kaiming_normal_(self.weight, mode="fan_out", nonlinearity="relu")
        hidden = max(n_in // reduction, min_hidden)
        self.reduce = nn.Conv2d(n_in, hidden, 1, bias=False)
        self.spatial = nn.Conv2d(hidden, kernel_size * kernel_size, 1)
        self.channel = nn.Conv2d(hidden, n_in, 1)
        self.filter = nn.Conv2d(hidden, n_out, 1)
        self.register_buffer("frozen", torch.zeros((), dtype=torch.bool))
        self.register_buffer("frozen_spatial", torch.ones(1, kernel_size * kernel_size))
        self.register_buffer("frozen_channel", torch.ones(1, n_in))
        self.register_buffer("frozen_filter", torch.ones(1, n_out))

    def attention(self, mean: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Attention factors from the per-channel mean ``(B, n_in, 1, 1)``: (B,k·k), (B,n_in), (B,n_out)."""
        h = F.relu(self.reduce(mean))
        b = mean.shape[0]
        return (torch.sigmoid(self.spatial(h)).reshape(b, -1), torch.sigmoid(self.channel(h)).reshape(b, -1),
                torch.sigmoid(self.filter(h)).reshape(b, -1))

    @torch.no_grad()
    def freeze(self, mean: torch.Tensor) -> None:
        """Freeze the attention computed from a scene-wide channel mean ``(1, n_in)`` or ``(1,n_in,1,1)``."""
        a_s, a_c, a_f = self.attention(mean.reshape(1, self.n_in, 1, 1).to(self.weight))
        self.frozen_spatial.copy_(a_s)
        self.frozen_channel.copy_(a_c)
        self.frozen_filter.copy_(a_f)
        self.frozen.fill_(True)

    def unfreeze(self) -> None:
        """Go back to per-sample attention (training)."""
        self.frozen.fill_(False)

    def forward(self, x: torch.Tensor, mean: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Per-sample (or frozen) attention, then the conv.

        ``mean`` (B, n_in) replaces ``x``'s own channel mean: a strip of a larger image gets the whole image's.
        """
        b, _, hh, ww = x.shape
        if bool(self.frozen):
            a_s = self.frozen_spatial.expand(b, -1)
            a_c = self.frozen_channel.expand(b, -1)
            a_f = self.frozen_filter.expand(b, -1)
        else:
            mean = x.mean(dim=(2, 3), keepdim=True) if mean is None else mean.reshape(b, self.n_in, 1, 1)
            a_s, a_c, a_f = self.attention(mean)
        g, k = self.groups, self.k
        cin_g, cout_g = self.n_in // g, self.n_out // g
        # input-channel factor of W[o, j] is α_c[group(o)·cin_g + j]
        a_c_w = a_c.reshape(b, g, 1, cin_g).expand(b, g, cout_g, cin_g).reshape(b, self.n_out, cin_g)
        w = (self.weight.unsqueeze(0) * a_s.reshape(b, 1, 1, k, k) * a_c_w.reshape(b, self.n_out, cin_g, 1, 1)
             * a_f.reshape(b, self.n_out, 1, 1, 1))
        out = F.conv2d(x.reshape(1, b * self.n_in, hh, ww), w.reshape(b * self.n_out, cin_g, k, k),
                       padding=k // 2, groups=b * g)
        return out.reshape(b, self.n_out, hh, ww)


class GCE(nn.Module):
    """Group-convolution enhancement on c channels (band-wise, no spectral mixing), identity at init.

    ``u + PW_grp(c·m -> c)(LReLU(SCFConv(c·m -> c·m, 3x3, groups=c)(LReLU(PW_grp(c -> c·m)(u)))))``.
    """

    def __init__(self, msi_bands: int, expansion: int = 4) -> None:
        super().__init__()
        c, m = msi_bands, expansion
        self.expand = nn.Conv2d(c, c * m, 1, groups=c)
        self.scf = SCFConv(c * m, c * m, 3, groups=c)
        self.project = nn.Conv2d(c * m, c, 1, groups=c)
        nn.init.zeros_(self.project.weight)
        nn.init.zeros_(self.project.bias)

    def forward(self, u: torch.Tensor, mean: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``mean``: the SCFConv input's channel mean (see :meth:`SCFConv.forward`); None = ``u``'s own."""
        return u + self.project(_lrelu(self.scf(self.hidden(u), mean)))

    def hidden(self, u: torch.Tensor) -> torch.Tensor:
        """The SCFConv's input."""
        return _lrelu(self.expand(u))


class SpeU(nn.Module):
    """Spectral up-mapping c -> C.

    PW doublings c -> 2c -> ... -> 2ⁿc (n = ⌊log₂(C/c)⌋, each + LReLU), residual
    ``f + LReLU(SCFConv(f, k_scf))``, then PW -> C and LReLU(0.2).
    """

    def __init__(self, msi_bands: int, hsi_bands: int, k_scf: int = 1) -> None:
        super().__init__()
        n = max(0, (hsi_bands // msi_bands).bit_length() - 1)
        widths = [msi_bands * 2 ** i for i in range(n + 1)]
        self.chain = nn.ModuleList(nn.Conv2d(a, b, 1) for a, b in zip(widths[:-1], widths[1:]))
        self.width = widths[-1]
        self.scf = SCFConv(self.width, self.width, k_scf)
        self.out = nn.Conv2d(self.width, hsi_bands, 1)

    def features(self, z: torch.Tensor) -> torch.Tensor:
        f = z
        for conv in self.chain:
            f = _lrelu(conv(f))
        return f

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(z))

    def head(self, f: torch.Tensor, mean: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Residual SCFConv and the output map on features ``f`` (``mean``: see :meth:`SCFConv.forward`)."""
        f = f + _lrelu(self.scf(f, mean))
        return _lrelu(self.out(f))

    @torch.no_grad()
    def freeze_attention(self, z: torch.Tensor, rows: int = STRIP_ROWS) -> None:
        """Compute the SCFConv attention from the whole HR-MSI ``z`` (in row strips) and freeze it."""
        total = torch.zeros(self.width, dtype=torch.float64, device=z.device)
        count = 0
        for r0 in range(0, z.shape[-2], rows):
            f = self.features(z[..., r0:r0 + rows, :])
            total += f.sum(dim=(0, 2, 3)).double()
            count += f.shape[0] * f.shape[2] * f.shape[3]
        self.scf.freeze((total / max(count, 1)).float().reshape(1, -1))


def _rows(t: torch.Tensor, first: int, last: int, origin: int = 0) -> torch.Tensor:
    """Image rows ``first:last`` of ``t``, whose row 0 is image row ``origin``."""
    return t[..., first - origin:last - origin, :]


def _feature_sum(spe_u: "SpeU", z: torch.Tensor) -> torch.Tensor:
    """Per-sample channel sums (B, width) of SpeU's features on a strip of the HR-MSI."""
    return spe_u.features(z).sum(dim=(2, 3))


def _x_hat_rows(model: "UDS2C2", z: torch.Tensor, first: int, last: int, m_spe: Optional[torch.Tensor]):
    """``X^ = SpeU(Z)`` on image rows ``first:last`` of the whole HR-MSI ``z`` (SpeU's halo read from it)."""
    halo = model.spe_u.scf.k // 2
    a, b = max(0, first - halo), min(z.shape[-2], last + halo)
    f = model.spe_u.features(_rows(z, a, b))
    return _rows(model.spe_u.head(f, m_spe), first, last, a)


def _gce_hidden_sum(model: "UDS2C2", x_hat: torch.Tensor) -> torch.Tensor:
    """Channel sums of GCE's SCFConv input on ``GCE(SpeD(X^))`` over a strip of ``X^``."""
    return model.gce.hidden(model.spe_d(x_hat)).sum(dim=(2, 3))


def _gather_rows(parts, strips, first: int, last: int) -> torch.Tensor:
    """Image rows ``first:last`` from the strips ``parts`` (image rows ``strips``).

    Slicing the strips, not their concatenation: a slice's backward allocates a zero gradient of what it
    slices, one strip here, the whole image there.
    """
    pieces = [p if (a, b) == (max(a, first), min(b, last)) else _rows(p, max(a, first), min(b, last), a)
              for p, (a, b) in zip(parts, strips) if a < last and b > first]
    return pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=-2)


def _cross_sums(model: "UDS2C2", x_rows, y, z, first: int, last: int, a: int, m_gce) -> torch.Tensor:
    """Sums of ``|GCE(SpeD(X^)) - Z|`` and ``|SpaD(X^) - Y|`` over image rows ``first:last`` (multiples of r).

    ``x_rows``: ``X^`` on image rows ``a:`` (the strip with GCE's halo).
    """
    g = _rows(model.gce(model.spe_d(x_rows), m_gce), first, last, a)
    r = model.ratio
    spa = model.spa_d(_rows(x_rows, first, last, a))
    return torch.stack([(g - _rows(z, first, last)).abs().sum(),
                        (spa - _rows(y, first // r, last // r)).abs().sum()])


def cross_terms(model: "UDS2C2", y: torch.Tensor, z: torch.Tensor, rows: int = STRIP_ROWS) -> torch.Tensor:
    """Stage 3's HR terms ``|GCE(SpeD(X^)) - Z| + |SpaD(X^) - Y|`` (L1 means), ``X^ = SpeU(Z)``.

    On the whole HR-MSI at once autograd keeps ~1700 HR channels of SpeU plus GCE's for backward (4.5 GB peak
    RSS on a 512² HR fit crop, 224 bands). Here ``X^`` is computed in strips of ``rows`` HR rows whose SpeU
    activations are recomputed in backward (``torch.utils.checkpoint``), so only ``X^`` itself, its gradient and
    one strip's activations live at once; the GCE and SpaD terms run on strips of ``X^`` the same way. The two
    SCFConv attentions, whose input is the whole image's channel mean, get those means from earlier passes
    (summed over strips, gradients flowing through them); strips read a halo for the 3x3 convs. Equal to the
    whole-image loss up to float summation order (time: :data:`STRIP_MIN_PIXELS`). Images up to that size,
    and a SpaD kernel wider than r (reflect padding at the image edge), take the whole-image path.
    """
    from torch.utils.checkpoint import checkpoint

    r = model.ratio
    height, width = z.shape[-2:]
    rows = max(r, rows // r * r)
    if height <= rows or height * width <= STRIP_MIN_PIXELS or tuple(model.spa_d.kernel.shape[-2:]) != (r, r):
        x_hat = model.spe_u(z)
        return F.l1_loss(model.gce(model.spe_d(x_hat)), z) + F.l1_loss(model.spa_d(x_hat), y)
    strips = [(r0, min(height, r0 + rows)) for r0 in range(0, height, rows)]
    pixels = height * width
    m_spe = m_gce = None
    if not bool(model.spe_u.scf.frozen):
        m_spe = sum(checkpoint(_feature_sum, model.spe_u, _rows(z, a, b), use_reentrant=False)
                    for a, b in strips) / pixels
    parts = [checkpoint(_x_hat_rows, model, z, a, b, m_spe, use_reentrant=False) for a, b in strips]
    if not bool(model.gce.scf.frozen):
        m_gce = sum(checkpoint(_gce_hidden_sum, model, p, use_reentrant=False) for p in parts) / pixels
    halo = model.gce.scf.k // 2
    sums = 0
    for first, last in strips:
        a, b = max(0, first - halo), min(height, last + halo)
        sums = sums + checkpoint(_cross_sums, model, _gather_rows(parts, strips, a, b), y, z, first, last, a, m_gce,
                                 use_reentrant=False)
    return sums[0] / z.numel() + sums[1] / y.numel()


class UDS2C2(nn.Module):
    """Container of the four UDS2C2 modules; after :func:`fit` it is the fitted model.

    Attributes:
        cancelled: True when the fit was stopped by the callback.
        losses: per stage (``"s1"``, ``"s2"``, ``"s3"``), the loss of every iteration run.
    """

    def __init__(self, hsi_bands: int, msi_bands: int, ratio: int, spans=None, srf=None, psf=None,
                 psf_kernel: str = "r", k_scf: int = 1, expansion: int = 4) -> None:
        super().__init__()
        self.hsi_bands, self.msi_bands, self.ratio = hsi_bands, msi_bands, ratio
        self.spa_d = SpaD(ratio, psf, psf_kernel)
        self.spe_d = SpeD(hsi_bands, msi_bands, spans, srf)
        self.gce = GCE(msi_bands, expansion)
        self.spe_u = SpeU(msi_bands, hsi_bands, k_scf)
        self.cancelled = False
        self.losses = {"s1": [], "s2": [], "s3": []}

    @staticmethod
    def margin(ratio: int) -> int:
        """Tiling margin, HR px (4; 0 would do with ``k_scf=1``)."""
        return 4

    @staticmethod
    def align(ratio: int) -> int:
        """HR size/origin step r."""
        return ratio

    @staticmethod
    def min_hr_size(ratio: int) -> int:
        """Smallest HR side for fitting: 4·r (an LR pair of at least 4x4; REC)."""
        return 4 * ratio

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``X^ = SpeU(Z)``."""
        return self.spe_u(z)

    @torch.no_grad()
    def predict(self, z_or_y: torch.Tensor, z: Optional[torch.Tensor] = None) -> torch.Tensor:
        """HR-HSI tile from an HR-MSI tile: ``predict(z)`` or ``predict(y, z)`` (y is ignored).

        Pixel-wise with ``k_scf=1`` and frozen attention, so tiles are exact.
        """
        z = z_or_y if z is None else z
        if z.dim() != 4 or z.shape[1] != self.msi_bands:
            raise ValueError(f"predict expects z (B,{self.msi_bands},H,W), got {tuple(z.shape)}")
        p = next(self.spe_u.parameters())
        return self.spe_u(z.to(device=p.device, dtype=p.dtype))


def _check(y: torch.Tensor, z: torch.Tensor, ratio: int) -> None:
    if y.dim() != 4 or z.dim() != 4 or y.shape[0] != 1 or z.shape[0] != 1:
        raise ValueError(f"UDS2C2 fits one pair: y (1,C,h,w), z (1,c,H,W); got {tuple(y.shape)}, "
                         f"{tuple(z.shape)}")
    h, w = y.shape[-2:]
    if tuple(z.shape[-2:]) != (ratio * h, ratio * w):
        raise ValueError(f"z is {tuple(z.shape[-2:])} but ratio {ratio} and y {h}x{w} need "
                         f"{ratio * h}x{ratio * w}")
    if min(h, w) < 2:
        raise ValueError("LR-HSI must be at least 2x2 pixels")


def _linear_decay(n: int, start_fraction: float) -> Callable[[int], float]:
    start = int(round(n * start_fraction))

    def factor(i: int) -> float:
        if i < start:
            return 1.0
        return max(0.0, (n - i) / max(1, n - start))

    return factor


def fit(y, z, ratio: int, spans=None, srf=None, psf=None, iterations: Sequence[int] = FAST_ITERATIONS,
        callback: Optional[Callable[[str, int, int, float], bool]] = None, seed: int = 0, device="cpu",
        psf_kernel: str = "r", k_scf: int = 1, expansion: int = 4, lrs: Sequence[float] = STAGE_LR) -> UDS2C2:
    """Fit UDS2C2 on one pair and return the fitted :class:`UDS2C2`.

    Recipe: docs/networks.md#uds2c2-losses-and-training.

    Stages (L1 = mean absolute error; Adam; lr decays linearly to 0 from 1/2, 2/3, 1/3 of each stage)::

        S1: |GCE(SpeD(Y)) - SpaD(Z)|                  -> SpaD, SpeD, GCE   (lr 1e-3)
        S2: |SpeU(stopgrad SpaD(Z)) - Y|              -> SpeU              (lr 1e-3)
        S3: X^ = SpeU(Z); |GCE(SpeD(Y)) - SpaD(Z)| + |SpeU(SpaD(Z)) - Y|
            + |GCE(SpeD(X^)) - Z| + |SpaD(X^) - Y|   -> all               (lr 6e-5)

    Non-blind (``srf`` and ``psf`` given, frozen): S1 trains GCE only; S3 drops the first term, weights
    the second by 0.5 and updates SpeU only (as UDALN; REC for GCE). With only one of them given, the
    other operator is learned as in blind mode.

    Args:
        y: LR-HSI (1, C, h, w), float32 in [0, 1] (tensor or array).
        z: HR-MSI (1, c, H, W), H = ratio·h.
        ratio: integer r.
        spans: SRF band groups for the blind SpeD (default from ``srf``, else all bands).
        srf: (c x C) SRF, rows summing to 1 -> frozen SpeD.
        psf: 2-D PSF kernel -> frozen SpaD (block-centred, see ``blocks.psf_geometry``).
        iterations: (s1, s2, s3). :data:`FAST_ITERATIONS` (default), :data:`PAPER_ITERATIONS`,
            :data:`TEST_ITERATIONS`.
        callback: ``callback(stage, i, n, loss) -> bool`` after every iteration; ``False`` cancels
            (returns early, ``cancelled=True``).
        seed: seeds the initialisation (the global RNG state is restored afterwards).
        device: torch device for the optimisation.
        psf_kernel: blind PSF kernel size, ``"r"`` or ``"kr"`` (see :class:`SpaD`).
        k_scf: kernel size of SpeU's SCFConv (see :class:`SpeU`).
        expansion: channel expansion inside GCE (see :class:`GCE`).
        lrs: learning rates of the three stages.
    """
    y = torch.as_tensor(y, dtype=torch.float32)
    z = torch.as_tensor(z, dtype=torch.float32)
    _check(y, z, ratio)
    C, c = y.shape[1], z.shape[1]
    if spans is None and srf is not None:
        spans = spans_from_srf(srf)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = UDS2C2(C, c, ratio, spans, srf, psf, psf_kernel, k_scf, expansion)
    device = torch.device(device)
    model.to(device)
    y, z = y.to(device), z.to(device)
    blind = model.spa_d.blind or model.spe_d.blind
    n1, n2, n3 = (int(n) for n in iterations)

    def run(stage: str, n: int, params, lr: float, decay_from: float, step_loss) -> bool:
        params = [p for p in params if p.requires_grad]
        if n <= 0 or not params:
            return True
        opt = torch.optim.Adam(params, lr=lr)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, _linear_decay(n, decay_from))
        for i in range(n):
            opt.zero_grad(set_to_none=True)
            loss = step_loss()
            loss.backward()
            opt.step()
            sched.step()
            value = float(loss.detach())
            model.losses[stage].append(value)
            if callback is not None and callback(stage, i + 1, n, value) is False:
                return False
        return True

    l1 = F.l1_loss

    def s1_loss():
        return l1(model.gce(model.spe_d(y)), model.spa_d(z))

    def s2_loss():
        with torch.no_grad():
            target_in = model.spa_d(z)
        return l1(model.spe_u(target_in), y)

    def s3_loss():
        spa_z = model.spa_d(z)
        cross = cross_terms(model, y, z)
        if blind:
            return l1(model.gce(model.spe_d(y)), spa_z) + l1(model.spe_u(spa_z), y) + cross
        return 0.5 * l1(model.spe_u(spa_z), y) + cross

    ok = run("s1", n1, list(model.spa_d.parameters()) + list(model.spe_d.parameters())
             + list(model.gce.parameters()), lrs[0], STAGE_DECAY_FROM[0], s1_loss)
    if ok:
        ok = run("s2", n2, model.spe_u.parameters(), lrs[1], STAGE_DECAY_FROM[1], s2_loss)
    if ok:
        s3_params = model.parameters() if blind else model.spe_u.parameters()
        ok = run("s3", n3, s3_params, lrs[2], STAGE_DECAY_FROM[2], s3_loss)
    model.cancelled = not ok
    model.spe_u.freeze_attention(z)
    model.eval()
    return model


def build(hsi_bands: int, msi_bands: int, ratio: int, **hyper) -> UDS2C2:
    """Registry builder: an unfitted :class:`UDS2C2` (``spans, srf, psf, psf_kernel, k_scf, expansion``)."""
    return UDS2C2(hsi_bands, msi_bands, ratio, **hyper)


SPEC = NetSpec(
    build=build,
    margin=UDS2C2.margin,
    align=UDS2C2.align,
    min_hr_size=UDS2C2.min_hr_size,
    defaults={"psf_kernel": "r", "k_scf": 1, "expansion": 4},
    paper_params=None,
    reference=REFERENCE,
    fit=fit,
)

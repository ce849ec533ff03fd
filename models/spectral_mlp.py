"""Spectral MLP: a per-pixel map from the MSI bands to the HSI bands, fitted on the pair itself, after SpectraLift.

Paper: A. Shah, M. F. Duarte, "SpectraLift: Physics-Guided Spectral-Inversion Network for Self-Supervised
Hyperspectral Image Super-Resolution" (2025). **Re-implementation from the published description; no code
copied.** What is taken from it: a small per-pixel MLP from an MSI spectrum to an HSI spectrum, trained
self-supervised on the pair's own low-resolution grid, then applied to the HR-MSI. Everything else is **REC**
(a choice of this plugin; docs/networks.md#spectral-mlp):

- training pair (REC): ``D(Z) -> Y``, ``D`` the engine's degradation (Gaussian PSF, FWHM = ratio HR px, block
  decimation; :func:`.blocks.gaussian_psf`, :func:`.blocks.psf_downsample`);
- normalisation (REC): each MSI and HSI band standardised by its mean and standard deviation on the LR pixels;
- map (REC): ``f = linear + MLP``; the linear part is the ridge least-squares fit (closed form, ``RIDGE``), the MLP
  (``width`` 128, ``depth`` 2 hidden layers, GELU) learns the residual, its last layer zero-initialised so step 0
  is the linear map; with fewer than ``MIN_PIXELS_FOR_MLP`` valid LR pixels the MLP is not trained; standardised
  inputs are clamped to their training range widened by its span;
- loss and optimiser (REC): mean squared error on the standardised bands, Adam, ``lr`` 2e-3 with cosine decay to
  0, random batches of ``batch`` 4096 LR pixels, 600 iterations (catalogue default);
- scale check (REC, Wald's protocol): a map trained (same recipe) one scale down, ``D D Z -> D Y``, is scored every
  ``VALIDATE_EVERY`` steps on ``D Z -> Y``; the final map is trained for the step count that scored best there
  (0 = the ridge map alone: an MLP fitted on blurred spectra need not transfer to sharper ones);
- residual injection (REC, for consistency with the LR-HSI): ``X = f(Z) + up(Y - D f(Z))``, ``up`` bicubic.

``f`` is per pixel, so a tile needs context only for the injection: :meth:`SpectralMLP.margin`.

Cancel and time budget: ``callback("fit", i, n, loss)`` after every iteration; returning ``False`` stops the fit
with the weights so far and ``fitted.cancelled = True``.
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import gaussian_psf, psf_downsample
from .spec import NetSpec

__all__ = ["SpectralMLP", "fit", "SPEC"]

REFERENCE = (
    "A. Shah, M. F. Duarte, 'SpectraLift: Physics-Guided Spectral-Inversion Network for Self-Supervised "
    "Hyperspectral Image Super-Resolution', 2025. Re-implemented from the published description "
    "(docs/networks.md#spectral-mlp)."
)

RIDGE = 1e-3  # REC: ridge weight of the closed-form linear part (standardised bands, per LR pixel)
STD_FLOOR = 1e-3  # of the largest band std: a constant band (a bad band) is standardised by this instead of 0
VALIDATE_EVERY = 25  # steps between validations of the scale check
MIN_PIXELS_FOR_MLP = 256  # REC: with fewer valid LR pixels the map is the ridge linear fit alone (an MLP overfits)
PREDICT_CHUNK = 1 << 18  # pixels per forward chunk at inference: bounds the hidden layer's memory (~128 MiB)


class SpectralMLP(nn.Module):
    """``X = f(Z) + up(Y - D f(Z))`` with ``f`` a per-pixel linear + MLP map from c to C bands.

    Args:
        hsi_bands: C.
        msi_bands: c.
        ratio: r.
        width: hidden units (REC 128).
        depth: hidden layers (REC 2).
        psf_fwhm: FWHM of the Gaussian PSF of ``D`` in HR px (None: the ratio).
        inject: apply the residual injection when ``predict`` gets the LR-HSI.
    """

    def __init__(self, hsi_bands: int, msi_bands: int, ratio: int, width: int = 128, depth: int = 2,
                 psf_fwhm: Optional[float] = None, inject: bool = True) -> None:
        super().__init__()
        if depth < 1 or width < 1:
            raise ValueError(f"depth and width must be positive, got {depth}, {width}")
        self.hsi_bands, self.msi_bands, self.ratio, self.inject = hsi_bands, msi_bands, ratio, bool(inject)
        self.cancelled = False
        self.losses = []
        self.best_iteration = 0  # MLP steps the scale check chose (0 = the ridge map alone)
        self.mlp_active = True  # False once a fit kept the ridge map alone: inference skips the (zero) MLP
        for name, n in (("in_mean", msi_bands), ("out_mean", hsi_bands)):
            self.register_buffer(name, torch.zeros(n))
        for name, n in (("in_std", msi_bands), ("out_std", hsi_bands)):
            self.register_buffer(name, torch.ones(n))
        # standardised MSI range seen in training, widened by its span: inputs are clamped to it (no extrapolation
        # far beyond the data, e.g. a band constant in the fit crop)
        self.register_buffer("in_lo", torch.full((msi_bands,), -math.inf))
        self.register_buffer("in_hi", torch.full((msi_bands,), math.inf))
        self.register_buffer("psf", gaussian_psf(ratio, psf_fwhm))
        self.linear = nn.Linear(msi_bands, hsi_bands)
        layers = []
        n_in = msi_bands
        for _ in range(depth):
            layers += [nn.Linear(n_in, width), nn.GELU()]
            n_in = width
        last = nn.Linear(n_in, hsi_bands)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.mlp = nn.Sequential(*layers, last)

    @staticmethod
    def margin(ratio: int) -> int:
        """HR px of context for the injection: ``D``'s PSF half-width (``ceil(3 sigma)`` <= 2r) + bicubic's 2 LR px."""
        return 4 * ratio

    @staticmethod
    def align(ratio: int) -> int:
        """HR size/origin step r: the injection works on whole LR pixels."""
        return ratio

    @staticmethod
    def min_hr_size(ratio: int) -> int:
        """Smallest HR side: 2 LR px (bicubic upsampling and reflect padding need 2)."""
        return 2 * ratio

    def standardised(self, pixels: torch.Tensor) -> torch.Tensor:
        """``f`` on standardised MSI pixels (N, c) -> standardised HSI pixels (N, C)."""
        out = self.linear(pixels)
        return out + self.mlp(pixels) if self.mlp_active else out

    def spectral(self, z: torch.Tensor) -> torch.Tensor:
        """``f(Z)``: (B, c, H, W) -> (B, C, H, W), pixel by pixel (in chunks of ``PREDICT_CHUNK`` pixels)."""
        b, c, h, w = z.shape
        if c != self.msi_bands:
            raise ValueError(f"expected {self.msi_bands} MSI bands, got {c}")
        pixels = ((z.permute(0, 2, 3, 1).reshape(-1, c) - self.in_mean) / self.in_std)
        pixels = torch.maximum(torch.minimum(pixels, self.in_hi), self.in_lo)
        out = torch.cat([self.standardised(p) for p in pixels.split(PREDICT_CHUNK)]) if pixels.shape[0] else \
            pixels.new_zeros(0, self.hsi_bands)
        out = out * self.out_std + self.out_mean
        return out.reshape(b, h, w, self.hsi_bands).permute(0, 3, 1, 2).contiguous()

    def degrade(self, x: torch.Tensor) -> torch.Tensor:
        """``D``: the Gaussian PSF and block decimation by the ratio."""
        return psf_downsample(x, self.psf, self.ratio)

    def injected(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``x + up(y - D x)``, ``up`` bicubic by the ratio."""
        residual = y - self.degrade(x)
        return x + F.interpolate(residual, size=x.shape[-2:], mode="bicubic", align_corners=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.spectral(z)

    @torch.no_grad()
    def predict(self, z_or_y: torch.Tensor, z: Optional[torch.Tensor] = None) -> torch.Tensor:
        """HR-HSI tile: ``predict(y, z)`` = ``f(Z) + up(Y - D f(Z))``; ``predict(z)`` = ``f(Z)`` alone.

        ``y`` (B, C, h, w), ``z`` (B, c, r h, r w).
        """
        y, z = (None, z_or_y) if z is None else (z_or_y, z)
        p = self.linear.weight
        x = self.spectral(z.to(device=p.device, dtype=p.dtype))
        if y is None or not self.inject:
            return x
        if tuple(z.shape[-2:]) != (self.ratio * y.shape[-2], self.ratio * y.shape[-1]):
            raise ValueError(f"z is {tuple(z.shape[-2:])} but ratio {self.ratio} and y {tuple(y.shape[-2:])} need "
                             f"{self.ratio * y.shape[-2]}x{self.ratio * y.shape[-1]}")
        return self.injected(x, y.to(device=p.device, dtype=p.dtype))


def _valid_pixels(z: torch.Tensor, y: torch.Tensor):
    """(N, c) MSI and (N, C) HSI pixels of two (bands, h, w) grids where both are finite."""
    zp, yp = z.reshape(z.shape[0], -1).T, y.reshape(y.shape[0], -1).T
    finite = torch.isfinite(zp).all(1) & torch.isfinite(yp).all(1)
    return zp[finite], yp[finite]


def _standardise(model: SpectralMLP, zl: torch.Tensor, yl: torch.Tensor):
    """Set the model's band statistics from the LR training pixels; return them standardised."""
    for name, data in (("in", zl), ("out", yl)):
        mean, std = data.mean(0), data.std(0, unbiased=False)
        getattr(model, f"{name}_mean").copy_(mean)
        getattr(model, f"{name}_std").copy_(std.clamp_min(STD_FLOOR * max(float(std.max()), 1e-12)))
    zs = (zl - model.in_mean) / model.in_std
    lo, hi = zs.amin(0), zs.amax(0)
    model.in_lo.copy_(lo - (hi - lo))
    model.in_hi.copy_(hi + (hi - lo))
    return zs, (yl - model.out_mean) / model.out_std


def _fit_linear(model: SpectralMLP, zs: torch.Tensor, ys: torch.Tensor) -> None:
    """Ridge least squares of the standardised HSI on the standardised MSI (with a bias), into ``model.linear``."""
    a = torch.cat([zs, torch.ones_like(zs[:, :1])], dim=1).double()
    gram = a.T @ a + RIDGE * a.shape[0] * torch.eye(a.shape[1], dtype=a.dtype, device=a.device)
    coef = torch.linalg.solve(gram, a.T @ ys.double())  # (c + 1, C)
    model.linear.weight.data.copy_(coef[:-1].T.float())
    model.linear.bias.data.copy_(coef[-1].float())


def _train(model: SpectralMLP, z_lr: torch.Tensor, y: torch.Tensor, n: int, lr: float, batch: int, seed: int,
           stage: str, callback, score_on=None):
    """Set the statistics and the ridge map from (z_lr -> y) pixels, then train the MLP ``n`` steps.

    ``score_on`` (z, y) at the next finer scale: validated every ``VALIDATE_EVERY`` steps; returns (the step count
    that scored best there, 0 = the ridge map alone; whether the callback stopped the run). Without it, returns
    (``n``, stopped). No MLP below ``MIN_PIXELS_FOR_MLP`` training pixels.
    """
    zt, yt = _valid_pixels(z_lr[0], y[0])
    if zt.shape[0] < 1:
        raise ValueError("the spectral MLP needs at least 1 valid LR pixel to fit")
    zs, ys = _standardise(model, zt, yt)
    _fit_linear(model, zs, ys)
    if zs.shape[0] < MIN_PIXELS_FOR_MLP:
        return 0, False
    score = None
    if score_on is not None:
        zv, yv = _valid_pixels(score_on[0][0], score_on[1][0])
        zv = torch.maximum(torch.minimum((zv - model.in_mean) / model.in_std, model.in_hi), model.in_lo)
        yv = (yv - model.out_mean) / model.out_std

        def score() -> float:
            with torch.no_grad():
                return float(F.mse_loss(model.standardised(zv), yv))

    best = (score(), 0) if score else (0.0, n)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.mlp.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, n) / max(n, 1))))
    model.train()
    stopped = False
    for i in range(n):
        idx = torch.randint(0, zs.shape[0], (min(batch, zs.shape[0]),), generator=gen).to(zs.device)
        opt.zero_grad(set_to_none=True)
        loss = F.mse_loss(model.standardised(zs[idx]), ys[idx])
        loss.backward()
        opt.step()
        sched.step()
        value = float(loss.detach())
        model.losses.append(value)
        stopped = callback is not None and callback(stage, i + 1, n, value) is False
        if score and ((i + 1) % VALIDATE_EVERY == 0 or i + 1 == n) and score() < best[0]:
            best = (score(), i + 1)
        if stopped:
            break
    model.eval()
    return best[1], stopped


def fit(y, z, ratio: int, iterations: Union[int, Sequence[int]] = 600,
        callback: Optional[Callable[[str, int, int, float], bool]] = None, seed: int = 0, device="cpu",
        srf=None, width: int = 128, depth: int = 2, lr: float = 2e-3, batch: int = 4096,
        psf_fwhm: Optional[float] = None, inject: bool = True) -> SpectralMLP:
    """Fit the map on one pair: ``f(D(Z)) -> Y`` on the LR grid; return the fitted :class:`SpectralMLP`.

    Args:
        y: LR-HSI (1, C, h, w), normalised (tensor or array).
        z: HR-MSI (1, c, r h, r w).
        ratio: r.
        iterations: Adam steps of the scale check; the final fit takes the count it chose (a sequence is summed).
        callback: ``callback(stage, i, n, loss) -> bool`` after every step (stage ``"scale check"``, then
            ``"fit"``); ``False`` stops (the map so far is kept: the ridge map if stopped in the scale check).
        seed: seeds the initialisation and the batches (the global RNG state is restored afterwards).
        device: torch device.
        srf: unused (the map is learned from the pair; accepted as every fit-once net's fit is called).
        width: hidden units of the MLP (REC, module docstring).
        depth: hidden layers (REC).
        lr: Adam learning rate (REC).
        batch: LR pixels per step (REC).
        psf_fwhm: PSF FWHM of the degradation D in HR px (None = ratio).
        inject: add the LR residual back (``X = f(Z) + up(Y - D f(Z))``); False returns ``f(Z)``.
    """
    y = torch.as_tensor(y, dtype=torch.float32)
    z = torch.as_tensor(z, dtype=torch.float32)
    if y.dim() != 4 or z.dim() != 4 or y.shape[0] != 1 or z.shape[0] != 1:
        raise ValueError(f"the spectral MLP fits one pair: y (1,C,h,w), z (1,c,H,W); got {tuple(y.shape)}, "
                         f"{tuple(z.shape)}")
    h, w = y.shape[-2:]
    if tuple(z.shape[-2:]) != (ratio * h, ratio * w):
        raise ValueError(f"z is {tuple(z.shape[-2:])} but ratio {ratio} and y {h}x{w} need {ratio * h}x{ratio * w}")
    n = int(sum(iterations)) if isinstance(iterations, (tuple, list)) else int(iterations)
    device = torch.device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SpectralMLP(y.shape[1], z.shape[1], ratio, width, depth, psf_fwhm, inject).to(device)
    y, z = y.to(device), z.to(device)
    zl = model.degrade(z)  # (1, c, h, w): the training input at the LR-HSI's scale
    steps = 0  # without a scale check (too few pixels one scale down) the ridge map alone
    if n and (h // ratio) * (w // ratio) >= MIN_PIXELS_FOR_MLP:
        # Wald check of the MLP's scale transfer: train one scale down (D D Z -> D Y), score on (D Z -> Y)
        hc, wc = (h // ratio) * ratio, (w // ratio) * ratio
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            coarse = SpectralMLP(y.shape[1], z.shape[1], ratio, width, depth, psf_fwhm, inject).to(device)
        zc, yc = coarse.degrade(zl[..., :hc, :wc]), coarse.degrade(y[..., :hc, :wc])
        steps, stopped = _train(coarse, zc, yc, n, lr, batch, seed, "scale check", callback, score_on=(zl, y))
        if stopped:
            model.cancelled = True
            steps = 0
    _, stopped = _train(model, zl, y, steps, lr, batch, seed, "fit", callback)
    if not steps and not (model.cancelled or stopped) and callback is not None:
        # the closed-form ridge map is the whole fit: reported as its one step (progress, log)
        zt, yt = _valid_pixels(zl[0], y[0])
        with torch.no_grad():
            ridge = float(F.mse_loss(model.spectral(zt.T[None, :, :, None])[0, :, :, 0].T, yt))
        stopped = stopped or callback("ridge map", 1, 1, ridge) is False
    model.cancelled = model.cancelled or stopped
    model.best_iteration = steps
    model.mlp_active = steps > 0
    model.eval()
    return model


def build(hsi_bands: int, msi_bands: int, ratio: int, **hyper) -> SpectralMLP:
    """Registry builder: an unfitted :class:`SpectralMLP` (``width, depth, psf_fwhm, inject``; fit options ignored)."""
    keys = ("width", "depth", "psf_fwhm", "inject")
    return SpectralMLP(hsi_bands, msi_bands, ratio, **{k: v for k, v in hyper.items() if k in keys})


SPEC = NetSpec(
    build=build,
    margin=SpectralMLP.margin,
    align=SpectralMLP.align,
    min_hr_size=SpectralMLP.min_hr_size,
    defaults={"width": 128, "depth": 2, "lr": 2e-3, "batch": 4096, "inject": True},
    tile=256,  # 1024: 3.6 GB peak RSS at 224 bands (a 0.9 GB output tile plus its buffers)
    reference=REFERENCE,
    fit=fit,
)

"""Networks anchored on a classical estimate: the network refines a base, never replaces it.

Default run of every network (``BASE`` = glp; bicubic is the papers' setting, gsa, auto = the best of
the three by self-validation one scale down, engine/quality/selfval.py):

1. The base method (GLP, GSA or bicubic upsampling; engine/methods) is fitted on the scene as usual.
2. The fit crop is normalised, each input by its own robust range (0.1-99.9th percentiles:
   :func:`engine.learning.loops.robust_range`), so an HSI and an MSI in different units, scales or offsets
   reach the network on the same footing; the log states both ranges.
3. Reduced scale (Wald): the crop is split into a training area and a held-out validation strip
   (``HOLDOUT_SHARE`` of the longer side), each degraded once more by the ratio; a second instance of
   the base method, fitted on the degraded training inputs, gives the base estimate of the LR-HSI.
4. Supervised nets (SSJCN, CoFusion, AMSF-Net) are trained as ``x = base + g * (net(y, z) - bicubic(y))``
   (models/anchor.py: ``g`` per band, zero-initialised, so step 0 returns the base exactly), validated
   on the held-out strip every ``VALIDATE_EVERY`` steps, early-stopped after ``PATIENCE`` validations
   without gain; the best-validated weights are kept. Unsupervised nets (UDS2C2, UMSFT) are run on the
   degraded pair as their papers run them on any pair; their estimate is blended as
   ``x = base + g * (net - base)`` with one ``g`` in [0, 1] fitted by least squares on the training
   area and scored on the held-out strip.
5. If the held-out gain over the base (the smaller of its MSE and SAM gains) is not above ``MIN_GAIN_DB``,
   the output is the base, and the log says so.
6. Full-scale consistency (Wald's consistency property): a network that passed step 5 refines the base on the
   whole fit crop at full resolution; the refined crop and the base crop are degraded by the ratio (the same
   PSF as step 3) and compared with the crop's LR-HSI by the same score. If the network's output is less
   consistent with the LR-HSI than the base's (score below ``MIN_CONSISTENCY_DB``), the output is the base:
   a gain one scale down need not carry over to full resolution, and on the 160 x 192 EnMAP mosaic at x4
   SSJCN and CoFusion passed step 5 (+1.9 / +1.4 dB) while raising the full-resolution SAM from 3.7 to 5.6 /
   4.9 deg, which this score showed (-4.8 / -2.9 dB; docs/benchmarks.md, "Networks with their defaults").
   Networks optimised on every tile (PER_TILE) skip this check (it would cost another optimisation).
7. Outputs with the network's contribution are clamped to the HSI crop's range widened by
   ``RANGE_SLACK`` of its span on each side (logged), so no network can blow up the data's scale.

Time (MAX_SECONDS, default ``DEFAULT_MAX_SECONDS``, covers fit and the estimated inference): training
stops when the time left is what inference will take (measured per pixel on the validation forward,
times the output's pixels with tile margins, times ``INFERENCE_SAFETY``); UDS2C2 stops its stages at
the deadline less the estimated inference (engine/learning/budget.py); a net optimised on every tile
(UMSFT with PER_TILE) runs ``PER_TILE_BUDGET_ITERATIONS`` at reduced scale and is dropped (base) when the
same count per tile would not fit in the time left. Inference runs under ``torch.inference_mode``.
With a CHECKPOINT, SAVE_CHECKPOINT or BASE=none the network runs alone (engine/methods/network.py).
"""
from __future__ import annotations

import copy
import math
import time
from types import SimpleNamespace
from typing import Dict, Optional, Tuple

import numpy as np

from ...models.catalogue import FIT_ONCE, PER_TILE
from ..errors import Cancelled, InputError
from ..feedback import ensure_feedback
from ..learning.budget import INFERENCE_SAFETY, Deadline, inference_cost, inference_load, mirror2, timed_forwards
from ..learning.loops import make_optimizer, optimise_validated, robust_range, sample_batch, zero_shot_data
from ..pipeline.device import resolve_device
from .base import FusionMethod
from .network import (
    BASES,
    DEFAULT_BASE,
    DEFAULT_MAX_SECONDS,
    SCENE_ADAPTIVE_LR,
    NetworkMethod,
    metadata_spans,
    model_crops_on_cpu,
)

HOLDOUT_SHARE = 0.25  # of the fit crop's longer side, held out for validation
VALIDATE_EVERY = 10  # training steps between validations
PATIENCE = 5  # validations without a better held-out score before an early stop
GAIN_LR = 1e-2  # Adam rate of the residual gains: ~100 steps from 0 to 1
# The network is used only when its held-out score beats the base by this much: on the bundled sample
# SSJCN scored +0.23 dB on the held-out strip at reduced scale and lost 0.5 dB PSNR (and 1.4 deg SAM)
# at full resolution, so smaller reduced-scale gains are within what fails to carry over.
MIN_GAIN_DB = 0.5
MIN_CONSISTENCY_DB = 0.0  # a network's degraded output may not fit the LR-HSI worse than the base's (step 6)
MIN_REDUCED_PIXELS = 16  # LR pixels the training area keeps one scale down (6 x 4 on the bundled sample at x4)
MIN_REDUCED_SIDE = 2  # LR pixels a side of both areas one scale down
RANGE_SLACK = 0.5  # outputs clamped to [min - s*span, max + s*span] of the HSI crop
PER_TILE_BUDGET_ITERATIONS = 80  # ITERATIONS of a net optimised per tile under a time budget (20 a stage)
MEASURE_FORWARDS = 5  # the inference estimate costs about this many validation forwards (1 + a 4x one)
AUTO_BASES = ("bicubic", "glp", "gsa")  # BASE=auto's candidates


def build_network_method(network: str, base: str = DEFAULT_BASE, max_seconds: Optional[float] = DEFAULT_MAX_SECONDS,
                         **params) -> FusionMethod:
    """The registered factory of every network.

    Anchored unless BASE=none, a CHECKPOINT or SAVE_CHECKPOINT asks for the network alone (a checkpoint holds the
    paper's net, not a residual on a base).
    """
    base = (base or "none").lower()
    if base not in BASES:
        raise InputError(f"BASE must be one of {', '.join(BASES)}; got {base!r}")
    max_seconds = float(max_seconds) if max_seconds else None
    net = NetworkMethod(network, max_seconds=max_seconds, **params)
    if base == "none" or net.checkpoint or net.save_path:
        return net
    return AnchoredNetwork(net, base, max_seconds)


class ArrayScene:
    """What a classical method's ``fit`` reads of a scene (``engine.io.scene.Scene``), on in-memory arrays.

    Used to fit the base on the degraded pair. Band metadata come from the real scene's pair.
    """

    def __init__(self, lr: np.ndarray, hr: np.ndarray, ratio: int, pair) -> None:
        self.lr, self.hr, self.ratio, self.pair = lr, hr, ratio, pair

    def read_crop(self, max_lr_side: int = 128, centre=None):
        r = self.ratio
        h, w = min(self.lr.shape[1], max_lr_side), min(self.lr.shape[2], max_lr_side)
        r0, c0 = (self.lr.shape[1] - h) // 2, (self.lr.shape[2] - w) // 2
        hr = self.hr[:, r0 * r:(r0 + h) * r, c0 * r:(c0 + w) * r]
        return self.lr[:, r0:r0 + h, c0:c0 + w].copy(), hr.copy(), np.ones(hr.shape[1:], bool)


def make_base(name: str) -> FusionMethod:
    """The classical method behind a BASE other than auto, with its declared defaults."""
    from ..params import bind
    from . import glp, gsa, interpolate  # sibling modules: this package's discovery imports this one

    key, params = ("upsample", {"mode": "bicubic"}) if name == "bicubic" else ("gsa" if name == "gsa" else "glp", {})
    spec = next(s for m in (glp, gsa, interpolate) for s in m.METHODS if s.id == key)
    return spec.factory(**bind(spec, params))


def split_holdout(y: np.ndarray, z: np.ndarray, ratio: int):
    """(training (y, z), held-out (y, z)) of a crop.

    The last ``HOLDOUT_SHARE`` of the longer side, whole multiples of ``ratio`` LR pixels (each part is degraded once
    more by the ratio).
    """
    r = ratio
    axis = 2 if y.shape[2] >= y.shape[1] else 1
    n = (y.shape[axis] // r) * r
    held = max(r, int(round(n * HOLDOUT_SHARE / r)) * r)
    if n - held < r:
        raise InputError(f"the fit crop ({y.shape[2]}x{y.shape[1]} LR px) is too small to hold out a "
                         f"validation area at ratio {r}: need at least {2 * r} LR px on its longer side")
    cut = n - held

    def part(a, lo, hi, scale):
        index = [slice(None)] * 3
        index[axis] = slice(lo * scale, hi * scale)
        return a[tuple(index)]

    other = 3 - axis
    m = (y.shape[other] // r) * r
    if m < r:
        raise InputError(f"the fit crop ({y.shape[2]}x{y.shape[1]} LR px) is thinner than the ratio {r}")
    y, z = y[:, :m] if other == 1 else y[:, :, :m], z[:, :m * r] if other == 1 else z[:, :, :m * r]
    return (part(y, 0, cut, 1), part(z, 0, cut, r)), (part(y, cut, n, 1), part(z, cut, n, r))


def mirror_pad(y: np.ndarray, z: np.ndarray, ratio: int, step: int, min_side: int):
    """Mirror an LR/HR part at the bottom/right to the network's size rule, on real scene content.

    The LR side (the HR side of the degraded pair) becomes a multiple of ``step`` and at least ``min_side``.
    """
    def target(n):
        return max(-(-n // step) * step, -(-min_side // step) * step)

    ph, pw = target(y.shape[1]) - y.shape[1], target(y.shape[2]) - y.shape[2]
    if not (ph or pw):
        return y, z
    y = np.pad(y, ((0, 0), (0, ph), (0, pw)), mode="symmetric")
    z = np.pad(z, ((0, 0), (0, ph * ratio), (0, pw * ratio)), mode="symmetric")
    return y, z


def mean_sam(estimate: np.ndarray, target: np.ndarray) -> float:
    """Mean spectral angle (radians) over the pixels where both spectra are non-zero."""
    dot = (estimate * target).sum(axis=0)
    norms = np.linalg.norm(estimate, axis=0) * np.linalg.norm(target, axis=0)
    ok = norms > 0
    return float(np.arccos(np.clip(dot[ok] / norms[ok], -1.0, 1.0)).mean()) if ok.any() else 0.0


def ratio_db(base_error: float, error: float) -> float:
    """10 log10(base_error / error): > 0 when the error is smaller than the base's."""
    if error <= 0.0:
        return math.inf if base_error > 0 else 0.0
    return 10.0 * math.log10(max(base_error, 1e-30) / error)


def heldout_gain_db(estimate: np.ndarray, base: np.ndarray, target: np.ndarray, good: np.ndarray,
                    valid: Optional[np.ndarray] = None) -> float:
    """The held-out score.

    The smaller of the MSE gain and the SAM gain over the base, both as ``10 log10(base error / error)`` over the good
    bands (and the ``valid`` pixels, default all), so a positive score means better in both (an MSE gain bought with
    spectral distortion is not a gain).
    """
    e, b, t = (a[good].astype(np.float64) for a in (estimate, base, target))
    if valid is not None:
        e, b, t = (a[:, valid] for a in (e, b, t))
    mse = ratio_db(float(np.mean((b - t) ** 2)), float(np.mean((e - t) ** 2)))
    sam = ratio_db(mean_sam(b, t), mean_sam(e, t))
    return min(mse, sam)


def blend_gain(net: np.ndarray, base: np.ndarray, target: np.ndarray) -> float:
    """The g in [0, 1] minimising ||base + g (net - base) - target||² over all bands (closed form).

    One gain for every band: per-band gains reshape the spectra, and on the bundled sample UDS2C2 blended per band
    scored +0.55 dB on the held-out strip yet raised the full-resolution SAM from 5.7 to 8.5 deg.
    """
    d = (net - base).astype(np.float64)
    e = (target - base).astype(np.float64)
    den = float((d * d).sum())
    return float(np.clip((d * e).sum() / den, 0.0, 1.0)) if den > 0 else 0.0


def reduced_scale_too_small(train: "Part", val: "Part", ratio: int) -> Optional[str]:
    """Why the degraded pair is too small to judge a network on, or None.

    One scale down the training area's LR-HSI must keep ``MIN_REDUCED_PIXELS`` pixels and both areas
    ``MIN_REDUCED_SIDE`` a side: below that the base fitted there is meaningless and a held-out "gain" over it
    says nothing about full resolution (at x8 on a 128 x 64 px scene the training area is 1 LR pixel one
    scale down; the held-out gain read +6 dB and the output lost 20 dB to GLP).
    """
    sides = [(p.h // ratio, p.w // ratio) for p in (train, val)]
    (th, tw), (vh, vw) = sides
    if th * tw < MIN_REDUCED_PIXELS or min(th, tw, vh, vw) < MIN_REDUCED_SIDE:
        return (f"one scale down the training area is {tw}x{th} LR px and the held-out area {vw}x{vh} "
                f"(at least {MIN_REDUCED_PIXELS} px and {MIN_REDUCED_SIDE} a side needed)")
    return None


class Part:
    """One area of the degraded pair (training or held-out).

    Torch tensors for the network, numpy copies for the base and the scores, and the size of its real (unmirrored)
    content.
    """

    def __init__(self, y: np.ndarray, z: np.ndarray, ratio: int, step: int, min_side: int, psf_fwhm, device):
        self.h, self.w = y.shape[1], y.shape[2]
        y, z = mirror_pad(y, z, ratio, step, min_side)
        self.data = zero_shot_data(y, z, ratio, step, psf_fwhm, device)
        self.y_in = self.data.y_in[0].cpu().numpy()
        self.z_in = self.data.z_in[0].cpu().numpy()
        self.target = self.data.target[0].cpu().numpy()

    def core(self, a: np.ndarray) -> np.ndarray:
        return a[:, :self.h, :self.w]


class AnchoredNetwork(FusionMethod):
    """A :class:`NetworkMethod` refining a classical base; see the module docstring."""

    needs_torch = True
    fit_share = 0.8

    def __init__(self, network: NetworkMethod, base: str = DEFAULT_BASE,
                 max_seconds: Optional[float] = DEFAULT_MAX_SECONDS) -> None:
        self.net = network
        self.name = network.name
        self.base_name = base
        self.max_seconds = max_seconds
        self.base: Optional[FusionMethod] = None
        self.chosen_base: Optional[str] = None  # BASE=auto: the self-validated choice
        self.model = None  # supervised: models.anchor.ResidualOnBase
        self.gains: Optional[np.ndarray] = None  # unsupervised: the blend gain (0 for bad bands)
        self.use_net = False
        self.norm: Dict[str, Tuple[float, float]] = {}
        self.clamp: Tuple[float, float] = (-math.inf, math.inf)
        self.good: Optional[np.ndarray] = None
        self.report: Dict = {}
        self._device = None

    @property
    def hyper(self) -> Dict:
        """The network's hyper-parameters (LITE included)."""
        return self.net.hyper

    @property
    def runtime(self):
        """The network's tile runtime (BACKEND)."""
        return self.net.runtime

    def stage_iterations(self) -> Tuple[int, ...]:
        return self.net.stage_iterations()

    # -- geometry: the network's, with the base's margin when it is larger --
    def margin(self, ratio: int) -> int:
        base = self.base or make_base(self._base_method())
        return max(self.net.margin(ratio), base.margin(ratio))

    def align(self, ratio: int) -> int:
        return self.net.align(ratio)

    def min_hr_size(self, ratio: int) -> int:
        return self.net.min_hr_size(ratio)

    def preferred_tile(self, ratio: int) -> int:
        return self.net.preferred_tile(ratio)

    @property
    def device_reason(self) -> Optional[str]:
        return self.net.device_reason

    def describe(self) -> Dict:
        return dict(self.net.describe(), mode=f"anchored on {self._base_method()}", base=self._base_method(),
                    network_used=self.use_net, **{k: v for k, v in self.report.items() if k != "scores"})

    def _base_method(self) -> str:
        return self.chosen_base or self.base_name

    def _choose_base(self, scene, feedback) -> str:
        """BASE=auto.

        The best of ``AUTO_BASES`` by self-validation on the reduced pair (engine/quality/selfval.py, the rule of ``fuse
        auto``); the ranking is logged.
        """
        from ..auto import format_table
        from ..quality.selfval import rank, validate

        ranked = rank(validate(scene, [(name, make_base(name)) for name in AUTO_BASES], feedback))
        feedback.pushInfo("BASE=auto, self-validation one scale down:\n" + format_table(ranked))
        if not ranked or "error" in ranked[0]:
            return DEFAULT_BASE
        return ranked[0]["method"]

    def _seconds_left(self) -> float:
        return self.deadline - time.perf_counter()

    # -- fit --
    def fit(self, scene, feedback=None) -> None:
        import torch

        feedback = ensure_feedback(feedback)
        t0 = time.perf_counter()
        self.deadline = t0 + self.max_seconds if self.max_seconds else math.inf
        net, r = self.net, scene.ratio
        if self.base_name == "auto":
            self.chosen_base = self._choose_base(scene, feedback)
        base_name = self._base_method()
        self.base = make_base(base_name)
        self.base.fit(scene, feedback)
        net._device, net._reason = resolve_device(net.device_spec)
        self._device = net._device
        net.ratio, net.hsi_bands, net.msi_bands = r, scene.pair.hsi.bands, scene.pair.msi.bands
        feedback.pushInfo(f"{net.entry.long_title}: refining {base_name.upper()} on {self._device} ({net._reason}); "
                          f"time budget {self.max_seconds or 'none'} s")
        torch.manual_seed(net.seed)
        if net.entry.metadata_spans and net.srf is None:
            net.spans = metadata_spans(scene.pair.hsi, scene.pair.msi)
        y, z, hr_valid = scene.read_crop(net.crop_lr)
        good = scene.pair.hsi.good_bands
        self.good = np.ones(len(y), bool) if good is None else np.asarray(good, bool)
        self._set_radiometry(y, z, feedback)
        yn, zn = self._normalise(y, "hsi"), self._normalise(z, "msi")
        try:
            (yt, zt), (yv, zv) = split_holdout(yn, zn, r)
        except InputError as exc:  # a crop too small to hold out a strip: nothing to judge the network on
            return self._give_base(str(exc), base_name, t0, feedback)
        per_tile = net.kind == PER_TILE  # its size rule is met by padding in each call
        step = r if per_tile else net.align(r)
        min_side = r if per_tile else net.min_hr_size(r)
        train = Part(yt, zt, r, step, min_side, net.psf_fwhm, self._device)
        val = Part(yv, zv, r, step, min_side, net.psf_fwhm, self._device)
        too_small = reduced_scale_too_small(train, val, r)
        if too_small:
            return self._give_base(too_small, base_name, t0, feedback)
        base_rs = make_base(base_name)
        base_rs.fit(ArrayScene(train.y_in, train.z_in, r, scene.pair), None)
        for part in (train, val):
            part.base = np.asarray(base_rs.apply(part.y_in, part.z_in, r), dtype=np.float32).copy()
        feedback.pushInfo(f"reduced scale: training area {train.w}x{train.h}, held-out {val.w}x{val.h} px "
                          f"(LR-HSI grid of the {y.shape[2]}x{y.shape[1]} fit crop)")
        self._out_tiles, self._out_pixels = inference_load(self, r, scene.pair.region.width,
                                                           scene.pair.region.height)
        if net.entry.supervised:
            self._train(train, val, feedback)
        else:
            self._fit_blend(train, val, feedback)
        best = self.report.get("heldout_gain_db", 0.0)
        self.use_net = best > MIN_GAIN_DB
        if self.use_net and net.kind != PER_TILE:  # _refine applies the network while use_net is set
            self.use_net = self._consistent(y, z, hr_valid, r, feedback)
        self.report["fit_seconds"] = round(time.perf_counter() - t0, 2)
        if self.use_net:
            consistency = self.report.get("consistency_gain_db")
            feedback.pushInfo(f"{net.entry.long_title}: held-out gain over {base_name.upper()} {best:+.3f} dB"
                              + ("" if consistency is None else f", full-resolution consistency {consistency:+.3f} dB")
                              + ": output = refined base")
        elif best <= MIN_GAIN_DB:  # else _consistent said why
            feedback.pushInfo(f"{net.entry.long_title}: held-out gain over {base_name.upper()} {best:+.3f} dB, "
                              f"not above "
                              f"{MIN_GAIN_DB:g} dB: the output is the {base_name.upper()} base")

    def _consistent(self, y: np.ndarray, z: np.ndarray, hr_valid: np.ndarray, ratio: int, feedback) -> bool:
        """Step 6 of the module docstring: whether the network's output fits the LR-HSI as well as the base's.

        Both full-resolution estimates of the fit crop are degraded by the ratio and scored against the crop's LR-HSI
        ``y`` with the held-out score (:func:`heldout_gain_db`), in the data's own units (spectral angles of
        radiances, not of normalised values), over the LR pixels whose HR block is valid (nodata is filled in the crop,
        and a filled pixel says nothing of either estimate). When it does not, the log says so.
        """
        import torch

        from ..learning.loops import blur_decimate_torch, gaussian_psf

        base = np.asarray(self.base.apply(y, z, ratio), dtype=np.float32)
        refined = self._refine(y, z, ratio, base)
        kernel = gaussian_psf(ratio, self.net.psf_fwhm)
        h, w = y.shape[1:]  # the crop's HR side is ratio x its LR side (Scene.read_crop)

        def degraded(x: np.ndarray) -> np.ndarray:
            t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None]
            return blur_decimate_torch(t, ratio, kernel)[0].numpy()

        lr_valid = hr_valid.reshape(h, ratio, w, ratio).all(axis=(1, 3))
        name, base_name = self.net.entry.long_title, self._base_method().upper()
        if not lr_valid.any():
            self.report["consistency_gain_db"] = None
            feedback.pushInfo(f"{name}: no valid LR pixel in the fit crop to check full-resolution consistency on: "
                              f"the output is the {base_name} base")
            return False
        score = heldout_gain_db(degraded(refined), degraded(base), y, self.good, lr_valid)
        self.report["consistency_gain_db"] = round(score, 4)
        if score < MIN_CONSISTENCY_DB:
            feedback.pushInfo(f"{name}: held-out gain {self.report['heldout_gain_db']:+.3f} dB one scale down, but "
                              f"at full resolution its output, degraded by the ratio, scores {score:+.3f} dB against "
                              f"the LR-HSI relative to {base_name}'s (below {MIN_CONSISTENCY_DB:g} dB: the gain does "
                              f"not carry over): the output is the {base_name} base")
            return False
        return True

    def _give_base(self, why: str, base_name: str, t0: float, feedback) -> None:
        """No network is judged on a pair too small one scale down: the output is the base, and the log says why."""
        self.report = {"heldout_gain_db": 0.0, "skipped": why, "fit_seconds": round(time.perf_counter() - t0, 2)}
        self.use_net = False
        feedback.pushInfo(f"{self.net.entry.long_title}: {why}: the scene is too small to validate the network "
                          f"one scale down, so the output is the {base_name.upper()} base (a larger scene or "
                          "CROP_SIZE, or a smaller ratio, gives it a chance)")

    def _set_radiometry(self, y: np.ndarray, z: np.ndarray, feedback) -> None:
        good = y[self.good]
        self.norm = {"hsi": robust_range(good), "msi": robust_range(z)}
        finite = good[np.isfinite(good)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        slack = RANGE_SLACK * max(hi - lo, 1e-12)
        self.clamp = (lo - slack, hi + slack)
        (ho, hs), (mo, ms) = self.norm["hsi"], self.norm["msi"]
        feedback.pushInfo(f"radiometry: HSI normalised as (x - {ho:.6g}) / {hs:.6g}, MSI as (x - {mo:.6g}) / "
                          f"{ms:.6g} (0.1-99.9th percentiles of each); outputs refined by the network are "
                          f"clamped to [{self.clamp[0]:.6g}, {self.clamp[1]:.6g}] (the HSI crop's range "
                          f"+-{RANGE_SLACK:g} of its span)")

    def _normalise(self, a: np.ndarray, key: str) -> np.ndarray:
        offset, scale = self.norm[key]
        return ((a - offset) / scale).astype(np.float32)

    def _score(self, part: Part, estimate: np.ndarray) -> float:
        return heldout_gain_db(part.core(estimate), part.core(part.base), part.core(part.target), self.good)

    # -- supervised: zero-initialised residual, trained and early-stopped on the held-out area --
    def _train(self, train: Part, val: Part, feedback) -> None:
        import torch

        from ...models.anchor import ResidualOnBase

        net, r, dev = self.net, self.ratio_of(train), self._device
        step = net.align(r)
        for part in (train, val):
            part.data.base = torch.from_numpy(part.base)[None].to(dev)
        wrapped = ResidualOnBase(net._build(), len(self.good)).to(dev)
        wrapped.train()
        opt, sched = make_optimizer(net.spec, wrapped.net.parameters(), net.iterations,
                                    net.learning_rate or SCENE_ADAPTIVE_LR)
        opt.add_param_group({"params": [wrapped.gain], "lr": GAIN_LR})
        gen = torch.Generator().manual_seed(net.seed)
        patch = max(step, (net.patch // step) * step)
        cost = {}
        best = {"state": copy.deepcopy(wrapped.state_dict())}

        def one_step(i: int) -> float:
            yb, zb, xb, bb = sample_batch(train.data, r, patch, net.batch, gen)
            opt.zero_grad(set_to_none=True)
            loss = net.spec.loss(wrapped(yb, zb, bb), xb)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            return loss.item()

        def forward(part: Part) -> np.ndarray:
            with torch.no_grad():
                return wrapped(part.data.y_in, part.data.z_in, part.data.base)[0].float().cpu().numpy()

        def validate() -> float:
            wrapped.eval()
            t = time.perf_counter()
            est = forward(val)
            if not cost:  # the forward above was the warm-up
                warm = time.perf_counter() - t
                if self._seconds_left() < MEASURE_FORWARDS * warm:
                    cost["seconds"] = math.inf  # no time even to measure (a starved CPU): the base it is
                    feedback.pushInfo(f"{net.entry.title}: one forward took {warm:.1f} s, no time left to train")
                else:
                    cost.update(self._inference_cost(forward, val))
                    feedback.pushInfo(f"inference estimate: {cost['seconds']:.1f} s for {self._out_pixels} px "
                                      f"({cost['per_px'] * 1e6:.2f} us/px + {cost['per_tile']:.2f} s per tile)")
            wrapped.train()
            return self._score(val, est)

        def keep_best() -> None:
            best["state"] = copy.deepcopy(wrapped.state_dict())

        def seconds_left() -> float:
            return self._seconds_left() - INFERENCE_SAFETY * cost.get("seconds", 0.0)

        feedback.pushInfo(f"anchored training: (Y', Z') {tuple(train.data.y_in.shape[2:])} -> Y "
                          f"{tuple(train.data.target.shape[2:])}, patches {patch} px, batch {net.batch}")
        hist = optimise_validated(one_step, validate, keep_best, net.iterations, seconds_left, feedback,
                                  VALIDATE_EVERY, PATIENCE, (0.0, 100.0 * self.fit_share),
                                  f"{net.entry.title} training")
        if hist.iterations == 0 and hist.stopped_by == "time budget":
            feedback.pushInfo(f"{net.entry.title}: the estimated inference ({cost.get('seconds', 0.0):.0f} s) "
                              f"leaves no time to train within the budget; raise MAX_SECONDS to use the network")
        wrapped.load_state_dict(best["state"])
        wrapped.eval()
        self.model = wrapped
        net.training = {"mode": "anchored scene-adaptive", **hist.as_dict()}
        self.report = {"heldout_gain_db": round(hist.best_score, 4), "iterations": hist.iterations,
                       "best_iteration": hist.best_iteration, "stopped_by": hist.stopped_by}

    def _inference_cost(self, forward, part: Part) -> Dict[str, float]:
        """Seconds the tiled inference will take.

        ``per_tile + per_px * pixels`` fitted through timed forwards of ``part`` and of its 2 x 2 mirror tiling (the
        caller has run one warm-up forward; small inputs cost far more per pixel than tiles do).
        """
        d = part.data
        big = SimpleNamespace(data=SimpleNamespace(**{k: mirror2(getattr(d, k)) for k in ("y_in", "z_in", "base")}))
        timed = timed_forwards(forward, (part,), (big,), warm_up=False)
        return inference_cost(timed, self._out_tiles, self._out_pixels)

    def ratio_of(self, part: Part) -> int:
        return part.data.target.shape[-1] // part.data.y_in.shape[-1]

    # -- unsupervised: the net's estimate of the degraded pair, blended per band --
    def _fit_blend(self, train: Part, val: Part, feedback) -> None:
        net = self.net
        if net.kind == FIT_ONCE:
            estimate = self._fit_once(train, feedback)
        else:
            estimate = self._probe_per_tile(train, val, feedback)
            if estimate is None:
                self.report = {"heldout_gain_db": 0.0, "stopped_by": "time budget"}
                return
        est_t, est_v = estimate(train), estimate(val)
        good = self.good
        g = blend_gain(train.core(est_t)[good], train.core(train.base)[good], train.core(train.target)[good])
        self.gains = np.where(good, g, 0.0).astype(np.float32)
        blended = val.base + self.gains[:, None, None] * (est_v - val.base)
        self.report = {"heldout_gain_db": round(self._score(val, blended), 4),
                       "net_alone_gain_db": round(self._score(val, est_v), 4),
                       "blend_gain": round(g, 3),
                       "iterations": net.training.get("iterations", net.iterations)}
        feedback.pushInfo(f"{net.entry.title}: held-out gain of the net alone {self.report['net_alone_gain_db']:+.3f} "
                          f"dB, blended (g {self.report['blend_gain']}) "
                          f"{self.report['heldout_gain_db']:+.3f} dB over the base")

    def _fit_once(self, train: Part, feedback):
        net = self.net
        net._fit_once(train.y_in, train.z_in, feedback, self.deadline, (self._out_tiles, self._out_pixels))
        net.training = dict(net.training, mode="anchored unsupervised")

        def estimate(part: Part) -> np.ndarray:
            return net.predict(part.y_in, part.z_in, self.ratio_of(part))

        return estimate

    def _probe_per_tile(self, train: Part, val: Part, feedback):
        net = self.net
        if self.max_seconds:
            net.iterations = min(net.iterations, PER_TILE_BUDGET_ITERATIONS)
        t = time.perf_counter()
        budget = Deadline(feedback, self.deadline)
        try:
            outputs = {id(p): net._apply_per_tile(p.y_in, p.z_in, self.ratio_of(p), budget) for p in (train, val)}
        except Cancelled:
            if feedback.isCanceled():
                raise
            feedback.pushInfo(f"{net.entry.title}: the time budget ran out at reduced scale: skipped")
            return None
        seconds = time.perf_counter() - t
        px = sum(p.target.shape[1] * p.target.shape[2] for p in (train, val))
        needed = seconds / px * self._out_pixels
        if needed * INFERENCE_SAFETY > self._seconds_left():
            feedback.pushInfo(f"{net.entry.title}: {net.iterations} iterations per tile would take about "
                              f"{needed:.0f} s, more "
                              f"than the {max(0.0, self._seconds_left()):.0f} s left of the budget: skipped")
            return None
        return lambda p: outputs[id(p)]

    # -- apply --
    @property
    def keeps_activations_on_heap(self) -> bool:
        """As the network's own (the base alone allocates like a classical method)."""
        return self.use_net and self.net.keeps_activations_on_heap

    @property
    def crops_itself(self) -> bool:
        """Whether the tile loop calls :meth:`apply_cropped`.

        With the base alone, when the base crops itself; with a supervised net, when its model also computes
        its HR stage on the core only (``crops_hr_stage``: AMSF-Net lite) and runs on the CPU (the cropped
        path has no out-of-memory retry).
        """
        if self.base is None or not getattr(self.base, "crops_itself", False):
            return False
        return not self.use_net or model_crops_on_cpu(self)

    def apply(self, lr: np.ndarray, hr: np.ndarray, ratio: int, feedback=None) -> np.ndarray:
        base = np.asarray(self.base.apply(lr, hr, ratio, feedback), dtype=np.float32)
        return self._refine(lr, hr, ratio, base, feedback)

    def apply_cropped(self, lr: np.ndarray, hr: np.ndarray, ratio: int, crop: Tuple[int, int, int, int],
                      feedback=None) -> np.ndarray:
        """The core's estimate: the base's own cropped apply, and the net's HR stage on the core only."""
        if not self.crops_itself:
            return super().apply_cropped(lr, hr, ratio, crop, feedback)
        base = np.asarray(self.base.apply_cropped(lr, hr, ratio, crop, feedback), dtype=np.float32)
        return self._refine(lr, hr, ratio, base, feedback, crop)

    def _refine(self, lr: np.ndarray, hr: np.ndarray, ratio: int, base: np.ndarray, feedback=None,
                crop: Optional[Tuple[int, int, int, int]] = None) -> np.ndarray:
        """The network's refinement of ``base`` (the whole tile's, or with ``crop`` the core's)."""
        import torch

        if not self.use_net:
            return base
        if self.model is not None:
            self._ensure_device()
            y = torch.from_numpy(self._normalise(lr, "hsi"))[None].to(self._device)
            z = torch.from_numpy(self._normalise(hr, "msi"))[None].to(self._device)
            b = torch.from_numpy(self._normalise(base, "hsi"))[None].to(self._device)
            options = {} if crop is None else {"crop": tuple(int(c) for c in crop)}
            x = self.runtime.forward(self.model, y, z, b, feedback=feedback, **options)[0].float().cpu().numpy()
            offset, scale = self.norm["hsi"]
            x = x * scale + offset
        else:
            x = base + self.gains[:, None, None] * (self._unsupervised_estimate(lr, hr, ratio, feedback) - base)
        x[~self.good] = base[~self.good]
        return np.clip(x, *self.clamp).astype(np.float32)

    def _unsupervised_estimate(self, lr, hr, ratio, feedback) -> np.ndarray:

        if self.net.kind == PER_TILE:
            return self.net._apply_per_tile(lr, hr, ratio, ensure_feedback(feedback))
        self.net._ensure_device()
        offset, scale = self.norm["hsi"]
        return self.net.predict(self._normalise(lr, "hsi"), self._normalise(hr, "msi"), ratio) * scale + offset

    def _ensure_device(self) -> None:
        if self._device is None:
            self.net._ensure_device()
            self._device = self.net._device
            self.model.to(self._device)

    def fallback_to_cpu(self) -> bool:
        moved = self.net.fallback_to_cpu()
        if moved:
            self._device = self.net._device
            if self.model is not None:
                self.model.to(self._device)
        return moved

    def __getstate__(self) -> Dict:
        """Tensors travel on the CPU; the device is resolved again on the worker."""
        state = dict(self.__dict__)
        if self.model is not None and self._device is not None and self._device.type != "cpu":
            state["model"] = copy.deepcopy(self.model).to("cpu")
        state["_device"] = None
        return state


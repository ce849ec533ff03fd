"""Training loops shared by scene-adaptive fusion and corpus training.

One loop (:func:`optimise`) for every supervised network: progress per iteration, cancel within one
step, an optional wall-clock budget, and a history of losses.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from ..feedback import Feedback, check_cancel, ensure_feedback

DEFAULT_PERCENTILE = 99.9


def robust_max(data: np.ndarray, percentile: float = DEFAULT_PERCENTILE) -> float:
    """Normalisation factor: a high percentile over all bands and pixels, never 0.

    See docs/design.md#normalisation.
    """
    finite = data[np.isfinite(data)]
    value = float(np.percentile(finite, percentile)) if finite.size else 1.0
    return value if value > 0 else (float(np.abs(finite).max()) if finite.size and np.abs(finite).max() > 0 else 1.0)


def robust_range(data: np.ndarray, low: float = 100.0 - DEFAULT_PERCENTILE, high: float = DEFAULT_PERCENTILE
                 ) -> Tuple[float, float]:
    """(offset, scale) with ``(data - offset) / scale`` spanning about [0, 1].

    The ``low`` and ``high`` percentiles of the finite values. Each input of an anchored network is normalised by its
    own pair, so an HSI and an MSI in different units, scales or offsets reach the network on the same footing.
    """
    finite = data[np.isfinite(data)]
    if not finite.size:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(finite, (low, high)))
    if hi <= lo:
        lo, hi = float(finite.min()), float(finite.max())
    return lo, (hi - lo) if hi > lo else max(abs(lo), 1.0)


def gaussian_psf(ratio: int, fwhm: Optional[float] = None):
    """Block-centred Gaussian PSF (torch) with FWHM in HR pixels (``models.blocks.gaussian_psf``)."""
    from ...models.blocks import gaussian_psf as psf

    return psf(ratio, fwhm)


def blur_decimate_torch(t, ratio: int, kernel):
    """``(t * PSF)↓r`` with block centring (torch, any batch)."""
    from ...models.blocks import psf_downsample

    return psf_downsample(t, kernel.to(t.device), ratio)


@dataclass
class ZeroShotData:
    """Scene-adaptive training triple (Y', Z') -> Y, padded to the net's step (docs/design.md#training-modes)."""

    y_in: "object"   # (1, C, h/r, w/r)
    z_in: "object"   # (1, c, h, w)
    target: "object"  # (1, C, h, w)
    base: "object" = None  # optional (1, C, h, w): a classical estimate of the target (anchored networks)


def zero_shot_data(y: np.ndarray, z: np.ndarray, ratio: int, step: int, psf_fwhm: Optional[float], device
                   ) -> ZeroShotData:
    """Degrade both inputs once more by ``ratio``; the LR-HSI becomes the target.

    ``y`` (C, h, w) and ``z`` (c, r*h, r*w) are normalised. Sizes are cropped to multiples of ``ratio``
    and reflect-padded to multiples of ``step`` so every net's size rule holds.
    """
    import torch
    import torch.nn.functional as F

    r = ratio
    h, w = (y.shape[1] // r) * r, (y.shape[2] // r) * r
    yt = torch.from_numpy(np.ascontiguousarray(y[:, :h, :w]))[None].to(device)
    zt = torch.from_numpy(np.ascontiguousarray(z[:, :h * r, :w * r]))[None].to(device)
    ph, pw = (-h) % step, (-w) % step
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        yt = F.pad(yt, (0, pw, 0, ph), mode=mode)
        zt = F.pad(zt, (0, pw * r, 0, ph * r), mode="reflect" if ph * r < h * r and pw * r < w * r else "replicate")
    kernel = gaussian_psf(r, psf_fwhm)
    return ZeroShotData(y_in=blur_decimate_torch(yt, r, kernel), z_in=blur_decimate_torch(zt, r, kernel), target=yt)


def sample_batch(data: ZeroShotData, ratio: int, patch: int, batch: int, generator) -> Tuple:
    """Random aligned crops (HR side ``patch``) with flips; the whole image when it is smaller.

    Returns (y, z, x), plus the matching crops of ``data.base`` as a fourth item when it is set.
    """
    import torch

    _, _, H, W = data.target.shape
    if H <= patch and W <= patch:
        batch = 1  # every sample would be the whole image: only flips would differ
    hr = [data.target] + ([data.base] if data.base is not None else [])
    ys, zs, xs = [], [], [[] for _ in hr]
    for _ in range(batch):
        ph, pw = min(patch, H), min(patch, W)
        r0 = int(torch.randint(0, (H - ph) // ratio + 1, (1,), generator=generator)) * ratio
        c0 = int(torch.randint(0, (W - pw) // ratio + 1, (1,), generator=generator)) * ratio
        y = data.y_in[:, :, r0 // ratio:(r0 + ph) // ratio, c0 // ratio:(c0 + pw) // ratio]
        z = data.z_in[:, :, r0:r0 + ph, c0:c0 + pw]
        x = [t[:, :, r0:r0 + ph, c0:c0 + pw] for t in hr]
        flips = [d for d, flip in zip((2, 3), torch.rand(2, generator=generator) < 0.5) if flip]
        if flips:
            y, z, x = y.flip(flips), z.flip(flips), [t.flip(flips) for t in x]
        ys.append(y), zs.append(z)
        for out, t in zip(xs, x):
            out.append(t)
    return (torch.cat(ys), torch.cat(zs)) + tuple(torch.cat(t) for t in xs)


@dataclass
class History:
    iterations: int = 0
    seconds: float = 0.0
    losses: List[float] = field(default_factory=list)
    stopped_by: str = "iterations"

    def as_dict(self) -> Dict:
        return {"iterations": self.iterations, "seconds": round(self.seconds, 2),
                "final_loss": self.losses[-1] if self.losses else None, "stopped_by": self.stopped_by}


def make_optimizer(module, params, iterations: int, learning_rate: Optional[float] = None,
                   start_iteration: int = 0, state: Optional[Dict] = None):
    """The network module's ``default_optimizer`` (paper recipe) for a run of ``iterations`` steps.

    ``learning_rate`` replaces the recipe's base rate (scheduler included). ``start_iteration`` > 0
    (RESUME) replays the schedule to that step, then loads the optimizer ``state`` (moments) while
    keeping the replayed rates, so a resumed run follows the schedule of the new total length.
    """
    import warnings

    opt, sched = module.default_optimizer(params, int(iterations))
    if learning_rate:
        for g in opt.param_groups:
            g["lr"] = g["initial_lr"] = float(learning_rate)
        if sched is not None:
            sched.base_lrs = [float(learning_rate)] * len(opt.param_groups)
            sched._last_lr = [float(learning_rate)] * len(opt.param_groups)
    if sched is not None and start_iteration > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(int(start_iteration)):
                sched.step()
    if state is not None:
        lrs = [g["lr"] for g in opt.param_groups]
        initial = [g.get("initial_lr", g["lr"]) for g in opt.param_groups]
        opt.load_state_dict(state)
        for g, lr, lr0 in zip(opt.param_groups, lrs, initial):
            g["lr"], g["initial_lr"] = lr, lr0
    return opt, sched


def _record_step(hist: History, i: int, loss: float, t0: float, iterations: int, feedback: Feedback,
                 progress_span, label: str, report_every: int) -> None:
    """Book step ``i`` (0-based) in ``hist``, move the progress bar and log every ``report_every`` steps."""
    lo, hi = progress_span
    hist.losses.append(loss)
    hist.iterations = i + 1
    hist.seconds = time.perf_counter() - t0
    feedback.setProgress(lo + (hi - lo) * (i + 1) / iterations)
    if (i + 1) % report_every == 0 or i == 0 or i + 1 == iterations:
        feedback.pushInfo(f"{label}: iteration {i + 1}/{iterations}, loss {loss:.5f}, {hist.seconds:.1f} s")


def optimise(step: Callable[[int], float], iterations: int, feedback: Optional[Feedback] = None,
             max_seconds: Optional[float] = None, progress_span=(0.0, 100.0), label: str = "training",
             report_every: int = 10) -> History:
    """Call ``step(i) -> loss`` up to ``iterations`` times; cancel is checked before every step."""
    feedback = ensure_feedback(feedback)
    hist = History()
    t0 = time.perf_counter()
    for i in range(iterations):
        check_cancel(feedback)
        loss = float(step(i))
        _record_step(hist, i, loss, t0, iterations, feedback, progress_span, label, report_every)
        if max_seconds is not None and hist.seconds > max_seconds:
            hist.stopped_by = "time budget"
            feedback.pushInfo(f"{label}: time budget of {max_seconds:g} s reached after {i + 1} iterations")
            break
    return hist


@dataclass
class ValidatedHistory(History):
    """A run early-stopped on a held-out score: the best score, and the iteration that reached it."""

    best_score: float = float("-inf")
    best_iteration: int = 0
    scores: List[Tuple[int, float]] = field(default_factory=list)

    def as_dict(self) -> Dict:
        return dict(super().as_dict(), best_score=round(self.best_score, 4), best_iteration=self.best_iteration)


def optimise_validated(step: Callable[[int], float], validate: Callable[[], float], keep_best: Callable[[], None],
                       iterations: int, seconds_left: Callable[[], float], feedback: Optional[Feedback] = None,
                       validate_every: int = 10, patience: int = 5, progress_span=(0.0, 100.0),
                       label: str = "training", report_every: int = 10) -> ValidatedHistory:
    """:func:`optimise` with a held-out score.

    ``validate() -> score`` (higher is better) before the first step and every ``validate_every`` steps;
    ``keep_best()`` is called whenever the score improves (the caller snapshots its weights). Stops after
    ``iterations`` steps, after ``patience`` validations without improvement (early stop), or when ``seconds_left()``
    (asked before every step, so a budget that depends on measurements made meanwhile is honoured) would not cover the
    next step and the validation after it, timed as the last ones (a step of a large net on a busy CPU lasts seconds).
    """
    feedback = ensure_feedback(feedback)
    hist = ValidatedHistory()
    t0 = time.perf_counter()
    stale = 0

    def check(i: int) -> bool:
        nonlocal stale
        score = float(validate())
        hist.scores.append((i, score))
        if score > hist.best_score:
            hist.best_score, hist.best_iteration, stale = score, i, 0
            keep_best()
        else:
            stale += 1
        feedback.pushInfo(f"{label}: held-out score {score:+.3f} at iteration {i} (best {hist.best_score:+.3f} "
                          f"at {hist.best_iteration})")
        return stale < patience

    tv = time.perf_counter()
    going = check(0)
    # Before the first step is timed, it is taken to cost a validation (a forward on as many pixels).
    cost = {"step": time.perf_counter() - tv, "validate": time.perf_counter() - tv}
    for i in range(iterations):
        if not going:
            hist.stopped_by = "early stop"
            break
        check_cancel(feedback)
        validates = (i + 1) % validate_every == 0 or i + 1 == iterations
        if seconds_left() <= cost["step"] + (cost["validate"] if validates else 0.0):
            hist.stopped_by = "time budget"
            break
        ts = time.perf_counter()
        loss = float(step(i))
        cost["step"] = time.perf_counter() - ts
        _record_step(hist, i, loss, t0, iterations, feedback, progress_span, label, report_every)
        if validates:
            tv = time.perf_counter()
            going = check(i + 1)
            cost["validate"] = time.perf_counter() - tv
    hist.seconds = time.perf_counter() - t0
    if hist.stopped_by != "iterations":
        feedback.pushInfo(f"{label}: stopped by {hist.stopped_by} after {hist.iterations} iterations "
                          f"({hist.seconds:.1f} s)")
    return hist

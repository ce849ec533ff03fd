"""Self-validation on the pair itself: Wald's protocol one scale down, scored against the LR-HSI.

A real pair has no HR reference, but the LR-HSI is a reference for the scale below: degrade the LR-HSI
and the MSI once more by the ratio (the same Gaussian PSF the classical methods assume, block-centred
decimation), fuse the reduced pair, and compare the estimate with the LR-HSI (docs/benchmarks.md,
"Real pairs"). The one service behind

* the classical methods' default injection gains (per band, MMSE at the reduced scale, shrunk to 0
  where the MSI's detail does not predict the HSI's: :func:`injection_gains`),
* ``fuse auto`` (rank the candidate methods on the reduced pair: :func:`validate`, :func:`rank`),
* any method that wants a reduced-scale score (the networks' BASE option).

API, all on in-memory arrays (C = HSI bands, c = MSI bands, r = ratio):

* ``reduce_pair(lr, hr, ratio, valid=None, good=None, mtf_gain=...) -> ReducedPair`` — the reduced
  pair: ``lr`` (C, h/r, w/r), ``hr`` (c, h, w) and ``target`` = the LR-HSI (C, h, w) (cropped to a
  multiple of r), ``valid`` (h, w) pixels to score.
* ``reduce_scene(scene, max_lr_side=256) -> ReducedPair`` — the same from a scene's fit crop.
* ``run_reduced(method, pair, feedback=None) -> (C, h, w)`` — fit ``method`` on the reduced pair (it
  never sees the target) and apply it to the whole reduced pair.
* ``score(estimate, pair) -> Score`` — per band MSE/PSNR, overall PSNR, SAM, ERGAS (engine.quality.metrics).
* ``validate(scene, candidates, feedback=None) -> list of rows``; ``rank(rows)``: best first by PSNR,
  then SAM (rounded to 0.01 dB / 0.01 degree, so a tie in PSNR is decided by the spectral angle).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import Cancelled, InputError, NoValidDataError
from ..feedback import check_cancel, ensure_feedback
from ..io.windows import Window
from .metrics import ergas, sam_degrees

MIN_REDUCED_LR_SIDE = 2  # reduced LR pixels a side below which no reduced-scale fit is attempted
GAIN_MAX = 2.0  # injection gains beyond this are clipped (the MSI detail is never amplified further)


@dataclass
class ReducedPair:
    """Wald's protocol one scale down: fuse ``lr`` with ``hr``, compare with ``target``."""

    lr: np.ndarray  # (C, h/r, w/r) the LR-HSI degraded once more
    hr: np.ndarray  # (c, h, w) the MSI degraded to the LR-HSI's scale
    target: np.ndarray  # (C, h, w) the LR-HSI
    valid: np.ndarray  # (h, w) bool: pixels scored
    good: np.ndarray  # (C,) bool: bands scored (bad bands left out)
    ratio: int


@dataclass
class Score:
    """Reduced-scale quality of one estimate (per band and overall)."""

    mse: np.ndarray  # (C,) per band over valid pixels (nan for bad bands)
    psnr_bands: np.ndarray  # (C,) dB, peak = the target band's maximum (engine.quality.metrics' definition)
    psnr: float  # mean over good bands
    sam: float  # degrees, mean over valid pixels
    ergas: float

    def as_dict(self) -> Dict[str, float]:
        return {"PSNR": self.psnr, "SAM": self.sam, "ERGAS": self.ergas}


def can_reduce(h: int, w: int, ratio: int) -> bool:
    """Whether an LR-HSI of h x w pixels leaves at least MIN_REDUCED_LR_SIDE pixels a side reduced."""
    return min(h, w) // ratio >= MIN_REDUCED_LR_SIDE


def reduce_pair(lr: np.ndarray, hr: np.ndarray, ratio: int, valid: Optional[np.ndarray] = None,
                good: Optional[np.ndarray] = None, mtf_gain: Optional[float] = None) -> ReducedPair:
    """The reduced pair of an LR-HSI (C, h, w) and its HR-MSI (c, r h, r w).

    ``valid`` (h, w): LR pixels whose whole HR block is valid (default all). Both images are degraded
    with the Gaussian of MTF ``mtf_gain`` at Nyquist (default: FWHM = r, the classical methods'
    default) and block-centred decimation; the LR-HSI is cropped to a multiple of r first.
    """
    from ..methods._kernels import DEFAULT_MTF_GAIN, blur_decimate_separable, mtf_sigma, psf_taps

    C, h, w = lr.shape
    if hr.shape[1:] != (h * ratio, w * ratio):
        raise InputError(f"MSI {hr.shape[2]}x{hr.shape[1]} is not {ratio} x the HSI {w}x{h}")
    if not can_reduce(h, w, ratio):
        raise InputError(f"an HSI of {w}x{h} pixels is too small for a reduced-scale check at ratio {ratio} "
                         f"(at least {MIN_REDUCED_LR_SIDE * ratio} pixels a side are needed)")
    hh, ww = h // ratio * ratio, w // ratio * ratio
    taps, extra = psf_taps(ratio, mtf_sigma(ratio, mtf_gain or DEFAULT_MTF_GAIN))
    target = np.ascontiguousarray(lr[:, :hh, :ww], dtype=np.float32)
    hr_lr = blur_decimate_separable(np.ascontiguousarray(hr[:, :hh * ratio, :ww * ratio], dtype=np.float32), ratio,
                                    taps, extra)
    ok = np.ones((hh, ww), bool) if valid is None else np.asarray(valid, bool)[:hh, :ww]
    if not ok.any():
        raise NoValidDataError("no valid pixel left for the reduced-scale check")
    good = np.ones(C, bool) if good is None else np.asarray(good, bool)
    return ReducedPair(lr=blur_decimate_separable(target, ratio, taps, extra), hr=hr_lr, target=target, valid=ok,
                       good=good, ratio=ratio)


def reduce_scene(scene, max_lr_side: int = 256, mtf_gain: Optional[float] = None) -> ReducedPair:
    """The reduced pair of a scene's central fit crop (``Scene.read_crop``; nodata already filled)."""
    lr, hr, valid = scene.read_crop(max_lr_side=max_lr_side)
    r = scene.ratio
    C, h, w = lr.shape
    lr_valid = valid.reshape(h, r, w, r).all(axis=(1, 3))
    gb = scene.pair.hsi.good_bands
    return reduce_pair(lr, hr, r, lr_valid, None if gb is None else np.asarray(gb, bool), mtf_gain)


class ReducedScene:
    """A reduced pair dressed as a scene, so any method's ``fit(scene)`` runs on it unchanged.

    ``pair`` keeps the original rasters' band descriptions (wavelengths, FWHM, good bands); sizes
    (``region``: the output window on the reduced HR grid) are the reduced arrays'.
    """

    def __init__(self, pair: ReducedPair, infos=None) -> None:
        self.reduced = pair
        hsi, msi = infos if infos is not None else (None, None)
        good = pair.good
        self.pair = SimpleNamespace(
            ratio=pair.ratio, region=Window(0, 0, pair.hr.shape[2], pair.hr.shape[1]),
            hsi=hsi or SimpleNamespace(bands=pair.lr.shape[0], wavelengths=None, fwhm=None, good_bands=good,
                                       nodata=None),
            msi=msi or SimpleNamespace(bands=pair.hr.shape[0], wavelengths=None, fwhm=None, good_bands=None,
                                       nodata=None))

    @property
    def ratio(self) -> int:
        return self.reduced.ratio

    def read_crop(self, max_lr_side: int = 128, centre=None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The whole reduced pair (it is already a crop): (LR (C,h,w), HR (c,rh,rw), HR validity)."""
        p, r = self.reduced, self.reduced.ratio
        h, w = (min(n, max_lr_side) for n in p.lr.shape[1:])
        return p.lr[:, :h, :w].copy(), p.hr[:, :h * r, :w * r].copy(), p.valid[:h * r, :w * r].copy()


def apply_mirrored(method, lr: np.ndarray, hr: np.ndarray, ratio: int, feedback=None,
                   margin_hr: Optional[int] = None) -> np.ndarray:
    """``method.apply`` on a whole pair with the context the tile loop gives a tile at a raster edge.

    ``margin(ratio)`` HR px (rounded up to whole LR px) of half-sample symmetric mirror, as
    ``engine.io.raster.read_window`` reads beyond a raster (the mirror consistent between both grids); the
    estimate is cropped back to (C, r h, r w).
    """
    margin = method.margin(ratio) if margin_hr is None else margin_hr
    e = -(-int(margin) // ratio)
    h, w = lr.shape[1:]
    if e:
        lr = np.pad(lr, ((0, 0), (e, e), (e, e)), mode="symmetric")
        hr = np.pad(hr, ((0, 0), (e * ratio, e * ratio), (e * ratio, e * ratio)), mode="symmetric")
    est = method.apply(np.ascontiguousarray(lr), np.ascontiguousarray(hr), ratio, feedback)
    o = e * ratio
    return np.array(est[:, o:o + h * ratio, o:o + w * ratio], dtype=np.float32)


def run_reduced(method, pair: ReducedPair, feedback=None, infos=None) -> np.ndarray:
    """Fit ``method`` on the reduced pair and apply it to all of it: the (C, h, w) estimate of the target.

    The method never sees the target (the LR-HSI).
    """
    method.fit(ReducedScene(pair, infos), feedback)
    return apply_mirrored(method, pair.lr, pair.hr, pair.ratio, feedback)


def score(estimate: np.ndarray, pair: ReducedPair) -> Score:
    """Per band MSE / PSNR and overall PSNR, SAM, ERGAS of ``estimate`` against the target.

    As engine.quality.metrics defines them (peak = the target band's maximum over valid pixels).
    """
    t = pair.target.astype(np.float64)
    e = np.asarray(estimate, dtype=np.float64)
    v, g = pair.valid, pair.good
    tv, ev = t[:, v], e[:, v]
    mse = np.full(t.shape[0], np.nan)
    mse[g] = ((tv[g] - ev[g]) ** 2).mean(axis=1)
    peak = np.where(g, tv.max(axis=1), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        psnr_b = np.where(mse > 0, 10.0 * np.log10(peak ** 2 / mse), np.inf)
    psnr_b[~g] = np.nan
    ang, ok = sam_degrees(e[g], t[g])
    ok &= v
    sam = float(ang[ok].mean()) if ok.any() else float("nan")
    return Score(mse=mse, psnr_bands=psnr_b, psnr=float(np.mean(psnr_b[g])), sam=sam,
                 ergas=ergas(np.sqrt(mse[g]), tv[g].mean(axis=1), pair.ratio))


def injection_gains(base: np.ndarray, detail: np.ndarray, target: np.ndarray, valid: np.ndarray,
                    gain_max: float = GAIN_MAX) -> np.ndarray:
    """Per band MMSE gain ``g_b`` of ``base + g_b detail`` against ``target``.

    All arrays (C, h, w); over ``valid``, clipped to [0, gain_max]: g_b = <D_b, T_b - B_b> / <D_b, D_b>.

    The residual of the best g >= 0 is never above that of g = 0 (interpolation), so no band gets
    worse than ``base`` at the scale the gains are fitted on (in the spirit of BDSD, Garzelli,
    Nencini & Capobianco 2008). A band without detail gets 0.
    """
    d = detail[:, valid].astype(np.float64)
    res = (target[:, valid] - base[:, valid]).astype(np.float64)
    den = (d * d).sum(axis=1)
    num = (d * res).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.where(den > 0, num / den, 0.0)
    return np.clip(np.nan_to_num(g), 0.0, gain_max)


class Deadline:
    """Feedback for one candidate.

    Silent, cancelled when the user cancels or ``seconds`` have passed (a method that does not honour its own
    time budget is stopped at its next progress check).
    """

    def __init__(self, parent, seconds: Optional[float]) -> None:
        self.parent = parent
        self.end = None if not seconds else time.perf_counter() + float(seconds)

    @property
    def expired(self) -> bool:
        return self.end is not None and time.perf_counter() > self.end

    def setProgress(self, progress: float) -> None:  # noqa: N802
        pass

    def pushInfo(self, info: str) -> None:  # noqa: N802
        pass

    def pushWarning(self, warning: str) -> None:  # noqa: N802
        pass

    def reportError(self, error: str, fatalError: bool = False) -> None:  # noqa: N802,N803
        pass

    def isCanceled(self) -> bool:  # noqa: N802
        return self.parent.isCanceled() or self.expired


def validate(scene, candidates: Sequence[Tuple[str, object]], feedback=None, max_lr_side: int = 256,
             budgets: Optional[Dict[str, float]] = None) -> List[Dict]:
    """Score each (name, method) on the scene's reduced pair.

    Rows with PSNR, SAM, ERGAS, seconds (or ``error``), in ``candidates`` order. ``budgets``: seconds a
    candidate may take (its fit and apply are stopped after that: an error row). Cancel is honoured between
    and within candidates.
    """
    feedback = ensure_feedback(feedback)
    pair = reduce_scene(scene, max_lr_side)
    infos = (scene.pair.hsi, scene.pair.msi)
    rows = []
    for name, method in candidates:
        check_cancel(feedback)
        t0 = time.perf_counter()
        row: Dict = {"method": name}
        deadline = Deadline(feedback, (budgets or {}).get(name))
        try:
            row.update(score(run_reduced(method, pair, deadline, infos), pair).as_dict())
        except Cancelled:
            check_cancel(feedback)  # the user's cancel goes on; an expired budget is the candidate's row
            row["error"] = f"stopped: over its time budget of {budgets[name]:g} s"
        except (InputError, NoValidDataError, ValueError) as exc:  # a candidate that cannot run is a row
            row["error"] = f"{type(exc).__name__}: {exc}"
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
    return rows


def rank(rows: Sequence[Dict]) -> List[Dict]:
    """Best first: higher PSNR (rounded to 0.01 dB), then lower SAM (0.01 degree); errors last."""
    ok = [r for r in rows if "error" not in r and np.isfinite(r.get("PSNR", np.nan))]
    bad = [r for r in rows if r not in ok]
    return sorted(ok, key=lambda r: (-round(r["PSNR"], 2), round(r["SAM"], 2))) + bad

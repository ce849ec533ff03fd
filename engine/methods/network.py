"""Any registered network as a :class:`FusionMethod`: normalise, to tensor, forward, back to numpy.

Supervised nets (AMSF-Net, CoFusion, SSJCN) run from a checkpoint, or — the normal case, since no
weights can ship for every sensor pair — are trained in ``fit`` on the pair itself at reduced resolution
(scene-adaptive / zero-shot). UDS2C2 is optimised once on a representative crop and its pixel-wise
inverse map applied per tile. UMSFT, whose attention is global, is optimised per tile (margin 32,
cropped; networks.md §1.4).
"""
from __future__ import annotations

import importlib
from typing import Dict, Optional

import numpy as np

from ... import __version__
from ..checkpoint import check_compatible, load_checkpoint, save_checkpoint
from ..device import limit_cpu_threads, resolve_device
from ..errors import CheckpointError, InputError
from ..feedback import check_cancel, ensure_feedback
from ..training import make_optimizer, optimise, robust_max, sample_batch, zero_shot_data
from . import register_method
from .base import FusionMethod

DEFAULT_ITERATIONS = {"amsfnet": 300, "cofusion": 300, "ssjcn": 400, "uds2c2": 600, "umsft": 150}
# Small CPU budgets at which every network beats bicubic upsampling in PSNR and SAM on the bundled sample
# (EnMAP x4, Wald protocol; 10-90 s each on 2 cores): asserted by tests/engine/test_networks_on_sample.py
# and used by the benchmark's standard run on every real scene (benchmarks/common.py).
SAMPLE_BUDGETS = {
    "ssjcn": {"iterations": 200},
    "cofusion": {"iterations": 200, "hyper": {"lite": True}},
    "amsfnet": {"iterations": 100},
    "uds2c2": {"iterations": 300},
    "umsft": {"iterations": 20, "hyper": {"lite": True, "init_steps": 20}},
}
DEFAULT_CROP_LR = 128  # LR pixels a side used by fit(): 512 HR px at x4
# Scene-adaptive runs last hundreds of steps, not the papers' 20 000: the recipes' base rates (1e-4 Adam,
# 4e-4 AdamW) barely move the weights in that budget. 1e-3 with the recipes' schedules gained 3.5 dB over
# 1e-4 for SSJCN on the bundled sample at 80 steps (3e-3 diverged towards bicubic). LEARNING_RATE overrides.
SCENE_ADAPTIVE_LR = 1e-3


class NetworkMethod(FusionMethod):
    """Adapter around ``models.registry.NetSpec``; see the module docstring for the three modes."""

    needs_torch = True
    fit_share = 0.8  # share of the progress bar taken by fit()

    def __init__(self, network: str, checkpoint: Optional[str] = None, device: str = "auto", seed: int = 0,
                 iterations: Optional[int] = None, max_seconds: Optional[float] = None,
                 save_checkpoint: Optional[str] = None, psf_fwhm: Optional[float] = None,
                 patch_size: int = 64, batch_size: int = 4, learning_rate: Optional[float] = None,
                 crop_lr: int = DEFAULT_CROP_LR, hyper: Optional[Dict] = None, srf=None) -> None:
        from ...models.registry import get_spec

        limit_cpu_threads()
        self.spec = get_spec(network)
        self.name = network
        self.module = importlib.import_module(self.spec.build.__module__)
        self.checkpoint, self.save_path = checkpoint or None, save_checkpoint or None
        self.device_spec, self.seed = device, int(seed)
        self.iterations = int(iterations) if iterations else DEFAULT_ITERATIONS.get(network, 300)
        self.max_seconds = max_seconds
        self.psf_fwhm, self.patch, self.batch = psf_fwhm, int(patch_size), int(batch_size)
        self.learning_rate = learning_rate
        self.crop_lr = int(crop_lr)
        self.hyper = dict(self.spec.defaults, **(hyper or {}))
        self.srf = srf
        self.spans = None  # UMSFT's SRF band groups, from the band metadata at fit()
        self.model = None
        self.fitted = None
        self.norm: Dict[str, float] = {}
        self.training: Dict = {}
        self._device = None
        self._reason: Optional[str] = None

    # -- geometry from the spec (networks.md §1.4) --
    def margin(self, ratio: int) -> int:
        return self.spec.margin(ratio)

    def align(self, ratio: int) -> int:
        # UMSFT is optimised per tile, so tile origins need no pyramid phase: only its size rule, which
        # apply() meets by padding. The supervised nets keep their step so every tile sees the same phase.
        return ratio if self.name == "umsft" else self.spec.align(ratio)

    def min_hr_size(self, ratio: int) -> int:
        return self.spec.min_hr_size(ratio)

    @property
    def device_reason(self) -> Optional[str]:
        return self._reason

    def describe(self) -> Dict:
        d = {"method": self.name, "network": self.spec.title, "mode": self._mode(),
             "iterations": self.training.get("iterations", 0), "seed": self.seed}
        if self.checkpoint:
            d["checkpoint"] = self.checkpoint
        return d

    def _mode(self) -> str:
        if not self.spec.supervised:
            return "unsupervised (per pair)"
        return "checkpoint" if self.checkpoint else "scene-adaptive"

    # -- fit --
    def fit(self, scene, feedback=None) -> None:
        import torch

        feedback = ensure_feedback(feedback)
        self._device, self._reason = resolve_device(self.device_spec)
        feedback.pushInfo(f"{self.spec.title}: {self._mode()} on {self._device} ({self._reason})")
        self.ratio = scene.ratio
        self.hsi_bands, self.msi_bands = scene.pair.hsi.bands, scene.pair.msi.bands
        torch.manual_seed(self.seed)
        if self.name == "umsft" and self.srf is None:
            self.spans = metadata_spans(scene.pair.hsi, scene.pair.msi)
        if self.checkpoint:
            self._load(scene)
            return
        y, z, _ = scene.read_crop(self.crop_lr)
        good = scene.pair.hsi.good_bands
        self.norm = {"hsi": robust_max(y if good is None else y[good]), "msi": robust_max(z)}
        y, z = y / self.norm["hsi"], z / self.norm["msi"]
        if self.spec.supervised:
            self._train_zero_shot(y, z, feedback)
            if self.save_path:
                self.save(self.save_path, scene)
        elif self.name == "uds2c2":
            self._fit_uds2c2(y, z, feedback)

    def _build(self):
        import torch

        torch.manual_seed(self.seed)
        model = self.spec.build(self.hsi_bands, self.msi_bands, self.ratio, **self.hyper)
        return model.to(self._device)

    def _train_zero_shot(self, y: np.ndarray, z: np.ndarray, feedback) -> None:
        import torch

        r = self.ratio
        step = self.align(r)
        if min(y.shape[1:]) < r:
            raise InputError(f"the LR-HSI crop ({y.shape[2]}x{y.shape[1]} px) is too small for scene-adaptive "
                             f"training at ratio {r}; give a checkpoint or a larger scene")
        y, z = mirror_to_step(y, z, r, step)
        data = zero_shot_data(y, z, r, step, self.psf_fwhm, self._device)
        self.model = self._build()
        self.model.train()
        lr = self.learning_rate or SCENE_ADAPTIVE_LR
        opt, sched = make_optimizer(self.module, self.model.parameters(), self.iterations, lr)
        gen = torch.Generator().manual_seed(self.seed)
        patch = max(step, (self.patch // step) * step)
        loss_fn = self.module.loss

        def one_step(i: int) -> float:
            yb, zb, xb = sample_batch(data, r, patch, self.batch, gen)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(self.model(yb, zb), xb)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            return loss.item()

        feedback.pushInfo(f"scene-adaptive training: (Y', Z') {tuple(data.y_in.shape[2:])} -> Y "
                          f"{tuple(data.target.shape[2:])}, patches {patch} px, batch {self.batch}")
        hist = optimise(one_step, self.iterations, feedback, self.max_seconds,
                        (0.0, 100.0 * self.fit_share), f"{self.spec.title} training")
        self.training = {"mode": "scene-adaptive", **hist.as_dict()}
        self.model.eval()

    def _fit_uds2c2(self, y: np.ndarray, z: np.ndarray, feedback) -> None:
        import torch

        yt = torch.from_numpy(np.ascontiguousarray(y))[None]
        zt = torch.from_numpy(np.ascontiguousarray(z))[None]
        its = self._uds2c2_iterations()
        total = sum(its)
        done = {"n": 0}

        def callback(stage, i, n, loss) -> bool:
            done["n"] += 1
            feedback.setProgress(100.0 * self.fit_share * done["n"] / total)
            if i in (1, n) or i % 100 == 0:  # the models count iterations from 1
                feedback.pushInfo(f"UDS2C2 {stage}: iteration {i}/{n}, loss {loss:.5f}")
            return not feedback.isCanceled()

        options = {k: self.hyper[k] for k in ("psf_kernel", "k_scf", "expansion") if k in self.hyper}
        self.fitted = self.spec.fit(yt, zt, self.ratio, srf=self.srf, iterations=its, callback=callback,
                                    seed=self.seed, device=self._device, **options)
        check_cancel(feedback)
        self.training = {"mode": "unsupervised", "iterations": total}

    def _uds2c2_iterations(self):
        # Stage lengths in the proportions of the fast profile (networks.md §5.3: 4000/4000/2000).
        n = self.iterations
        return (max(1, int(n * 0.4)), max(1, int(n * 0.4)), max(1, n - 2 * max(1, int(n * 0.4))))

    # -- pickling (distributed workers get the fitted method once, by scatter) --
    def __getstate__(self) -> Dict:
        """Everything but the spec and the model module (looked up again by name) and the device
        (resolved again on the worker: a GPU worker uses its GPU; tensors travel on the CPU)."""
        import copy

        state = dict(self.__dict__)
        state.pop("spec", None)
        state.pop("module", None)
        for key in ("model", "fitted"):
            obj = state.get(key)
            if obj is not None and hasattr(obj, "to") and self._device is not None and self._device.type != "cpu":
                state[key] = copy.deepcopy(obj).to("cpu")
        state["_device"] = None
        return state

    def __setstate__(self, state: Dict) -> None:
        from ...models.registry import get_spec

        self.__dict__.update(state)
        self.spec = get_spec(self.name)
        self.module = importlib.import_module(self.spec.build.__module__)
        limit_cpu_threads()

    def _ensure_device(self) -> None:
        """After unpickling: resolve DEVICE here and move the fitted weights there."""
        if self._device is None:
            self._device, self._reason = resolve_device(self.device_spec)
            for obj in (self.model, self.fitted):
                if obj is not None and hasattr(obj, "to"):
                    obj.to(self._device)

    # -- apply --
    def apply(self, lr: np.ndarray, hr: np.ndarray, ratio: int, feedback=None) -> np.ndarray:
        import torch

        feedback = ensure_feedback(feedback)
        self._ensure_device()
        if self.name == "umsft":
            return self._apply_umsft(lr, hr, ratio, feedback)
        y = torch.from_numpy(np.ascontiguousarray(lr / self.norm["hsi"], dtype=np.float32))[None].to(self._device)
        z = torch.from_numpy(np.ascontiguousarray(hr / self.norm["msi"], dtype=np.float32))[None].to(self._device)
        with torch.no_grad():
            if self.spec.supervised:
                x = self.model(y, z)
            else:
                x = self.fitted.predict(z)
        return (x[0].float().cpu().numpy() * self.norm["hsi"]).astype(np.float32)

    def _apply_umsft(self, lr, hr, ratio, feedback) -> np.ndarray:
        H, W = hr.shape[1:]
        lr, hr = pad_to_multiple(lr, hr, ratio, self.spec.align(ratio))
        return self._optimise_umsft(lr, hr, ratio, feedback)[:, :H, :W]

    def _optimise_umsft(self, lr, hr, ratio, feedback) -> np.ndarray:
        import torch

        norm = {"hsi": robust_max(lr), "msi": robust_max(hr)}
        y = torch.from_numpy(np.ascontiguousarray(lr / norm["hsi"], dtype=np.float32))[None]
        z = torch.from_numpy(np.ascontiguousarray(hr / norm["msi"], dtype=np.float32))[None]

        def callback(stage, i, n, loss) -> bool:
            if i in (1, n) or i % 50 == 0:  # the models count iterations from 1
                feedback.pushInfo(f"UMSFT tile {stage}: iteration {i}/{n}, loss {loss:.5f}")
            return not feedback.isCanceled()

        lite = bool(self.hyper.get("lite", False))
        # The spec's 3 x 500 initialisation steps per tile dwarf a small ITERATIONS budget: cap them by it.
        init_steps = min(int(self.hyper.get("init_steps", 500)), max(20, self.iterations))
        x, info = self.spec.fit(y, z, ratio, spans=self.spans, srf=self.srf,
                                iterations=self.iterations, init_steps=init_steps, lite=lite,
                                hsi_skip=bool(self.hyper.get("hsi_skip", False)),
                                output_ema=float(self.hyper.get("output_ema", 0.0)), callback=callback,
                                seed=self.seed, device=self._device)
        check_cancel(feedback)
        self.training = {"mode": "unsupervised per tile", "iterations": self.iterations}
        return (x[0].detach().float().cpu().numpy() * norm["hsi"]).astype(np.float32)

    def fallback_to_cpu(self) -> bool:
        import torch

        if self._device is None or self._device.type == "cpu":
            return False
        self._device = torch.device("cpu")
        self._reason = "moved to CPU after GPU out-of-memory"
        for obj in (self.model, self.fitted):
            if obj is not None and hasattr(obj, "to"):
                obj.to(self._device)
        return True

    # -- checkpoints --
    def save(self, path: str, scene=None) -> str:
        if self.model is None:
            raise CheckpointError("nothing to save: the network has not been trained")
        hsi = scene.pair.hsi if scene is not None else None
        msi = scene.pair.msi if scene is not None else None
        return save_checkpoint(path, self.name, self.hyper, self.model.state_dict(), self.hsi_bands,
                               self.msi_bands, self.ratio, self.norm,
                               hsi.wavelengths if hsi is not None else None,
                               msi.wavelengths if msi is not None else None,
                               psf={"type": "gaussian", "fwhm_hr_px": self.psf_fwhm or self.ratio},
                               training=self.training, extra={"seed": self.seed, "plugin": __version__})

    def _load(self, scene) -> None:
        ckpt = load_checkpoint(self.checkpoint)
        check_compatible(ckpt, self.name, self.hsi_bands, self.msi_bands, self.ratio,
                         scene.pair.hsi.wavelengths, scene.pair.msi.wavelengths)
        self.hyper = dict(self.spec.defaults, **ckpt.get("hyper", {}))
        if self.name == "amsfnet" and "hsi_skip" not in ckpt.get("hyper", {}):
            self.hyper["hsi_skip"] = False  # saved before the REC bicubic skip existed: the spec's net
        for k, v in list(self.hyper.items()):
            if isinstance(v, list):
                self.hyper[k] = tuple(v)
        self.model = self._build()
        try:
            self.model.load_state_dict(ckpt["state_dict"])
        except RuntimeError as exc:
            raise CheckpointError(f"checkpoint weights do not fit {self.spec.title}: "
                                  f"{str(exc).splitlines()[0]}") from None
        self.model.eval()
        self.norm = {k: float(v) for k, v in ckpt["norm"].items()}
        self.training = dict(ckpt.get("training", {}), mode="checkpoint")


def metadata_spans(hsi, msi):
    """UMSFT's SRF band groups from the band metadata (networks.md §1.2): span_k = the HSI bands where a
    Gaussian band of the MSI's centre/FWHM, resampled to the HSI bands, reaches 1 % of its peak. None
    (every span = all bands, the spec's fallback) without centres and FWHM on both sides or when the HSI
    does not cover an MSI band."""
    from ...models.blocks import spans_from_srf
    from ..errors import WavelengthError
    from ..srf import gaussian_sensor, srf_matrix

    if hsi.wavelengths is None or msi.wavelengths is None or msi.fwhm is None:
        return None
    try:
        sensor = gaussian_sensor("msi", "MSI", [str(k) for k in range(msi.bands)], msi.wavelengths, msi.fwhm)
        return spans_from_srf(srf_matrix(sensor, hsi.wavelengths, hsi.fwhm, hsi.good_bands))
    except (WavelengthError, InputError, ValueError):
        return None


def mirror_to_step(y: np.ndarray, z: np.ndarray, ratio: int, step: int):
    """Mirror (half-sample symmetric) an LR/HR crop at the bottom/right so the LR side is a multiple of
    ``step``: scene-adaptive training then sees mirrored scene content where the padding of
    ``zero_shot_data`` would repeat the last row (it falls back to that whenever the pad is as large as the
    crop, e.g. AMSF-Net's 32-px step on a 16-row LR crop)."""
    h, w = (y.shape[1] // ratio) * ratio, (y.shape[2] // ratio) * ratio
    ph, pw = (-h) % step, (-w) % step
    if not (ph or pw) or not (h and w):
        return y, z
    y = np.pad(y[:, :h, :w], ((0, 0), (0, ph), (0, pw)), mode="symmetric")
    z = np.pad(z[:, :h * ratio, :w * ratio], ((0, 0), (0, ph * ratio), (0, pw * ratio)), mode="symmetric")
    return y, z


def pad_to_multiple(lr: np.ndarray, hr: np.ndarray, ratio: int, size_step: int):
    """Reflect-pad an LR/HR tile pair at the bottom/right so the HR side is a multiple of ``size_step``
    (a multiple of ``ratio``): the network's size rule is met inside the wrapper, never by the user."""
    H, W = hr.shape[1:]
    ph, pw = (-H) % size_step, (-W) % size_step
    if not (ph or pw):
        return lr, hr
    mode = "reflect" if ph < H and pw < W and ph // ratio < lr.shape[1] and pw // ratio < lr.shape[2] else "edge"
    return (np.pad(lr, ((0, 0), (0, ph // ratio), (0, pw // ratio)), mode=mode),
            np.pad(hr, ((0, 0), (0, ph), (0, pw)), mode=mode))


def _factory(name: str):
    def build(**params):
        from .anchored import build_network_method  # anchored on a classical base unless BASE=none

        return build_network_method(name, **params)

    return build


for _name in ("amsfnet", "cofusion", "ssjcn", "uds2c2", "umsft"):
    register_method(_name, _factory(_name))

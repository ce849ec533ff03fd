"""Any catalogued network as a :class:`FusionMethod`: normalise, to tensor, forward, back to numpy.

The method dispatches on the network's declared kind (``models.catalogue``), never on its name:
supervised nets run from a checkpoint, or — the normal case, since no weights can ship for every sensor
pair — are trained in ``fit`` on the pair itself at reduced resolution (scene-adaptive / zero-shot);
fit-once nets are optimised once on a representative crop and their fixed map applied per tile (under
``torch.inference_mode``, on tile arrays only); a net whose catalogue entry offers it can instead be
optimised on every tile (PER_TILE=True; README, "The networks").
"""
from __future__ import annotations

import functools
import math
import time
from typing import Dict, Optional, Tuple

import numpy as np

from ...models.catalogue import FIT_ONCE, NETWORKS, PER_TILE, SUPERVISED, NetworkEntry, entry
from ..errors import CheckpointError, InputError
from ..feedback import check_cancel, ensure_feedback
from ..learning.budget import INFERENCE_SAFETY, Deadline, inference_cost, inference_load, mirror2, timed_forwards
from ..learning.checkpoint import check_compatible, load_checkpoint, save_checkpoint
from ..learning.loops import make_optimizer, optimise, robust_max, sample_batch, zero_shot_data
from ..params import DEVICE, DEVICE_LABELS, DEVICES, FILE, FILE_OUT, MethodSpec, Param
from ..pipeline.device import limit_cpu_threads, resolve_device
from ..pipeline.memory import TILE_BUFFERS, share_one_heap_arena
from ..pipeline.runtime import BACKEND_LABELS, BACKENDS, DEFAULT_BACKEND, TileRuntime
from ..version import __version__
from .base import FusionMethod

DEFAULT_PATCH, DEFAULT_BATCH = 64, 4  # scene-adaptive training patch (HR px) and batch
# Scene-adaptive runs last hundreds of steps, not the papers' 20 000: the recipes' base rates (1e-4 Adam,
# 4e-4 AdamW) barely move the weights in that budget. 1e-3 with the recipes' schedules gained 3.5 dB over
# 1e-4 for SSJCN on the bundled sample at 80 steps (3e-3 diverged towards bicubic). LEARNING_RATE overrides.
SCENE_ADAPTIVE_LR = 1e-3
# Every network refines a classical base by default (engine/methods/anchored.py); "none" = the network alone.
BASE_CHOICES = (("glp", "GLP (MTF-matched Laplacian pyramid)"),
                ("bicubic", "Bicubic upsampling (the papers' setting)"),
                ("gsa", "GSA (Gram-Schmidt adaptive)"),
                ("auto", "Automatic (best of bicubic, GLP, GSA one scale down)"),
                ("none", "None (the network alone)"))
BASES = tuple(key for key, _ in BASE_CHOICES)
DEFAULT_BASE = "glp"
DEFAULT_MAX_SECONDS = 150.0  # whole run, inference included: a 256x256 pair within 3 minutes on 2 cores


class NetworkMethod(FusionMethod):
    """Adapter around a catalogue entry and its model's NetSpec; see the module docstring for the kinds.

    Numbers given as 0 or None mean "not set": no time budget, PSF FWHM = ratio, the scene-adaptive
    learning rate.
    """

    needs_torch = True
    fit_share = 0.8  # share of the progress bar taken by fit()

    def __init__(self, network: str, checkpoint: Optional[str] = None, device: str = "auto", seed: int = 0,
                 iterations: Optional[int] = None, max_seconds: Optional[float] = None,
                 save_checkpoint: Optional[str] = None, psf_fwhm: Optional[float] = None,
                 patch_size: int = DEFAULT_PATCH, batch_size: int = DEFAULT_BATCH,
                 learning_rate: Optional[float] = None, crop_lr: Optional[int] = None,
                 hyper: Optional[Dict] = None, srf=None, lite: Optional[bool] = None, per_tile: bool = False,
                 backend: str = DEFAULT_BACKEND) -> None:
        from ...models.registry import load_spec

        limit_cpu_threads()
        share_one_heap_arena()  # before torch's threads allocate: the tile loop's peak memory (pipeline/memory.py)
        self.entry = entry(network)
        self.kind = PER_TILE if per_tile and self.entry.per_tile_option else self.entry.kind
        self.spec = load_spec(self.entry)
        self.name = network
        self.checkpoint, self.save_path = checkpoint or None, save_checkpoint or None
        self.device_spec, self.seed = device, int(seed)
        self.iterations = int(iterations) if iterations else self.entry.iterations
        self.max_seconds = max_seconds or None
        self.psf_fwhm, self.patch, self.batch = psf_fwhm or None, int(patch_size), int(batch_size)
        self.learning_rate = learning_rate or None
        self.crop_lr = int(crop_lr or self.entry.fit_crop_lr)
        self.hyper = dict(self.spec.defaults, **(hyper or {}))
        if self.entry.lite_by_default if lite is None else lite:
            self.hyper["lite"] = True
        self.srf = srf
        self.runtime = TileRuntime(backend)  # supervised tile forward: eager, compile or bf16 (pipeline/runtime.py)
        self.spans = None  # catalogue metadata_spans: SRF band groups from the band metadata at fit()
        self.model = None
        self.fitted = None
        self.norm: Dict[str, float] = {}
        self.training: Dict = {}
        self._device = None
        self._reason: Optional[str] = None

    # -- geometry from the spec --
    def margin(self, ratio: int) -> int:
        return self.spec.margin_of(ratio, bool(self.hyper.get("lite")))

    def align(self, ratio: int) -> int:
        # A per-tile net is optimised on each tile, so tile origins need no pyramid phase: only its size
        # rule, which apply() meets by padding. The others keep their step so every tile sees the same phase.
        return ratio if self.kind == PER_TILE else self.spec.align(ratio)

    def min_hr_size(self, ratio: int) -> int:
        return self.spec.min_hr_size(ratio)

    def preferred_tile(self, ratio: int) -> int:
        return self.spec.tile

    @property
    def device_reason(self) -> Optional[str]:
        return self._reason

    @property
    def keeps_activations_on_heap(self) -> bool:
        """Whether the tile loop keeps large allocations on the heap (pipeline/memory.py ``activations_on_heap``).

        Per configuration, as measured (``NetSpec.heap_tiles``); not for a net optimised on every tile.
        """
        config = "lite" if self.hyper.get("lite") else "paper"
        return self.kind != PER_TILE and config in self.spec.heap_tiles

    @property
    def crops_itself(self) -> bool:
        """Whether the tile loop calls :meth:`apply_cropped`: a supervised net whose model crops on the CPU."""
        return self.kind == SUPERVISED and model_crops_on_cpu(self)

    def describe(self) -> Dict:
        d = {"method": self.name, "network": self.entry.long_title, "mode": self._mode(),
             "iterations": self.training.get("iterations", 0), "seed": self.seed}
        if self.checkpoint:
            d["checkpoint"] = self.checkpoint
        return d

    def _mode(self) -> str:
        if self.kind == FIT_ONCE:
            return "unsupervised, fitted once on a crop"
        if self.kind == PER_TILE:
            return "unsupervised, optimised on every tile"
        return "checkpoint" if self.checkpoint else "scene-adaptive"

    # -- fit --
    def fit(self, scene, feedback=None) -> None:
        import torch

        feedback = ensure_feedback(feedback)
        deadline = time.perf_counter() + self.max_seconds if self.max_seconds else math.inf
        self._device, self._reason = resolve_device(self.device_spec)
        feedback.pushInfo(f"{self.entry.long_title}: {self._mode()} on {self._device} ({self._reason})")
        self.ratio = scene.ratio
        self.hsi_bands, self.msi_bands = scene.pair.hsi.bands, scene.pair.msi.bands
        torch.manual_seed(self.seed)
        if self.entry.metadata_spans and self.srf is None:
            self.spans = metadata_spans(scene.pair.hsi, scene.pair.msi)
        if self.checkpoint:
            self._load(scene)
            return
        y, z, _ = scene.read_crop(self.crop_lr)
        good = scene.pair.hsi.good_bands
        self.norm = {"hsi": robust_max(y if good is None else y[good]), "msi": robust_max(z)}
        y, z = y / self.norm["hsi"], z / self.norm["msi"]
        if self.entry.kind == SUPERVISED:
            self._train_zero_shot(y, z, feedback)
            if self.save_path:
                self.save(self.save_path, scene)
        elif self.kind == FIT_ONCE:
            load = inference_load(self, self.ratio, scene.pair.region.width, scene.pair.region.height)
            self._fit_once(y, z, feedback, deadline, load)

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
        opt, sched = make_optimizer(self.spec, self.model.parameters(), self.iterations, lr)
        gen = torch.Generator().manual_seed(self.seed)
        patch = max(step, (self.patch // step) * step)
        loss_fn = self.spec.loss

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
                        (0.0, 100.0 * self.fit_share), f"{self.entry.title} training")
        self.training = {"mode": "scene-adaptive", **hist.as_dict()}
        self.model.eval()

    def _fit_once(self, y: np.ndarray, z: np.ndarray, feedback, deadline: float = math.inf,
                  load: Optional[Tuple[int, int]] = None) -> None:
        """Optimise the fit-once net on a normalised crop; its stages stop at ``deadline`` less the inference.

        ``load`` = (tiles, HR pixels) of the tiled inference to come: with a finite deadline its time is
        estimated first (an unfitted map timed on the crop and its 2 x 2 mirror) and kept free. A stop at the
        budget is logged and keeps the map fitted so far; a user's cancel raises Cancelled.
        """
        import torch

        y, z = mirror_to_step(y, z, self.ratio, max(1, self.spec.align(self.ratio) // self.ratio))
        yt = torch.from_numpy(np.ascontiguousarray(y))[None]
        zt = torch.from_numpy(np.ascontiguousarray(z))[None]
        its = self.stage_iterations()
        total = sum(its)
        done = {"n": 0}
        options = dict(self.hyper, srf=self.srf, seed=self.seed, device=self._device)
        if self.spans is not None:
            options["spans"] = self.spans
        if math.isfinite(deadline) and load is not None:
            deadline -= INFERENCE_SAFETY * self._estimate_inference(yt, zt, options, load, feedback)
        budget = Deadline(feedback, deadline)

        def callback(stage, i, n, loss) -> bool:
            done["n"] += 1
            feedback.setProgress(100.0 * self.fit_share * done["n"] / total)
            if i in (1, n) or i % 100 == 0:  # the models count iterations from 1
                feedback.pushInfo(f"{self.entry.title} {stage}: iteration {i}/{n}, loss {loss:.5f}")
            return not budget.isCanceled()

        if budget.reached:
            its = (0,) * len(its)
        self.fitted = self.spec.fit(yt, zt, self.ratio, iterations=its, callback=callback, **options)
        check_cancel(feedback)
        stopped = budget.reached
        if stopped:
            feedback.pushInfo(f"{self.entry.title}: time budget reached after {done['n']} of {total} iterations "
                              f"(the estimated inference is kept free): keeping the map fitted so far")
        self.training = {"mode": "unsupervised", "iterations": done["n"],
                         "stopped_by": "time budget" if stopped else "iterations"}

    def _estimate_inference(self, yt, zt, options: Dict, load: Tuple[int, int], feedback) -> float:
        """Seconds the tiled inference of ``load`` (tiles, HR px) will take, timed on an unfitted map."""
        unfitted = self.spec.fit(yt, zt, self.ratio, iterations=(0,) * len(self.stage_iterations()), **options)
        # Timed on half a tile and its 2 x 2 mirror (one tile): a tile is what inference runs, and the whole fit
        # crop mirrored would be a 224-band tensor four times the crop (~1 GB of peak memory at 512² HR)
        half = max(1, self.spec.tile // (2 * self.ratio))
        y = yt[..., :half, :half].to(self._device)
        z = zt[..., :half * self.ratio, :half * self.ratio].to(self._device)
        timed = timed_forwards(unfitted.predict, (y, z), (mirror2(y), mirror2(z)))
        cost = inference_cost(timed, *load)
        feedback.pushInfo(f"inference estimate: {cost['seconds']:.1f} s for {load[1]} px "
                          f"({cost['per_px'] * 1e6:.2f} us/px + {cost['per_tile']:.2f} s per tile)")
        return cost["seconds"]

    def stage_iterations(self) -> Tuple[int, ...]:
        """ITERATIONS split over the model's fit stages in the catalogue's ``stage_shares``.

        Every stage gets at least 1; the last takes the rest.
        """
        n, shares = self.iterations, self.entry.stage_shares or (1.0,)
        head = [max(1, int(n * s)) for s in shares[:-1]]
        return tuple(head) + (max(1, n - sum(head)),)

    # -- pickling (distributed workers get the fitted method once, by scatter) --
    def __getstate__(self) -> Dict:
        """Everything but the spec (looked up again by name) and the device.

        The device is resolved again on the worker: a GPU worker uses its GPU; tensors travel on the CPU.
        """
        import copy

        state = dict(self.__dict__)
        state.pop("spec", None)
        for key in ("model", "fitted"):
            obj = state.get(key)
            if obj is not None and hasattr(obj, "to") and self._device is not None and self._device.type != "cpu":
                state[key] = copy.deepcopy(obj).to("cpu")
        state["_device"] = None
        return state

    def __setstate__(self, state: Dict) -> None:
        from ...models.registry import load_spec

        self.__dict__.update(state)
        self.spec = load_spec(self.entry)
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

        feedback = ensure_feedback(feedback)
        self._ensure_device()
        if self.kind == PER_TILE:
            return self._apply_per_tile(lr, hr, ratio, feedback)
        return self._scaled_predict(lr, hr, ratio, feedback)

    def apply_cropped(self, lr: np.ndarray, hr: np.ndarray, ratio: int, crop: Tuple[int, int, int, int],
                      feedback=None) -> np.ndarray:
        """The core's estimate; the model computes its HR stage there only when :attr:`crops_itself`."""
        if not self.crops_itself:
            return super().apply_cropped(lr, hr, ratio, crop, feedback)
        return self._scaled_predict(lr, hr, ratio, ensure_feedback(feedback), crop)

    def _scaled_predict(self, lr: np.ndarray, hr: np.ndarray, ratio: int, feedback,
                        crop: Optional[Tuple[int, int, int, int]] = None) -> np.ndarray:
        """:meth:`predict` on the tile in the data's units (normalised in, scaled back out)."""
        x = self.predict(lr / self.norm["hsi"], hr / self.norm["msi"], ratio, feedback, crop)
        if crop is None:
            x *= np.float32(self.norm["hsi"])  # in place: no second copy of a padded output tile (300 MB for AMSF-Net)
            return x
        out = TILE_BUFFERS.take(x.shape)  # the core, kept until written, outside the heap (pipeline/memory.py)
        np.multiply(x, np.float32(self.norm["hsi"]), out=out)
        return out

    def predict(self, y: np.ndarray, z: np.ndarray, ratio: int, feedback=None,
                crop: Optional[Tuple[int, int, int, int]] = None) -> np.ndarray:
        """The trained or fitted map on one normalised tile pair (C, h, w), (c, H, W) -> (C, H, W) float32.

        Tile arrays in, tile array out, under ``torch.inference_mode``. ``crop`` (a model with
        ``crops_hr_stage`` only): (top, bottom, left, right) HR px dropped, the core's estimate returned.
        """
        import torch

        H, W = z.shape[1:]
        yt = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))[None].to(self._device)
        zt = torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32))[None].to(self._device)
        options = {} if crop is None else {"crop": tuple(int(c) for c in crop)}
        if crop is not None:
            H, W = H - crop[0] - crop[1], W - crop[2] - crop[3]
        with torch.inference_mode():
            x = (self.runtime.forward(self.model, yt, zt, feedback=feedback, **options) if self.kind == SUPERVISED
                 else self.fitted.predict(yt, zt))
            return x[0, :, :H, :W].float().cpu().numpy()

    def _apply_per_tile(self, lr, hr, ratio, feedback) -> np.ndarray:
        H, W = hr.shape[1:]
        lr, hr = pad_to_multiple(lr, hr, ratio, self.spec.align(ratio))
        return self._optimise_tile(lr, hr, ratio, feedback)[:, :H, :W]

    def _optimise_tile(self, lr, hr, ratio, feedback) -> np.ndarray:
        import torch

        norm = {"hsi": robust_max(lr), "msi": robust_max(hr)}
        y = torch.from_numpy(np.ascontiguousarray(lr / norm["hsi"], dtype=np.float32))[None]
        z = torch.from_numpy(np.ascontiguousarray(hr / norm["msi"], dtype=np.float32))[None]

        def callback(stage, i, n, loss) -> bool:
            if i in (1, n) or i % 50 == 0:  # the models count iterations from 1
                feedback.pushInfo(f"{self.entry.title} tile {stage}: iteration {i}/{n}, loss {loss:.5f}")
            return not feedback.isCanceled()

        stages = self.stage_iterations()
        init, main = stages[:3], stages[3]  # a fit once's split, on every tile
        options = dict(self.hyper, init_steps=tuple(init))
        x, info = self.spec.fit_per_tile(y, z, ratio, spans=self.spans, srf=self.srf, iterations=main,
                                         callback=callback, seed=self.seed, device=self._device, **options)
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
        self.hyper = {**self.spec.defaults, **self.entry.checkpoint_fallbacks, **ckpt.get("hyper", {})}
        for k, v in list(self.hyper.items()):
            if isinstance(v, list):
                self.hyper[k] = tuple(v)
        self.model = self._build()
        try:
            self.model.load_state_dict(ckpt["state_dict"])
        except RuntimeError as exc:
            raise CheckpointError(f"checkpoint weights do not fit {self.entry.title}: "
                                  f"{str(exc).splitlines()[0]}") from None
        self.model.eval()
        self.norm = {k: float(v) for k, v in ckpt["norm"].items()}
        self.training = dict(ckpt.get("training", {}), mode="checkpoint")


def metadata_spans(hsi, msi):
    """A per-tile net's SRF band groups from the band metadata.

    span_k = the HSI bands where a Gaussian band of the MSI's centre/FWHM, resampled to the HSI bands,
    reaches 1 % of its peak. None (every span = all bands, the spec's fallback) without centres and FWHM
    on both sides or when the HSI does not cover an MSI band.
    """
    from ...models.blocks import spans_from_srf
    from ..errors import WavelengthError
    from ..sensors.srf import gaussian_sensor, srf_matrix

    if hsi.wavelengths is None or msi.wavelengths is None or msi.fwhm is None:
        return None
    try:
        sensor = gaussian_sensor("msi", "MSI", [str(k) for k in range(msi.bands)], msi.wavelengths, msi.fwhm)
        return spans_from_srf(srf_matrix(sensor, hsi.wavelengths, hsi.fwhm, hsi.good_bands))
    except (WavelengthError, InputError, ValueError):
        return None


def mirror_to_step(y: np.ndarray, z: np.ndarray, ratio: int, step: int):
    """Mirror an LR/HR crop at the bottom/right so the LR side is a multiple of ``step``.

    Half-sample symmetric: scene-adaptive training then sees mirrored scene content where the padding of
    ``zero_shot_data`` would repeat the last row (it falls back to that whenever the pad is as large as the
    crop, e.g. AMSF-Net's 32-px step on a 16-row LR crop).
    """
    h, w = (y.shape[1] // ratio) * ratio, (y.shape[2] // ratio) * ratio
    ph, pw = (-h) % step, (-w) % step
    if not (ph or pw) or not (h and w):
        return y, z
    y = np.pad(y[:, :h, :w], ((0, 0), (0, ph), (0, pw)), mode="symmetric")
    z = np.pad(z[:, :h * ratio, :w * ratio], ((0, 0), (0, ph * ratio), (0, pw * ratio)), mode="symmetric")
    return y, z


def pad_to_multiple(lr: np.ndarray, hr: np.ndarray, ratio: int, size_step: int):
    """Reflect-pad an LR/HR tile pair at the bottom/right so the HR side is a multiple of ``size_step``.

    ``size_step`` is a multiple of ``ratio``: the network's size rule is met inside the wrapper, never by the
    user.
    """
    H, W = hr.shape[1:]
    ph, pw = (-H) % size_step, (-W) % size_step
    if not (ph or pw):
        return lr, hr
    mode = "reflect" if ph < H and pw < W and ph // ratio < lr.shape[1] and pw // ratio < lr.shape[2] else "edge"
    return (np.pad(lr, ((0, 0), (0, ph // ratio), (0, pw // ratio)), mode=mode),
            np.pad(hr, ((0, 0), (0, ph), (0, pw)), mode=mode))


def model_crops_on_cpu(method) -> bool:
    """Whether ``method.model`` computes its HR stage on a tile's core only and runs on the CPU.

    Such a model declares ``crops_hr_stage`` (AMSF-Net lite, CoFusion). Not on a GPU: the cropped path has no
    out-of-memory retry (engine/pipeline/tiling.py). Not with BACKEND=compile: the crop is a Python argument,
    so each edge and corner tile's crop would compile the network again (minutes each on a CPU).
    """
    if method.runtime.backend == "compile":
        return False
    if method.model is None or not getattr(method.model, "crops_hr_stage", False):
        return False
    method._ensure_device()
    return method._device.type == "cpu"


def network_params(e: NetworkEntry) -> Tuple[Param, ...]:
    """The parameters of a network's method, declared once for every network (by kind and lite flag)."""
    supervised = e.kind == SUPERVISED
    params = []
    if supervised:
        params.append(Param("checkpoint", str, None, "Checkpoint (.pt); empty = scene-adaptive training on this pair",
                            kind=FILE, extension="pt", advanced=False))
    params += [
        Param("device", str, "auto", "Compute device", choices=DEVICES, choice_labels=DEVICE_LABELS, kind=DEVICE,
              help="cuda:N picks one GPU (command line)"),
        Param("seed", int, 0, "Random seed", minimum=0),
        Param("iterations", int, e.iterations, "Training / optimisation iterations", minimum=1),
        Param("max_seconds", float, DEFAULT_MAX_SECONDS,
              "Time budget of the whole run, inference included (s, 0 = none)", minimum=0,
              help="training stops early enough for the estimated inference to fit"),
        Param("base", str, DEFAULT_BASE, "Classical base the network refines (none = the network alone)",
              choices=BASES,
              choice_labels=tuple(label for _, label in BASE_CHOICES),
              help="bicubic = the papers' setting; auto = the best of bicubic, GLP and GSA by "
              "self-validation one scale down; none is also what a checkpoint or saving one uses "
              "(engine/methods/anchored.py)"),
        Param("psf_fwhm", float, 0.0, "PSF FWHM in HR pixels for reduced-resolution training (0 = ratio)",
              minimum=0),
    ]
    if supervised:
        params += [
            Param("patch_size", int, DEFAULT_PATCH, "Training patch (HR px)", minimum=8),
            Param("batch_size", int, DEFAULT_BATCH, "Batch size", minimum=1),
            Param("learning_rate", float, 0.0, f"Learning rate (0 = {SCENE_ADAPTIVE_LR:g})", minimum=0),
            Param("backend", str, DEFAULT_BACKEND, "Inference runtime of the tiles", choices=BACKENDS,
                  choice_labels=BACKEND_LABELS,
                  help="compile: torch.compile, about 2x faster SSJCN tiles on a CPU after minutes of compilation "
                  "(whole scenes only; needs a C compiler); bf16: bfloat16 autocast, 1.2-1.7x, outputs within "
                  "2^-8 of the largest output (CPUs with avx512_bf16/AMX, or GPUs; elsewhere eager, logged); "
                  "engine/pipeline/runtime.py"),
        ]
    params.append(Param("crop_lr", int, e.fit_crop_lr, "Training crop (LR px a side)", minimum=4, key="CROP_SIZE"))
    if e.per_tile_option:
        cost = e.seconds_per_mpx
        params.append(Param("per_tile", bool, False, "Optimise on every tile (slow; default: fit once, apply per tile)",
                            help=f"fit once on a crop, then about {cost.get(FIT_ONCE, 0):g} s per HR Mpx on 2 CPU "
                            f"cores; optimised on every tile about {cost.get(PER_TILE, 0):g} s per HR Mpx "
                            "(docs/networks.md)"))
    if e.lite:
        speed = e.config_seconds_per_mpx
        default = "on" if e.lite_by_default else "off"
        params.append(Param("lite", bool, e.lite_by_default, "Lite configuration (non-paper, faster)",
                            help=(f"inference about {speed['lite']:g} s per HR Mpx of 224 bands on 2 CPU cores against "
                                  f"{speed['paper']:g} s for the paper configuration; {default} by default, untick "
                                  "it for the paper's architecture (a checkpoint keeps the configuration it was "
                                  "trained with; docs/benchmarks.md, docs/networks.md)") if speed else ""))
    params += [
        Param("hyper", dict, None, "Network hyper-parameters (JSON object), over the model's defaults",
              exposed=False),
        Param("srf", object, None, "Known spectral response matrix (MSI bands x HSI bands)", exposed=False),
    ]
    if supervised:
        params.append(Param("save_checkpoint", str, None, "Save trained weights as", kind=FILE_OUT,
                            extension="pt", advanced=False))
    return tuple(params)


def build_network(network: str, **params) -> FusionMethod:
    """The factory of every network's method.

    Anchored on a classical base unless BASE=none (engine/methods/anchored.py, imported here so that module may import
    this one).
    """
    from .anchored import build_network_method

    return build_network_method(network, **params)


METHODS = [MethodSpec(e.id, e.title, functools.partial(build_network, e.id), network_params(e), "network",
                      summary=e.long_title) for e in NETWORKS]

"""One-file checkpoints that load with ``torch.load(weights_only=True)`` and refuse a mismatched pair.

Everything besides tensors is plain lists/dicts/numbers/strings, so no pickled code is ever executed
when a user opens a file someone sent them.
"""
from __future__ import annotations

import math
import os
import pickle
from typing import Any, Dict, Optional, Sequence

import numpy as np

from ..errors import CheckpointError
from ..version import __version__

FORMAT = "hsifusion-checkpoint"
FORMAT_VERSION = 1
WAVELENGTH_TOLERANCE_NM = 2.0


def plain_data(value: Any) -> Any:
    """Numpy -> lists/numbers, NaN/inf -> None: what weights_only=True loads and JSON writes."""
    if isinstance(value, np.ndarray):
        return [plain_data(v) for v in value.tolist()]
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, dict):
        return {str(k): plain_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_data(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _cpu(value: Any) -> Any:
    """Tensors to CPU in nested dicts/lists/tuples (optimizer state keeps its int keys and tuples)."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cpu(v) for v in value)
    return value


def save_checkpoint(path: str, network: str, hyper: Dict, state_dict: Dict, hsi_bands: int, msi_bands: int,
                    ratio: int, norm: Dict[str, float], hsi_wavelengths=None, msi_wavelengths=None,
                    psf: Optional[Dict] = None, srf=None, training: Optional[Dict] = None,
                    metrics: Optional[Dict] = None, extra: Optional[Dict] = None,
                    resume: Optional[Dict] = None) -> str:
    """Write atomically (temp name + rename): an interrupted save never leaves a broken checkpoint.

    ``resume`` (corpus training, engine/learning/corpus_training.py): optimizer state dict, global
    iteration, epochs done,
    steps per epoch — tensors, ints, floats, tuples and lists only, so ``weights_only=True`` still loads.
    """
    import torch

    payload = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "plugin_version": __version__,
        "network": network, "hyper": plain_data(hyper or {}),
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
        "hsi_bands": int(hsi_bands), "msi_bands": int(msi_bands), "ratio": int(ratio),
        "hsi_wavelengths": plain_data(hsi_wavelengths) if hsi_wavelengths is not None else None,
        "msi_wavelengths": plain_data(msi_wavelengths) if msi_wavelengths is not None else None,
        "norm": plain_data(norm), "psf": plain_data(psf or {}), "srf": plain_data(srf) if srf is not None else None,
        "training": plain_data(training or {}), "metrics": plain_data(metrics or {}), "extra": plain_data(extra or {}),
    }
    if resume is not None:
        payload["resume"] = _cpu(resume)
    tmp = f"{path}.partial"
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str) -> Dict:
    """Load and check the format; a corrupt or foreign file gets :class:`CheckpointError`."""
    import torch

    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's own text advises weights_only=False, i.e. running the file's code: never repeat it.
        if "global" in str(exc).lower():
            raise CheckpointError(f"{path} is not an hsifusion checkpoint: it holds Python objects other than "
                                  "tensors and plain data, which are never loaded (they could run code)") from None
        raise CheckpointError(f"{path} is not a readable hsifusion checkpoint: corrupt, truncated or not a "
                              "PyTorch file") from None
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable hsifusion checkpoint: corrupt, truncated or not a "
                              f"PyTorch file ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an hsifusion checkpoint (no '{FORMAT}' marker); "
                              "plain state dicts from other projects cannot be used directly")
    version = payload.get("format_version", 0)
    if not _is_int(version):
        raise CheckpointError(f"{path}: field 'format_version' is {version!r}, not an integer")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer plugin ({payload.get('plugin_version')})")
    validate_checkpoint(payload, path)
    return payload


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def validate_checkpoint(ckpt: Dict, path: str = "checkpoint") -> None:
    """Check every field's type, shape and finiteness; :class:`CheckpointError` names the field.

    A loaded file is data from anywhere: a NaN weight or a zero normalisation would otherwise run to an
    all-NaN output with exit status 0, and a missing key or a wrong type end in a KeyError/TypeError.
    """
    import torch

    def bad(field_name: str, what: str) -> CheckpointError:
        return CheckpointError(f"{path}: field '{field_name}' {what}")

    missing = [k for k in REQUIRED_FIELDS if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: missing field(s) {', '.join(repr(k) for k in missing)}")
    if not isinstance(ckpt["network"], str):
        raise bad("network", f"is {ckpt['network']!r}, not a network name")
    for key, low in (("hsi_bands", 1), ("msi_bands", 1), ("ratio", 2)):
        if not _is_int(ckpt[key]) or ckpt[key] < low:
            raise bad(key, f"is {ckpt[key]!r}, not an integer >= {low}")
    norm = ckpt["norm"]
    if not isinstance(norm, dict) or set(norm) != {"hsi", "msi"}:
        raise bad("norm", f"is {norm!r}; expected {{'hsi': scale, 'msi': scale}}")
    for k, v in norm.items():
        if not _is_number(v) or v <= 0:
            raise bad(f"norm.{k}", f"is {v!r}; a normalisation scale must be a finite number > 0")
    state = ckpt["state_dict"]
    if not isinstance(state, dict) or not state:
        raise bad("state_dict", "is not a non-empty mapping of weight names to tensors")
    for k, v in state.items():
        if not isinstance(v, torch.Tensor):
            raise bad(f"state_dict.{k}", f"is a {type(v).__name__}, not a tensor")
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            n = int((~torch.isfinite(v)).sum())
            raise bad(f"state_dict.{k}", f"holds {n} NaN/infinite value(s) of {v.numel()}")
    for key, bands in (("hsi_wavelengths", "hsi_bands"), ("msi_wavelengths", "msi_bands")):
        wl = ckpt.get(key)
        if wl is None:
            continue
        if not isinstance(wl, list) or len(wl) != ckpt[bands] or \
                not all(v is None or (_is_number(v) and v > 0) for v in wl):
            raise bad(key, f"must list {ckpt[bands]} positive wavelengths (nm), one per band")
    for key in ("psf", "srf", "training", "metrics", "extra", "resume"):
        if ckpt.get(key) is not None and not isinstance(ckpt[key], (dict, list)):
            raise bad(key, f"is a {type(ckpt[key]).__name__}, not a mapping")
    if isinstance(ckpt.get("training"), dict) and not isinstance(ckpt["training"].get("history", []), list):
        raise bad("training.history", "is not a list")
    _validate_resume(ckpt.get("resume"), bad)
    _validate_hyper(ckpt["network"], ckpt["hyper"], bad)


REQUIRED_FIELDS = ("network", "hyper", "state_dict", "hsi_bands", "msi_bands", "ratio", "norm")


def _validate_resume(resume: Any, bad) -> None:
    if resume is None:
        return
    if not isinstance(resume, dict):
        raise bad("resume", "is not a mapping")
    for key in ("iteration", "epochs_done"):
        if key in resume and (not _is_int(resume[key]) or resume[key] < 0):
            raise bad(f"resume.{key}", f"is {resume[key]!r}, not an integer >= 0")
    for key in ("iteration", "epochs_done"):
        if key not in resume:
            raise bad("resume", f"has no '{key}'")
    spe = resume.get("steps_per_epoch")
    if spe is not None and (not _is_int(spe) or spe < 0):
        raise bad("resume.steps_per_epoch", f"is {spe!r}, not an integer >= 0")
    if resume.get("optimizer") is not None and not isinstance(resume["optimizer"], dict):
        raise bad("resume.optimizer", "is not an optimizer state mapping")


def _validate_hyper(network: str, hyper: Any, bad) -> None:
    """Known network; each hyper-parameter with a default has a value of the default's kind."""
    from ...models.registry import get_spec, list_networks

    if network not in list_networks():
        raise bad("network", f"is {network!r}; known networks: {', '.join(list_networks())}")
    if not isinstance(hyper, dict):
        raise bad("hyper", f"is a {type(hyper).__name__}, not a mapping of hyper-parameters")
    defaults = get_spec(network).defaults
    for k, v in hyper.items():
        if not isinstance(k, str):
            raise bad("hyper", f"has a key {k!r} that is not a name")
        if k not in defaults:  # builders take a few more (CoFusion's width): plain values only
            if not (v is None or isinstance(v, (bool, str)) or _is_number(v) or
                    (isinstance(v, (list, tuple)) and all(_is_number(x) for x in v))):
                raise bad(f"hyper.{k}", f"is {v!r}, not a plain value")
            continue
        default = defaults[k]
        if isinstance(default, bool):
            ok = isinstance(v, bool)
        elif isinstance(default, (int, float)):
            ok = _is_number(v) and (isinstance(v, int) or not isinstance(default, int))
        elif isinstance(default, (tuple, list)):
            ok = isinstance(v, (tuple, list)) and all(_is_number(x) for x in v)
        else:
            ok = isinstance(v, (str, int)) and not isinstance(v, bool)
        if not ok:
            raise bad(f"hyper.{k}", f"is {v!r}; {network} expects a value like {default!r}")


def check_compatible(ckpt: Dict, network: str, hsi_bands: int, msi_bands: int, ratio: int,
                     hsi_wavelengths: Optional[Sequence[float]] = None,
                     msi_wavelengths: Optional[Sequence[float]] = None) -> None:
    """Refuse a checkpoint whose network, bands, wavelengths or ratio differ from the inputs."""
    problems = []
    if ckpt["network"] != network:
        problems.append(f"network is {ckpt['network']}, not {network}")
    if ckpt["hsi_bands"] != hsi_bands:
        problems.append(f"trained for {ckpt['hsi_bands']} HSI bands, input has {hsi_bands}")
    if ckpt["msi_bands"] != msi_bands:
        problems.append(f"trained for {ckpt['msi_bands']} MSI bands, input has {msi_bands}")
    if ckpt["ratio"] != ratio:
        problems.append(f"trained for ratio {ckpt['ratio']}, inputs have ratio {ratio}")
    for role, want, have in (("HSI", ckpt.get("hsi_wavelengths"), hsi_wavelengths),
                             ("MSI", ckpt.get("msi_wavelengths"), msi_wavelengths)):
        if want is not None and have is not None and len(want) == len(have):
            diff = np.nanmax(np.abs(np.asarray(want, float) - np.asarray(have, float)))
            if diff > WAVELENGTH_TOLERANCE_NM:
                problems.append(f"{role} wavelengths differ by up to {diff:.1f} nm from the training data")
    if problems:
        raise CheckpointError("checkpoint does not match the inputs: " + "; ".join(problems))

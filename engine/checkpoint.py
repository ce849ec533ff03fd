"""One-file checkpoints that load with ``torch.load(weights_only=True)`` and refuse a mismatched pair.

Everything besides tensors is plain lists/dicts/numbers/strings, so no pickled code is ever executed
when a user opens a file someone sent them.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Optional, Sequence

import numpy as np

from .. import __version__
from .errors import CheckpointError

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

    ``resume`` (corpus training, engine/train.py): optimizer state dict, global iteration, epochs done,
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
    except Exception as exc:  # any unpickling failure means a bad file
        raise CheckpointError(f"{path} is not a readable hsifusion checkpoint ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an hsifusion checkpoint (no '{FORMAT}' marker); "
                              "plain state dicts from other projects cannot be used directly")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer plugin ({payload.get('plugin_version')})")
    return payload


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

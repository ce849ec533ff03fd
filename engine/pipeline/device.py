"""DEVICE = auto | cpu | cuda | cuda:N -> a torch device and the reason it was chosen.

Never a silent CPU fallback (Deepness, Evoland): the reason is always reported.
"""
from __future__ import annotations

from typing import Tuple

from ..errors import DeviceError

CPU_THREADS = 2  # the reference machine's cores; torch's default oversubscribes small machines


def resolve_device(spec: str = "auto") -> Tuple["object", str]:
    """Return (torch.device, reason). Raises :class:`DeviceError` for an impossible explicit request."""
    import torch

    spec = (spec or "auto").strip().lower()
    if spec == "cpu":
        return torch.device("cpu"), "CPU requested"
    cuda_ok = torch.cuda.is_available()
    if spec == "auto":
        if cuda_ok:
            return torch.device("cuda:0"), f"CUDA available: {torch.cuda.get_device_name(0)}"
        why = "torch was built without CUDA" if torch.version.cuda is None else "no CUDA device is visible"
        return torch.device("cpu"), f"using CPU: {why}"
    if spec.startswith("cuda"):
        if not cuda_ok:
            why = "torch was built without CUDA" if torch.version.cuda is None else "no CUDA device is visible"
            raise DeviceError(f"DEVICE={spec} requested but {why}; use auto or cpu")
        idx = int(spec.split(":", 1)[1]) if ":" in spec else 0
        if idx >= torch.cuda.device_count():
            raise DeviceError(f"DEVICE={spec}: only {torch.cuda.device_count()} CUDA device(s)")
        return torch.device(f"cuda:{idx}"), f"CUDA requested: {torch.cuda.get_device_name(idx)}"
    raise DeviceError(f"unknown DEVICE {spec!r}; use auto, cpu, cuda or cuda:N")


def limit_cpu_threads(n: int = CPU_THREADS) -> None:
    """Cap torch's intra-op threads (oversubscription made small tiles slower here)."""
    try:
        import torch

        if torch.get_num_threads() > n:
            torch.set_num_threads(n)
    except ImportError:
        pass


def is_out_of_memory(exc: BaseException) -> bool:
    """True for a CUDA out-of-memory error of any torch version."""
    name = type(exc).__name__
    return name == "OutOfMemoryError" or "out of memory" in str(exc).lower()

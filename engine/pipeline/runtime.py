"""Optional runtimes for a network's tile forward: eager torch (default), ``torch.compile``, bfloat16 autocast.

Measured on one tile per network (256² core + margin, 224 bands, weights trained 3 iterations on the bundled
sample, 2 torch threads, AMD EPYC with avx512_bf16; error = max |difference| / max |eager output|):

| network  | tile | eager s | compile s (x) | compile err | bf16 s (x)    | bf16 err (max / mean) |
|----------|------|---------|---------------|-------------|---------------|-----------------------|
| SSJCN    | 384² | 2.89    | 1.43 (2.0x)   | 3.8e-7      | 2.13 (1.3x)   | 4.5e-4 / 4.5e-5       |
| CoFusion | 384² | 15.5    | not measured  |             | 12.6 (1.2x)   | 3.0e-3 / 4.3e-4       |
| AMSF-Net | 576² | 30.0    | not measured  |             | 18.1 (1.7x)   | 4.2e-5 / 3.9e-6       |

Quiet machine, interleaved best of 2 (SSJCN) or one round. On a machine loaded ~9x SSJCN gave the same ratios
(eager 19.0 s, compile 9.6 s, bf16 12.9 s); CoFusion's compilation did not finish within 15 minutes there.

- ``compile`` pays a compilation on the first tile (SSJCN, cold cache, loaded machine: 195 s) and once more on
  the first tile of another shape (the scene's right/bottom edge: 140 s; torch then compiles shape-generic
  code, so later shapes reuse it). Inductor's on-disk cache makes later runs start in seconds (3.9 s). Worth
  it for whole scenes (hundreds of tiles), not for a small crop.
- ``bf16``: outputs within ``BF16_TOLERANCE`` (2^-8 = 3.9e-3) of max |output| -- bfloat16's own precision,
  about the noise of the sensors fused here (EnMAP/PRISMA SNR ~100-500, i.e. 2e-3 to 1e-2 of the signal);
  not the float32 tiled == untiled tolerance, hence opt-in only. On a CPU without bfloat16 instructions
  (avx512_bf16 or AMX) bf16 has no fast path (not measured here): the backend falls back to eager and says so.
- ``compile`` needs a C compiler on the CPU (gcc/clang; none on a stock Windows QGIS): when compilation fails
  the backend falls back to eager with a warning.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Tuple

BACKENDS = ("eager", "compile", "bf16")
BACKEND_LABELS = ("Eager PyTorch (reference)", "torch.compile (first tiles compile: whole scenes only)",
                  "bfloat16 autocast (~3 significant digits)")
DEFAULT_BACKEND = "eager"
# max |bf16 - float32| / max |float32| stated for the bf16 backend: one bfloat16 rounding (8-bit significand) of
# the largest output. Measured 4.2e-5 (AMSF-Net) to 3.0e-3 (CoFusion), 1.3e-3 on a small random conv net
# (tests/engine/test_runtime.py).
BF16_TOLERANCE = 2.0 ** -8


def bf16_support(device) -> Tuple[bool, str]:
    """(whether ``device`` runs bfloat16 natively, why)."""
    import torch

    if device.type == "cuda":
        ok = torch.cuda.is_bf16_supported()
        return ok, "CUDA bfloat16" if ok else "this GPU has no bfloat16 support"
    if device.type != "cpu":
        return False, f"bfloat16 autocast is not offered on {device.type}"
    cpu = getattr(torch, "cpu", None)
    checks = [getattr(cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    ok = any(bool(check()) for check in checks if check is not None)
    return ok, "CPU has avx512_bf16/AMX" if ok else "this CPU has no bfloat16 instructions (avx512_bf16 or AMX)"


class TileRuntime:
    """Runs ``model(*inputs)`` with the chosen backend; compiles lazily, pickles without compiled code.

    ``forward(model, *inputs)`` takes the model each call (the method owns and pickles it once); the compiled
    wrapper is kept for that model only.
    """

    def __init__(self, backend: str = DEFAULT_BACKEND) -> None:
        from ..errors import InputError

        backend = (backend or DEFAULT_BACKEND).lower()
        if backend not in BACKENDS:
            raise InputError(f"BACKEND must be one of {', '.join(BACKENDS)}; got {backend!r}")
        self.backend = backend
        self._compiled: Optional[Callable] = None
        self._compiled_for: Optional[int] = None
        self._checked = False

    def __getstate__(self) -> dict:
        return {"backend": self.backend}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["backend"])

    def _effective(self, device, feedback) -> str:
        """The backend to run: ``bf16`` falls back to eager (logged once) where the device lacks it."""
        if self.backend == "bf16" and not self._checked:
            self._checked = True
            ok, why = bf16_support(device)
            if not ok:
                self.backend = "eager"
                if feedback is not None:
                    feedback.pushWarning(f"BACKEND=bf16 not used: {why}; running eager float32")
            elif feedback is not None:
                feedback.pushInfo(f"BACKEND=bf16 ({why}): outputs within {BF16_TOLERANCE:g} of max |output|")
        return self.backend

    def forward(self, model, *inputs, feedback=None, **options) -> Any:
        """``model(*inputs, **options)`` under inference mode with this backend (inputs on the model's device).

        ``options``: keywords of the model's forward (AMSF-Net lite's ``crop``).
        """
        import torch

        device = inputs[0].device
        with torch.inference_mode():
            backend = self._effective(device, feedback)
            if backend == "compile":
                if self._compiled is None or self._compiled_for != id(model):
                    if feedback is not None:
                        feedback.pushInfo("BACKEND=compile: compiling the network on the first tile (minutes on a "
                                          "CPU) and once more for the first tile of another shape")
                    self._compiled, self._compiled_for = torch.compile(model), id(model)
                    try:
                        return self._compiled(*inputs, **options)
                    except Exception as exc:  # any compiler failure: the eager call below still runs
                        self.backend = "eager"
                        if feedback is not None:
                            feedback.pushWarning(f"BACKEND=compile failed ({type(exc).__name__}: "
                                                 f"{str(exc).splitlines()[0][:200] if str(exc) else ''}); "
                                                 "running eager")
                        return model(*inputs, **options)
                return self._compiled(*inputs, **options)
            if backend == "bf16":
                with torch.autocast(device.type, dtype=torch.bfloat16):
                    return model(*inputs, **options).float()
            return model(*inputs, **options)

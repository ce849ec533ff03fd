"""Optional tile-forward runtimes (engine/pipeline/runtime.py).

Same outputs within each one's stated tolerance, fallbacks that say so, pickling without compiled code.
"""
import pickle

import pytest
import torch

from hsifusion.engine.errors import InputError
from hsifusion.engine.feedback import LogFeedback
from hsifusion.engine.pipeline import runtime


class _Tiny(torch.nn.Module):
    """A two-input conv net of the networks' form ``model(y, z)``."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.b = torch.nn.Conv2d(8, 5, 1)

    def forward(self, y, z):
        up = torch.nn.functional.interpolate(y, scale_factor=2, mode="nearest")
        return up + self.b(torch.relu(self.a(z)))


def _data():
    torch.manual_seed(0)
    return _Tiny().eval(), torch.rand(1, 5, 8, 8), torch.rand(1, 3, 16, 16)


def test_unknown_backend_is_an_input_error():
    with pytest.raises(InputError, match="BACKEND must be one of eager, compile, bf16"):
        runtime.TileRuntime("onnx")


def test_eager_is_the_model_itself():
    model, y, z = _data()
    with torch.no_grad():
        ref = model(y, z)
    assert torch.equal(runtime.TileRuntime().forward(model, y, z), ref)


def test_bf16_within_its_tolerance_or_falls_back_with_a_warning(monkeypatch):
    model, y, z = _data()
    with torch.no_grad():
        ref = model(y, z)
    fb = LogFeedback()
    out = runtime.TileRuntime("bf16").forward(model, y, z, feedback=fb)
    assert out.dtype == torch.float32
    if runtime.bf16_support(y.device)[0]:
        err = float((out - ref).abs().max() / ref.abs().max())
        assert 0 < err <= runtime.BF16_TOLERANCE  # not float32 (else nothing ran in bf16), but within tolerance
    monkeypatch.setattr(runtime, "bf16_support", lambda device: (False, "no bfloat16 here"))
    fb = LogFeedback()
    rt = runtime.TileRuntime("bf16")
    assert torch.equal(rt.forward(model, y, z, feedback=fb), ref)
    assert rt.backend == "eager" and any("no bfloat16 here" in w for w in fb.warnings)


def test_compile_failure_falls_back_to_eager(monkeypatch):
    model, y, z = _data()
    with torch.no_grad():
        ref = model(y, z)

    def broken(*a, **k):
        raise RuntimeError("no C compiler")

    monkeypatch.setattr(torch, "compile", lambda m: broken)
    fb = LogFeedback()
    rt = runtime.TileRuntime("compile")
    assert torch.equal(rt.forward(model, y, z, feedback=fb), ref)
    assert rt.backend == "eager" and any("no C compiler" in w for w in fb.warnings)


def test_runtime_pickles_without_compiled_code():
    rt = runtime.TileRuntime("compile")
    rt._compiled, rt._compiled_for = (lambda *a: None), 1
    back = pickle.loads(pickle.dumps(rt))
    assert back.backend == "compile" and back._compiled is None


def test_network_method_runs_its_tiles_through_the_backend():
    """NetworkMethod.apply (supervised) goes through BACKEND: bf16 within its tolerance of eager, eager unchanged."""
    import numpy as np

    from hsifusion.engine.methods.network import NetworkMethod

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    lr, hr = rng.random((8, 8, 8), dtype=np.float32), rng.random((3, 32, 32), dtype=np.float32)
    outs = {}
    for backend in ("eager", "bf16"):
        m = NetworkMethod("ssjcn", device="cpu", backend=backend)
        torch.manual_seed(0)
        m.model = m.spec.build(8, 3, 4, **m.hyper).eval()
        m.norm, m._device = {"hsi": 2.0, "msi": 1.0}, torch.device("cpu")
        outs[backend] = m.apply(lr, hr, 4)
    with torch.no_grad():
        ref = m.model(torch.from_numpy(lr / 2.0)[None], torch.from_numpy(hr)[None])[0].numpy() * 2.0
    np.testing.assert_allclose(outs["eager"], ref, rtol=0, atol=1e-6 * np.abs(ref).max())
    if runtime.bf16_support(torch.device("cpu"))[0]:
        err = np.abs(outs["bf16"] - ref).max() / np.abs(ref).max()
        assert 0 < err <= runtime.BF16_TOLERANCE

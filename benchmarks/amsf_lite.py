"""AMSF-Net, paper configuration vs lite: quality on the bundled sample, tiling error vs margin, CPU speed.

    .venv/bin/python benchmarks/amsf_lite.py quality [--iterations 100]
    .venv/bin/python benchmarks/amsf_lite.py margins [--core 64] [--margins 0,32,...]
    .venv/bin/python benchmarks/amsf_lite.py hr_margins [--core 128] [--margins 16,32,48,64,96]
    .venv/bin/python benchmarks/amsf_lite.py speed [--sizes 256,384] [--rounds 3]
    .venv/bin/python benchmarks/amsf_lite.py memory --configs lite --sizes 576

quality: scene-adaptive training on the sample pair through ``engine.api.fuse`` (base none, CPU, seed 0, no
time budget: both configurations get the same iterations), scored by ``engine.api.assess`` against
sample/enmap_potsdam_reference.tif; the checkpoints are kept for ``margins``.
margins: the trained net on the sample mirror-tiled to a larger scene (benchmarks/bigpair.py does the same
for the throughput pair); one central core tile run with context ``m`` is compared with the whole-scene
output on that core, relative to the scene output's largest magnitude (tests/invariance.py TILE_RTOL).
hr_margins: lite's cropped HR stage (``forward(y, z, crop)``) on one central tile (core plus the ``40r`` tile
margin, as the engine reads it) against the whole forward of that tile cut to the core, per HR-stage margin, at
the trained gain and at gain 1, relative to the largest magnitude of the tile's output.
speed: best-of-N one-core process time of ``model(y, z)`` under ``torch.inference_mode`` at 224/12 bands,
random weights with the correction switched on, NCHW vs channels-last interleaved in one process.
memory: peak RSS of one process running one such forward pass (``--configs lite --sizes 576``).
Results go to results/amsf_lite.json (docs/networks.md#amsf-net-lite quotes them).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_WORK, ROOT, load_result, log, register_package, save_result
from quality import fuse_and_assess

SAMPLE = ROOT / "sample"
CONFIGS = {"paper": {}, "lite": {"lite": True}}
VARIANTS = {  # lite variants tried on the way (docs/networks.md#amsf-net-lite)
    "lite-w16": {"lite": True, "hyper": {"width": 16}},
    "lite-c16": {"lite": True, "hyper": {"code": 16}},
    "lite-w8": {"lite": True, "hyper": {"width": 8}},
    "lite-pooled": {"lite": True, "hyper": {"local": False}},
}
RESULT = "amsf_lite"


def network_id() -> str:
    """The catalogue id of the network whose model module is ``amsf_net`` (ids live in the catalogue only)."""
    from hsifusion.models.catalogue import NETWORKS

    return next(e.id for e in NETWORKS if e.module == "amsf_net")


def checkpoint_path(work: Path, config: str) -> Path:
    return work / f"amsf_{config}.pt"


def quality(work: Path, iterations: int, configs: List[str], seed: int = 0) -> Dict:
    """PSNR/SAM/... of the configurations after ``iterations`` scene-adaptive steps on the sample."""
    rows = {}
    for config in configs:
        if config == "bicubic":  # the reference point, scored the same way
            method, params = "upsample", {"mode": "bicubic"}
        else:
            method = network_id()
            params = dict({**CONFIGS, **VARIANTS}[config], iterations=iterations, base="none", device="cpu",
                          seed=seed, max_seconds=0, save_checkpoint=str(checkpoint_path(work, config)))
        name = config if seed == 0 else f"{config} seed {seed}"
        rows[name] = fuse_and_assess({"config": config, "seed": seed}, str(SAMPLE / "potsdam_lr_hsi_x4.tif"),
                                       str(SAMPLE / "potsdam_msi_s2a.tif"),
                                       str(SAMPLE / "enmap_potsdam_reference.tif"), 4, method, params,
                                       work / f"amsf_{config}.tif")
        log(f"{name}: {rows[name]}")
    return rows


def load_trained(ckpt: Path):
    """(model in eval mode, norm) from a checkpoint written by :func:`quality`."""
    import torch

    from hsifusion.models import amsf_net

    ck = torch.load(str(ckpt), weights_only=True)
    net = amsf_net.build(ck["hsi_bands"], ck["msi_bands"], ck["ratio"], **dict(amsf_net.SPEC.defaults, **ck["hyper"]))
    net.load_state_dict(ck["state_dict"])
    return net.eval(), ck["norm"]


def trained_steps(ckpt: Path) -> int:
    """The training iterations a checkpoint written by :func:`quality` records."""
    import torch

    return int(torch.load(str(ckpt), weights_only=True)["training"]["iterations"])


def mirrored_sample(lr_side: int, norm: Dict):
    """The sample pair mirror-tiled to ``lr_side``² LR px (normalised as the engine does), as tensors."""
    import torch

    from hsifusion.engine.io.raster import open_raster

    def read(path):
        ds = open_raster(str(path))
        return ds.ReadAsArray().astype(np.float32)

    y = read(SAMPLE / "potsdam_lr_hsi_x4.tif") / norm["hsi"]
    z = read(SAMPLE / "potsdam_msi_s2a.tif") / norm["msi"]
    r = z.shape[1] // y.shape[1]

    y = np.pad(y, ((0, 0), (0, lr_side), (0, lr_side)), mode="symmetric")[:, :lr_side, :lr_side]
    z = np.pad(z, ((0, 0), (0, lr_side * r), (0, lr_side * r)), mode="symmetric")[:, :lr_side * r, :lr_side * r]
    return torch.from_numpy(np.ascontiguousarray(y))[None], torch.from_numpy(np.ascontiguousarray(z))[None], r


def margin_errors(ckpt: Path, core: int, margins: List[int], scene_lr: int, full_gain: bool = False) -> Dict:
    """Max |tile - whole| on one central core, relative to max |whole|, per margin (HR px).

    ``full_gain``: the correction at gain 1 instead of the trained ``skip_gain`` (as the anchored default
    runs it: models/anchor.py), i.e. the tiling error of the network itself.
    """
    import torch

    net, norm = load_trained(ckpt)
    if full_gain:
        with torch.no_grad():
            net.skip_gain.fill_(1.0)
    y, z, r = mirrored_sample(scene_lr, norm)
    side = z.shape[-1]
    c0 = (side // 2 - core // 2) // (8 * r) * (8 * r)
    torch.set_num_threads(2)
    with torch.inference_mode():
        whole = net(y, z)
        scale = float(whole.abs().max())
        out = {}
        for m in margins:
            lo, hi = c0 - m, c0 + core + m
            if lo < 0 or hi > side:
                continue
            t = net(y[..., lo // r:hi // r, lo // r:hi // r], z[..., lo:hi, lo:hi])
            diff = (t[..., m:m + core, m:m + core] - whole[..., c0:c0 + core, c0:c0 + core]).abs().max()
            out[m] = float(diff) / scale
            log(f"{ckpt.name}{' gain 1' if full_gain else ''} margin {m}: {out[m]:.2e} of max |x| ({scale:.3f})")
    return out


def hr_margin_errors(ckpt: Path, core: int, margins: List[int], scene_lr: int) -> Dict:
    """Max |cropped forward - whole forward cut to the core| / max |whole|, per HR-stage margin and gain."""
    import torch

    net, norm = load_trained(ckpt)
    y, z, r = mirrored_sample(scene_lr, norm)
    side, tile_margin = z.shape[-1], net.margin(r)
    c0 = (side // 2 - core // 2) // (8 * r) * (8 * r)
    lo, hi = c0 - tile_margin, c0 + core + tile_margin
    if lo < 0 or hi > side:
        raise SystemExit(f"--scene-lr {scene_lr} is too small for a {core}-px core with a {tile_margin}-px margin")
    y, z = y[..., lo // r:hi // r, lo // r:hi // r], z[..., lo:hi, lo:hi]
    crop = (tile_margin,) * 4
    trained = float(net.skip_gain.detach())
    torch.set_num_threads(2)
    out = {}
    with torch.inference_mode():
        for name, gain in (("trained gain", trained), ("gain 1", 1.0)):
            net.skip_gain.fill_(gain)
            whole = net(y, z)[..., tile_margin:-tile_margin, tile_margin:-tile_margin]
            scale = float(whole.abs().max())
            row = {}
            for m in margins:
                net.hr_stage_margin = m
                row[m] = float((net(y, z, crop=crop) - whole).abs().max()) / scale
                log(f"{ckpt.name} {name} ({gain:.4f}) HR-stage margin {m}: {row[m]:.2e} of max |x| ({scale:.3f})")
            out[f"{name} {gain:.4f}"] = row
    return out


def _random_net(config: str):
    """A ``config`` net with random weights and the correction switched on (gain 1), in eval mode."""
    import torch

    from hsifusion.models import amsf_net
    from hsifusion.models.anchor import open_inner_gain

    torch.manual_seed(0)
    net = amsf_net.build(224, 12, 4, **dict(amsf_net.SPEC.defaults, **CONFIGS[config])).eval()
    open_inner_gain(net)
    return net


def speed(config: str, sizes: List[int], rounds: int) -> Dict:
    """One-core process seconds per input Mpx, NCHW vs channels-last, interleaved; best of ``rounds``.

    Process time, not wall time: on the shared machine a process got 15-25 % of a core.
    """
    import torch

    torch.set_num_threads(1)
    net = _random_net(config)
    out = {}
    for hr in sizes:
        y, z = torch.rand(1, 224, hr // 4, hr // 4), torch.rand(1, 12, hr, hr)
        best = {"nchw": 1e9, "channels_last": 1e9}
        with torch.inference_mode():
            net(y, z)
            for _ in range(rounds):
                for layout in best:
                    net.channels_last = layout == "channels_last"
                    t0 = time.process_time()
                    net(y, z)
                    best[layout] = min(best[layout], time.process_time() - t0)
        out[hr] = {k: v / (hr * hr / 1e6) for k, v in best.items()}
        log(f"{config} {hr}^2: " + ", ".join(f"{k} {v:.1f} cpu-s/input-Mpx" for k, v in out[hr].items()))
    return out


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return float("nan")


def memory(config: str, size: int) -> Dict:
    """Peak RSS (MiB) of this process after one inference forward pass at ``size``² HR input."""
    import torch

    torch.set_num_threads(1)
    net = _random_net(config)
    y, z = torch.rand(1, 224, size // 4, size // 4), torch.rand(1, 12, size, size)
    before = _peak_rss_mib()
    with torch.inference_mode():
        net(y, z)
    row = {"before_forward_mib": before, "peak_rss_mib": _peak_rss_mib()}
    log(f"{config} {size}^2: {row}")
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("quality", "margins", "hr_margins", "speed", "memory"))
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK)
    ap.add_argument("--iterations", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--core", type=int, default=64)
    ap.add_argument("--margins", default="0,32,64,96,128,160")
    ap.add_argument("--scene-lr", type=int, default=128)
    ap.add_argument("--configs", default="paper,lite")
    ap.add_argument("--full-gain", action="store_true", help="margins: the correction at gain 1")
    ap.add_argument("--sizes", default="256")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    register_package()
    a.work.mkdir(parents=True, exist_ok=True)
    configs = a.configs.split(",")
    if a.what == "quality":
        key, value = "quality", quality(a.work, a.iterations, configs, a.seed)
    elif a.what == "margins":
        margins = [int(m) for m in a.margins.split(",")]
        key = "margins_gain1" if a.full_gain else "margins"
        value = {c: margin_errors(checkpoint_path(a.work, c), a.core, margins, a.scene_lr, a.full_gain)
                 for c in configs}
    elif a.what == "hr_margins":
        key = "hr_stage_margins"
        ckpt = checkpoint_path(a.work, "lite")
        value = {f"lite, {trained_steps(ckpt)} steps, core {a.core}": hr_margin_errors(
            ckpt, a.core, [int(m) for m in a.margins.split(",")], a.scene_lr)}
    elif a.what == "memory":  # one (config, size) per process: VmHWM is the process's own peak
        key, value = "memory", {f"{configs[0]} {a.sizes}": memory(configs[0], int(a.sizes))}
    else:
        key, value = "speed", {c: speed(c, [int(s) for s in a.sizes.split(",")], a.rounds) for c in configs}
    result = load_result(RESULT) or {}  # read now: another section may have been written meanwhile
    result[key] = {**result.get(key, {}), **value}
    save_result(RESULT, result)


if __name__ == "__main__":
    main()

"""Shared helpers of the benchmark scripts.

Package import, machine description, child processes, result files and Markdown tables. Standard library +
numpy/GDAL only (no QGIS).
"""
from __future__ import annotations

import copy
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
SAMPLE = ROOT / "sample"
SHARED = ROOT.parent / "shared" / "data" / "real"
RESULTS = BENCH / "results"
DEFAULT_WORK = Path(os.environ.get("HSIF_BENCH_WORK", "/tmp/hsifusion-bench"))
PYTHON = sys.executable
SEED = 0



def register_package():
    """Import the repo root as package ``hsifusion`` (whatever the clone's folder is called)."""
    sys.path.insert(0, str(ROOT / "tools"))
    from repo_package import register_package as register

    return register()


register_package()
from hsifusion.models import catalogue  # noqa: E402  (torch-free: the network list and kinds)

CLASSICAL = ["gsa", "glp", "sfim", "cnmf"]
NETWORKS = list(catalogue.network_ids())
SUPERVISED = list(catalogue.network_ids(catalogue.SUPERVISED))
PER_TILE = list(catalogue.network_ids(catalogue.PER_TILE))  # optimised on every tile: slow per tile
# Quick mode: small iteration budgets and the light variants so the whole run stays short on 2 cores.
QUICK_ITERATIONS = 50
# Network budgets of a run without --quick: "sample" = the catalogue's sample_budget (small CPU budgets
# that beat bicubic on the bundled sample, tested), "default" = each network exactly as a user gets it
# (anchored on its BASE, with its MAX_SECONDS and LITE defaults). Set by the scripts' --budget.
NETWORK_BUDGET = {"mode": "sample"}
LITE = [e.id for e in catalogue.NETWORKS if e.lite]


def available_methods() -> List[str]:
    """Registered method names in benchmark order (upsample, classical, networks)."""
    register_package()
    from hsifusion.engine.methods import list_methods

    known = set(list_methods())
    order = ["upsample"] + CLASSICAL + NETWORKS
    return [m for m in order if m in known] + sorted(known - set(order))


def method_params(method: str, quick: bool, device: str = "cpu", iterations: Optional[int] = None) -> Dict:
    """Parameters a benchmark passes to ``get_method``: seed fixed, CPU, quick budgets."""
    if method == "upsample":
        return {"mode": "bicubic"}
    if method not in NETWORKS:
        return {}
    p: Dict = {"device": device, "seed": SEED}
    if not quick and not iterations and NETWORK_BUDGET["mode"] == "sample":
        return {**p, **copy.deepcopy(catalogue.entry(method).sample_budget)}
    if quick or iterations:
        p["iterations"] = int(iterations or QUICK_ITERATIONS)
    if quick and method in LITE:
        p["lite"] = True
    if quick and method in PER_TILE:
        # The spec's default init_steps (500 per degradation-operator stage, x3) would otherwise dwarf the
        # iteration budget: quick mode shortens them to the same budget.
        p["hyper"] = {"init_steps": int(iterations or QUICK_ITERATIONS)}
    return p


def label(method: str, params: Optional[Dict] = None) -> str:
    if method == "upsample":
        return f"upsample ({(params or {}).get('mode', 'bicubic')})"
    if method in NETWORKS:
        p = params or {}
        h = p.get("hyper") or {}
        lite = p.get("lite") or h.get("lite")
        extra = (", lite" if lite else "") + (f", init {h['init_steps']}" if "init_steps" in h else "")
        its = p.get("iterations")
        if not (its or extra or h or set(p) - {"device", "seed"}):
            return f"{method} (defaults)"
        return f"{method} ({its if its else 'default'} it{extra})"
    return method


def sample_checkpoints(work: Path, nets: Sequence[str], iterations: int, quick: bool = False) -> Dict[str, str]:
    """Checkpoints of supervised nets trained ``iterations`` steps on the bundled sample (speed, not quality).

    Cached in ``work`` by net, iterations and mode; ``quick`` trains the lite variants (method_params).
    """
    register_package()
    from hsifusion.engine import api

    cks = {}
    for n in nets:
        ck = work / f"{n}_sample_{iterations}it{'_quick' if quick else ''}.pt"
        if not ck.exists():
            log(f"training a {n} checkpoint on the sample ({iterations} iterations; speed only)")
            out = work / f"ck_{n}.tif"
            api.fuse(str(SAMPLE / "potsdam_lr_hsi_x4.tif"), str(SAMPLE / "potsdam_msi_s2a.tif"), str(out), n,
                     dict(method_params(n, quick, iterations=iterations), save_checkpoint=str(ck)))
            out.unlink()
        cks[n] = str(ck)
    return cks


# ------------------------------------------------------------------------------------------ machine
def machine_info() -> Dict:
    info: Dict = {"date": _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
                  "python": platform.python_version(), "platform": platform.platform(),
                  "cores": os.cpu_count()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        info["cpu"] = platform.processor() or "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["ram_gib"] = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    try:
        info["loadavg"] = os.getloadavg()
    except OSError:
        pass
    try:
        import numpy
        info["numpy"] = numpy.__version__
    except ImportError:
        pass
    try:
        from osgeo import gdal
        info["gdal"] = gdal.__version__
        info["gdal_cachemax_mib"] = round(gdal.GetCacheMax() / 2**20)
    except ImportError:
        pass
    try:
        import torch
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        info["torch"] = None
    return info


# ------------------------------------------------------------------------------------ child processes
def run_child(args: Sequence[str], timeout: Optional[float] = None, env: Optional[Dict] = None,
              tree: Path = ROOT) -> Dict:
    """Run ``python benchmarks/job.py ARGS`` in a fresh process; return the JSON of its last line.

    The child reports its own peak RSS (VmHWM of /proc/self/status), so each method's memory is its
    own. On failure the dict holds ``error``. ``tree``: another checkout of the project whose job.py (and
    so engine) runs — an earlier commit, for before/after tables.
    """
    cmd = [PYTHON, str(Path(tree) / "benchmarks" / "job.py"), *map(str, args)]
    # Every job starts with no dirty pages of an earlier job's output left for the kernel to write back
    # (that writeback ran during the next job and slowed its writes 2-3x, whichever job came next).
    os.sync()
    t0 = time.perf_counter()
    e = dict(os.environ, **(env or {}))
    e.setdefault("QT_QPA_PLATFORM", "offscreen")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=e, cwd=str(tree))
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout} s", "wall": time.perf_counter() - t0}
    for line in reversed(proc.stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                res = json.loads(line)
                res["process_wall"] = time.perf_counter() - t0
                return res
            except json.JSONDecodeError:
                break
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
    return {"error": f"rc {proc.returncode}: " + " | ".join(tail), "wall": time.perf_counter() - t0}


def time_v(cmd: Sequence[str], timeout: Optional[float] = None) -> Dict:
    """Run an external command under ``/usr/bin/time -v``: wall seconds and peak RSS (MiB)."""
    full = ["/usr/bin/time", "-v", *map(str, cmd)] if Path("/usr/bin/time").exists() else list(map(str, cmd))
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(full, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout} s"}
    wall = time.perf_counter() - t0
    res: Dict = {"seconds": wall, "rc": proc.returncode}
    for line in proc.stderr.splitlines():
        if "Maximum resident set size" in line:
            res["peak_rss_mib"] = int(line.split(":")[1]) / 1024
    if proc.returncode != 0:
        res["error"] = " | ".join(proc.stderr.strip().splitlines()[-3:])
    return res


# ------------------------------------------------------------------------------------------ training
MARK_DB = 3.0  # the training benchmarks' mark: bicubic + 3 dB


def psnr_good_bands(ref, est, valid, good) -> float:
    """Mean PSNR over good bands on valid pixels, as engine.quality.metrics defines it.

    10 log10(peak² / MSE) per band, peak = the reference band's max (tests/benchmarks/test_device_speed.py
    checks it against that module).
    """
    import numpy as np

    x, y = ref[good][:, valid].astype(np.float64), est[good][:, valid].astype(np.float64)
    mse = ((x - y) ** 2).mean(axis=1)
    return float(np.mean(10 * np.log10(x.max(axis=1) ** 2 / np.maximum(mse, 1e-30))))


def curve_summary(points: List, bicubic: float) -> Dict:
    """The first evaluated step at or above bicubic + MARK_DB, and the curve's end."""
    mark = bicubic + MARK_DB
    hit = next((p for p in points if p[2] >= mark), None)
    return {"bicubic_psnr": bicubic, "mark": mark, "points": points, "reached": hit is not None,
            "iterations_to_mark": hit[0] if hit else None, "seconds_to_mark": hit[1] if hit else None,
            "final_psnr": points[-1][2] if points else None,
            "train_seconds": points[-1][1] if points else None,
            "seconds_per_step": points[-1][1] / max(1, points[-1][0]) if points else None}


def training_probe(method, iterations: int, every: int, evaluate, sync=None):
    """A feedback for ``NetworkMethod.fit`` that times training alone.

    Every ``every`` steps (and the last) the clock is paused (after ``sync()``, for queued device work),
    ``evaluate()`` runs with the model in eval mode and no grad, and ``(step, training seconds, value)`` joins
    ``probe.points``. Relies on fit calling ``setProgress`` once per training step while the model is in train
    mode.
    """
    register_package()
    import torch

    from hsifusion.engine.feedback import LogFeedback

    class Probe(LogFeedback):
        def __init__(self):
            super().__init__()
            self.points: List = []
            self.n, self.paused, self.t0 = 0, 0.0, time.perf_counter()

        def setProgress(self, progress):  # noqa: N802 (QGIS' name)
            super().setProgress(progress)
            m = method.model
            if m is None or not m.training:
                return
            self.n += 1
            if self.n % every and self.n != iterations:
                return
            if sync is not None:
                sync()
            ta = time.perf_counter()
            m.eval()
            with torch.no_grad():
                value = evaluate()
            m.train()
            self.points.append((self.n, ta - self.t0 - self.paused, value))
            self.paused += time.perf_counter() - ta

    return Probe()


# ------------------------------------------------------------------------------------------ results
def save_result(name: str, data: Dict, results: Path = RESULTS) -> Path:
    """Write results/<name>.json with a record of the command that produced it and when."""
    results.mkdir(parents=True, exist_ok=True)
    if name != "run_all":
        data = dict(data, ran={"command": command_line(),
                               "finished": _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
                               "loadavg": os.getloadavg(), "budget": NETWORK_BUDGET["mode"]})
    path = results / f"{name}.json"
    path.write_text(json.dumps(data, indent=1, default=_json_default))
    return path


def load_result(name: str, results: Path = RESULTS) -> Optional[Dict]:
    path = results / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _json_default(o):
    try:
        import numpy as np
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:
        pass
    return str(o)


def fmt(v, digits: int = 2) -> str:
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    try:
        if v != v:  # NaN
            return "—"
    except TypeError:
        return str(v)
    if isinstance(v, int):
        return str(v)
    return f"{v:.{digits}f}"


def md_table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(out)


def write_doc_section(section: str, text: str, before: str, doc: Path = ROOT / "docs" / "benchmarks.md") -> None:
    """Replace the ``section`` heading's section of ``doc`` with ``text`` (new: before the ``before`` heading)."""
    content = doc.read_text()
    block = f"{section}\n\n{text}\n\n"
    if section in content:
        start = content.index(section)
        end = content.index("\n## ", start + len(section)) + 1
        content = content[:start] + block + content[end:]
    else:
        at = content.index(before)
        content = content[:at] + block + content[at:]
    doc.write_text(content)


def command_line() -> str:
    """The command that is running, relative to the repo root."""
    argv = [os.path.relpath(a, ROOT) if os.path.isabs(a) and a.startswith(str(ROOT)) else a for a in sys.argv]
    py = os.path.relpath(sys.executable, ROOT) if sys.executable.startswith(str(ROOT)) else sys.executable
    return " ".join([py, *argv])


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

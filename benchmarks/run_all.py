"""Run every benchmark and write docs/benchmarks.md (one command).

    .venv/bin/python benchmarks/run_all.py [--quick] [--work DIR]
                                           [--only quality,real_pairs,throughput,memory,training,device]
                                           [--assemble-only]

Runs, one after the other (never two measurements at once): benchmarks/quality.py,
benchmarks/real_pairs.py, benchmarks/throughput.py, benchmarks/memory.py, benchmarks/training_speed.py and
benchmarks/device_speed.py (on the GPU when torch sees one, else the CPU). Each writes
benchmarks/results/<name>.json; this script then assembles docs/benchmarks.md from those files with
the machine, the date, the command and the seeds. ``--assemble-only`` rebuilds the Markdown from
existing results. Large temporary rasters go to --work (default /tmp/hsifusion-bench, ~5 GB free
needed in quick mode, ~25 GB in full mode); delete it afterwards.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    DEFAULT_WORK,
    LITE,
    NETWORK_BUDGET,
    QUICK_ITERATIONS,
    ROOT,
    SEED,
    command_line,
    fmt,
    load_result,
    log,
    machine_info,
    save_result,
)

DOC = ROOT / "docs" / "benchmarks.md"
PARTS = ("quality", "real_pairs", "throughput", "memory", "training", "device")
REAL_PAIR_NETWORK_SECONDS = 60  # cap of each network's run on a real pair (full mode; quick mode: none)


def _section_timing(name: str, fn, *args) -> float:
    t0 = time.perf_counter()
    log(f"=== {name} ===")
    fn(*args)
    return time.perf_counter() - t0


def _ran(name: str) -> str:
    """One line saying which command produced a section's results and when (from its results JSON)."""
    r = (load_result(name) or {}).get("ran")
    if not r:
        return ""
    load = ", ".join(f"{v:.1f}" for v in (r.get("loadavg") or []))
    note = f" {r['note']}." if r.get("note") else ""
    return (f"*Produced by `{r['command']}`, finished {r['finished']}"
            + (f" (load average then {load})" if load else "") + f".{note}*\n")


GPU_MISSING = ("GPU: not measured — no GPU machine was lent to the sessions that ran these benchmarks. On one: "
               "`.venv/bin/python benchmarks/device_speed.py --export-npz gpu/sample.npz` here, then on the GPU "
               "machine (torch, no GDAL) `python3 benchmarks/device_speed.py --device cuda --sample-npz "
               "gpu/sample.npz`, bring back `benchmarks/results/device_speed_cuda.json` and run "
               "`benchmarks/run_all.py --assemble-only` (benchmarks/README.md).")


def gpu_line() -> str:
    d = load_result("device_speed_cuda")
    if not d:
        return "none lent to the sessions that ran these; every GPU figure is missing (see 'Networks on one device')."
    return f"{d['machine'].get('device_name')}: see 'Networks on one device' below."


def assemble(meta: dict) -> str:
    import device_speed
    import memory
    import quality
    import real_pairs
    import throughput
    import training_speed

    q, t, m, tr = (load_result(n) for n in ("quality", "throughput", "memory", "training_speed"))
    mi = meta["machine"]
    quick = meta.get("quick")
    lines = [
        "# Benchmarks",
        "",
        ("> **Quick mode** (`--quick`): networks with small iteration budgets and light variants, smaller "
         "rasters. The numbers show the shape of the results, not the final figures; the full run is "
         "`.venv/bin/python benchmarks/run_all.py` (no flag).\n" if quick else ""),
        f"- **Command**: `{meta['command']}` (from the repository root; "
        f"{fmt(meta.get('total_seconds', 0) / 60, 1)} min)",
        f"- **Date**: {mi['date']}",
        f"- **Machine**: {mi.get('cpu', '?')}, {mi.get('cores')} cores, {mi.get('ram_gib')} GiB RAM; "
        f"load average at start {', '.join(f'{v:.1f}' for v in mi.get('loadavg', []))}"
        + (" (the machine was busy: absolute times are pessimistic, ratios measured in the same run are the "
           "meaningful figures)" if (mi.get("loadavg") or [0])[0] > 1.5 else ""),
        "- **Sections** may come from separate invocations (`--only`); each says below which command produced "
        "it and when. `.venv/bin/python benchmarks/run_all.py` with no flag runs all six in one go.",
        f"- **Software**: Python {mi.get('python')}, torch {mi.get('torch')} ({mi.get('torch_threads')} threads), "
        f"GDAL {mi.get('gdal')} (block cache GDAL_CACHEMAX = {mi.get('gdal_cachemax_mib')} MiB), "
        f"numpy {mi.get('numpy')}; {mi.get('platform')}",
        f"- **GPU**: {gpu_line()}",
        f"- **Seeds**: every method and simulation uses seed {SEED}; simulations are noise-free. "
        + (f"Quick mode: networks {QUICK_ITERATIONS} iterations, lite variants ({', '.join(LITE)})." if quick else
           ("Networks: each with its defaults (anchored on its BASE, MAX_SECONDS, LITE: engine/methods/network.py)."
            if meta.get("budget") == "default"
            else "Networks: the catalogue's `sample_budget` (models/catalogue.py) — the small CPU budgets at which "
                 "each network beats bicubic on the bundled sample (tested) — on every scene and ratio.")),
        "- Raw results: `benchmarks/results/*.json`; scripts: `benchmarks/` (each runs alone, `--help`).",
        "",
        "## Quality (Wald protocol, real scenes)",
        "",
    ]
    if q:
        lines += ["![PSNR against run time](benchmarks_psnr_time.png)", "", quality.markdown(q), ""]
        lines += ["Scenes: EnMAP L2A Potsdam blocks (© DLR, EnMAP-Box test data), Samson, Paris EO-1 Hyperion "
                  "(../shared/data/real; see benchmarks/scenes.py for crops, wavelengths and the dummy pixel grid "
                  "given to the non-georeferenced .mat scenes). LR-HSI: Gaussian PSF, FWHM = ratio HR px, "
                  "block-centred decimation; MSI: the sensor's real spectral response (S2A for EnMAP and "
                  "Hyperion, Nikon 5100 RGB camera for the VNIR-only Samson). Time = one `engine.api.fuse` call "
                  "on the CPU, training/optimisation included.", ""]
    else:
        lines += ["Not run.", ""]
    lines += [_ran("quality"), "## Real pairs (two sensors, not cross-calibrated)", ""]
    rp = load_result("real_pairs")
    lines += [real_pairs.INTRO, "", real_pairs.markdown(rp), ""] if rp else ["Not run.", ""]
    lines += [_ran("real_pairs"), "## Throughput against the I/O limit", ""]
    lines += [throughput.markdown(t), ""] if t else ["Not run.", ""]
    lines += [_ran("throughput"), "## Peak memory at two output sizes", ""]
    lines += [memory.markdown(m), ""] if m else ["Not run.", ""]
    lines += [_ran("memory"), "## Scene-adaptive training: time to bicubic + 3 dB (bundled sample, x4)", ""]
    lines += [training_speed.markdown(tr), ""] if tr else ["Not run.", ""]
    lines += [_ran("training_speed"), "## Networks on one device: CPU, and GPU where one was lent", ""]
    lines += ["`benchmarks/device_speed.py` (GDAL-free, so it runs on the GPU machine as it is): time to bicubic "
              "+ 3 dB with the engine's default iterations, and inference per HR tile size through "
              "`NetworkMethod.apply` (host-device copies included). Same protocol on every device.", ""]
    for dev in ("cuda", "cpu"):
        d = load_result(f"device_speed_{dev}")
        lines += [device_speed.markdown(d), ""] if d else []
    if not load_result("device_speed_cuda"):
        lines += [GPU_MISSING, ""]
    notes = ROOT / "benchmarks" / "NOTES.md"
    if notes.exists():
        lines += [notes.read_text(), ""]
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK)
    ap.add_argument("--only", help=f"comma-separated subset of {','.join(PARTS)}")
    ap.add_argument("--assemble-only", action="store_true")
    ap.add_argument("--budget", choices=("sample", "default"), default="sample",
                    help="network budgets without --quick: 'sample' = the catalogue's tested sample_budget (minutes), "
                         "'default' = each network's default (hours on 2 CPU cores)")
    a = ap.parse_args(argv)
    NETWORK_BUDGET["mode"] = a.budget
    parts = a.only.split(",") if a.only else list(PARTS)
    meta = load_result("run_all") if a.assemble_only else None
    if not a.assemble_only or meta is None:
        meta = {"command": command_line(), "quick": a.quick, "budget": a.budget, "machine": machine_info(),
                "parts": parts}
        t0 = time.perf_counter()
        q = ["--quick"] if a.quick else []
        w = ["--work", str(a.work)]
        import device_speed
        import memory
        import quality
        import real_pairs
        import throughput
        import training_speed

        times = {}
        if "quality" in parts:
            times["quality"] = _section_timing("quality", quality.main, q + w + ["--budget", a.budget])
        if "real_pairs" in parts:
            nets = [] if a.quick else ["--networks", "--max-seconds", str(REAL_PAIR_NETWORK_SECONDS)]
            times["real_pairs"] = _section_timing("real_pairs", real_pairs.main, w + nets)
        if "throughput" in parts:
            times["throughput"] = _section_timing("throughput", throughput.main, q + w)
        if "memory" in parts:
            times["memory"] = _section_timing("memory", memory.main, q + w)
        if "training" in parts:
            # every supervised net of the catalogue (quick: 60 iterations, lite variants)
            times["training"] = _section_timing("training", training_speed.main, q)
        if "device" in parts:
            times["device"] = _section_timing("device", device_speed.main, q)
        meta["section_seconds"] = times
        meta["total_seconds"] = time.perf_counter() - t0
        save_result("run_all", meta)
    DOC.write_text(assemble(meta))
    log(f"wrote {DOC}")


if __name__ == "__main__":
    main()

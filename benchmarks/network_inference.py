"""Whole scenes with the networks: CPU inference speed and peak memory, before and after, at two sizes.

    .venv/bin/python benchmarks/network_inference.py --label after [--sizes 1024,2048] [--nets ...]
    .venv/bin/python benchmarks/network_inference.py --label before --tree /path/to/old/checkout --sizes 1024
    .venv/bin/python benchmarks/network_inference.py --write-doc     # the docs/benchmarks.md section

Every row is one ``engine.api.fuse`` call in its own process (benchmarks/job.py, from ``--tree``: the
checkout whose engine runs, so an earlier commit gives the "before" rows), on the mirror-tiled real EnMAP
pair of benchmarks/bigpair.py (``size``² HR px x 224 bands, Sentinel-2A MSI, x4), CPU, 2 torch threads,
BASE=none (the network's own output: what a whole scene costs when the network is used):

- supervised networks from a checkpoint trained 10 iterations on the bundled sample by the same tree
  (speed, not quality), default and ``lite`` configuration where the catalogue has one;
- fit-once networks after their per-pair fit at 20 iterations (fit seconds reported, not in Mpx/s);
- per-tile networks (the old UMSFT) optimise every tile, so their inference *is* that optimisation:
  10 iterations + 10 initialisation steps per tile on a 256² crop (the default budget is 15x that), and
  the row says so.

Mpx/s counts the tile phase (reading, network, writing); the 9 Mpx projection = fit + 9 Mpx / (tile phase
Mpx/s), on these 2 cores. Tile: the tree's default (256 before; automatic = the network's measured tile after).
"flat —": the 2048² run was left out (the paper configuration of AMSF-Net: 12 minutes at its measured speed;
the per-tile options: one crop). Run to run, the same row varied by up to +-30 % on this shared machine
(back-to-back pairs of SSJCN: 0.047-0.054 Mpx/s, CoFusion lite 0.040-0.049; benchmarks/NOTES.md, "Heap arenas"):
a row within that of the goal is not a clear pass or fail. AMSF-Net and CoFusion run their lite configuration by
default (catalogue ``lite_by_default``): their plain rows are the paper configuration, an option (LITE unticked)
like UMSFT's per-tile row.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bigpair import build_pair
from common import (
    DEFAULT_WORK,
    PYTHON,
    ROOT,
    SAMPLE,
    SEED,
    fmt,
    load_result,
    log,
    md_table,
    run_child,
    save_result,
    write_doc_section,
)
from throughput import crop_pair

SCENE_MPX = 9.0  # an EnMAP tile fused with Sentinel-2 at 10 m: ~3000 x 3000 HR px
PER_TILE_CROP = 256
FIT_ITERATIONS = 20
CHECKPOINT_ITERATIONS = 10
GOAL_MPX_PER_S, GOAL_PEAK_MIB = 0.05, 2048
SECTION = "## Whole scenes with the networks: CPU inference, before and after"
NEXT_SECTION = "## Peak memory at two output sizes"

_CATALOGUE = """
import json, sys
sys.path.insert(0, "tools")
from repo_package import register_package
register_package()
from hsifusion.models.catalogue import NETWORKS
print(json.dumps([{"id": e.id, "kind": e.kind, "lite": e.lite, "per_tile_option": getattr(e, "per_tile_option", False)}
                  for e in NETWORKS]))
"""


def catalogue(tree: Path) -> List[Dict]:
    """The network entries of ``tree`` (ids, kinds and lite flags differ between commits)."""
    out = subprocess.run([PYTHON, "-c", _CATALOGUE], capture_output=True, text=True, cwd=str(tree), check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def cases(entries: List[Dict]) -> List[Dict]:
    """One measured configuration per network (and per lite variant)."""
    rows = []
    for e in entries:
        for lite in ((False, True) if e["lite"] else (False,)):
            rows.append({"net": e["id"], "kind": e["kind"], "lite": lite, "has_lite": e["lite"],
                         "label": e["id"] + (" lite" if lite else "")})
            if e.get("per_tile_option"):  # the per-tile optimisation offered as an option (PER_TILE)
                rows.append({"net": e["id"], "kind": "per-tile", "lite": lite, "has_lite": e["lite"], "per_tile": True,
                             "label": e["id"] + (" lite" if lite else "") + " per-tile"})
    return rows


def configuration(case: Dict) -> Dict:
    """The LITE parameter of a row, always explicit: its default differs between networks and commits."""
    return {"lite": case["lite"]} if case["has_lite"] else {}


def checkpoint(tree: Path, work: Path, case: Dict) -> str:
    """A checkpoint of ``case`` trained by ``tree`` on the bundled sample (cached per tree and variant)."""
    tag = "lite" if case["lite"] else "paper"
    ck = work / f"{tree.name}_{case['net']}_{tag}.pt"
    if not ck.exists():
        params = {"iterations": CHECKPOINT_ITERATIONS, "device": "cpu", "seed": SEED, "base": "none",
                  "save_checkpoint": str(ck), **configuration(case)}
        res = run_child(["fuse", "--hsi", SAMPLE / "potsdam_lr_hsi_x4.tif", "--msi", SAMPLE / "potsdam_msi_s2a.tif",
                         "--out", work / "ck_out.tif", "--method", case["net"], "--params", json.dumps(params)],
                        tree=tree)
        if "error" in res:
            raise RuntimeError(f"checkpoint of {case['label']}: {res['error']}")
    return str(ck)


def run_case(tree: Path, work: Path, pair: Dict, case: Dict, tile: Optional[int]) -> Dict:
    params: Dict = {"device": "cpu", "seed": SEED, "base": "none"}
    hsi, msi, note = pair["hsi"], pair["msi"], ""
    if case["kind"] == "supervised":
        params["checkpoint"] = checkpoint(tree, work, case)
        note = "checkpoint"
    elif case["kind"] == "per-tile":
        crop = crop_pair(pair, PER_TILE_CROP, work)
        hsi, msi = crop["hsi"], crop["msi"]
        if case.get("per_tile"):  # ITERATIONS split over 3 initialisation stages, the main loop, the distillation
            params.update(per_tile=True, iterations=50)
        else:
            params.update(iterations=10, hyper={"init_steps": 10})
        params.update(configuration(case))
        note = f"optimised per tile, 10 it + 10 init per tile, {PER_TILE_CROP}² crop"
    else:
        params.update(iterations=FIT_ITERATIONS, **configuration(case))
        note = f"after a {FIT_ITERATIONS}-iteration fit"
    args = ["fuse", "--hsi", hsi, "--msi", msi, "--out", work / "out.tif", "--method", case["net"],
            "--params", json.dumps(params), "--phases"]
    if tile is not None:
        args += ["--tile", tile]
    log(f"network_inference: {case['label']} ({note}) on {Path(msi).name}")
    res = run_child(args, tree=tree)
    res.update(label=case["label"], kind=case["kind"], note=note)
    log(f"  -> {fmt(res.get('tile_mpx_per_s'), 4)} Mpx/s, peak {fmt(res.get('peak_rss_mib'), 0)} MiB "
        f"{res.get('error', '')}")
    return res


def run(label: str, tree: Path, sizes: List[int], nets: Optional[List[str]], tile: Optional[int],
        work: Path) -> Dict:
    work = work / "network_inference"
    work.mkdir(parents=True, exist_ok=True)
    todo = [c for c in cases(catalogue(tree)) if not nets or c["label"] in nets]
    # Rows of earlier runs with the same label are kept unless measured again (``--nets`` reruns a few).
    res: Dict = {"label": label, "tree": str(tree), "sizes": sizes,
                 "rows": (load_result(f"network_inference_{label}") or {}).get("rows", {})}
    for size in sizes:
        pair = build_pair(work.parent / "bigpair", size)
        for case in todo:
            if case["kind"] == "per-tile" and size != sizes[0]:
                continue  # one crop whatever the size
            res["rows"].setdefault(case["label"], {})[str(size)] = run_case(tree, work, pair, case, tile)
            save_result(f"network_inference_{label}", res)  # after every row: a long run can be stopped
    save_result(f"network_inference_{label}", res)
    return res


def _cell(row: Optional[Dict], key: str, digits: int) -> str:
    if not row:
        return "—"
    if "error" in row:
        return "error"
    return fmt(row.get(key), digits)


def markdown(before: Optional[Dict], after: Optional[Dict]) -> str:
    out = [__doc__.split("\n\n", 2)[2].strip(), ""]
    head = ["network", "run", "before: Mpx/s (s/Mpx)", "before: peak MiB", "after: Mpx/s (s/Mpx)",
            "after: peak MiB 1024² / 2048²", "after: 9 Mpx scene (2 cores)", "goal ≥ 0.05 Mpx/s, < 2 GB flat"]
    rows = []
    labels = list(dict.fromkeys(list((after or {}).get("rows", {})) + list((before or {}).get("rows", {}))))
    for name in labels:
        b = min(((before or {}).get("rows", {}).get(name) or {}).values(), key=lambda r: -r.get("mpx", 0),
                default=None)
        a_rows = (after or {}).get("rows", {}).get(name) or {}
        a1, a2 = a_rows.get("1024"), a_rows.get("2048")
        a = a1 or a2

        def speed(r):
            v = (r or {}).get("tile_mpx_per_s")
            return f"{v:.3g} ({1 / v:.0f})" if v else _cell(r, "tile_mpx_per_s", 3)

        proj, verdict = "—", "—"
        if a and a.get("tile_mpx_per_s"):
            secs = a.get("fit_seconds", 0) + SCENE_MPX / a["tile_mpx_per_s"]
            proj = f"{secs / 60:.1f} min"
            peaks = [r["peak_rss_mib"] for r in (a1, a2) if r and "peak_rss_mib" in r]
            flat = "—" if len(peaks) < 2 else "yes" if peaks[1] <= 1.2 * peaks[0] else "no"
            verdict = (f"speed {'yes' if a['tile_mpx_per_s'] >= GOAL_MPX_PER_S else 'no'}, "
                       f"< 2 GB {'yes' if max(peaks) < GOAL_PEAK_MIB else 'no'}, flat {flat}")
        run_note = (a or b or {}).get("note", "")
        if b and a and b.get("note") != a.get("note"):
            run_note = f"before: {b.get('note')}; after: {a.get('note')}"
        rows.append([name, run_note, speed(b), _cell(b, "peak_rss_mib", 0), speed(a),
                     f"{_cell(a1, 'peak_rss_mib', 0)} / {_cell(a2, 'peak_rss_mib', 0)}", proj, verdict])
    out.append(md_table(head, rows))
    out.append("\n" + CHANGES)
    for tag, r in (("before", before), ("after", after)):
        ran = (r or {}).get("ran") or {}
        if ran:
            load = ", ".join(f"{v:.1f}" for v in ran.get("loadavg") or [])
            out.append(f"\n*{tag}: `{ran.get('command')}` ({r.get('tree')}), finished {ran.get('finished')} "
                       f"(load average then {load}).*")
    return "\n".join(out)


CHANGES = """What the speed work changed (details, margins and measurements per network in docs/networks.md):

- **Every network**: tiles run under `torch.inference_mode`; the output tile is scaled in place and cropped into
  recycled buffers (no second and third copy of a padded 224-band tile); memory freed by the fit is returned
  before the tiles; TILE_SIZE 0 (the default everywhere) takes each network's tile from its `NetSpec.tile`,
  chosen from measured speed and peak memory: 256 for every network (larger tiles were at most marginally
  faster and broke 2 GB) but the per-pixel Spectral MLP (1024). Building a network method makes the process's
  later threads share one glibc heap arena (engine/pipeline/memory.py): each thread's arena had kept its own
  high-water mark of freed activations (peak 2.25-2.33 GB at 1024² for CoFusion lite, AMSF-Net lite and the
  CoFusion paper configuration against 1.6-2.0 GB with one arena, same speed within the noise;
  benchmarks/NOTES.md, "Heap arenas"). Within a network's tile loop, large activations now stay on that heap
  between tiles (`activations_on_heap`, up to 128 MiB each): glibc had mapped every allocation above 32 MB
  afresh, so every tile faulted in ~1.3 GB of new zeroed pages (10-13 s of kernel time in a 20 s SSJCN run);
  now 10x fewer faults and 1.14-1.5x the tile speed, for 0.2-0.6 GB more at the peak (the heap fragments).
  Per configuration as measured (`NetSpec.heap_tiles`): not the paper configurations of AMSF-Net and
  CoFusion, whose larger tiles fragmented the heap to 5.4-6.9 GB and 2.06-2.27 GB. Tile outputs waiting to be
  written are mappings of their own, outside that heap; after the loop glibc's settled thresholds return and
  the freed heap goes back to the OS.
- **Configuration**: AMSF-Net and CoFusion run their LITE configuration by default (catalogue
  `lite_by_default`); the paper configuration is LITE unticked, its measured cost in the parameter's help, and
  a checkpoint keeps the configuration it was trained with.
- **AMSF-Net**: channels-last body, in-place HR head. Its paper configuration costs ~9.3 TFLOP per input Mpx at
  224 bands (measured with torch.utils.flop_counter) and needs its 160 px margin (whole-tile pooling and grid
  attention: tiled outputs differ from untiled by ~0.5 % at any margin), so it cannot reach the goal on 2 cores
  by its own arithmetic. LITE (non-paper, REC) costs 9.4x fewer FLOPs, tiles within 1e-4, and is as accurate as
  the paper configuration on the bundled sample at 100 steps (PSNR +0.01 dB, SAM -1.4 deg over two seeds).
  Lite on the CPU now runs its HR stage (94 % of its FLOPs) on the tile's core plus 32 px only, its LR stages on
  the whole 40r-margin tile (REC, docs/networks.md#amsf-net-lite: 1730 instead of 4920 GFLOP per core Mpx at
  a 256 tile, outputs within 2.3e-7 of the whole-tile forward); the anchored default (BASE=glp) crops too.
- **CoFusion**: channels-last, the two-way mask softmax as a sigmoid, the HSI head before the up-sampling, the
  up-sampled HSI made only for the final residual (outputs identical within 1e-6). ~2.7 TFLOP per input Mpx
  and a 64 px margin bound it far below the goal; LITE halves the arithmetic and, with two dual blocks per
  level instead of 6/12/21, sees less far: it tiles with its own measured margin of 48 px (3e-6 of the largest
  value; the paper configuration needs 64), so a 256 px tile computes 352² instead of 384² input pixels. On the
  CPU the level-1 merge, `up1`, the tail and the bilinear skip run on the core plus 3 px only (their reach;
  exact up to float rounding), about 15 % of a lite tile.
- **SSJCN**: channels-last (its strided depthwise degradation 6x faster); margin 64 -> 24 px at x4, measured
  with trained weights (2e-7 of the maximum at 24 px with the pooled vectors shared between tiles).
- **UDS2C2**: the HR loss terms of its third fit stage in checkpointed 64-row strips (fit peak 4.5 -> 1.4 GB on
  the 512² HR fit crop, same loss and gradients up to summation order).
- **UMSFT**: fit once by default (REC): UMSFT is optimised once on a 32-LR-px crop as the paper optimises any
  pair, and its estimate distilled into a small local map (receptive field 3r + 2) applied per tile; the
  paper's per-tile optimisation stays available as PER_TILE (its cost quoted by the parameter's help). The
  fit-once map's quality on the sample only just beats bicubic (23.64 vs 23.56 dB, SAM 11.6 vs 12.3 deg).
- **Spectral MLP** (new, after SpectraLift): per-pixel map plus LR residual injection, fit once.
- **Optional runtimes** (BACKEND, supervised networks; engine/pipeline/runtime.py has the table): `compile`
  (torch.compile: SSJCN tiles 2.0x faster, outputs within 4e-7, after ~3 minutes of compilation on the first
  tile and again on the first edge tile; CoFusion's compilation did not finish within 15 minutes) and `bf16`
  (bfloat16 autocast: 1.2-1.7x, outputs within 2^-8 of the largest output, CPUs with avx512_bf16/AMX only).
  Eager stays the default: compile pays minutes per run and needs a C compiler, bf16 is not float32-exact.
  ONNX Runtime was not tried (one more large dependency for what torch.compile already covers).
- **GPU**: no GPU machine was lent to this task, so no GPU row; `benchmarks/device_speed.py` is ready for one.
"""


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--label", choices=("before", "after"))
    ap.add_argument("--tree", type=Path, default=ROOT, help="checkout whose engine runs (default: this one)")
    ap.add_argument("--sizes", default="1024,2048")
    ap.add_argument("--nets", help="comma-separated row labels: '<id>', '<id> lite', '<id> per-tile', "
                    "'<id> lite per-tile' (default: every row)")
    ap.add_argument("--tile", type=int, help="tile size (default: the tree's default)")
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK)
    ap.add_argument("--write-doc", action="store_true", help="write the docs/benchmarks.md section from results")
    a = ap.parse_args(argv)
    if a.label:
        run(a.label, a.tree.resolve(), [int(s) for s in a.sizes.split(",")],
            a.nets.split(",") if a.nets else None, a.tile, a.work)
    text = markdown(load_result("network_inference_before"), load_result("network_inference_after"))
    if a.write_doc:
        write_doc_section(SECTION, text, NEXT_SECTION)
    print(text)


if __name__ == "__main__":
    main()

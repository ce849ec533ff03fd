"""Networks against GLP and bicubic with their defaults: every simulated scene of quality.py (x4, x8), the real pairs.

    nice -n 10 .venv/bin/python benchmarks/network_vs_glp.py --networks a,b [--work DIR] [--cases quality,real]

Rows: bicubic, GLP, and each network with its defaults (BASE=glp: anchored) and with BASE=none (the network
alone), each through ``engine.api.fuse`` (seed 0, CPU) and assessed by ``engine.api.assess``. The scenes and
the pairs are quality.py's and real_pairs.py's. Default networks: the catalogue's fit-once ones (fast enough to
run everywhere). Writes results/network_vs_glp.json and prints a Markdown table with the mean gain over GLP.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_WORK, SEED, catalogue, fmt, log, md_table, register_package, save_result
from quality import fuse_and_assess, make_pair
from real_pairs import build_cases
from scenes import scenes

REFERENCES = {"bicubic": ("upsample", {"mode": "bicubic"}), "glp": ("glp", {})}


def variants(networks: List[str], alone: bool = True) -> Dict[str, tuple]:
    """Label -> (method, params): the references, then each network with BASE=glp (its default) and none."""
    out = dict(REFERENCES)
    for net in networks:
        out[f"{net} (base glp)"] = (net, {"seed": SEED, "device": "cpu"})
        if alone:
            out[f"{net} (base none)"] = (net, {"seed": SEED, "device": "cpu", "base": "none"})
    return out


def cases(work: Path, kinds: List[str]) -> List[Dict]:
    """(key, hsi, msi, reference, ratio, kind) of every simulated scene/ratio and real pair asked for."""
    out = []
    if "quality" in kinds:
        for sc in scenes(work / "quality"):
            for r in sc["ratios"]:
                hsi, msi, _ = make_pair(sc, r, work / "quality")
                out.append({"case": f"{sc['key']} x{r}", "hsi": hsi, "msi": msi, "reference": sc["reference"],
                            "ratio": r, "kind": "simulated"})
    if "real" in kinds:
        for c in build_cases(work / "real_pairs"):
            out.append({"case": c["key"], "hsi": c["hsi"], "msi": c["msi"], "reference": c["reference"],
                        "ratio": c["ratio"], "kind": "real"})
    return out


def run(work: Path, kinds: List[str], networks: List[str], alone: bool = True,
        result: str = "network_vs_glp") -> Dict:
    register_package()
    rows, todo = [], variants(networks, alone)
    for c in cases(work, kinds):
        for name, (method, params) in todo.items():
            log(f"vs glp: {c['case']} {name}")
            row = {"case": c["case"], "kind": c["kind"], "ratio": c["ratio"], "variant": name, "params": params}
            out = work / f"vs_glp_{c['case'].replace(' ', '_')}_{name.replace(' ', '_').strip(')')}.tif"
            rows.append(fuse_and_assess(row, c["hsi"], c["msi"], c["reference"], c["ratio"], method, params, out,
                                        extra=("network_used", "heldout_gain_db")))
    data = {"rows": rows, "variants": list(todo)}
    save_result(result, data)
    return data


def markdown(data: Dict) -> str:
    rows = data["rows"]
    table, gains = [], {v: [] for v in data["variants"]}
    for case in dict.fromkeys(r["case"] for r in rows):
        sub = {r["variant"]: r for r in rows if r["case"] == case}
        glp = sub.get("glp", {}).get("PSNR")
        cells = [case]
        for v in data["variants"]:
            r = sub.get(v, {})
            if "PSNR" not in r:
                cells.append("error")
                continue
            cells.append(f"{fmt(r['PSNR'])} / {fmt(r['SAM'])} / {fmt(r['seconds'], 1)}")
            if glp is not None and r["kind"] == "simulated":
                gains[v].append(r["PSNR"] - glp)
        table.append(cells)
    head = ["case"] + [f"{v}: PSNR dB / SAM ° / s" for v in data["variants"]]
    mean = ["mean Δ PSNR vs GLP (simulated)"] + [fmt(sum(g) / len(g)) if g else "" for g in gains.values()]
    return md_table(head, table + [mean])


def main(argv=None) -> Dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK)
    ap.add_argument("--cases", default="quality,real", help="quality (simulated scenes), real (real pairs)")
    ap.add_argument("--networks", default=",".join(catalogue.network_ids(catalogue.FIT_ONCE)),
                    help="comma-separated network ids (default: the fit-once networks)")
    ap.add_argument("--defaults-only", action="store_true", help="each network with its defaults only (no BASE=none)")
    ap.add_argument("--result", default="network_vs_glp", help="name of the results/*.json file written")
    a = ap.parse_args(argv)
    data = run(a.work, a.cases.split(","), a.networks.split(","), not a.defaults_only, a.result)
    print(markdown(data))
    return data


if __name__ == "__main__":
    main()

"""``fuse auto``: pick the method by self-validation on the pair itself, then fuse with it.

Each candidate is fitted and run on the pair reduced by the ratio (engine/quality/selfval.py: the LR-HSI and
the MSI degraded once more) and scored against the LR-HSI. Rank rule (selfval.rank): the highest PSNR
(to 0.01 dB), then the lowest SAM. The table is logged, written into the output's metadata as
``HSIFUSION_AUTO_TABLE`` (JSON) and optionally to a CSV / HTML report; the winner then fuses the
full-scale pair through :func:`engine.api.fuse`.

Candidates: bicubic and the classical methods by default. Networks are candidates only when named and
given a time budget (``network_seconds``): each trains on the reduced pair within it (MAX_SECONDS) and
is stopped at twice the budget if it does not honour it (an error row), then trains again on the full
pair if it wins.
"""
from __future__ import annotations

import csv
import html
import json
from typing import Dict, List, Optional, Sequence

from ..models.catalogue import network_ids
from .errors import InputError
from .feedback import Feedback, ensure_feedback
from .io.outputs import check_outputs, replacing
from .io.pair import validate_pair
from .io.raster import raster_info
from .io.scene import build_scene
from .methods import get_method, list_methods
from .pipeline.tile_geometry import AUTO_TILE
from .quality.selfval import rank, validate

DEFAULT_CANDIDATES = ("upsample", "gsa", "glp", "sfim", "cnmf")
NETWORKS = network_ids()  # candidates given a MAX_SECONDS budget
TABLE_KEY = "HSIFUSION_AUTO_TABLE"
BUDGET_GRACE = 2.0  # a network candidate is stopped at twice its budget (data preparation, inference)
COLUMNS = ("rank", "method", "PSNR", "SAM", "ERGAS", "seconds", "error")


def candidate_params(name: str, network_seconds: Optional[float]) -> Dict:
    """Defaults, except bicubic for ``upsample`` and the time budget for networks."""
    if name == "upsample":
        return {"mode": "bicubic"}
    if name in NETWORKS:
        return {"max_seconds": float(network_seconds)}
    return {}


def check_candidates(candidates: Optional[Sequence[str]], network_seconds: Optional[float]) -> List[str]:
    names = [c.strip() for c in (candidates or DEFAULT_CANDIDATES) if c and c.strip()]
    known = set(list_methods())
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InputError(f"unknown candidate method(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    if not names:
        raise InputError("no candidate method given")
    nets = [n for n in names if n in NETWORKS]
    if nets and not (network_seconds and network_seconds > 0):
        raise InputError(f"network candidate(s) {', '.join(nets)} need a time budget (NETWORK_SECONDS > 0)")
    return list(dict.fromkeys(names))


def format_table(ranked: Sequence[Dict]) -> str:
    """The ranked table as aligned text for the log."""
    lines = ["rank  method      PSNR dB   SAM deg   ERGAS   time s"]
    for i, r in enumerate(ranked, 1):
        if "error" in r:
            lines.append(f"{i:>4}  {r['method']:<10}  failed: {r['error']}")
        else:
            lines.append(f"{i:>4}  {r['method']:<10}  {r['PSNR']:7.2f}   {r['SAM']:7.2f}   {r['ERGAS']:5.2f}   "
                         f"{r['seconds']:6.1f}")
    return "\n".join(lines)


def write_csv(path: str, ranked: Sequence[Dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for i, r in enumerate(ranked, 1):
            w.writerow({"rank": i, **{k: r.get(k, "") for k in COLUMNS[1:]}})


def write_html(path: str, ranked: Sequence[Dict], chosen: str, ratio: int) -> None:
    def cell(v):
        return f"{v:.3f}" if isinstance(v, float) else html.escape(str(v))

    rows = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in [i] + [r.get(k, "") for k in COLUMNS[1:]])
                   + "</tr>" for i, r in enumerate(ranked, 1))
    head = "".join(f"<th>{c}</th>" for c in COLUMNS)
    with open(path, "w") as f:
        f.write(f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>hsifusion fuse auto</title></head><body>"
                f"<h1>Self-validation at the reduced scale (ratio {ratio})</h1>"
                f"<p>Each candidate fused the pair degraded once more by the ratio and was scored against the "
                f"LR-HSI. Rank: highest PSNR (0.01 dB), then lowest SAM. Chosen: <b>{html.escape(chosen)}</b>.</p>"
                f"<table border='1' cellpadding='4'><tr>{head}</tr>{rows}</table></body></html>")


def fuse_auto(hsi: str, msi: str, output: str, candidates: Optional[Sequence[str]] = None,
              network_seconds: Optional[float] = None, out_table: Optional[str] = None,
              out_report: Optional[str] = None, tile_size: int = AUTO_TILE, feedback: Optional[Feedback] = None,
              creation_options: Optional[Sequence[str]] = None, hsi_wavelengths=None, msi_wavelengths=None,
              max_lr_side: int = 256) -> Dict:
    """Rank ``candidates`` on the reduced pair, fuse with the best.

    Returns api.fuse's dict plus CHOSEN and TABLE (the ranked rows).
    """
    from .api import fuse

    feedback = ensure_feedback(feedback)
    names = check_candidates(candidates, network_seconds)
    check_outputs({"OUTPUT": output, "OUTPUT_TABLE": out_table, "OUTPUT_REPORT": out_report}, (hsi, msi))
    pair = validate_pair(raster_info(hsi, hsi_wavelengths), raster_info(msi, msi_wavelengths))
    scene = build_scene(pair, feedback)
    feedback.pushInfo(f"fuse auto: scoring {', '.join(names)} on the pair reduced by {pair.ratio} "
                      f"(target: the LR-HSI)")
    methods = [(n, get_method(n, **candidate_params(n, network_seconds))) for n in names]
    budgets = {n: BUDGET_GRACE * float(network_seconds) for n in names if n in NETWORKS}
    ranked = rank(validate(scene, methods, feedback, max_lr_side, budgets))
    feedback.pushInfo(format_table(ranked))
    best = ranked[0]
    if "error" in best:
        raise InputError(f"no candidate could be scored on the reduced pair: {best['error']}")
    chosen = best["method"]
    feedback.pushInfo(f"fuse auto: chose {chosen} (rank rule: PSNR, then SAM)")
    table = [{**r, "rank": i} for i, r in enumerate(ranked, 1)]
    result = fuse(hsi, msi, output, chosen, candidate_params(chosen, network_seconds), tile_size=tile_size,
                  feedback=feedback, creation_options=creation_options, hsi_wavelengths=hsi_wavelengths,
                  msi_wavelengths=msi_wavelengths,
                  metadata={TABLE_KEY: json.dumps(table, default=float), "HSIFUSION_AUTO_CHOSEN": chosen})
    if out_table:  # the reports follow a successful fusion only, each written whole or not at all
        with replacing(out_table) as tmp:
            write_csv(tmp, ranked)
    if out_report:
        with replacing(out_report) as tmp:
            write_html(tmp, ranked, chosen, pair.ratio)
    return {**result, "CHOSEN": chosen, "TABLE": table, "OUTPUT_TABLE": out_table, "OUTPUT_REPORT": out_report}

"""Self-contained HTML assessment report: every figure is a PNG embedded as base64 (matplotlib, Agg)."""
from __future__ import annotations

import base64
import datetime as _dt
import html
import io
from typing import Dict, List, Optional

import numpy as np

from ..io.outputs import replacing
from ..io.presets import default_preset, read_preview, stretch_rgb
from ..version import __version__
from . import metrics as M

SAM_SCALE_MAX = 20.0   # degrees: the fixed colour scale of SAM maps (as the QGIS style)

_CSS = """body{font-family:sans-serif;margin:1.5em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #bbb;padding:3px 8px;text-align:left}
th{background:#eee}td.num{text-align:right;font-family:monospace}img{max-width:100%}
.row{display:flex;flex-wrap:wrap;gap:1em}.row figure{margin:0}figcaption{font-size:90%;color:#555}
.small{font-size:85%;color:#555}"""


class _Figures:
    """pyplot-free figure factory (the Agg canvas; safe in QGIS' worker threads, no GUI backend)."""

    @staticmethod
    def subplots(nrows=1, ncols=1, figsize=(6, 4), squeeze=True):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=figsize)
        FigureCanvasAgg(fig)
        ax = fig.subplots(nrows, ncols, squeeze=squeeze)
        return fig, ax


def _plt():
    return _Figures


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _img(src: str, caption: str) -> str:
    return (f'<figure><img src="{src}" alt="{html.escape(caption)}">'
            f'<figcaption>{html.escape(caption)}</figcaption></figure>')


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, (float, np.floating)):
        return "n/a" if not np.isfinite(v) and not np.isinf(v) else f"{float(v):.5g}"
    return html.escape(str(v))


def _x_axis(ref, idx):
    if ref is not None and ref.wavelengths is not None:
        return np.asarray(ref.wavelengths)[idx], "wavelength (nm)"
    return np.asarray(idx) + 1, "band"


def _band_plot(table, x, xlabel) -> str:
    plt = _plt()
    fig, ax = plt.subplots(1, 2, figsize=(11, 3.2))
    ax[0].plot(x, table["PSNR"], ".-", ms=3)
    ax[0].set(xlabel=xlabel, ylabel="PSNR (dB)", title="PSNR per band")
    ax[1].plot(x, table["RMSE"], ".-", ms=3, color="tab:red")
    ax[1].set(xlabel=xlabel, ylabel="RMSE (reference units)", title="RMSE per band")
    for a in ax:
        a.grid(alpha=.3)
    return _png(fig)


def _spectra_plot(pixels: List[Dict], x, xlabel) -> str:
    plt = _plt()
    n = len(pixels)
    fig, ax = plt.subplots(1, n, figsize=(3.2 * n, 2.8), squeeze=False)
    for a, p in zip(ax[0], pixels):
        a.plot(x, p["reference"], "k-", lw=1, label="reference")
        a.plot(x, p["estimate"], "-", color="tab:orange", lw=1, label="estimate")
        a.set_title(f"{p['label']}\n(col {p['col']}, row {p['row']}): {p['sam']:.2f}°", fontsize=8)
        a.set_xlabel(xlabel, fontsize=8)
        a.tick_params(labelsize=7)
    ax[0][0].legend(fontsize=7)
    return _png(fig)


def _hist_plot(hist: np.ndarray, mean: float) -> str:
    plt = _plt()
    edges = M.SAM_HIST_EDGES
    nz = np.flatnonzero(hist)
    top = edges[min(len(edges) - 1, nz[-1] + 2)] if nz.size else 1.0
    # re-bin to about 60 bars over the occupied range
    k = max(1, int(np.ceil((nz[-1] + 1 if nz.size else 1) / 60)))
    h = np.add.reduceat(hist, np.arange(0, len(hist), k))
    e = edges[::k]
    fig, ax = plt.subplots(figsize=(5.5, 3))
    ax.bar(e[:len(h)], h, width=e[1] - e[0], align="edge", color="tab:purple")
    ax.axvline(mean, color="k", ls="--", lw=1, label=f"mean {mean:.2f}°")
    ax.set(xlim=(0, top), xlabel="SAM (degrees)", ylabel="pixels", title="SAM histogram")
    ax.legend()
    return _png(fig)


def _quicklooks(ctx: Dict) -> Optional[str]:
    plt = _plt()
    panels = []
    for role in ("reference", "estimate"):
        info = ctx.get(role)
        if info is None:
            continue
        c = default_preset(info.wavelengths, good_bands=info.good_bands)
        bands = c.bands if c is not None else ((0, 1, 2) if info.bands >= 3 else None)
        if bands is None:
            continue
        rgb, nodata = read_preview(info.path, bands)
        name = c.name.replace("_", " ") if c is not None else "bands 1/2/3"
        panels.append((f"{role}: {name}", stretch_rgb(rgb, nodata), None))
    prev = ctx.get("sam_preview")
    if prev is not None:
        panels.append((f"SAM (0-{SAM_SCALE_MAX:g}°)", np.ma.masked_invalid(prev), "sam"))
    if not panels:
        return None
    fig, ax = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for a, (title, img, kind) in zip(ax[0], panels):
        if kind == "sam":
            im = a.imshow(img, cmap=sam_colormap(), vmin=0, vmax=SAM_SCALE_MAX, interpolation="nearest")
            fig.colorbar(im, ax=a, fraction=0.046, label="degrees")
        else:
            a.imshow(img, interpolation="nearest")
        a.set_title(title, fontsize=9)
        a.set_axis_off()
    return _png(fig)


def sam_colormap():
    """The SAM colour ramp used by the QGIS style too (see provider/styling.py)."""
    from matplotlib.colors import LinearSegmentedColormap

    stops = [(s / SAM_SCALE_MAX, c) for s, c in SAM_RAMP]
    return LinearSegmentedColormap.from_list("hsifusion_sam", stops)


#: (degrees, colour) of the fixed SAM scale
SAM_RAMP = [(0.0, "#1a9850"), (2.0, "#91cf60"), (5.0, "#fee08b"), (10.0, "#fc8d59"), (15.0, "#d73027"),
            (20.0, "#7f0000")]


def write_report(path: str, ctx: Dict) -> str:
    """Write the HTML report atomically; returns the path."""
    res = ctx["result"]
    est = ctx["estimate"]
    inputs = ctx.get("inputs", {})
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>hsifusion assessment</title>"
             f"<style>{_CSS}</style></head><body>",
             f"<h1>Fusion quality assessment</h1><p class='small'>hsifusion {__version__}, "
             f"{_dt.datetime.now().isoformat(timespec='seconds')}, {res.get('SECONDS', 0):.1f} s</p>",
             "<h2>Inputs and parameters</h2><table>"]
    for k, v in inputs.items():
        if v not in (None, ""):
            parts.append(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>")
    parts.append(f"<tr><th>estimate grid</th><td>{est.width} x {est.height} px, {est.bands} bands</td></tr>")
    if ctx.get("band_index") is not None:
        parts.append(f"<tr><th>bands assessed</th><td>{len(ctx['band_index'])} of {est.bands} "
                     "(bad bands excluded)</td></tr>")
    for k in ("VALID_PIXELS", "SAM_PIXELS", "SSIM_PIXELS"):
        if k in res:
            parts.append(f"<tr><th>{k.lower().replace('_', ' ')}</th><td>{res[k]}</td></tr>")
    parts.append("</table><h2>Metrics</h2><table><tr><th>metric</th><th>value</th><th>definition</th></tr>")
    for k in ("PSNR", "SSIM", "SAM", "ERGAS", "RMSE", "CC", "UIQI", "Q2N", "QNR", "D_LAMBDA", "D_S"):
        v = res.get(k)
        if v is None or (isinstance(v, float) and np.isnan(v)):
            continue
        parts.append(f"<tr><td>{k}</td><td class='num'>{_fmt(v)}</td>"
                     f"<td class='small'>{html.escape(M.DEFINITIONS.get(k, ''))}</td></tr>")
    for k in ("SAM_MEDIAN", "SAM_P95", "SAM_MAX"):
        if k in res and np.isfinite(res[k]):
            parts.append(f"<tr><td>{k}</td><td class='num'>{_fmt(res[k])}</td><td class='small'>degrees"
                         f"{' (from a 0.05° histogram)' if k != 'SAM_MAX' else ''}</td></tr>")
    parts.append("</table>")
    table = ctx.get("table")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        table = None
        parts.append("<p><b>matplotlib is not installed for this Python: figures are left out</b> "
                     "(install python3-matplotlib).</p>")
        ctx = dict(ctx, sam_preview=None, reference=None, estimate=None)
    if table is not None:
        x, xlabel = _x_axis(ctx.get("reference"), ctx["band_index"])
        parts.append("<h2>Per band</h2>" + _img(_band_plot(table, x, xlabel), "PSNR and RMSE per band"))
        if ctx.get("pixels"):
            parts.append("<h2>Spectra at representative pixels</h2>"
                         + _img(_spectra_plot(ctx["pixels"], x, xlabel),
                                "reference (black) and estimate (orange) at pixels picked from a sample by SAM"))
        parts.append("<h2>Spectral angle</h2><div class='row'>"
                     + _img(_hist_plot(ctx["sam_hist"], res["SAM"]), "SAM histogram over valid pixels"))
        parts.append("</div>")
    ql = _quicklooks(ctx)
    if ql:
        parts.append("<h2>Quick-looks</h2>" + _img(ql, "true colour (or the nearest available preset, "
                                                       "2-98 % stretch) and the SAM map on its fixed scale"))
    parts.append("<h2>Definitions</h2><ul>")
    for k, d in M.DEFINITIONS.items():
        parts.append(f"<li><b>{k}</b>: {html.escape(d)}</li>")
    parts.append("</ul><p class='small'>Values are compared as stored (raw units of the reference) unless "
                 "reference and estimate declare different scale/offset. Pixels that are nodata in either "
                 "raster, masked, or within the border are excluded; zero spectra are excluded from SAM only."
                 "</p></body></html>")
    with replacing(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write("\n".join(parts))
    return path

"""docs/demo.png for the README from a `make demo` run: reference, bicubic, a fusion, its SAM map.

Usage: python tools/make_figure.py demo_output [fusion_name]
"""
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.colors import BoundaryNorm, ListedColormap

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from repo_package import register_package  # noqa: E402

register_package()

from hsifusion.engine.io.presets import read_preview, require_preset, stretch_rgb  # noqa: E402
from hsifusion.engine.io.raster import open_raster, raster_info  # noqa: E402

out = Path(sys.argv[1] if len(sys.argv) > 1 else "demo_output")
fusion = sys.argv[2] if len(sys.argv) > 2 else "uds2c2"
ref = ROOT / "sample" / "enmap_potsdam_reference.tif"
info = raster_info(str(ref))
bands = require_preset(info.wavelengths, "true_colour", good_bands=info.good_bands).bands
panels = [("Reference (EnMAP, 30 m)", ref), ("Bicubic from 120 m", out / "bicubic.tif"),
          (f"{fusion.upper()} fusion", out / f"{fusion}.tif")]
fig, axes = plt.subplots(1, 4, figsize=(16, 2.8), constrained_layout=True)
for ax, (title, path) in zip(axes, panels):
    rgb, nodata = read_preview(str(path), bands)
    ax.imshow(stretch_rgb(rgb, nodata))
    ax.set_title(title)
    ax.axis("off")
sam = open_raster(str(out / f"{fusion}_sam.tif")).ReadAsArray()
levels = [0, 2, 5, 10, 15, 20, 90]
cmap = ListedColormap(["#1a9850", "#91cf60", "#fee08b", "#fc8d59", "#d73027", "#7f0000"])
im = axes[3].imshow(sam.clip(0, 89.9), cmap=cmap, norm=BoundaryNorm(levels, cmap.N))
axes[3].set_title(f"SAM of {fusion.upper()} (degrees)")
axes[3].axis("off")
fig.colorbar(im, ax=axes[3], ticks=levels[:-1], shrink=0.8)
dst = ROOT / "docs" / "demo.png"
fig.savefig(dst, dpi=80)
print(dst)

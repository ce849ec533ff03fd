"""Print the demo's metrics table from the ``qgis_process --json`` outputs and list the files."""
import json
import sys
from pathlib import Path

out = Path(sys.argv[1])
rows = []
for f in sorted(out.glob("*_assess.json")):
    text = f.read_text()
    res = json.loads(text[text.index("{"):])["results"]
    rows.append((f.name.replace("_assess.json", ""), res))
keys = ["PSNR", "SSIM", "SAM", "ERGAS", "Q2N"]
print("\n| method | " + " | ".join(keys) + " |\n|---|" + "---|" * len(keys))
for name, res in rows:
    print(f"| {name} | " + " | ".join(f"{float(res[k]):.4g}" if res.get(k) is not None else "n/a" for k in keys) + " |")
print(f"\nOutputs in {out}:")
for p in sorted(out.iterdir()):
    if p.suffix in (".tif", ".html", ".csv", ".qml"):
        print("  ", p)

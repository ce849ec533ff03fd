#!/usr/bin/env bash
# The README's demo: fuse the bundled real EnMAP sample (Wald protocol, x4, Sentinel-2A MSI) headless
# through qgis_process, exactly as a user would, then judge every result against the reference.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
out="$(mkdir -p "${1:-demo_output}" && cd "${1:-demo_output}" && pwd)"
qp="$here/tools/qgis_process.sh"
S="$here/sample"
HSI="$S/potsdam_lr_hsi_x4.tif" MSI="$S/potsdam_msi_s2a.tif" REF="$S/enmap_potsdam_reference.tif"
"$here/tools/install_plugin.sh"
run() { echo "== qgis_process run $*"; "$qp" run "$@" >"$out/last_run.log" 2>&1 || { cat "$out/last_run.log"; exit 1; }; }

run hsifusion:upsample -- HSI="$HSI" MSI="$MSI" METHOD=2 OUTPUT="$out/bicubic.tif"
run hsifusion:fuse_gsa -- HSI="$HSI" MSI="$MSI" OUTPUT="$out/gsa.tif"
run hsifusion:fuse_auto -- HSI="$HSI" MSI="$MSI" OUTPUT="$out/auto.tif" OUTPUT_REPORT="$out/auto_choice.html"
run hsifusion:fuse_uds2c2 -- HSI="$HSI" MSI="$MSI" ITERATIONS=300 SEED=0 DEVICE=1 OUTPUT="$out/uds2c2.tif"
for m in bicubic gsa auto uds2c2; do
  echo "== assess $m against the reference"
  "$qp" --json run hsifusion:assess -- REFERENCE="$REF" ESTIMATE="$out/$m.tif" RATIO=4 \
      OUTPUT_SAM="$out/${m}_sam.tif" OUTPUT_TABLE="$out/${m}_bands.csv" OUTPUT_REPORT="$out/${m}_report.html" \
      >"$out/${m}_assess.json" 2>"$out/last_run.log" || { cat "$out/last_run.log"; exit 1; }
done
"$here/.venv/bin/python" "$here/tools/demo_summary.py" "$out"

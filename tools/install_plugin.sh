#!/usr/bin/env bash
# Install this checkout as the QGIS plugin "hsifusion" for the current user's default profile (a
# symlink, so edits take effect on restart) and enable it for headless qgis_process.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
plugins="${QGIS_PLUGIN_DIR:-$HOME/.local/share/QGIS/QGIS3/profiles/default/python/plugins}"
mkdir -p "$plugins"
if [ ! -e "$plugins/hsifusion" ]; then ln -s "$here" "$plugins/hsifusion"; fi
QT_QPA_PLATFORM=offscreen qgis_process.bin plugins enable hsifusion >/dev/null 2>&1 || true
echo "plugin installed: $plugins/hsifusion -> $(readlink -f "$plugins/hsifusion")"

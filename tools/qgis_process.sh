#!/usr/bin/env bash
# qgis_process.bin with this checkout's venv (torch) visible to QGIS' Python, headless.
# (Debian's /usr/bin/qgis_process wrapper passes --noversioncheck, which 3.22 rejects.)
here="$(cd "$(dirname "$0")/.." && pwd)"
site="$(ls -d "$here"/.venv/lib/python3*/site-packages 2>/dev/null | head -1)"
export QT_QPA_PLATFORM=offscreen PYTHONPATH="${site}${PYTHONPATH:+:$PYTHONPATH}"
exec qgis_process.bin "$@"

"""Help strings from ``provider/help/<id>.md``: the one place plain-text help becomes what QGIS shows.

The help names parameters by id (TILE_SIZE) while the dialog shows labels ("Tile size (HR pixels)"), so
each parameter's defining mention is generated as "Label [ID]". The Processing dialog renders the help as
HTML (one paragraph per line), so the text is HTML-escaped there (``arccos(<x,y> / ...)`` must not
vanish as a tag); ``qgis_process help`` prints it verbatim, so there it stays plain.
"""
from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

HELP_DIR = Path(__file__).resolve().parent / "help"

_LINE_START_ID = re.compile(r"[A-Z][A-Z0-9_]+(?![\w-])")


def help_source(alg_id: str) -> str:
    """The hand-written help of ``alg_id`` ('' when there is none)."""
    path = HELP_DIR / f"{alg_id}.md"
    return path.read_text(encoding="utf-8") if path.exists() else ""


def _mentions(text: str, name: str) -> List[int]:
    """Offsets where ``name`` stands as a parameter id (not inside HR-MSI, hsifusion:simulate, FOO_BAR ...)."""
    pattern = re.compile(r"(?<![\w\-'./:<])" + re.escape(name) + r"(?![\w\-'])")
    return [m.start() for m in pattern.finditer(text)]


def _definition_heads(text: str) -> List[Tuple[int, int]]:
    """(start, end) of each line's leading key list, e.g. ``SNR_HSI, SNR_MSI`` in "SNR_HSI, SNR_MSI: ..."."""
    heads, offset = [], 0
    for line in text.split("\n"):
        if _LINE_START_ID.match(line):
            ends = [i for i in (line.find(":"), line.find(". ")) if i >= 0]
            heads.append((offset, offset + (min(ends) if ends else len(line))))
        offset += len(line) + 1
    return heads


def label_parameters(text: str, labels: Dict[str, str]) -> str:
    """Write one mention of each parameter id as "Label [ID]": the one in a line that defines it
    ("ID: ...", "ID, ID2 (advanced): ..."), else the first mention; the other mentions stay ids."""
    heads = _definition_heads(text)
    chosen = {}
    for name, label in labels.items():
        where = _mentions(text, name)
        if not where or not label:
            continue
        defining = [i for i in where if any(a <= i < b for a, b in heads)]
        chosen[(defining or where)[0]] = (name, label)
    for pos in sorted(chosen, reverse=True):
        name, label = chosen[pos]
        text = f"{text[:pos]}{label} [{name}]{text[pos + len(name):]}"
    return text


def parameter_labels(alg) -> Dict[str, str]:
    """Parameter id -> the label the dialog shows (less a leading "or:" / "and" that links it to the
    parameter above it in the dialog), in the algorithm's order."""
    return {p.name(): re.sub(r"^(?:or|and)\b:?\s*", "", p.description()) for p in alg.parameterDefinitions()}


def help_string(alg, platform: Optional[str] = None) -> str:
    """``alg``'s help as QGIS should get it: labelled, and HTML-escaped unless printed by qgis_process."""
    text = label_parameters(help_source(alg.name()), parameter_labels(alg))
    if platform is None:
        from qgis.core import QgsApplication

        platform = QgsApplication.platform()
    return text if platform == "qgis_process" else html.escape(text, quote=False)

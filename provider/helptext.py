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
from typing import Dict, Optional

HELP_DIR = Path(__file__).resolve().parent / "help"

_ID = r"[A-Z][A-Z0-9_]+"
_NOTE = r"(?: \([^()]*\))?"
# a line that defines parameters starts with their ids: "TILE_SIZE: ...", "SNR_HSI, SNR_MSI: ...",
# "LOWER, UPPER (advanced): ...", "LR_HSI + HR_MSI: ..."
_DEFINITION = re.compile(rf"^{_ID}{_NOTE}(?:(?:, | and | or | \+ ){_ID}{_NOTE})*(?=:)", re.M)
OTHERS_HEADING = "Other parameters in the dialog:"


def help_source(alg_id: str) -> str:
    """The hand-written help of ``alg_id`` ('' when there is none)."""
    path = HELP_DIR / f"{alg_id}.md"
    return path.read_text(encoding="utf-8") if path.exists() else ""


def label_parameters(text: str, labels: Dict[str, str]) -> str:
    """Show each parameter as "Label [ID]" once.

    Where a line defines it ("ID: ...", "ID, ID2 (advanced): ..."), else in a generated closing line
    listing the others. Ids in running text stay ids.
    """
    spans = {}
    for head in _DEFINITION.finditer(text):
        keys = re.sub(r"\([^()]*\)", lambda note: " " * len(note.group(0)), head.group(0))  # not in notes
        for m in re.finditer(rf"(?<!\w){_ID}(?!\w)", keys):
            if labels.get(m.group(0)) and m.group(0) not in spans.values():
                spans[head.start() + m.start()] = m.group(0)
    for pos in sorted(spans, reverse=True):
        name = spans[pos]
        text = f"{text[:pos]}{labels[name]} [{name}]{text[pos + len(name):]}"
    others = [f"{label} [{name}]" for name, label in labels.items() if label and name not in spans.values()]
    if others:
        text = f"{text.rstrip()}\n\n{OTHERS_HEADING} {'; '.join(others)}.\n"
    return text


def parameter_labels(alg) -> Dict[str, str]:
    """Parameter id -> the label the dialog shows, in the algorithm's order.

    Less a leading "or:" / "and", which links a label to the parameter above it in the dialog.
    """
    return {p.name(): re.sub(r"^(?:or|and)\b:?\s*", "", p.description()) for p in alg.parameterDefinitions()}


def help_string(alg, platform: Optional[str] = None, source: Optional[str] = None) -> str:
    """``alg``'s help as QGIS should get it: labelled, and HTML-escaped unless printed by qgis_process.

    ``source`` replaces the help file's text (algorithms generated from a declaration).
    """
    text = label_parameters(help_source(alg.name()) if source is None else source, parameter_labels(alg))
    if platform is None:
        from qgis.core import QgsApplication

        platform = QgsApplication.platform()
    return text if platform == "qgis_process" else html.escape(text, quote=False)

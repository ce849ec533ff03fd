"""Docstrings and docs cite the design notes by anchor (docs/networks.md#uds2c2): every anchor must exist."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CITATION = re.compile(r"(?:docs/)?(design|networks)\.md#([\w\-]+)")


def heading_anchors(path: Path) -> set:
    """GitHub's anchors: heading text lower-cased, punctuation dropped, spaces to hyphens."""
    anchors = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"#{1,6} (.+)", line)
        if m:
            anchors.add(re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-"))
    return anchors


def test_heading_anchors_follow_github_rules(tmp_path):
    doc = tmp_path / "d.md"
    doc.write_text("# Title\n## AMSF-Net: what is reconstructed\n### Tiles and margins (HR px)\ntext # no\n")
    assert heading_anchors(doc) == {"title", "amsf-net-what-is-reconstructed", "tiles-and-margins-hr-px"}


def test_every_cited_design_anchor_exists():
    anchors = {name: heading_anchors(ROOT / "docs" / f"{name}.md") for name in ("design", "networks")}
    cited, missing = 0, []
    for path in ROOT.rglob("*"):
        if path.suffix not in (".py", ".md") or ".venv" in path.parts or not path.is_file():
            continue
        for m in CITATION.finditer(path.read_text(encoding="utf-8", errors="replace")):
            cited += 1
            if m.group(2) not in anchors[m.group(1)]:
                missing.append(f"{path.relative_to(ROOT)}: {m.group(0)}")
    assert cited > 20  # the models and the engine cite the notes throughout
    assert not missing, missing

"""The derived files (dashboards/*.json, the chart's copies, alerts/netobs-rules.yaml) are what
`make ship-files` writes from their sources."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

import ship_files  # noqa: E402


def test_derived_files_are_up_to_date() -> None:
    assert [str(p.relative_to(REPO)) for p in ship_files.stale_files()] == [], "run make ship-files"

"""Throughput with the exporter as a share of without, from rounds run side by side.

Each round measures OFF then ON, so a round's ratio compares runs a few seconds apart; the machine's
slow drifts cancel within it. The median of those ratios is the figure, and its spread across the
rounds says how far a single figure can be trusted."""

from __future__ import annotations

import statistics


def ratio_summary(off: list[float], on: list[float]) -> str:
    """'93.1% (88.0-97.2%)': the median ON/OFF ratio of the rounds, and the lowest and highest."""
    ratios = sorted(b / a for a, b in zip(off, on, strict=True) if a > 0)
    if not ratios:
        return "-"
    return f"{statistics.median(ratios):.1%} ({ratios[0]:.1%}-{ratios[-1]:.1%})"

"""Throughput with the exporter as a share of without, from runs alternated side by side.

The runs go OFF, ON, OFF, ON, ..., OFF: every ON run stands between two OFF runs, and its ratio is
ON divided by the mean of those two, so the machine's drift during the round cancels to first
order (a ratio against the OFF run before it alone follows every drift of a shared machine). The
median of the rounds' ratios is the figure. With it comes a 95 % confidence interval for that
median from the order statistics of the ratios (distribution-free: it assumes only that rounds are
independent), which says whether a goal line lies inside the noise or outside it."""

from __future__ import annotations

import math
import statistics


def bracketed_ratios(off: list[float], on: list[float]) -> list[float]:
    """ON/OFF of each round: on[i] against the mean of off[i] and off[i + 1] (off[i] alone if the run
    after it is missing)."""
    ratios = []
    for i, b in enumerate(on):
        around = [x for x in off[i:i + 2] if x > 0]
        if around:
            ratios.append(b / statistics.fmean(around))
    return ratios


def median_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float] | None:
    """The widest-needed order statistics (x_(k), x_(n+1-k)) that hold the median with at least
    `confidence`, from the binomial distribution; None if there are too few values (fewer than 6
    for 95 %)."""
    xs, n = sorted(values), len(values)
    best = None
    for k in range(1, n // 2 + 1):  # P(x_(k) <= median <= x_(n+1-k)) = 1 - 2 P(Binomial(n, 1/2) < k)
        outside = 2 * sum(math.comb(n, i) for i in range(k)) / 2**n
        if 1 - outside < confidence:
            break
        best = (xs[k - 1], xs[n - k])
    return best


def ratio_summary(off: list[float], on: list[float]) -> str:
    """'93.1% (95% CI 90.2-95.0%; rounds 88.0-97.2%)': the median of the rounds' ratios, a confidence
    interval for it, and the lowest and highest round."""
    ratios = sorted(bracketed_ratios(off, on))
    if not ratios:
        return "-"
    ci = median_interval(ratios)
    interval = f"95% CI {ci[0]:.1%}-{ci[1]:.1%}; " if ci else ""
    return f"{statistics.median(ratios):.1%} ({interval}rounds {ratios[0]:.1%}-{ratios[-1]:.1%})"

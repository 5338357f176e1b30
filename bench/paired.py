"""Throughput with the exporter as a share of without, from runs alternated side by side.

The runs go OFF, ON, OFF, ON, ..., OFF: every ON run stands between two OFF runs, and its ratio is
ON divided by the mean of those two, so the machine's drift during the round cancels to first
order (a ratio against the OFF run before it alone follows every drift of a shared machine). The
median of the rounds' ratios is the figure. With it comes a 95 % confidence interval for that
median from the order statistics of the ratios (distribution-free: it assumes only that rounds are
independent), which says whether a goal line lies inside the noise or outside it."""

from __future__ import annotations

import math
import os
import statistics


def bracketed_ratios(off: list[float], on: list[float], cost: bool = False,
                     after: list[float] | None = None) -> list[float]:
    """ON/OFF of each round: on[i] against the mean of off[i] and off[i + 1] (off[i] alone if the run
    after it is missing), or of off[i] and after[i] when given (several configurations alternated in
    one run, each ON run between two OFF runs of its own). For a cost (CPU time per request), OFF/ON:
    the share of its rate that a CPU-bound workload would keep."""
    ratios = []
    for i, b in enumerate(on):
        around = [x for x in (off[i:i + 2] if after is None else [off[i], *after[i:i + 1]]) if x > 0]
        if around and b > 0:
            ratios.append(statistics.fmean(around) / b if cost else b / statistics.fmean(around))
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


def ratio_summary(off: list[float], on: list[float], cost: bool = False, after: list[float] | None = None) -> str:
    """'93.1% (95% CI 90.2-95.0%; rounds 88.0-97.2%)': the median of the rounds' ratios, a confidence
    interval for it, and the lowest and highest round."""
    ratios = sorted(bracketed_ratios(off, on, cost, after))
    if not ratios:
        return "-"
    ci = median_interval(ratios)
    interval = f"95% CI {ci[0]:.1%}-{ci[1]:.1%}; " if ci else ""
    return f"{statistics.median(ratios):.1%} ({interval}rounds {ratios[0]:.1%}-{ratios[-1]:.1%})"


class BusyCpu:
    """CPU time the whole machine spent working (user, nice, system, irq, softirq; not idle, iowait or
    steal) between start() and stop(), in seconds, from /proc/stat. On a shared virtual machine the
    rate of a workload follows what the neighbours do (steal), but the CPU time one request takes
    much less: it is the steadier measure of what the exporter adds."""

    def __init__(self) -> None:
        self._start = 0

    @staticmethod
    def _busy_ticks() -> int:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        user, nice, system, _idle, _iowait, irq, softirq = fields[:7]
        return user + nice + system + irq + softirq

    def start(self) -> None:
        self._start = self._busy_ticks()

    def stop(self) -> float:
        return (self._busy_ticks() - self._start) / os.sysconf("SC_CLK_TCK")

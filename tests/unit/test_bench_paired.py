"""bench/paired.py: how the benchmarks turn alternated OFF and ON runs into a ratio."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from paired import bracketed_ratios, median_interval, ratio_summary


def test_each_on_run_is_compared_with_the_off_runs_on_both_sides() -> None:
    # a machine slowing down steadily: OFF 100, 90, 80; ON half-way between them at 95 % of OFF
    assert bracketed_ratios([100, 90, 80], [95 * 0.95, 85 * 0.95]) == pytest.approx([0.95, 0.95])
    # no OFF run after the last ON run: the one before it alone
    assert bracketed_ratios([100], [90]) == pytest.approx([0.9])


def test_configurations_alternated_in_one_run_each_have_their_own_off_runs() -> None:
    # OFF 100, A, OFF 90, B, OFF 80, A, OFF 70: A's runs stand between 100 and 90, then 80 and 70
    a_before, a_after = [100.0, 80.0], [90.0, 70.0]
    assert bracketed_ratios(a_before, [95 * 0.9, 75 * 0.8], after=a_after) == pytest.approx([0.9, 0.8])
    # the last ON run without an OFF run after it: the one before it alone
    assert bracketed_ratios([100.0], [90.0], after=[]) == pytest.approx([0.9])


def test_the_interval_of_the_median_comes_from_order_statistics() -> None:
    # n = 15: the 4th and the 12th smallest hold the median with >= 95 % (96.5 %)
    assert median_interval([float(x) for x in range(15)]) == (3.0, 11.0)
    # n = 9: the 2nd and the 8th (96.1 %)
    assert median_interval([float(x) for x in range(9)]) == (1.0, 7.0)
    # five rounds cannot give 95 %: the widest interval, min to max, holds it with 93.75 %
    assert median_interval([1.0, 2.0, 3.0, 4.0, 5.0]) is None


def test_summary() -> None:
    off = [100.0] * 10
    on = [90.0 + i for i in range(9)]
    assert ratio_summary(off, on) == "94.0% (95% CI 91.0%-97.0%; rounds 90.0%-98.0%)"
    assert ratio_summary([], []) == "-"

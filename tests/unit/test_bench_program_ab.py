"""bench/program_ab.py: two builds' programs on the same calls, the order they run in cancelled."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from program_ab import order_cancelled, parse_build, started_whole


def test_running_first_cancels_out_of_each_pair() -> None:
    # B costs 10 % more than A; whichever runs first pays 20 % more
    a, b = 100.0, 110.0
    rounds = [b / (a * 1.2), (b * 1.2) / a, b / (a * 1.2), (b * 1.2) / a]
    assert order_cancelled(rounds) == pytest.approx([1.1, 1.1])


def test_a_build_is_a_label_and_a_directory_of_objects(tmp_path: Path) -> None:
    (tmp_path / "sockets.bpf.o").write_bytes(b"")
    assert parse_build(f"before={tmp_path}") == ("before", tmp_path.resolve())
    for bad in (str(tmp_path), f"={tmp_path}", f"empty={tmp_path / 'none'}"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_build(bad)


def test_an_exporter_that_loaded_its_object_in_pieces_is_refused(tmp_path: Path) -> None:
    log = tmp_path / "exporter.log"
    log.write_text('level=info msg="running with dns, netflow, l7, bash"\n')
    assert started_whole(log) is None
    pieces = ('level=warn logger=exporter.collectors.base msg="sockets: could not load dns, netflow, l7 '
              'together (sockets.bpf.o: load failed: Permission denied); trying each alone"')
    log.write_text(pieces + '\nlevel=info msg="running with netflow, l7, bash"\n')
    assert started_whole(log) == pieces

"""exporter.bpf against the running kernel, with the tiny program in bpf/loader_test.bpf.c."""

from __future__ import annotations

import ctypes
import json
import logging
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from exporter.bpf import AttachResult, BpfError, BpfObject, NotSupported, ensure_tracefs
from exporter.bpf import maps as bpf_maps
from tests.kernel.harness import wait_until

pytestmark = pytest.mark.kernel

SOURCE = pathlib.Path(__file__).parent / "bpf" / "loader_test.bpf.c"
TEST_PROGRAMS = {"count_sent", "report_getppid", "attach_missing", "count_uprobe", "load_missing"}
EVENT_TAG = b"loader"
BPF_MAP_TYPE_HASH = 1


class Traffic(ctypes.Structure):
    _fields_ = [("bytes", ctypes.c_uint64), ("calls", ctypes.c_uint64)]


class GetppidEvent(ctypes.Structure):
    _fields_ = [("pid", ctypes.c_uint32), ("tid", ctypes.c_uint32), ("tag", ctypes.c_char * 8)]


@pytest.fixture(scope="module")
def object_path(compile_bpf: Callable[[pathlib.Path], pathlib.Path]) -> pathlib.Path:
    return compile_bpf(SOURCE)


@pytest.fixture(scope="module")
def loaded(object_path: pathlib.Path) -> Iterator[tuple[BpfObject, list[AttachResult]]]:
    with BpfObject.open(object_path) as bpf_object:
        bpf_object.set_rodata({"target_pid": os.getpid(), "event_tag": EVENT_TAG})
        bpf_object.set_max_entries("sent_by_pid", 128)
        bpf_object.load()
        yield bpf_object, bpf_object.attach_all()


def loaded_program_ids(names: set[str]) -> set[int]:
    listing = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True, check=True)
    return {program["id"] for program in json.loads(listing.stdout) if program.get("name") in names}


def libc_file_offset(function_name: str) -> tuple[str, int]:
    """The libc file and the file offset of one of its functions, from this process's mappings."""
    address = ctypes.cast(getattr(ctypes.CDLL("libc.so.6"), function_name), ctypes.c_void_p).value
    assert address is not None
    for line in pathlib.Path("/proc/self/maps").read_text().splitlines():
        span, _permissions, file_offset, _device, _inode, *path = line.split()
        start, end = (int(bound, 16) for bound in span.split("-"))
        if start <= address < end and path:
            return path[0], address - start + int(file_offset, 16)
    raise AssertionError(f"{function_name} is in no mapped file")


def send_over_loopback(byte_count: int) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
        with client, server:
            client.sendall(b"x" * byte_count)
            received = 0
            while received < byte_count:
                received += len(server.recv(65536))


def test_every_program_gets_its_own_attach_result(loaded: tuple[BpfObject, list[AttachResult]]) -> None:
    bpf_object, results = loaded
    by_program = {result.program: result for result in results}

    assert bpf_object.name == "loader_test"
    assert bpf_object.programs() == [
        "count_sent", "report_getppid", "attach_missing", "count_uprobe", "load_missing"
    ]  # fmt: skip
    assert set(by_program) == {"count_sent", "report_getppid", "attach_missing"}  # the "?" ones are off
    assert by_program["count_sent"] == AttachResult("count_sent", "tp_btf/sock_send_length", True, None)
    assert by_program["report_getppid"].attached
    missing = by_program["attach_missing"]
    assert missing.section == "tracepoint/nonexistent/nothing"
    assert not missing.attached
    assert missing.error and "\n" not in missing.error


@pytest.mark.parametrize("batch_lookup", [True, False], ids=["batch", "key-by-key"])
def test_bytes_sent_over_loopback_are_counted_exactly(
    loaded: tuple[BpfObject, list[AttachResult]], monkeypatch: pytest.MonkeyPatch, batch_lookup: bool
) -> None:
    bpf_object = loaded[0]
    if not batch_lookup:
        monkeypatch.setattr(bpf_maps, "_batch_unsupported_map_types", set(range(64)))
    total_map = bpf_object.map("sent_bytes_total")
    by_pid_map = bpf_object.map("sent_by_pid")
    per_cpu_map = bpf_object.map("sent_bytes_per_cpu")

    def counters() -> tuple[int, int, int]:
        total = total_map.lookup(ctypes.c_uint32(0), ctypes.c_uint64)
        by_pid = {key.value: value for key, value in by_pid_map.items(ctypes.c_uint32, Traffic)}
        ((_, per_cpu),) = per_cpu_map.percpu_items(ctypes.c_uint32, ctypes.c_uint64)
        assert total is not None
        mine = by_pid.get(os.getpid())
        return total.value, mine.bytes if mine else 0, sum(cpu.value for cpu in per_cpu)

    before = counters()
    send_over_loopback(12345)
    after = counters()

    assert [now - then for now, then in zip(after, before, strict=True)] == [12345, 12345, 12345]
    if batch_lookup:
        assert not bpf_maps._batch_unsupported_map_types  # the batch path really ran
    assert [(key.value, value.value) for key, value in total_map.items(ctypes.c_uint32, ctypes.c_uint64)] == [
        (0, after[0])
    ]


def test_ring_buffer_receives_one_event_per_getppid(loaded: tuple[BpfObject, list[AttachResult]]) -> None:
    records: list[bytes] = []
    ring_buffer = loaded[0].ring_buffer("getppid_events", lambda record: records.append(bytes(record)))
    ring_buffer.consume()
    records.clear()

    for _ in range(7):
        os.getppid()
    deadline = time.monotonic() + 5
    while len(records) < 7 and time.monotonic() < deadline:
        ring_buffer.poll(100)
    ring_buffer.close()

    events = [GetppidEvent.from_buffer_copy(record) for record in records]
    assert len(events) == 7
    assert {(event.pid, event.tid, event.tag) for event in events} == {
        (os.getpid(), threading.get_native_id(), EVENT_TAG)
    }


def test_a_failing_record_callback_is_logged_once_and_polling_goes_on(
    loaded: tuple[BpfObject, list[AttachResult]], caplog: pytest.LogCaptureFixture
) -> None:
    def reject(_record: memoryview | bytes) -> None:
        raise ValueError("bad record")

    with loaded[0].ring_buffer("getppid_events", reject) as ring_buffer:
        ring_buffer.consume()
        caplog.clear()
        for _ in range(3):
            os.getppid()
        assert ring_buffer.consume() == 3

    assert [record.getMessage() for record in caplog.records].count(
        "ring buffer 'getppid_events': record callback failed"
    ) == 1


def test_map_writes_reads_and_deletes(loaded: tuple[BpfObject, list[AttachResult]]) -> None:
    by_pid_map = loaded[0].map("sent_by_pid")
    key = ctypes.c_uint32(0xFFFF_FFF0)

    assert by_pid_map.map_type == BPF_MAP_TYPE_HASH
    assert by_pid_map.max_entries == 128  # set_max_entries before load
    by_pid_map.update(key, Traffic(bytes=5, calls=1))
    stored = by_pid_map.lookup(key, Traffic)
    assert stored is not None and (stored.bytes, stored.calls) == (5, 1)
    assert key.value in [found.value for found in by_pid_map.keys(ctypes.c_uint32)]
    assert by_pid_map.delete(key)
    assert not by_pid_map.delete(key)
    assert by_pid_map.lookup(key, Traffic) is None
    with pytest.raises(BpfError, match="key type c_ulong is 8 bytes, map has 4"):
        by_pid_map.lookup(ctypes.c_uint64(1), Traffic)


def test_uprobe_counts_calls_of_a_library_function(object_path: pathlib.Path) -> None:
    libc_path, getppid_offset = libc_file_offset("getppid")
    with BpfObject.open(object_path) as bpf_object:
        bpf_object.set_rodata({"target_pid": os.getpid()})
        bpf_object.set_autoload("count_uprobe", True)
        bpf_object.load()
        missing_binary = bpf_object.attach_uprobe("count_uprobe", "/nonexistent", 0, retprobe=False)
        result = bpf_object.attach_uprobe("count_uprobe", libc_path, getppid_offset, retprobe=False)
        for _ in range(4):
            os.getppid()
        hits = bpf_object.map("uprobe_hits").lookup(ctypes.c_uint32(0), ctypes.c_uint64)

    assert missing_binary == AttachResult("count_uprobe", "uprobe", False, "No such file or directory")
    assert result == AttachResult("count_uprobe", "uprobe", True, None)
    assert hits is not None and hits.value == 4


def test_btf_type_size_reads_the_object_btf(loaded: tuple[BpfObject, list[AttachResult]]) -> None:
    assert loaded[0].btf_type_size("loader_test_traffic") == ctypes.sizeof(Traffic)
    assert loaded[0].btf_type_size("no_such_struct") is None


def test_set_rodata_rejects_unknown_names_and_values_that_do_not_fit(object_path: pathlib.Path) -> None:
    with BpfObject.open(object_path) as bpf_object:
        with pytest.raises(BpfError, match=r"^loader_test.bpf.o: no read-only constant named 'nope'$"):
            bpf_object.set_rodata({"nope": 1})
        with pytest.raises(BpfError, match="does not fit"):
            bpf_object.set_rodata({"target_pid": 1 << 32})
        with pytest.raises(BpfError, match="do not fit"):
            bpf_object.set_rodata({"event_tag": b"123456789"})


def test_a_missing_btf_tracepoint_fails_the_load_as_not_supported(
    object_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="exporter.bpf.libbpf")
    with BpfObject.open(object_path) as bpf_object:
        bpf_object.set_autoload("load_missing", True)
        with pytest.raises(NotSupported, match=r"^loader_test.bpf.o: load failed: "):
            bpf_object.load()
    assert any("nonexistent_btf_tracepoint" in record.getMessage() for record in caplog.records)


def test_close_leaves_no_program_loaded(object_path: pathlib.Path) -> None:
    # By id: the module's shared object keeps programs with the same names loaded meanwhile.
    already_loaded = loaded_program_ids(TEST_PROGRAMS)
    bpf_object = BpfObject.open(object_path)
    bpf_object.load()
    assert sum(result.attached for result in bpf_object.attach_all()) == 2
    program_ids = loaded_program_ids(TEST_PROGRAMS) - already_loaded
    assert len(program_ids) == 3  # every autoloaded program, attached or not

    bpf_object.close()
    bpf_object.close()

    # The kernel may drop a tracepoint's last reference to its program after a grace period, not at close.
    assert wait_until(lambda: len(program_ids & loaded_program_ids(TEST_PROGRAMS)), lambda n: n == 0) == 0
    with pytest.raises(BpfError, match="closed"):
        bpf_object.programs()


def test_ensure_tracefs_mounts_tracefs_where_none_is_mounted(bpf_ready: None) -> None:
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed")
    assert (ensure_tracefs() / "events").is_dir()
    # In a private mount namespace, so the host's tracefs stays mounted.
    script = (
        "umount /sys/kernel/tracing 2>/dev/null; umount /sys/kernel/debug 2>/dev/null; "
        "test ! -e /sys/kernel/tracing/events || exit 3; "
        f"exec {sys.executable} -c 'from exporter.bpf import ensure_tracefs; print(ensure_tracefs())'"
    )
    completed = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        capture_output=True, text=True, check=False,
        env={**os.environ, "PYTHONPATH": str(pathlib.Path(__file__).resolve().parents[2])},
    )  # fmt: skip
    assert (completed.returncode, completed.stdout.strip()) == (0, "/sys/kernel/tracing"), completed.stderr

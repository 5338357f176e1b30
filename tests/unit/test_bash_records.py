"""From a kernel event to a log record's body and attributes."""

from __future__ import annotations

import re

from exporter.collectors.bash import Command, log_attributes, to_command
from exporter.collectors.bash_maps import LINE_MAX, BashEvent
from exporter.enrich.users import User

PASSWORD = [re.compile(r"password=(?P<secret>\S+)")]


def event(line: bytes, truncated: bool = False, pid: int = 4321, uid: int = 0) -> BashEvent:
    e = BashEvent(ktime_ns=5_000, pid=pid, uid=uid, len=len(line), truncated=int(truncated), comm=b"bash")
    e.line = line
    return e


def test_a_command_keeps_its_text_pid_uid_and_time() -> None:
    command = to_command(event(b"ls -la /tmp", uid=1000), 4096, [], wall_minus_monotonic_ns=1_000_000)
    assert command == Command(time_ns=1_005_000, pid=4321, kernel_uid=1000, comm="bash", text="ls -la /tmp",
                              truncated=False)


def test_empty_and_blank_lines_are_no_command() -> None:
    assert to_command(event(b""), 4096, [], 0) is None
    assert to_command(event(b"  \t "), 4096, [], 0) is None


def test_leading_and_trailing_spaces_are_kept() -> None:
    command = to_command(event(b" echo hidden-from-history "), 4096, [], 0)
    assert command is not None and command.text == " echo hidden-from-history "


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    command = to_command(event(b"echo \xff\xfe ok"), 4096, [], 0)
    assert command is not None and command.text == "echo \ufffd\ufffd ok"


def test_a_line_the_kernel_cut_is_marked_truncated() -> None:
    command = to_command(event(b"x" * LINE_MAX, truncated=True), 8192, [], 0)
    assert command is not None and command.truncated and len(command.text) == LINE_MAX


def test_a_line_longer_than_max_command_length_is_cut_and_marked() -> None:
    command = to_command(event(b"echo " + b"y" * 100), 10, [], 0)
    assert command is not None and command.text == "echo yyyyy" and command.truncated


def test_redaction_comes_before_the_cut() -> None:
    # Cut first, "password=hunter" would be left with part of the secret.
    command = to_command(event(b"x password=hunter2 y"), 15, PASSWORD, 0)
    assert command is not None and command.text == "x password=*** " and command.truncated


def test_attributes_of_a_record() -> None:
    command = Command(1, 4321, 0, "bash", "ls", truncated=False)
    assert log_attributes(command, User(0, "root"), "node-1") == {
        "process.pid": 4321, "process.executable.name": "bash", "user.id": "0", "user.name": "root",
        "host.name": "node-1", "bash.command.truncated": False,
    }


def test_an_unknown_user_has_an_id_but_no_name() -> None:
    attributes = log_attributes(Command(1, 7, 4242, "bash", "ls", True), User(4242, None), "n")
    assert "user.name" not in attributes
    assert attributes["user.id"] == "4242" and attributes["bash.command.truncated"] is True

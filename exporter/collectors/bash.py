"""bash: every command typed in an interactive bash, as an OpenTelemetry log record.

The kernel side returns each line readline() gives back; here it is redacted, cut to
Bash.MaxCommandLength, given its user and host, and handed to the log delivery. A thread polls
the ring buffer so records leave as soon as commands are typed; tick() looks for new bash
binaries (containers started since) every few seconds."""

from __future__ import annotations

import ctypes
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from exporter.bpf import AttachResult, BpfObject
from exporter.collectors.base import Collector, check_mirrors
from exporter.collectors.bash_binaries import Binary, FileKey, bash_processes, host_binaries, readline_offset
from exporter.collectors.bash_maps import LOST_REASONS, MIRRORS, BashEvent
from exporter.collectors.bash_redact import redact
from exporter.config import Config
from exporter.enrich.users import User, UserNames
from exporter.telemetry.logs import LogDelivery

log = logging.getLogger(__name__)

PROGRAM = "bash_readline"
SCOPE = "netobs.bash"
EVENT_NAME = "bash.command"
SCAN_INTERVAL = 3.0  # seconds between looks for new bash binaries
RETRY_INTERVAL = 60.0  # seconds before a binary that could not be opened or attached is tried again
NEVER = float("inf")
MAX_BINARIES = 64  # distinct files traced at most; bounds the program label of netobs_program_attached


@dataclass(frozen=True)
class Command:
    """One command line, redacted and cut, ready to be a log record."""

    time_ns: int
    pid: int
    kernel_uid: int
    comm: str
    text: str
    truncated: bool


def to_command(event: BashEvent, max_length: int, patterns: Sequence[re.Pattern[str]],
               wall_minus_monotonic_ns: int) -> Command | None:
    """The command of one kernel event; None for a line of nothing but white space.
    Secrets are redacted before the line is cut, so a cut never reveals part of one."""
    text = event.line.decode("utf-8", errors="replace")
    if not text.strip():
        return None
    text = redact(text, patterns)
    truncated = bool(event.truncated)
    if len(text) > max_length:
        text, truncated = text[:max_length], True
    return Command(event.ktime_ns + wall_minus_monotonic_ns, event.pid, event.uid,
                   event.comm.decode("utf-8", errors="replace"), text, truncated)


def log_attributes(command: Command, user: User, host_name: str) -> dict[str, str | int | bool]:
    attributes: dict[str, str | int | bool] = {
        "process.pid": command.pid,
        "process.executable.name": command.comm,
        "user.id": str(user.uid),
        "host.name": host_name,
        "bash.command.truncated": command.truncated,
    }
    if user.name is not None:
        attributes["user.name"] = user.name
    return attributes


def _pid_only(pid: int, comm: str) -> Mapping[str, str | int]:
    return {"process.pid": pid, "process.executable.name": comm}


class BashCollector(Collector):
    name = "bash"
    object_name = "bash"

    def __init__(self, config: Config, users: UserNames | None = None) -> None:
        super().__init__()
        self.config = config
        self.commands = 0  # commands seen since start (netobs.bash.commands)
        self._users = users or UserNames()
        self._next_try: dict[FileKey, float] = {}  # per binary seen: when to try it again (NEVER: done)
        self._next_scan = 0.0
        self._logs: LogDelivery | None = None
        # pid, comm -> the process's attributes for its records, None when the filters leave it out
        self.attribute: Callable[[int, str], Mapping[str, str | int] | None] = _pid_only

    # -------------------------------------------------------------- set-up

    def configure(self, obj: BpfObject) -> None:
        check_mirrors(obj, MIRRORS)

    def start(self) -> list[AttachResult]:
        """Loads the object and attaches to the binaries there are now; the uprobe has no target
        of its own, so attach_all() does not apply."""
        self.obj = self.load()
        for binary in host_binaries():
            self._attach(binary, time.monotonic())
        self._scan(time.monotonic())
        return self.attach_results

    def bind_logs(self, logs: LogDelivery) -> None:
        """Starts delivering commands to `logs`, from a thread that polls the ring buffer."""
        if self.obj is None or self._poller is not None:
            return
        self._logs = logs
        self.poll_ring_buffer("bash_commands", self._on_event)

    # -------------------------------------------------------------- binaries

    def tick(self, now: float) -> None:
        if self.obj is not None and now >= self._next_scan:
            self._scan(now)

    def _scan(self, now: float) -> None:
        """Attaches to binaries not seen before, and notes each bash's root for its user names."""
        self._next_scan = now + SCAN_INTERVAL
        for pid, binary in bash_processes(containers=self.config.bash.containers):
            self._attach(binary, now)
            self._users.remember(pid)

    def _attach(self, binary: Binary, now: float) -> None:
        """One uprobe per file. A file without readline is given up; one that could not be read or
        attached (its process exited meanwhile...) is tried again later."""
        assert self.obj is not None
        if now < self._next_try.get(binary.key, 0.0):
            return
        if binary.key not in self._next_try and len(self._next_try) >= MAX_BINARIES:
            log.warning("bash: already tracing %d binaries; %s is not traced", MAX_BINARIES, binary.display)
            self._next_try[binary.key] = NEVER
            return
        program = f"{PROGRAM}:{binary.display}"
        try:
            offset = readline_offset(binary.path)
        except ValueError as error:  # not ELF, or no readline: it will not change
            self._next_try[binary.key] = NEVER
            self._record(AttachResult(program, "uretprobe", attached=False, error=str(error)))
            return
        except OSError as error:
            self._next_try[binary.key] = now + RETRY_INTERVAL
            self._record(AttachResult(program, "uretprobe", attached=False, error=str(error)))
            return
        result = self.obj.attach_uprobe(PROGRAM, binary.path, offset, retprobe=True)
        self._next_try[binary.key] = NEVER if result.attached else now + RETRY_INTERVAL
        self._record(AttachResult(program, result.section, result.attached, result.error))

    def _record(self, result: AttachResult) -> None:
        """Replaces the earlier result for the same binary; the list is swapped, never changed in place,
        because the HTTP thread reads it."""
        others = [r for r in self.attach_results if r.program != result.program]
        self.attach_results = [*others, result]
        if result.attached:
            log.info("bash: tracing readline in %s", result.program.removeprefix(PROGRAM + ":"))
        else:
            log.warning("bash: not tracing %s: %s", result.program.removeprefix(PROGRAM + ":"), result.error)

    # -------------------------------------------------------------- commands

    def _on_event(self, raw: memoryview | bytes) -> None:
        if len(raw) < ctypes.sizeof(BashEvent) or self._logs is None:
            return
        event = BashEvent.from_buffer_copy(raw)
        bash = self.config.bash
        command = to_command(event, bash.max_command_length, bash.redact, time.time_ns() - time.monotonic_ns())
        if command is None:
            return
        process = self.attribute(command.pid, command.comm)
        if process is None:  # not watched: the kernel's verdict came before user space had seen the process
            return
        self.commands += 1
        user = self._users.lookup(command.pid, command.kernel_uid)
        attributes = {**process, **log_attributes(command, user, self._logs.host_name)}
        self._logs.emit(SCOPE, EVENT_NAME, command.text, attributes, command.time_ns)

    def counters(self) -> Mapping[str, int]:
        return {"netobs.bash.commands": self.commands}

    def lost(self) -> Mapping[str, int]:
        if self.obj is None:
            return {}
        return {LOST_REASONS[k.value]: v.value
                for k, v in self.obj.map("lost").items(ctypes.c_uint32, ctypes.c_uint64)}

"""Sockets as netlink sock_diag sees them (host network namespace): connections that were
open before the exporter started, and the host's own addresses."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass

from pyroute2 import IPRoute
from pyroute2.netlink.diag import DiagSocket

from exporter.collectors.netflow_maps import NetflowKey
from exporter.enrich import cgroups
from exporter.enrich.process import start_and_comm
from exporter.series.addresses import pack_address
from exporter.series.flows import DIRECTION_INCOMING, DIRECTION_OUTGOING

log = logging.getLogger(__name__)

TCP_ESTABLISHED, TCP_LISTEN = 1, 10
IPPROTO_TCP = 6


@dataclass(frozen=True)
class Connection:
    cookie: int
    family: int
    local: str
    local_port: int
    remote: str
    remote_port: int
    incoming: bool
    pid: int
    comm: str
    start: int = 0  # the process's start and cgroup, as the kernel records owners (bpf/include/netobs_owner.h)
    cgroup_id: int = 0

    def flow_key(self, ephemeral_low: int, ephemeral_high: int) -> NetflowKey:
        """The same key the kernel would have built (bpf/netflow.c key_from_endpoints)."""
        local, family = pack_address(self.local)
        remote, _ = pack_address(self.remote)
        key = NetflowKey(family=family, protocol=IPPROTO_TCP, pid=self.pid, start=self.start,
                      direction=DIRECTION_INCOMING if self.incoming else DIRECTION_OUTGOING,
                      local_port=self.local_port, remote_port=self.remote_port)
        key.local_addr[:] = local
        key.remote_addr[:] = remote
        ephemeral = range(ephemeral_low, ephemeral_high + 1)
        if not self.incoming and self.local_port in ephemeral:
            key.local_port = 0
        elif self.incoming and self.remote_port in ephemeral:
            key.remote_port = 0
        return key


def _dump(family: int, states: int) -> list:
    with DiagSocket() as ds:
        ds.bind()
        return list(ds.get_sock_stats(family=family, states=states, protocol=IPPROTO_TCP))


def socket_owners(proc: str = "/proc") -> dict[int, int]:
    """socket inode -> pid of a process holding it (the lowest pid when shared)."""
    owners: dict[int, int] = {}
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            for fd in os.scandir(f"{proc}/{pid}/fd"):
                target = os.readlink(fd.path)
                if target.startswith("socket:["):
                    owners.setdefault(int(target[8:-1]), pid)
        except OSError:
            continue  # exited, or not ours to read
    return owners


def _comm(pid: int, proc: str = "/proc") -> str:
    try:
        with open(f"{proc}/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def _identity(pid: int, mount: str | None, proc: str = "/proc") -> tuple[int, int]:
    """(start, cgroup id) of a live process, as the kernel takes them; 0 for what cannot be read."""
    try:
        start = int(start_and_comm(proc, pid)[0])
        with open(f"{proc}/{pid}/cgroup") as f:
            unified = cgroups.parse_proc_cgroup(f.read()).unified
    except (OSError, IndexError, ValueError):
        return 0, 0
    found = cgroups.cgroup_id(mount, unified) if mount and unified else None
    return start, found or 0


def established_tcp() -> Iterator[Connection]:
    msgs = []
    listening: set[int] = set()
    for family in (socket.AF_INET, socket.AF_INET6):
        msgs += _dump(family, 1 << TCP_ESTABLISHED)
        listening |= {m["idiag_sport"] for m in _dump(family, 1 << TCP_LISTEN)}
    owners = socket_owners() if msgs else {}
    try:
        with open("/proc/self/mountinfo") as f:
            mount = cgroups.unified_mount(f.read())
    except OSError:
        mount = None
    identities: dict[int, tuple[int, int]] = {}
    for m in msgs:
        pid = owners.get(m["idiag_inode"], 0)
        if pid and pid not in identities:
            identities[pid] = _identity(pid, mount)
        start, cgroup_id = identities.get(pid, (0, 0))
        yield Connection(
            cookie=m["idiag_cookie"], family=m["idiag_family"],
            local=m["idiag_src"], local_port=m["idiag_sport"],
            remote=m["idiag_dst"], remote_port=m["idiag_dport"],
            incoming=m["idiag_sport"] in listening, pid=pid, comm=_comm(pid) if pid else "",
            start=start, cgroup_id=cgroup_id,
        )


TCP_TIME_WAIT = 6
# Connections that may still be open: every state but LISTEN and TIME_WAIT (a closed
# connection's time-wait socket has a cookie of its own, and a busy host has tens of thousands).
OPEN_STATES = 0xFFF & ~(1 << TCP_TIME_WAIT) & ~(1 << TCP_LISTEN)


def tcp_cookies() -> set[int]:
    cookies: set[int] = set()
    for family in (socket.AF_INET, socket.AF_INET6):
        cookies |= {m["idiag_cookie"] for m in _dump(family, OPEN_STATES)}
    return cookies


def host_addresses() -> list[tuple[bytes, int]]:
    """This host's addresses other than loopback, in the kernel's 16-byte form."""
    out = []
    with IPRoute() as ipr:
        for msg in ipr.get_addr():
            address = msg.get_attr("IFA_ADDRESS")
            if address and not address.startswith(("127.", "::1")):
                out.append(pack_address(address.split("%")[0]))
    return out

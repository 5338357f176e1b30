"""Two test hosts in their own network namespaces, joined by a veth pair. Their addresses are
documentation ranges that exist only inside these namespaces: no traffic leaves the machine."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class VethPair:
    a: str
    b: str
    a_v4: str = "198.51.100.1"
    b_v4: str = "198.51.100.2"
    a_v6: str = "2001:db8:51::1"
    b_v6: str = "2001:db8:51::2"


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@contextmanager
def veth_pair(tag: str = "nf") -> Iterator[VethPair]:
    pair = VethPair(a=f"{tag}a{os.getpid()}", b=f"{tag}b{os.getpid()}")
    ip("netns", "add", pair.a)
    ip("netns", "add", pair.b)
    try:
        ip("link", "add", "veth-a", "netns", pair.a, "type", "veth", "peer", "name", "veth-b", "netns", pair.b)
        for ns, dev, v4, v6 in ((pair.a, "veth-a", pair.a_v4, pair.a_v6), (pair.b, "veth-b", pair.b_v4, pair.b_v6)):
            ip("-n", ns, "addr", "add", f"{v4}/24", "dev", dev)
            ip("-n", ns, "addr", "add", f"{v6}/64", "dev", dev, "nodad")
            ip("-n", ns, "link", "set", dev, "up")
            ip("-n", ns, "link", "set", "lo", "up")
        yield pair
    finally:
        for ns in (pair.a, pair.b):
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)

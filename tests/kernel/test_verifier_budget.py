"""The verifier accepts each program with room to spare.

It refuses a program once it has walked 1,000,000 instructions, and how many it walks for the same
object grows from one kernel build to the next (bpf_loop callbacks walked until their states
converge took l7's socket programs from under the limit to over it). A program that needs more than
half the limit here fails this test, before a user's kernel refuses it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from exporter.bpf import BpfObject
from exporter.collectors import enabled_collectors
from exporter.collectors.base import load_object_or_fewer
from exporter.config import load_config

pytestmark = pytest.mark.usefixtures("bpf_ready")

VERIFIER_LIMIT = 1_000_000
BUDGET = VERIFIER_LIMIT // 2


@pytest.fixture(scope="module")
def sockets() -> Iterator[BpfObject]:
    """sockets.bpf.o as the exporter loads it, with every feature and every application protocol."""
    config = load_config(None, {}, ["Common.IncludeProtocols=[HTTP, Redis, MySQL, PgSQL, DNS, Memcached]"])
    members = [c for c in enabled_collectors(config) if c.object_name == "sockets"]
    assert {m.name for m in members} == {"dns", "netflow", "l7"}
    obj = load_object_or_fewer(members)
    yield obj
    obj.close()


def test_every_socket_program_verifies_within_half_the_limit(sockets: BpfObject) -> None:
    loaded = sockets.loaded_programs()
    assert {"sock_send", "sock_recv", "sock_state", "ssl_return"} <= set(loaded)
    walked = {p: sockets.verified_instructions(p) for p in loaded}
    assert all(n > 0 for n in walked.values()), walked  # the kernel says (it has since 5.16)
    assert {p: n for p, n in walked.items() if n > BUDGET} == {}, walked

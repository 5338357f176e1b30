"""dns under load: dnsperf against unbound on loopback, every lookup accounted for.

dnsperf sends from one thread on unconnected sockets and reads the answers from another with
recvfrom(..., NULL, NULL), so no hook sees their peer; ids repeat quickly, on many sockets. Its own
report is the truth: the exporter's client-side NOERROR and NXDOMAIN lookups equal its completed
queries, per name and per code, TIMEOUT equals what it lost, and unbound's own query count equals
the exporter's server side. With a pending table far too small, the lookups it had no room for are
counted as lost once, and never reported as timeouts."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.kernel.dns_peers import Unbound
from tests.kernel.harness import WITH_PID, Exporter, free_port, wait_until

pytestmark = pytest.mark.usefixtures("bpf_ready")

PORT = free_port()
TIMEOUT = 2  # Dns.Timeout of the exporter, and dnsperf's -t
NAMES = [("a.perf.test", "A"), ("b.perf.test", "A"), ("nx.perf.test", "A"), ("b.perf.test", "AAAA")]
RECORDS = {"a.perf.test": "192.0.2.1", "b.perf.test": "192.0.2.2"}  # b has no AAAA: NOERROR with no answer


@dataclass
class Report:
    pid: int
    sent: int
    completed: int
    lost: int
    codes: dict[str, int]

    def per_question(self) -> dict[tuple[str, str], int]:
        """Queries sent per question: dnsperf goes through its data file in order, again and again."""
        return {q: self.sent // len(NAMES) + (i < self.sent % len(NAMES)) for i, q in enumerate(NAMES)}


@pytest.fixture(scope="module")
def unbound(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Unbound]:
    server = Unbound(tmp_path_factory.mktemp("unbound"), PORT, free_port(), "perf.test", RECORDS)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def datafile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dnsperf") / "queries.txt"
    path.write_text("".join(f"{name} {qtype}\n" for name, qtype in NAMES))
    return path


def dnsperf(datafile: Path, *args: str) -> Report:
    proc = subprocess.Popen(["dnsperf", "-s", "127.0.0.1", "-p", str(PORT), "-d", str(datafile), "-t", str(TIMEOUT),
                             *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out

    def number(label: str) -> int:
        m = re.search(rf"{label}:\s+(\d+)", out)
        assert m, (label, out)
        return int(m.group(1))

    codes = {code: int(n) for code, n in re.findall(r"([A-Z]+) (\d+) \(", out.split("Response codes:", 1)[1])}
    return Report(proc.pid, number("Queries sent"), number("Queries completed"), number("Queries lost"), codes)


def lookups_by(exp: Exporter, direction: str, **labels: str) -> dict[tuple[str, str, str], float]:
    out: dict[tuple[str, str, str], float] = {}
    for got, value in exp.samples("dns_lookups_total", dnsflow_direction=direction, **labels):
        key = (got["dns_question_name"], got["dns_question_type"], got["dns_response_code"])
        out[key] = out.get(key, 0) + value
    return out


def by_code(counts: dict[tuple[str, str, str], float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for (_, _, code), n in counts.items():
        out[code] = out.get(code, 0) + n
    return out


def check_against(exp: Exporter, report: Report) -> None:
    pid = str(report.pid)
    expected_total = report.completed + report.lost  # the lost ones become TIMEOUT after Dns.Timeout
    wait_until(lambda: exp.value("dns_lookups_total", process_pid=pid, dnsflow_direction="outgoing"),
               lambda v: v == expected_total, timeout=TIMEOUT + 10)
    counts = lookups_by(exp, "outgoing", process_pid=pid)
    expected_codes = dict(report.codes)
    if report.lost:
        expected_codes["TIMEOUT"] = report.lost
    assert by_code(counts) == expected_codes
    if not report.lost:
        per_question: dict[tuple[str, str], float] = {}
        for (name, qtype, _), n in counts.items():
            per_question[(name, qtype)] = per_question.get((name, qtype), 0) + n
        assert per_question == report.per_question()
        assert {code for (name, _, code) in counts if name == "nx.perf.test"} == {"NXDOMAIN"}


@pytest.fixture(scope="module")
def exporter(unbound: Unbound) -> Iterator[Exporter]:
    exp = Exporter(WITH_PID, f"Dns.Ports=[53,{PORT}]", f"Dns.Timeout={TIMEOUT}", "Common.DropLocalConnections=false",
                   "Bash.Enabled=false")
    yield exp
    exp.stop()


def test_one_client_at_a_fixed_rate(exporter: Exporter, unbound: Unbound, datafile: Path) -> None:
    report = dnsperf(datafile, "-Q", "2000", "-l", "2")
    assert report.completed == report.sent > 3000
    check_against(exporter, report)


def test_twenty_clients_at_full_rate_client_and_server_agree(exporter: Exporter, unbound: Unbound,
                                                             datafile: Path) -> None:
    def served() -> float:
        return exporter.value("dns_lookups_total", process_executable_name="unbound", dnsflow_direction="incoming")

    before_unbound = unbound.stats()["total.num.queries"]
    before_served = served()
    report = dnsperf(datafile, "-c", "20", "-l", "3")
    assert report.sent > 10_000
    check_against(exporter, report)
    queries = unbound.stats()["total.num.queries"] - before_unbound
    assert wait_until(lambda: served() - before_served, lambda v: v == queries, timeout=TIMEOUT + 10) == queries
    lost = exporter.samples("netobs_events_lost_total", collector="dns")
    assert {labels["reason"]: v for labels, v in lost if v} == {}


def test_a_full_pending_table_loses_lookups_exactly_and_reports_no_timeout(unbound: Unbound,
                                                                           datafile: Path) -> None:
    """16 places for dnsperf's 100 queries in flight: those without one are counted lost, once."""
    exp = Exporter(WITH_PID, f"Dns.Ports=[53,{PORT}]", f"Dns.Timeout={TIMEOUT}", "Dns.MaxPending=16",
                   "Common.DropLocalConnections=false", "Bash.Enabled=false")
    try:
        report = dnsperf(datafile, "-l", "2")
        assert report.completed == report.sent
        pid = str(report.pid)

        def accounted() -> float:
            """Each query is a lookup or lost twice over: the server's side waits in the same table."""
            asked = exp.value("dns_lookups_total", process_pid=pid, dnsflow_direction="outgoing")
            served = exp.value("dns_lookups_total", process_executable_name="unbound", dnsflow_direction="incoming")
            return asked + served + exp.value("netobs_events_lost_total", collector="dns", reason="pending_full")

        assert wait_until(accounted, lambda v: v == 2 * report.sent, timeout=TIMEOUT + 10) == 2 * report.sent
        wait_until(lambda: 0.0, lambda v: False, timeout=TIMEOUT + 1.5)  # any timeout would have come due
        assert accounted() == 2 * report.sent
        counts = by_code(lookups_by(exp, "outgoing", process_pid=pid))
        assert "TIMEOUT" not in counts
        assert counts["NOERROR"] + counts["NXDOMAIN"] > 0
        lost = {labels["reason"]: v for labels, v in exp.samples("netobs_events_lost_total", collector="dns")}
        assert lost["pending_full"] > 0
        assert lost["unmatched"] == 0
    finally:
        exp.stop()

"""DNS peers for the kernel tests: dnsmasq and unbound serving names the tests define, and the bytes of
plain queries and answers. Everything listens on loopback (or in a test's network namespace)."""

from __future__ import annotations

import socket
import struct
import subprocess
import time
from pathlib import Path


def dnsmasq(port: int, *listen: str, netns: str | None = None) -> subprocess.Popen[bytes]:
    argv = [
        "dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
        "--bind-interfaces", f"--listen-address={','.join(listen)}", f"--port={port}", "--user=root",
        "--local=/test/",  # names under .test that are not defined: NXDOMAIN; other names: REFUSED
        "--address=/wild.test/192.0.2.1", "--address=/wild.test/2001:db8::1",
        "--host-record=app.example.test,127.0.0.77",
        "--cname=alias.example.test,app.example.test",
        "--log-facility=/dev/null", "--pid-file=",
    ]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.5)
    if proc.poll() is not None:
        raise RuntimeError(f"dnsmasq exited: {proc.stderr.read() if proc.stderr else ''}")
    return proc


class Unbound:
    """unbound on 127.0.0.1 and ::1, authoritative for `zone` (names under it that are not given: NXDOMAIN),
    never asking another server; its statistics through unbound-control on a loopback port."""

    def __init__(self, workdir: Path, port: int, control_port: int, zone: str, records: dict[str, str],
                 threads: int = 1) -> None:
        self.conf = workdir / "unbound.conf"
        data = "".join(f'  local-data: "{name}. 60 IN A {address}"\n' for name, address in records.items())
        self.conf.write_text(f"""server:
  interface: 127.0.0.1
  interface: ::1
  port: {port}
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "{workdir}"
  pidfile: ""
  use-syslog: no
  logfile: ""
  verbosity: 0
  num-threads: {threads}
  access-control: 127.0.0.0/8 allow
  access-control: ::1 allow
  module-config: "iterator"
  local-zone: "{zone}." static
{data}remote-control:
  control-enable: yes
  control-interface: 127.0.0.1
  control-port: {control_port}
  control-use-cert: no
""")
        self.proc = subprocess.Popen(["unbound", "-d", "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"unbound exited: {self.proc.stderr.read() if self.proc.stderr else ''}")
            try:
                self.stats()
                return
            except (subprocess.CalledProcessError, ValueError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stats(self) -> dict[str, float]:
        out = subprocess.run(["unbound-control", "-c", str(self.conf), "stats_noreset"], capture_output=True,
                             text=True, check=True, timeout=10).stdout
        return {k: float(v) for k, v in (line.split("=", 1) for line in out.splitlines() if "=" in line)}

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def wire_name(name: str) -> bytes:
    return b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"


def query(name: str, ident: int, qtype: int = 1) -> bytes:
    """A standard query, recursion desired, one question of class IN."""
    return struct.pack(">6H", ident, 0x0100, 1, 0, 0, 0) + wire_name(name) + struct.pack(">HH", qtype, 1)


def answer_to(query_bytes: bytes, address: str = "192.0.2.9") -> bytes:
    """A NOERROR answer with one A record to `query_bytes`, a plain one-question query."""
    end = 12
    while query_bytes[end]:
        end += query_bytes[end] + 1
    question = query_bytes[12:end + 5]
    header = query_bytes[:2] + struct.pack(">HHHHH", 0x8180, 1, 1, 0, 0)
    record = struct.pack(">HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton(address)
    return header + question + record


def rcode(message: bytes) -> int:
    return message[3] & 0x0F

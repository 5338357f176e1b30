"""Traffic for the kernel tests: each peer is its own process, so its pid names its series.

Every command prints one JSON line when ready ({"pid": ...}) and one when done."""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import sys


def say(**fields: object) -> None:
    print(json.dumps({"pid": os.getpid(), **fields}), flush=True)


def family_of(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def read_all(conn: socket.socket) -> int:
    total = 0
    while chunk := conn.recv(1 << 16):
        total += len(chunk)
    return total


def tcp_server(a: argparse.Namespace) -> None:
    with socket.socket(family_of(a.host)) as srv:
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((a.host, a.port))
        srv.listen(128)
        say(port=srv.getsockname()[1])
        received = 0
        for _ in range(a.count):
            conn, _peer = srv.accept()
            with conn:
                received += read_all(conn)
                conn.sendall(b"s" * a.reply)
        say(received=received)


def tcp_client(a: argparse.Namespace) -> None:
    say()
    received = 0
    for _ in range(a.count):
        with socket.create_connection((a.host, a.port)) as conn:
            conn.sendall(b"c" * a.send)
            conn.shutdown(socket.SHUT_WR)
            received += read_all(conn)
    say(received=received)


def tcp_client_on_demand(a: argparse.Namespace) -> None:
    """One connection sending `send` bytes for every line read on stdin, until stdin closes."""
    say()
    while sys.stdin.readline():
        with socket.create_connection((a.host, a.port), timeout=10) as conn:
            conn.sendall(b"c" * a.send)
            conn.shutdown(socket.SHUT_WR)
            say(received=read_all(conn))


def tcp_refused(a: argparse.Namespace) -> None:
    say()
    refused = 0
    for _ in range(a.count):
        with socket.socket(family_of(a.host)) as s:
            try:
                s.connect((a.host, a.port))
            except ConnectionRefusedError:
                refused += 1
    say(refused=refused)


def udp_server(a: argparse.Namespace) -> None:
    with socket.socket(family_of(a.host), socket.SOCK_DGRAM) as s:
        s.bind((a.host, a.port))
        say(port=s.getsockname()[1])
        received = 0
        for _ in range(a.count):
            data, peer = s.recvfrom(1 << 16)
            received += len(data)
            s.sendto(data, peer)
        say(received=received)


def udp_client(a: argparse.Namespace) -> None:
    with socket.socket(family_of(a.host), socket.SOCK_DGRAM) as s:
        say()
        if a.connected:
            s.connect((a.host, a.port))
        received = 0
        for _ in range(a.count):
            if a.connected:
                s.send(b"u" * a.send)
            else:
                s.sendto(b"u" * a.send, (a.host, a.port))
            received += len(s.recv(1 << 16))
        say(received=received)


def tcp_info(conn: socket.socket) -> dict[str, int]:
    """tcpi_rtt, tcpi_rttvar and tcpi_total_retrans from TCP_INFO (struct tcp_info, linux/tcp.h)."""
    raw = conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    rtt, rttvar = struct.unpack_from("II", raw, 68)
    (total_retrans,) = struct.unpack_from("I", raw, 100)
    return {"rtt_us": rtt, "rttvar_us": rttvar, "total_retrans": total_retrans}


def tcp_sender_hold(a: argparse.Namespace) -> None:
    """Sends, waits for the receiver's ack byte, reports TCP_INFO, keeps the connection open
    until a line arrives on stdin."""
    with socket.create_connection((a.host, a.port)) as conn:
        say(local_port=conn.getsockname()[1])
        conn.sendall(b"r" * a.send)
        assert conn.recv(1) == b"k"
        say(**tcp_info(conn))
        sys.stdin.readline()
        conn.sendall(b"r" * a.more)
        conn.shutdown(socket.SHUT_WR)
        conn.recv(1)
    say(done=True)


def tcp_receiver_ack(a: argparse.Namespace) -> None:
    with socket.socket(family_of(a.host)) as srv:
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((a.host, a.port))
        srv.listen(1)
        say(port=srv.getsockname()[1])
        conn, _ = srv.accept()
        with conn:
            got = 0
            while got < a.expect:
                chunk = conn.recv(1 << 16)
                if not chunk:  # the sender went away (its test was stopped): end, never spin on EOF
                    raise SystemExit(f"tcp-receiver-ack: connection closed after {got} of {a.expect} bytes")
                got += len(chunk)
            conn.sendall(b"k")
            got += read_all(conn)
        say(received=got)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("command")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--send", type=int, default=0)
    p.add_argument("--reply", type=int, default=0)
    p.add_argument("--expect", type=int, default=0)
    p.add_argument("--more", type=int, default=0)
    p.add_argument("--connected", action="store_true")
    a = p.parse_args()
    commands = {
        "tcp-server": tcp_server, "tcp-client": tcp_client, "tcp-refused": tcp_refused,
        "tcp-client-on-demand": tcp_client_on_demand,
        "udp-server": udp_server, "udp-client": udp_client,
        "tcp-sender-hold": tcp_sender_hold, "tcp-receiver-ack": tcp_receiver_ack,
    }
    commands[a.command](a)


if __name__ == "__main__":
    main()

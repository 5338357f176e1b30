"""sendmmsg(2) and recvmmsg(2) from Python, through libc: the batch calls Python's socket lacks.

Datagrams go out and come in several per system call, as high-rate resolvers and load generators
send and read them. Addresses are raw sockaddr bytes (`sockaddr()` builds them); a recvmmsg without
room for addresses passes msg_name = NULL, so the kernel's cgroup recvmsg hooks never see the peer."""

from __future__ import annotations

import ctypes
import ipaddress
import os
import socket
import struct

libc = ctypes.CDLL(None, use_errno=True)


class Iovec(ctypes.Structure):
    _fields_ = (("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t))


class Msghdr(ctypes.Structure):
    _fields_ = (
        ("msg_name", ctypes.c_void_p), ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.POINTER(Iovec)), ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p), ("msg_controllen", ctypes.c_size_t), ("msg_flags", ctypes.c_int),
    )


class Mmsghdr(ctypes.Structure):
    _fields_ = (("msg_hdr", Msghdr), ("msg_len", ctypes.c_uint32))


assert ctypes.sizeof(Mmsghdr) == 64  # what bpf/dns.c steps through a vector by


def sockaddr(address: str, port: int) -> bytes:
    ip = ipaddress.ip_address(address)
    if ip.version == 4:
        return struct.pack("<H", socket.AF_INET) + struct.pack(">H", port) + ip.packed + bytes(8)
    return struct.pack("<H", socket.AF_INET6) + struct.pack(">HI", port, 0) + ip.packed + struct.pack("<I", 0)


def _check(n: int) -> int:
    if n < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return n


def sendmmsg(sock: socket.socket, messages: list[bytes], to: bytes | None = None) -> int:
    """Sends `messages` in one call (to the address `to`, or the connected peer); returns how many went."""
    vec = (Mmsghdr * len(messages))()
    keep = []
    name = ctypes.create_string_buffer(to, len(to)) if to else None
    for i, data in enumerate(messages):
        buf = ctypes.create_string_buffer(data, len(data))
        iov = Iovec(ctypes.cast(buf, ctypes.c_void_p), len(data))
        keep += [buf, iov]
        vec[i].msg_hdr.msg_iov = ctypes.pointer(iov)
        vec[i].msg_hdr.msg_iovlen = 1
        if name is not None and to is not None:
            vec[i].msg_hdr.msg_name = ctypes.cast(name, ctypes.c_void_p)
            vec[i].msg_hdr.msg_namelen = len(to)
    return _check(libc.sendmmsg(sock.fileno(), vec, len(messages), 0))


def recvmmsg(sock: socket.socket, count: int, *, with_addresses: bool, size: int = 2048,
             flags: int = 0) -> list[tuple[bytes, bytes | None]]:
    """Up to `count` datagrams in one call: (data, raw sockaddr or None) each."""
    vec = (Mmsghdr * count)()
    bufs = [ctypes.create_string_buffer(size) for _ in range(count)]
    iovs = [Iovec(ctypes.cast(b, ctypes.c_void_p), size) for b in bufs]
    names = [ctypes.create_string_buffer(28) for _ in range(count)]
    for i in range(count):
        vec[i].msg_hdr.msg_iov = ctypes.pointer(iovs[i])
        vec[i].msg_hdr.msg_iovlen = 1
        if with_addresses:
            vec[i].msg_hdr.msg_name = ctypes.cast(names[i], ctypes.c_void_p)
            vec[i].msg_hdr.msg_namelen = 28
    n = _check(libc.recvmmsg(sock.fileno(), vec, count, flags, None))
    return [(bufs[i].raw[:vec[i].msg_len], names[i].raw[:vec[i].msg_hdr.msg_namelen] if with_addresses else None)
            for i in range(n)]

"""Addresses as the kernel stores them (16 bytes, IPv4 in the first 4), made readable."""

from __future__ import annotations

import ipaddress
import socket
from functools import lru_cache

# plain ints: comparing an int with the socket module's enum members is several times slower
AF_UNIX, AF_INET, AF_INET6 = int(socket.AF_UNIX), int(socket.AF_INET), int(socket.AF_INET6)

NETWORK_TYPE: dict[int, str] = {AF_INET: "ipv4", AF_INET6: "ipv6"}


@lru_cache(maxsize=65536)
def format_address(raw: bytes, family: int) -> str:
    if family == AF_INET:
        return socket.inet_ntop(AF_INET, raw[:4])
    if family == AF_INET6:
        return socket.inet_ntop(AF_INET6, raw[:16])
    return ""


# RFC 1918 and RFC 4193 networks, shared address space (RFC 6598) and link-local. Python's
# is_private also counts documentation and reserved ranges, which are not private networks.
PRIVATE_NETWORKS = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16",
    "fc00::/7", "fe80::/10",
))


@lru_cache(maxsize=65536)
def address_type(address: str) -> str:
    """loopback, private, multicast or other (DataKit's src_ip_type/dst_ip_type, plus loopback)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "other"
    if ip.is_loopback:
        return "loopback"
    if ip.is_multicast:
        return "multicast"
    if any(ip.version == n.version and ip in n for n in PRIVATE_NETWORKS):
        return "private"
    return "other"


def pack_address(address: str) -> tuple[bytes, int]:
    """The kernel's 16-byte form of an address, and its family."""
    ip = ipaddress.ip_address(address)
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.version == 4:
        return ip.packed + bytes(12), AF_INET
    return ip.packed, AF_INET6

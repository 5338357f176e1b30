"""The host's own addresses, from netlink (the exporter's network namespace)."""

from __future__ import annotations

from pyroute2 import IPRoute

from exporter.series.addresses import pack_address


def addresses() -> list[tuple[bytes, int]]:
    """This host's addresses other than loopback, in the kernel's 16-byte form."""
    out = []
    with IPRoute() as ipr:
        for msg in ipr.get_addr():
            address = msg.get_attr("IFA_ADDRESS")
            if address and not address.startswith(("127.", "::1")):
                out.append(pack_address(address.split("%")[0]))
    return out

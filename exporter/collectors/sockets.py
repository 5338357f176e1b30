"""The programs of bpf/sockets.bpf.c, the one object of the collectors that watch sockets."""

from __future__ import annotations

OBJECT = "sockets"
SOCKET_CALLS = frozenset({"sock_send", "sock_recv"})  # data moved through a socket
STATE_CHANGES = frozenset({"sock_state"})  # TCP state changes
UDP_PEERS = frozenset(  # the peer of an unconnected UDP socket's datagram (cgroup hooks)
    {"udp_sendmsg4", "udp_sendmsg6", "udp_recvmsg4", "udp_recvmsg6"})

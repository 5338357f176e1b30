// SPDX-License-Identifier: GPL-2.0
/* sockets: the one object of every feature that watches sockets - netflow (bpf/netflow.c), dns
 * (bpf/dns.c) and l7 (bpf/l7.c) - so that each kernel event runs one program, whichever features
 * are on.
 *
 * Why one program: a tracepoint with a single program calls it directly, but one with several
 * calls each through an indirect call. On a kernel with retpolines and return thunks, that costs
 * ~60 ns more per program and per event: three programs on sock_send_length made a loopback HTTP
 * exchange ~775 ns slower than one doing the same work (docs/benchmarks.md). Here a feature is a
 * set of functions, called from the programs below when user space turned it on (`*_enabled`,
 * read-only: the verifier drops what is off), and the maps it reads from user space.
 *
 * What features share: Common.DropLocalConnections, the host's own addresses, and the peer of each
 * datagram of an unconnected UDP socket.
 *
 * No system call tracepoint: enabling any makes every system call of every process on the host
 * take the slow path (~200 ns per call on this VM, measured). The peer of a datagram comes from
 * the cgroup hooks the kernel runs where it reads or writes that address (cgroup/sendmsg*,
 * cgroup/recvmsg*, attached to the root of cgroup v2, so every process); the payload from the
 * system call's registers at sock_{send,recv}_length. */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "netobs_sock.h"
#include "netobs_filter.h"
#include "netobs_owner.h"
#include "netobs_maps.h"

char LICENSE[] SEC("license") = "GPL";

const volatile bool netflow_enabled = false;
const volatile bool dns_enabled = false;
const volatile bool l7_enabled = false;

const volatile bool drop_local = true; /* Common.DropLocalConnections */

/* addresses of this host other than loopback (written by user space), for drop_local */
struct netobs_addr {
	__u8 addr[16];
};
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct netobs_addr);
	__type(value, __u8);
} local_addrs SEC(".maps");

/* The peer of the datagram a thread is sending, or has just received, on an unconnected UDP socket:
 * put by the cgroup hooks below, taken at sock_{send,recv}_length right after by the same thread. */
struct udp_peer {
	__u32 tid; /* 0: none */
	__u16 port; /* host order */
	__u16 family;
	__u8 addr[16];
};
struct udp_peers {
	struct udp_peer sent;
	struct udp_peer received;
	/* The socket has sent a message to a DNS port: a datagram it reads without asking for its
	 * address (recv, recvfrom(..., NULL, NULL)), which no hook sees the peer of, may be an answer. */
	__u8 asks_dns;
	__u8 pad[7];
};
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct udp_peers);
} udp_peers SEC(".maps");

/* Makes `peer` the remote end of a socket's endpoints. An IPv4 peer of a dual-stack IPv6 socket is
 * reported as IPv4, with the local address unmapped too. */
static __always_inline void endpoints_set_peer(struct netobs_endpoints *ep, const struct udp_peer *peer)
{
	ep->remote_port = peer->port;
	__builtin_memcpy(ep->remote_addr, peer->addr, 16);
	if (peer->family == AF_INET && ep->family == AF_INET6) {
		__builtin_memcpy(ep->local_addr, ep->local_addr + 12, 4);
		__builtin_memset(ep->local_addr + 4, 0, 12);
		ep->family = AF_INET;
	} else if (peer->family == AF_INET6) {
		endpoints_unmap_v4(ep);
	}
}

#include "netflow.c"
#include "dns.c"
#include "l7.c"

/* ---------------------------------------------------------------- the socket layer */

/* The peer the cgroup hooks put for this call, if the socket is unconnected UDP; taken once.
 * `*peers` is the socket's storage, if it has any (an unconnected UDP socket that has sent). */
static __always_inline bool udp_peer_take(struct sock *sk, bool sent, struct udp_peer *peer, struct udp_peers **peers)
{
	*peers = NULL;
	if (sk->sk_protocol != IPPROTO_UDP || sk->__sk_common.skc_dport)
		return false;
	struct udp_peers *storage = bpf_sk_storage_get(&udp_peers, sk, 0, 0);
	if (!storage)
		return false;
	*peers = storage;
	struct udp_peer *p = sent ? &storage->sent : &storage->received;
	if (p->tid != (__u32)bpf_get_current_pid_tgid())
		return false;
	__builtin_memcpy(peer, p, sizeof(*peer));
	p->tid = 0;
	return true;
}

static __always_inline void on_socket_call(struct sock *sk, int ret, bool sent)
{
	struct udp_peers *peers = NULL;
	struct udp_peer peer;
	bool has_peer = false;

	if (netflow_enabled || dns_enabled)
		has_peer = udp_peer_take(sk, sent, &peer, &peers);
	if (netflow_enabled)
		netflow_sock_io(sk, ret, sent, has_peer ? &peer : NULL);
	if (dns_enabled)
		dns_sock_io(sk, ret, sent, has_peer ? &peer : NULL, peers);
	if (l7_enabled)
		l7_sock_io(sk, ret, sent);
}

/* bench/floor.bpf.c builds this object with socket programs of its own: the cost floors of
 * docs/benchmarks.md. */
#ifndef NETOBS_BENCH_PROGRAMS
SEC("tp_btf/sock_send_length")
int BPF_PROG(sock_send, struct sock *sk, int ret, int flags)
{
	on_socket_call(sk, ret, true);
	return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(sock_recv, struct sock *sk, int ret, int flags)
{
	if (flags & MSG_PEEK)
		return 0; /* the data stays for the read that takes it */
	on_socket_call(sk, ret, false);
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(sock_state, struct sock *sk, int oldstate, int newstate)
{
	if (netflow_enabled)
		netflow_state_change(sk, oldstate, newstate);
	if (l7_enabled)
		l7_state_change(sk, newstate);
	return 0;
}

SEC("tp_btf/tcp_destroy_sock")
int BPF_PROG(sock_destroy, struct sock *sk)
{
	if (netflow_enabled)
		netflow_destroy(sk);
	return 0;
}
#endif

/* ---------------------------------------------------------------- unconnected UDP peers */

/* A hook may read only the address fields of its own family: `v6` is a constant at each call. */
static __always_inline void udp_peer_put(struct bpf_sock_addr *ctx, bool sent, bool v6)
{
	struct bpf_sock *sk = ctx->sk;

	if (!sk || ctx->user_family != (v6 ? AF_INET6 : AF_INET))
		return;
	struct udp_peers *peers = bpf_sk_storage_get(&udp_peers, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!peers)
		return;
	struct udp_peer *p = sent ? &peers->sent : &peers->received;
	p->port = bpf_ntohs((__u16)ctx->user_port);
	if (v6) {
		__u32 a[4] = {ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3]};
		__builtin_memcpy(p->addr, a, 16);
		p->family = AF_INET6;
	} else {
		__u32 a = ctx->user_ip4;
		__builtin_memset(p->addr, 0, 16);
		__builtin_memcpy(p->addr, &a, 4);
		p->family = AF_INET;
	}
	p->tid = (__u32)bpf_get_current_pid_tgid();
}

/* Return 1: the call goes on unchanged. */
SEC("cgroup/sendmsg4")
int udp_sendmsg4(struct bpf_sock_addr *ctx)
{
	udp_peer_put(ctx, true, false);
	return 1;
}

SEC("cgroup/sendmsg6")
int udp_sendmsg6(struct bpf_sock_addr *ctx)
{
	udp_peer_put(ctx, true, true);
	return 1;
}

SEC("cgroup/recvmsg4")
int udp_recvmsg4(struct bpf_sock_addr *ctx)
{
	udp_peer_put(ctx, false, false);
	return 1;
}

SEC("cgroup/recvmsg6")
int udp_recvmsg6(struct bpf_sock_addr *ctx)
{
	udp_peer_put(ctx, false, true);
	return 1;
}

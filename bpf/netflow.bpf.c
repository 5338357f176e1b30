// SPDX-License-Identifier: GPL-2.0
/* netflow: per-flow TCP/UDP counters, aggregated in the kernel.
 *
 * Bytes come from the socket layer (sock_send_length / sock_recv_length: read/write, the
 * send/recv family, sendfile and splice into a socket; splice out of a TCP socket bypasses
 * sock_recvmsg and is not seen). TCP segments,
 * retransmits and RTT are the kernel's own tcp_sock counters, added to the flow as deltas
 * against a per-socket baseline kept in socket-local storage (freed with the socket).
 * Connection events come from inet_sock_set_state; the owner of an accepted connection from
 * accept(2); the peer of an unconnected UDP socket from the address its send/receive syscall
 * names.
 *
 * A TCP socket's bytes first gather in its own storage: one atomic add per call. They move to
 * its flow (a hash lookup, the tcp_sock counters, an RTT sample) every NETFLOW_CALLS_PER_FLUSH
 * calls, when it changes state, and whenever user space reads: it first runs `flush_sockets`, an
 * iterator over every socket's storage. User space reads
 * the `flows` and `failed` maps: its cost follows the number of flows and sockets, never the
 * traffic. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "netobs_sock.h"
#include "netobs_filter.h"
#include "netflow.h"

char LICENSE[] SEC("license") = "GPL";

#define EEXIST 17
/* A busy socket's calls flush it every this many calls (and RTT is sampled then, at most once
 * per RttSampleInterval); reads flush every socket anyway. */
#define NETFLOW_CALLS_PER_FLUSH 64

/* Read-only constants, set by user space before load. */
const volatile __u16 ephemeral_port_min = 32768;
const volatile __u16 ephemeral_port_max = 60999;
const volatile bool drop_unix = true;
const volatile bool drop_unknown = true;
const volatile bool drop_local = true;
const volatile __u64 rtt_sample_interval_ns = 1000000000ULL;
const volatile __u32 rtt_bounds_us[NETFLOW_RTT_BOUNDS] = {
	10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000,
	100000, 250000, 500000, 1000000, 2500000, 5000000,
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct netflow_key);
	__type(value, struct netflow_stats);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct netflow_failed_key);
	__type(value, __u64);
} failed SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NETFLOW_LOST_REASONS);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

/* socket cookie -> pre-existing connection found by sock_diag (written by user space) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct netflow_seed);
} seeds SEC(".maps");

/* addresses of this host other than loopback (written by user space), for drop_local */
struct netflow_addr {
	__u8 addr[16];
};
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct netflow_addr);
	__type(value, __u8);
} local_addrs SEC(".maps");

/* accepted socket -> the process that accepted it */
struct netflow_owner {
	__u32 pid;
	__u32 counted;
	__u32 unwatched; /* the filter's verdict on that process (netobs_filter.h) */
	__u32 pad;
	char comm[NETFLOW_COMM_LEN];
};
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct netflow_owner);
} accept_owner SEC(".maps");

/* Per thread, inside sendto/sendmsg/sendmmsg: where an unconnected UDP socket sends to. */
struct netflow_send_ctx {
	__u64 mmsg;  /* struct mmsghdr * of sendmmsg, or 0 */
	__u32 index; /* next message of sendmmsg */
	__u32 has_addr;
	__u8 sockaddr[28];
};
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct netflow_send_ctx);
} send_ctxs SEC(".maps");

/* Per thread, inside recvfrom/recvmsg/recvmmsg of an unconnected UDP socket: where the kernel
 * writes the sender's address, and the datagram that waits for it. The address is copied to
 * the user after the socket layer returns, so it is read at the next datagram or at exit. */
struct netflow_recv_ctx {
	__u64 name;  /* struct sockaddr * of recvfrom/recvmsg, or 0 */
	__u64 mmsg;  /* struct mmsghdr * of recvmmsg, or 0 */
	__u32 index; /* next message of recvmmsg */
	__u32 pending;
	__u64 pending_name;
	__u64 pending_bytes;
	struct netobs_endpoints local; /* local end and family of the pending datagram */
	__u8 direction;
};
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct netflow_recv_ctx);
} recv_ctxs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct netflow_stats);
} stats_template SEC(".maps");

enum {
	ST_INIT = 1,
	ST_KEY_READY = 2,
	ST_COUNTED = 4, /* included in active (and in established when seen established) */
	ST_DROPPED = 8,
	ST_FAST = 16, /* owned, keyed, counted and watched: a call only adds to pending_* */
	ST_CLOSED = 32, /* reached TCP_CLOSE; data read after that must not count it again */
	ST_MIDLIFE = 64, /* first seen already established: counts in active, not in established */
};

struct netflow_sock_state {
	struct netflow_key key;
	char comm[NETFLOW_COMM_LEN];
	__u64 pending_sent;     /* bytes not yet added to the flow */
	__u64 pending_received;
	__u32 calls;            /* calls since the last flush from a call */
	__u32 pad2;
	__u64 last_rtt_sample_ns; /* 0: none yet */
	__u64 segs_out;      /* baselines of the tcp_sock counters (32-bit, held in 64 for cmpxchg) */
	__u64 segs_in;
	__u64 total_retrans;
	__u32 flags;
	__u32 pad;
	/* UDP: the last destination sent to, the peer of a later recv() without an address */
	__u8 peer_addr[16];
	__u16 peer_port;
	__u16 peer_family;
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct netflow_sock_state);
} sock_states SEC(".maps");

static __always_inline void count_lost(__u32 reason)
{
	__u64 *n = bpf_map_lookup_elem(&lost, &reason);
	if (n)
		__sync_fetch_and_add(n, 1);
}

static __always_inline bool port_is_ephemeral(__u16 port)
{
	return port >= ephemeral_port_min && port <= ephemeral_port_max;
}

/* The client side's ephemeral port becomes '*', so a busy client makes one series, not one
 * per connection. A listening port is never folded. */
static __always_inline void key_from_endpoints(struct netflow_key *k, const struct netobs_endpoints *ep,
					       __u8 protocol, __u8 direction, __u32 pid)
{
	__builtin_memcpy(k->local_addr, ep->local_addr, 16);
	__builtin_memcpy(k->remote_addr, ep->remote_addr, 16);
	k->local_port = ep->local_port;
	k->remote_port = ep->remote_port;
	k->family = ep->family;
	k->protocol = protocol;
	k->direction = direction;
	k->pid = pid;
	if (direction == NETFLOW_DIR_OUTGOING && port_is_ephemeral(k->local_port))
		k->local_port = 0;
	else if (direction == NETFLOW_DIR_INCOMING && port_is_ephemeral(k->remote_port))
		k->remote_port = 0;
}

static __always_inline bool flow_dropped(const struct netflow_key *k)
{
	if (drop_local && (k->family == AF_INET || k->family == AF_INET6) &&
	    (addr_is_loopback(k->remote_addr, k->family) ||
	     bpf_map_lookup_elem(&local_addrs, k->remote_addr)))
		return true;
	return false;
}

static __always_inline struct netflow_stats *flow_stats_get(const struct netflow_key *key, const char *comm)
{
	struct netflow_stats *stats = bpf_map_lookup_elem(&flows, key);
	__u32 zero = 0;

	if (stats)
		return stats;
	struct netflow_stats *tmpl = bpf_map_lookup_elem(&stats_template, &zero);
	if (!tmpl)
		return NULL;
	__builtin_memcpy(tmpl->comm, comm, NETFLOW_COMM_LEN);
	long err = bpf_map_update_elem(&flows, key, tmpl, BPF_NOEXIST);
	if (err && err != -EEXIST) {
		count_lost(NETFLOW_LOST_FLOW_TABLE_FULL);
		return NULL;
	}
	return bpf_map_lookup_elem(&flows, key);
}

static __always_inline __u32 current_pid(void)
{
	return bpf_get_current_pid_tgid() >> 32;
}

/* ---------------------------------------------------------------- TCP */

static __always_inline struct netflow_sock_state *tcp_state_get(struct sock *sk)
{
	struct netflow_sock_state *st = bpf_sk_storage_get(&sock_states, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st) {
		count_lost(NETFLOW_LOST_NO_SOCKET_STATE);
		return NULL;
	}
	if (st->flags & ST_INIT)
		return st;
	/* First sight. Counters count from here on. */
	struct tcp_sock *tp = (struct tcp_sock *)sk;
	st->flags = ST_INIT;
	st->segs_out = BPF_CORE_READ(tp, segs_out);
	st->segs_in = BPF_CORE_READ(tp, segs_in);
	st->total_retrans = BPF_CORE_READ(tp, total_retrans);
	return st;
}

static __always_inline void tcp_build_key(struct sock *sk, struct netflow_sock_state *st)
{
	struct netobs_endpoints ep;

	sock_endpoints(sk, &ep);
	key_from_endpoints(&st->key, &ep, IPPROTO_TCP, st->key.direction, st->key.pid);
	st->flags |= ST_KEY_READY;
	if (flow_dropped(&st->key))
		st->flags |= ST_DROPPED;
}

/* A socket first seen in the middle of its life: a connection from before start-up that
 * user space seeded from sock_diag, or one that slipped between that dump and attach. */
static __always_inline void tcp_adopt(struct sock *sk, struct netflow_sock_state *st)
{
	__u64 cookie = bpf_get_socket_cookie(sk);
	struct netflow_seed *seed = bpf_map_lookup_elem(&seeds, &cookie);

	st->flags |= ST_MIDLIFE;
	if (seed) { /* until claimed here, user space counts it in `active` */
		__builtin_memcpy(&st->key, &seed->flow, sizeof(st->key));
		__builtin_memcpy(st->comm, seed->comm, NETFLOW_COMM_LEN);
		st->flags |= ST_KEY_READY;
		if (flow_dropped(&st->key))
			st->flags |= ST_DROPPED;
		bpf_map_delete_elem(&seeds, &cookie);
		return;
	}
	struct netobs_endpoints ep;
	sock_endpoints(sk, &ep);
	st->key.direction = port_is_ephemeral(ep.local_port) ? NETFLOW_DIR_OUTGOING : NETFLOW_DIR_INCOMING;
}

/* The owner of an accepted socket is the process that accepted it (accept(2) recorded it);
 * from a syscall, failing that, the current process. */
static __always_inline void tcp_claim_owner(struct sock *sk, struct netflow_sock_state *st, bool in_syscall)
{
	__u64 skp = (__u64)sk;
	struct netflow_owner *o = bpf_map_lookup_elem(&accept_owner, &skp);

	if (o) {
		st->key.pid = o->pid;
		__builtin_memcpy(st->comm, o->comm, NETFLOW_COMM_LEN);
		if (o->counted)
			st->flags |= ST_COUNTED;
		if (o->unwatched)
			st->flags |= ST_DROPPED;
		bpf_map_delete_elem(&accept_owner, &skp);
	} else if (in_syscall) {
		st->key.pid = current_pid();
		current_process_name(&st->comm);
		if (!netobs_current_watched())
			st->flags |= ST_DROPPED;
	}
}

static __always_inline void tcp_sample_rtt(struct tcp_sock *tp, struct netflow_sock_state *st, struct netflow_stats *f)
{
	__u32 srtt = BPF_CORE_READ(tp, srtt_us) >> 3;
	__u64 now = bpf_ktime_get_ns();
	__u32 idx = NETFLOW_RTT_BOUNDS;

	if (!srtt)
		return;
	f->srtt_us = srtt;
	f->rttvar_us = BPF_CORE_READ(tp, mdev_us) >> 2;
	if (st->last_rtt_sample_ns && now - st->last_rtt_sample_ns < rtt_sample_interval_ns)
		return;
	st->last_rtt_sample_ns = now;
	for (__u32 i = 0; i < NETFLOW_RTT_BOUNDS; i++) {
		if (srtt <= rtt_bounds_us[i]) {
			idx = i;
			break;
		}
	}
	__sync_fetch_and_add(&f->rtt_buckets[idx], 1);
	__sync_fetch_and_add(&f->rtt_sum_us, srtt);
	__sync_fetch_and_add(&f->rtt_count, 1);
}

/* The increase of a tcp_sock counter since its baseline, taken once: two flushes at the same
 * time (a socket's call and the iterator) never add the same segments twice, nor a negative. */
static __always_inline __u32 counter_delta(__u64 *baseline, __u32 now)
{
	__u64 old = *baseline;
	__u32 delta = now - (__u32)old;

	if ((__s32)delta <= 0 || __sync_val_compare_and_swap(baseline, old, (__u64)now) != old)
		return 0;
	return delta;
}

/* Moves what the socket did since its last flush into its flow f. Safe on two CPUs at once
 * (a socket's call and the iterator): each byte and segment is taken by one of them. RTT is
 * sampled if the socket did something, or at an `event` (a state change, a retransmission). */
static __always_inline void tcp_flush(struct sock *sk, struct netflow_sock_state *st, struct netflow_stats *f,
				      bool event)
{
	struct tcp_sock *tp = (struct tcp_sock *)sk;
	__u64 sent = __sync_lock_test_and_set(&st->pending_sent, 0);
	__u64 received = __sync_lock_test_and_set(&st->pending_received, 0);
	__u32 out = counter_delta(&st->segs_out, BPF_CORE_READ(tp, segs_out));
	__u32 in = counter_delta(&st->segs_in, BPF_CORE_READ(tp, segs_in));
	__u32 retrans = counter_delta(&st->total_retrans, BPF_CORE_READ(tp, total_retrans));

	if (sent)
		__sync_fetch_and_add(&f->bytes_sent, sent);
	if (received)
		__sync_fetch_and_add(&f->bytes_received, received);
	if (out)
		__sync_fetch_and_add(&f->packets_sent, out);
	if (in)
		__sync_fetch_and_add(&f->packets_received, in);
	if (retrans)
		__sync_fetch_and_add(&f->retransmits, retrans);
	if (!(sent | received | out | in | retrans)) {
		if (event)
			tcp_sample_rtt(tp, st, f);
		return;
	}
	tcp_sample_rtt(tp, st, f);
	f->last_seen_ns = bpf_ktime_get_ns();
}

/* Brings the socket's flow up to date (creating it, counting the connection). `closing`: the
 * socket reached TCP_CLOSE; count it even if its owner never became known. */
static __always_inline void tcp_account(struct sock *sk, struct netflow_sock_state *st, bool closing)
{
	if (!(st->flags & ST_KEY_READY)) {
		if (!closing && BPF_CORE_READ(sk, __sk_common.skc_state) == TCP_SYN_SENT)
			return;
		tcp_build_key(sk, st);
	}
	if (!closing && st->key.pid == 0)
		return; /* accepted but not yet owned: the owner's first call will count it */
	if (st->flags & ST_DROPPED)
		return;
	struct netflow_stats *f = flow_stats_get(&st->key, st->comm);
	if (!f)
		return;
	if (!(st->flags & (ST_COUNTED | ST_CLOSED))) {
		st->flags |= ST_COUNTED;
		if (!(st->flags & ST_MIDLIFE))
			__sync_fetch_and_add(&f->established, 1);
		__sync_fetch_and_add(&f->active, 1);
	}
	tcp_flush(sk, st, f, true);
	if (closing && !(st->flags & ST_CLOSED)) {
		__sync_fetch_and_add(&f->closed, 1);
		__sync_fetch_and_add(&f->active, -1);
		st->flags = (st->flags & ~(ST_COUNTED | ST_FAST)) | ST_CLOSED;
		f->last_seen_ns = bpf_ktime_get_ns();
	} else if (st->flags & ST_COUNTED) {
		st->flags |= ST_FAST;
	}
}

static __always_inline void tcp_count_failed(struct sock *sk, struct netflow_sock_state *st)
{
	struct netflow_failed_key fk = {};

	tcp_build_key(sk, st);
	if (st->flags & ST_DROPPED)
		return;
	__builtin_memcpy(&fk.flow, &st->key, sizeof(fk.flow));
	fk.error = BPF_CORE_READ(sk, sk_err);
	__u64 *n = bpf_map_lookup_elem(&failed, &fk);
	if (n) {
		__sync_fetch_and_add(n, 1);
		return;
	}
	__u64 one = 1;
	long err = bpf_map_update_elem(&failed, &fk, &one, BPF_NOEXIST);
	if (err == -EEXIST) {
		n = bpf_map_lookup_elem(&failed, &fk);
		if (n)
			__sync_fetch_and_add(n, 1);
	} else if (err) {
		count_lost(NETFLOW_LOST_FAILED_TABLE_FULL);
	}
	/* the flow of a failed connection still exists, so that its `failed` series has a peer */
	struct netflow_stats *f = flow_stats_get(&st->key, st->comm);
	if (f)
		f->last_seen_ns = bpf_ktime_get_ns();
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(netflow_tcp_state, struct sock *sk, int oldstate, int newstate)
{
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	/* A listener is not a connection. (A passive child is cloned from its listener, so its
	 * first transition is LISTEN -> SYN_RECV: that one matters.) */
	if (newstate == TCP_LISTEN || (oldstate == TCP_LISTEN && newstate == TCP_CLOSE))
		return 0;
	struct netflow_sock_state *st = tcp_state_get(sk);
	if (!st)
		return 0;

	if (newstate == TCP_SYN_SENT) { /* connect(2), in the connecting process */
		st->key.direction = NETFLOW_DIR_OUTGOING;
		st->key.pid = current_pid();
		current_process_name(&st->comm);
		/* the owner's filter verdict, taken in its context: later hooks may run in softirq */
		if (!netobs_current_watched())
			st->flags |= ST_DROPPED;
		return 0;
	}
	if (newstate == TCP_SYN_RECV) { /* a passive child: its owner is known at accept(2) */
		st->key.direction = NETFLOW_DIR_INCOMING;
		return 0;
	}
	if (!st->key.direction)
		tcp_adopt(sk, st);
	if (oldstate == TCP_SYN_SENT && newstate == TCP_CLOSE) {
		tcp_count_failed(sk, st);
		return 0;
	}
	if (oldstate == TCP_SYN_RECV && newstate == TCP_CLOSE)
		return 0; /* never established */
	if (st->key.pid == 0)
		tcp_claim_owner(sk, st, false);
	tcp_account(sk, st, newstate == TCP_CLOSE);
	return 0;
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(netflow_tcp_retransmit, struct sock *sk)
{
	struct netflow_sock_state *st = bpf_sk_storage_get(&sock_states, sk, 0, 0);

	if (st && (st->flags & ST_KEY_READY))
		tcp_account(sk, st, false);
	return 0;
}

static __always_inline int on_accept(long fd)
{
	struct sock *sk = fd_to_sock(fd);
	struct netflow_owner o = {};
	struct netflow_key key = {};
	struct netobs_endpoints ep;

	if (!sk || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	sock_endpoints(sk, &ep);
	if (ep.family != AF_INET && ep.family != AF_INET6)
		return 0;
	o.pid = current_pid();
	current_process_name(&o.comm);
	o.unwatched = !netobs_current_watched();
	key_from_endpoints(&key, &ep, IPPROTO_TCP, NETFLOW_DIR_INCOMING, o.pid);
	if (!o.unwatched && !flow_dropped(&key)) {
		struct netflow_stats *f = flow_stats_get(&key, o.comm);
		if (f) {
			__sync_fetch_and_add(&f->established, 1);
			__sync_fetch_and_add(&f->active, 1);
			f->last_seen_ns = bpf_ktime_get_ns();
			o.counted = 1;
		}
	}
	__u64 skp = (__u64)sk;
	bpf_map_update_elem(&accept_owner, &skp, &o, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int netflow_accept4(struct trace_event_raw_sys_exit *ctx)
{
	return on_accept(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_accept")
int netflow_accept(struct trace_event_raw_sys_exit *ctx)
{
	return on_accept(ctx->ret);
}

/* ---------------------------------------------------------------- UDP */

static __always_inline bool endpoints_from_sockaddr(struct netobs_endpoints *ep, const __u8 *sa)
{
	__u16 family = *(const __u16 *)sa;

	if (family == AF_INET) {
		ep->family = AF_INET;
		ep->remote_port = bpf_ntohs(*(const __u16 *)(sa + 2));
		__builtin_memset(ep->remote_addr, 0, 16);
		__builtin_memcpy(ep->remote_addr, sa + 4, 4);
		return true;
	}
	if (family == AF_INET6) {
		ep->family = AF_INET6;
		ep->remote_port = bpf_ntohs(*(const __u16 *)(sa + 2));
		__builtin_memcpy(ep->remote_addr, sa + 8, 16);
		endpoints_unmap_v4(ep);
		return true;
	}
	return false;
}

/* Unconnected sender: the destination recorded at sendto/sendmsg/sendmmsg entry. */
static __always_inline void udp_send_peer(struct netobs_endpoints *ep)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct netflow_send_ctx *ctx = bpf_map_lookup_elem(&send_ctxs, &id);
	__u8 sa[28] = {};

	if (!ctx)
		return;
	if (ctx->mmsg) {
		/* struct mmsghdr is 64 bytes; msg_hdr.msg_name is its first field */
		void *name = NULL;
		__u64 at = ctx->mmsg + (__u64)ctx->index * 64;
		ctx->index++;
		if (bpf_probe_read_user(&name, sizeof(name), (void *)at) || !name ||
		    bpf_probe_read_user(sa, sizeof(sa), name))
			return;
		endpoints_from_sockaddr(ep, sa);
	} else if (ctx->has_addr) {
		endpoints_from_sockaddr(ep, ctx->sockaddr);
	}
}

static __always_inline void udp_add(const struct netobs_endpoints *ep, __u8 direction, __u64 bytes, bool sent)
{
	struct netflow_key key = {};
	char comm[NETFLOW_COMM_LEN];

	if (!netobs_current_watched())
		return;
	key_from_endpoints(&key, ep, IPPROTO_UDP, direction, current_pid());
	if (flow_dropped(&key))
		return;
	current_process_name(&comm);
	struct netflow_stats *f = flow_stats_get(&key, comm);
	if (!f)
		return;
	__sync_fetch_and_add(sent ? &f->bytes_sent : &f->bytes_received, bytes);
	__sync_fetch_and_add(sent ? &f->packets_sent : &f->packets_received, 1);
	f->last_seen_ns = bpf_ktime_get_ns();
}

/* Accounts the datagram waiting in ctx, now that its sender's address is in user memory. */
static __always_inline void udp_flush_pending(struct netflow_recv_ctx *ctx)
{
	__u8 sa[28] = {};
	struct netobs_endpoints ep;

	if (!ctx->pending)
		return;
	ctx->pending = 0;
	__builtin_memcpy(&ep, &ctx->local, sizeof(ep));
	if (ctx->pending_name && !bpf_probe_read_user(sa, sizeof(sa), (void *)ctx->pending_name))
		endpoints_from_sockaddr(&ep, sa);
	udp_add(&ep, ctx->direction, ctx->pending_bytes, false);
}

static __always_inline void udp_account(struct sock *sk, __u64 bytes, bool sent)
{
	struct netflow_sock_state *st = bpf_sk_storage_get(&sock_states, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	struct netobs_endpoints ep;
	__u64 id = bpf_get_current_pid_tgid();

	if (!st) {
		count_lost(NETFLOW_LOST_NO_SOCKET_STATE);
		return;
	}
	if (!(st->flags & ST_INIT)) {
		st->flags = ST_INIT;
		st->key.direction = sent ? NETFLOW_DIR_OUTGOING : NETFLOW_DIR_INCOMING;
	}
	sock_endpoints(sk, &ep);
	if (ep.remote_port) { /* connected */
		udp_add(&ep, st->key.direction, bytes, sent);
		return;
	}
	if (sent) {
		udp_send_peer(&ep);
		__builtin_memcpy(st->peer_addr, ep.remote_addr, 16);
		st->peer_port = ep.remote_port;
		st->peer_family = ep.family;
		udp_add(&ep, st->key.direction, bytes, true);
		return;
	}
	struct netflow_recv_ctx *ctx = bpf_map_lookup_elem(&recv_ctxs, &id);
	if (!ctx) { /* recv()/read() without an address: the peer it last sent to */
		if (st->peer_family) {
			__builtin_memcpy(ep.remote_addr, st->peer_addr, 16);
			ep.remote_port = st->peer_port;
			ep.family = st->peer_family;
		}
		udp_add(&ep, st->key.direction, bytes, false);
		return;
	}
	udp_flush_pending(ctx);
	ctx->pending = 1;
	ctx->pending_bytes = bytes;
	ctx->direction = st->key.direction;
	__builtin_memcpy(&ctx->local, &ep, sizeof(ep));
	if (ctx->mmsg) {
		void *name = NULL;
		__u64 at = ctx->mmsg + (__u64)ctx->index * 64;
		ctx->index++;
		bpf_probe_read_user(&name, sizeof(name), (void *)at);
		ctx->pending_name = (__u64)name;
	} else {
		ctx->pending_name = ctx->name;
	}
}

static __always_inline int remember_recv(__u64 name, __u64 mmsg)
{
	struct netflow_recv_ctx ctx = {};
	__u64 id = bpf_get_current_pid_tgid();

	if (!name && !mmsg)
		return 0;
	ctx.name = name;
	ctx.mmsg = mmsg;
	bpf_map_update_elem(&recv_ctxs, &id, &ctx, BPF_ANY);
	return 0;
}

static __always_inline int finish_recv(void)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct netflow_recv_ctx *ctx = bpf_map_lookup_elem(&recv_ctxs, &id);

	if (!ctx)
		return 0;
	udp_flush_pending(ctx);
	bpf_map_delete_elem(&recv_ctxs, &id);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_recvfrom")
int netflow_enter_recvfrom(struct trace_event_raw_sys_enter *ctx)
{
	return remember_recv(ctx->args[4], 0);
}

SEC("tracepoint/syscalls/sys_enter_recvmsg")
int netflow_enter_recvmsg(struct trace_event_raw_sys_enter *ctx)
{
	void *name = NULL;
	/* struct user_msghdr: msg_name is the first field */
	bpf_probe_read_user(&name, sizeof(name), (const void *)ctx->args[1]);
	return remember_recv((__u64)name, 0);
}

SEC("tracepoint/syscalls/sys_enter_recvmmsg")
int netflow_enter_recvmmsg(struct trace_event_raw_sys_enter *ctx)
{
	return remember_recv(0, ctx->args[1]);
}

SEC("tracepoint/syscalls/sys_exit_recvfrom")
int netflow_exit_recvfrom(struct trace_event_raw_sys_exit *ctx)
{
	return finish_recv();
}

SEC("tracepoint/syscalls/sys_exit_recvmsg")
int netflow_exit_recvmsg(struct trace_event_raw_sys_exit *ctx)
{
	return finish_recv();
}

SEC("tracepoint/syscalls/sys_exit_recvmmsg")
int netflow_exit_recvmmsg(struct trace_event_raw_sys_exit *ctx)
{
	return finish_recv();
}

static __always_inline int remember_send(const void *addr, __u64 mmsg)
{
	struct netflow_send_ctx ctx = {};
	__u64 id = bpf_get_current_pid_tgid();

	if (mmsg) {
		ctx.mmsg = mmsg;
	} else {
		if (!addr || bpf_probe_read_user(ctx.sockaddr, sizeof(ctx.sockaddr), addr))
			return 0;
		ctx.has_addr = 1;
	}
	bpf_map_update_elem(&send_ctxs, &id, &ctx, BPF_ANY);
	return 0;
}

static __always_inline int forget_send(void)
{
	__u64 id = bpf_get_current_pid_tgid();
	bpf_map_delete_elem(&send_ctxs, &id);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_sendto")
int netflow_enter_sendto(struct trace_event_raw_sys_enter *ctx)
{
	return remember_send((const void *)ctx->args[4], 0);
}

SEC("tracepoint/syscalls/sys_enter_sendmsg")
int netflow_enter_sendmsg(struct trace_event_raw_sys_enter *ctx)
{
	void *name = NULL;
	/* struct user_msghdr: msg_name is the first field */
	if (bpf_probe_read_user(&name, sizeof(name), (const void *)ctx->args[1]) || !name)
		return 0;
	return remember_send(name, 0);
}

SEC("tracepoint/syscalls/sys_enter_sendmmsg")
int netflow_enter_sendmmsg(struct trace_event_raw_sys_enter *ctx)
{
	return remember_send(NULL, ctx->args[1]);
}

SEC("tracepoint/syscalls/sys_exit_sendto")
int netflow_exit_sendto(struct trace_event_raw_sys_exit *ctx)
{
	return forget_send();
}

SEC("tracepoint/syscalls/sys_exit_sendmsg")
int netflow_exit_sendmsg(struct trace_event_raw_sys_exit *ctx)
{
	return forget_send();
}

SEC("tracepoint/syscalls/sys_exit_sendmmsg")
int netflow_exit_sendmmsg(struct trace_event_raw_sys_exit *ctx)
{
	return forget_send();
}

/* ---------------------------------------------------------------- bytes, every socket */

static __always_inline void other_account(struct sock *sk, __u16 family, __u64 bytes, bool sent)
{
	struct netflow_key key = {};
	char comm[NETFLOW_COMM_LEN];

	key.family = family;
	key.pid = current_pid();
	if (!netobs_current_watched() || flow_dropped(&key))
		return;
	current_process_name(&comm);
	struct netflow_stats *f = flow_stats_get(&key, comm);
	if (!f)
		return;
	__sync_fetch_and_add(sent ? &f->bytes_sent : &f->bytes_received, bytes);
	__sync_fetch_and_add(sent ? &f->packets_sent : &f->packets_received, 1);
	f->last_seen_ns = bpf_ktime_get_ns();
}

static __always_inline void on_socket_io(struct sock *sk, int ret, bool sent)
{
	if (ret <= 0)
		return;
	__u16 family = sk->__sk_common.skc_family; /* a BTF pointer (tp_btf): plain loads */
	if (family == AF_INET || family == AF_INET6) {
		__u16 protocol = sk->sk_protocol;
		if (protocol == IPPROTO_TCP) {
			struct netflow_sock_state *st = tcp_state_get(sk);
			if (!st)
				return;
			__u32 flags = st->flags;
			if ((flags & (ST_DROPPED | ST_KEY_READY)) == (ST_DROPPED | ST_KEY_READY) && st->key.pid)
				return;
			__sync_fetch_and_add(sent ? &st->pending_sent : &st->pending_received, ret);
			if ((flags & (ST_FAST | ST_CLOSED)) == ST_FAST) {
				if (++st->calls < NETFLOW_CALLS_PER_FLUSH)
					return;
				st->calls = 0;
				struct netflow_stats *f = flow_stats_get(&st->key, st->comm);
				if (f)
					tcp_flush(sk, st, f, false);
				return;
			}
			if (!st->key.direction)
				tcp_adopt(sk, st);
			if (st->key.pid == 0)
				tcp_claim_owner(sk, st, true);
			tcp_account(sk, st, false);
		} else if (protocol == IPPROTO_UDP) {
			udp_account(sk, ret, sent);
		} else if (!drop_unknown) {
			other_account(sk, family, ret, sent);
		}
	} else if (family == AF_UNIX ? !drop_unix : !drop_unknown) {
		other_account(sk, family, ret, sent);
	}
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(netflow_send, struct sock *sk, int ret, int flags)
{
	on_socket_io(sk, ret, true);
	return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(netflow_recv, struct sock *sk, int ret, int flags)
{
	if (flags & MSG_PEEK)
		return 0;
	on_socket_io(sk, ret, false);
	return 0;
}

/* ---------------------------------------------------------------- before user space reads */

/* Run by user space (MapIterator) over every socket's storage before it reads `flows`: each
 * socket's pending bytes and counters reach its flow, so a read sees every call made before it. */
SEC("iter/bpf_sk_storage_map")
int flush_sockets(struct bpf_iter__bpf_sk_storage_map *ctx)
{
	struct netflow_sock_state *st = ctx->value;
	struct sock *sk = ctx->sk;

	if (!st || !sk || (st->flags & (ST_FAST | ST_CLOSED)) != ST_FAST)
		return 0;
	struct netflow_stats *f = flow_stats_get(&st->key, st->comm);
	if (f)
		tcp_flush(sk, st, f, false);
	return 0;
}

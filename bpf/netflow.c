// SPDX-License-Identifier: GPL-2.0
/* netflow: per-flow TCP/UDP counters, aggregated in the kernel.
 *
 * Bytes come from the socket layer (sock_send_length / sock_recv_length: read/write, the
 * send/recv family, sendfile and splice into a socket; splice out of a TCP socket bypasses
 * sock_recvmsg and is not seen). TCP segments,
 * retransmits and RTT are the kernel's own tcp_sock counters, added to the flow as deltas
 * against a per-socket baseline kept in socket-local storage (freed with the socket).
 * Connection events come from inet_sock_set_state; the owner of an accepted connection is the
 * first process to use it; the peer of an unconnected UDP socket's datagram is the address the
 * cgroup hooks saw (bpf/sockets.bpf.c).
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
#include "netobs_owner.h"
#include "netflow.h"

#define EEXIST 17
/* A busy socket's calls flush it every this many calls (and RTT is sampled then, at most once
 * per RttSampleInterval); reads flush every socket anyway. */
#define NETFLOW_CALLS_PER_FLUSH 64

/* Read-only constants, set by user space before load. */
const volatile __u16 ephemeral_port_min = 32768;
const volatile __u16 ephemeral_port_max = 60999;
const volatile bool drop_unix = true;
const volatile bool drop_unknown = true;
const volatile __u64 rtt_sample_interval_ns = 1000000000ULL;
/* flush_sockets (the socket-storage iterator) is loaded: a counted socket's calls only add to its
 * pending bytes (ST_FAST). Without it, each call brings the flow up to date. */
const volatile bool flush_iterator = true;
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
} netflow_lost SEC(".maps");

/* socket cookie -> pre-existing connection found by sock_diag (written by user space) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct netflow_seed);
} seeds SEC(".maps");

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
	struct netflow_key key; /* pid and start: the owner, taken once (TCP: who connects or first uses an
				 * accepted socket; UDP: who first uses it) */
	__u64 cgroup_id;
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

static __always_inline void netflow_count_lost(__u32 reason)
{
	__u64 *n = bpf_map_lookup_elem(&netflow_lost, &reason);
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
					       __u8 protocol, __u8 direction, __u32 pid, __u64 start)
{
	k->start = start;
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

static __always_inline struct netflow_stats *flow_stats_get(const struct netflow_key *key, const char *comm,
							     __u64 cgroup_id)
{
	struct netflow_stats *stats = bpf_map_lookup_elem(&flows, key);
	__u32 zero = 0;

	if (stats)
		return stats;
	struct netflow_stats *tmpl = bpf_map_lookup_elem(&stats_template, &zero);
	if (!tmpl)
		return NULL;
	__builtin_memcpy(tmpl->comm, comm, NETFLOW_COMM_LEN);
	tmpl->cgroup_id = cgroup_id;
	long err = bpf_map_update_elem(&flows, key, tmpl, BPF_NOEXIST);
	if (err && err != -EEXIST) {
		netflow_count_lost(NETFLOW_LOST_FLOW_TABLE_FULL);
		return NULL;
	}
	return bpf_map_lookup_elem(&flows, key);
}

/* The socket's owner is the current process (see struct netobs_owner). */
static __always_inline void st_take_owner(struct netflow_sock_state *st)
{
	struct netobs_owner o;

	netobs_current_owner(&o);
	st->key.pid = o.pid;
	st->key.start = o.start;
	st->cgroup_id = o.cgroup_id;
	__builtin_memcpy(st->comm, o.comm, NETFLOW_COMM_LEN);
}

/* ---------------------------------------------------------------- TCP */

static __always_inline struct netflow_sock_state *tcp_state_get(struct sock *sk)
{
	struct netflow_sock_state *st = bpf_sk_storage_get(&sock_states, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st) {
		netflow_count_lost(NETFLOW_LOST_NO_SOCKET_STATE);
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
	key_from_endpoints(&st->key, &ep, IPPROTO_TCP, st->key.direction, st->key.pid, st->key.start);
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
		st->cgroup_id = seed->cgroup_id;
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

/* The owner of an accepted socket is the first process to use it: its first socket call, or its
 * close (FIN_WAIT1 and LAST_ACK are entered only from close(2) and shutdown(2)). No system call
 * tracepoint is needed for accept(2): enabling one makes every system call of every process slower. */
static __always_inline void tcp_claim_owner(struct netflow_sock_state *st)
{
	st_take_owner(st);
	if (!netobs_current_watched())
		st->flags |= ST_DROPPED;
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
	struct netflow_stats *f = flow_stats_get(&st->key, st->comm, st->cgroup_id);
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
	} else if ((st->flags & ST_COUNTED) && flush_iterator) {
		st->flags |= ST_FAST; /* from now on the iterator, not each call, brings the flow up to date */
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
		netflow_count_lost(NETFLOW_LOST_FAILED_TABLE_FULL);
	}
	/* the flow of a failed connection still exists, so that its `failed` series has a peer */
	struct netflow_stats *f = flow_stats_get(&st->key, st->comm, st->cgroup_id);
	if (f)
		f->last_seen_ns = bpf_ktime_get_ns();
}

static __always_inline void netflow_state_change(struct sock *sk, int oldstate, int newstate)
{
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return;
	/* A listener is not a connection. (A passive child is cloned from its listener, so its
	 * first transition is LISTEN -> SYN_RECV: that one matters.) */
	if (newstate == TCP_LISTEN || (oldstate == TCP_LISTEN && newstate == TCP_CLOSE))
		return;
	struct netflow_sock_state *st = tcp_state_get(sk);
	if (!st)
		return;

	if (newstate == TCP_SYN_SENT) { /* connect(2), in the connecting process */
		st->key.direction = NETFLOW_DIR_OUTGOING;
		st_take_owner(st);
		/* the owner's filter verdict, taken in its context: later hooks may run in softirq */
		if (!netobs_current_watched())
			st->flags |= ST_DROPPED;
		return;
	}
	if (newstate == TCP_SYN_RECV) { /* a passive child: its owner is known at its first use */
		st->key.direction = NETFLOW_DIR_INCOMING;
		return;
	}
	if (!st->key.direction)
		tcp_adopt(sk, st);
	if (oldstate == TCP_SYN_SENT && newstate == TCP_CLOSE) {
		tcp_count_failed(sk, st);
		return;
	}
	if (oldstate == TCP_SYN_RECV && newstate == TCP_CLOSE)
		return; /* never established */
	if (st->key.pid == 0 && (newstate == TCP_FIN_WAIT1 || newstate == TCP_LAST_ACK))
		tcp_claim_owner(st);
	tcp_account(sk, st, newstate == TCP_CLOSE);
	return;
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(netflow_tcp_retransmit, struct sock *sk)
{
	struct netflow_sock_state *st = bpf_sk_storage_get(&sock_states, sk, 0, 0);

	if (st && (st->flags & ST_KEY_READY))
		tcp_account(sk, st, false);
	return 0;
}

/* ---------------------------------------------------------------- UDP */

/* One datagram (or other-socket call), added to its flow; the call is the owner's, in its context. */
static __always_inline void datagram_add(const struct netflow_key *key, const char *comm, __u64 cgroup_id,
					 __u64 bytes, bool sent)
{
	struct netflow_stats *f = bpf_map_lookup_elem(&flows, key);

	if (!f) {
		netobs_cgroup_seen((struct task_struct *)bpf_get_current_task(), cgroup_id);
		f = flow_stats_get(key, comm, cgroup_id);
		if (!f)
			return;
	}
	__sync_fetch_and_add(sent ? &f->bytes_sent : &f->bytes_received, bytes);
	__sync_fetch_and_add(sent ? &f->packets_sent : &f->packets_received, 1);
	f->last_seen_ns = bpf_ktime_get_ns();
}

static __always_inline void udp_add(const struct netflow_sock_state *st, const struct netobs_endpoints *ep,
				    __u64 bytes, bool sent)
{
	struct netflow_key key = {};

	if (!netobs_current_watched())
		return;
	key_from_endpoints(&key, ep, IPPROTO_UDP, st->key.direction, st->key.pid, st->key.start);
	if (flow_dropped(&key))
		return;
	datagram_add(&key, st->comm, st->cgroup_id, bytes, sent);
}

/* A datagram. An unconnected socket's peer is the one the cgroup hooks saw for this call (`peer`);
 * failing that (recv(2) without an address), the peer it last sent to. */
static __always_inline void udp_account(struct sock *sk, __u64 bytes, bool sent, const struct udp_peer *peer)
{
	struct netflow_sock_state *st = bpf_sk_storage_get(&sock_states, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	struct netobs_endpoints ep;

	if (!st) {
		netflow_count_lost(NETFLOW_LOST_NO_SOCKET_STATE);
		return;
	}
	if (!(st->flags & ST_INIT)) {
		st->flags = ST_INIT;
		st->key.direction = sent ? NETFLOW_DIR_OUTGOING : NETFLOW_DIR_INCOMING;
		st_take_owner(st); /* its first user owns its datagrams, as for TCP */
	}
	sock_endpoints(sk, &ep);
	if (!ep.remote_port) { /* unconnected */
		if (peer) {
			endpoints_set_peer(&ep, peer);
			if (sent) {
				__builtin_memcpy(st->peer_addr, peer->addr, 16);
				st->peer_port = peer->port;
				st->peer_family = peer->family;
			}
		} else if (!sent && st->peer_family) {
			struct udp_peer last = {.port = st->peer_port, .family = st->peer_family};
			__builtin_memcpy(last.addr, st->peer_addr, 16);
			endpoints_set_peer(&ep, &last);
		}
	}
	udp_add(st, &ep, bytes, sent);
}

/* ---------------------------------------------------------------- bytes, every socket */

static __always_inline void other_account(struct sock *sk, __u16 family, __u64 bytes, bool sent)
{
	struct netflow_key key = {};
	char comm[NETFLOW_COMM_LEN];

	key.family = family;
	key.pid = bpf_get_current_pid_tgid() >> 32;
	key.start = netobs_current_start();
	if (!netobs_current_watched() || flow_dropped(&key))
		return;
	current_process_name(&comm);
	datagram_add(&key, comm, bpf_get_current_cgroup_id(), bytes, sent);
}

static __always_inline void netflow_sock_io(struct sock *sk, int ret, bool sent, const struct udp_peer *peer)
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
				struct netflow_stats *f = flow_stats_get(&st->key, st->comm, st->cgroup_id);
				if (f)
					tcp_flush(sk, st, f, false);
				return;
			}
			if (!st->key.direction)
				tcp_adopt(sk, st);
			if (st->key.pid == 0)
				tcp_claim_owner(st);
			tcp_account(sk, st, false);
		} else if (protocol == IPPROTO_UDP) {
			udp_account(sk, ret, sent, peer);
		} else if (!drop_unknown) {
			other_account(sk, family, ret, sent);
		}
	} else if (family == AF_UNIX ? !drop_unix : !drop_unknown) {
		other_account(sk, family, ret, sent);
	}
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
	struct netflow_stats *f = flow_stats_get(&st->key, st->comm, st->cgroup_id);
	if (f)
		tcp_flush(sk, st, f, false);
	return 0;
}

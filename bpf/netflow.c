// SPDX-License-Identifier: GPL-2.0
/* netflow: per-flow TCP/UDP counters, aggregated in the kernel.
 *
 * TCP costs nothing per socket call. Its figures are the kernel's own per-socket accounting
 * (struct tcp_sock: bytes acknowledged and received, sequence numbers, segments, retransmissions,
 * smoothed RTT), added to the socket's flow as deltas against baselines kept per socket:
 * - when the connection closes (TCP_CLOSE) and when the socket is released, so that a connection
 *   opened and closed between two reads is exact. The state changes before that only keep the
 *   socket's baselines (at connect and accept), its owner (at connect and close(2)) and what it
 *   wrote when its FIN was queued: a short connection updates its flow once;
 * - when user space reads: it first runs `collect_tcp`, an iterator over every open file of every
 *   process (iter/task_file), which brings each TCP socket's flow up to date, whatever its network
 *   namespace, and names the owner of an accepted socket after the process holding it.
 * On a kernel without that iterator, each TCP call brings its flow up to date instead (exact too).
 *
 * Bytes are application payload, each direction once: written (bytes acknowledged plus those not
 * yet acknowledged) and read (bytes received less those not yet read), the SYN and FIN aside.
 * Retransmissions are never counted twice.
 *
 * UDP and other sockets count per call at the socket layer (sock_send_length / sock_recv_length);
 * the peer of an unconnected UDP socket's datagram is the address the cgroup hooks saw
 * (bpf/sockets.bpf.c). User space reads the `flows` and `failed` maps: its cost follows the number
 * of flows and sockets, never the traffic. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "netobs_sock.h"
#include "netobs_filter.h"
#include "netobs_owner.h"
#include "netobs_maps.h"
#include "netobs_slots.h"
#include "netflow.h"

/* Read-only constants, set by user space before load. */
const volatile __u16 ephemeral_port_min = 32768;
const volatile __u16 ephemeral_port_max = 60999;
const volatile bool drop_unix = true;
const volatile bool drop_unknown = true;
const volatile __u64 rtt_sample_interval_ns = 1000000000ULL;
/* collect_tcp (the file iterator) is loaded and run before each read: TCP calls cost nothing.
 * Without it, each TCP call brings its socket's flow up to date. */
const volatile bool tcp_walk = true;
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

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct netflow_stats);
} stats_template SEC(".maps");

/* ---------------------------------------------------------------- per-socket state */

enum {
	ST_INIT = 1,       /* baselines taken */
	ST_KEY_READY = 2,
	ST_COUNTED = 4,    /* included in active (and in established when seen established) */
	ST_DROPPED = 8,
	ST_SENT_DONE = 16, /* the FIN is queued: what the socket writes is final */
	ST_CLOSED = 32,    /* reached TCP_CLOSE: counted in closed, not in active */
	ST_MIDLIFE = 64,   /* first seen already established: counts in active, not in established */
};

/* A TCP socket, from its first state change (or, for a connection from before start-up, its first
 * walk) until it is freed (tcp_destroy_sock). Found by the socket's address: the walk of files sees a
 * socket only through an untrusted pointer, with which no socket-local storage can be used. The
 * socket cookie tells a stale entry from a new socket at the same address. */
struct netflow_tcp_state {
	struct netflow_key key; /* pid and start: the owner (who connects; for an accepted socket, the
				 * process holding it at the first walk, or closing it, or its first call
				 * without the walk) */
	__u64 cookie;
	__u64 cgroup_id;
	char comm[NETFLOW_COMM_LEN];
	__u64 sent;     /* baselines: payload written and read (64-bit), */
	__u64 received;
	__u64 sent_final; /* what was written when the FIN was queued (ST_SENT_DONE) */
	__u64 segs_out; /* and the 32-bit tcp_sock counters, held in 64 bits for cmpxchg */
	__u64 segs_in;
	__u64 total_retrans;
	__u64 last_rtt_sample_ns; /* 0: none yet */
	__u64 flags; /* ST_*: 64 bits, for the atomic operations of every BPF target */
};

/* The entries: in a table of slots first, else in the hash map tcp_socks (bpf/include/netobs_slots.h). */
#define TCP_SLOT_BITS 14
NETOBS_SLOTS(tcp_slots, struct netflow_tcp_state, TCP_SLOT_BITS);

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 262144);
	__type(key, __u64); /* the socket's id */
	__type(value, struct netflow_tcp_state);
} tcp_socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct netflow_tcp_state);
} tcp_state_template SEC(".maps");

/* Listening ports per network namespace: an adopted connection on one of them is incoming. */
struct netflow_listener {
	__u32 netns; /* the namespace's inode number */
	__u16 port;
	__u16 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct netflow_listener);
	__type(value, __u8);
} listeners SEC(".maps");

/* 1 while user space runs the walk to record listeners only, before the walk that adopts the
 * connections open before start-up. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} walk_listeners_only SEC(".maps");

/* An unconnected UDP socket, from its first datagram. */
struct netflow_udp_state {
	struct netflow_key key; /* direction, pid and start: its first user owns its datagrams */
	__u64 cgroup_id;
	char comm[NETFLOW_COMM_LEN];
	__u32 flags; /* ST_INIT */
	/* the last destination sent to, the peer of a later recv() without an address */
	__u16 peer_port;
	__u16 peer_family;
	__u8 peer_addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct netflow_udp_state);
} udp_states SEC(".maps");

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
	stats = netobs_insert(&flows, key, tmpl);
	if (!stats)
		netobs_count(&netflow_lost, NETFLOW_LOST_FLOW_TABLE_FULL);
	return stats;
}

/* ---------------------------------------------------------------- TCP */

#define barrier() asm volatile("" ::: "memory")

/* What the socket's application has written so far, as a 64-bit count: bytes acknowledged, plus
 * those written but not yet acknowledged. The FIN takes one sequence number: past ST_SENT_DONE
 * this is not read again. Read in this order, a race with an acknowledgement can only make it
 * smaller than the truth, never larger: a delta then waits for the next read. */
static __always_inline __u64 tcp_written(struct tcp_sock *tp)
{
	__u64 acked = tp->bytes_acked;
	barrier();
	__u32 una = tp->snd_una;
	barrier();
	__u32 write_seq = tp->write_seq;

	return acked + (__u32)(write_seq - una);
}

/* What the application has read so far: bytes received, less those still unread; the peer's FIN,
 * once read (end of file), is taken off. Same order rule as tcp_written. */
static __always_inline __u64 tcp_read(struct tcp_sock *tp)
{
	__u64 received = tp->bytes_received;
	barrier();
	__u32 rcv_nxt = tp->rcv_nxt;
	barrier();
	__u32 copied = tp->copied_seq;
	barrier();
	__u64 flags = tp->inet_conn.icsk_inet.sk.__sk_common.skc_flags;
	__u64 read = received - (__u32)(rcv_nxt - copied);

	if (copied == rcv_nxt && (flags & (1UL << SOCK_DONE)) && read)
		read--; /* the FIN: it advanced rcv_nxt, and copied_seq when read */
	return read;
}

/* The increase of a counter since its baseline, taken once: two readers at the same time (a state
 * change and the walk) never add the same bytes twice, nor a negative. */
static __always_inline __u64 counter_delta64(__u64 *baseline, __u64 now)
{
	__u64 old = *baseline;
	__u64 delta = now - old;

	if ((__s64)delta <= 0 || __sync_val_compare_and_swap(baseline, old, now) != old)
		return 0;
	return delta;
}

/* The same for the tcp_sock's 32-bit counters, which wrap. */
static __always_inline __u32 counter_delta32(__u64 *baseline, __u32 now)
{
	__u64 old = *baseline;
	__u32 delta = now - (__u32)old;

	if ((__s32)delta <= 0 || __sync_val_compare_and_swap(baseline, old, (__u64)now) != old)
		return 0;
	return delta;
}

/* Payload counts from here on. A new connection's segments and retransmissions count from its start
 * (baselines 0: its SYN, and the SYN's retransmissions, count); an adopted one's from here too. */
static __always_inline void tcp_baseline(struct sock *sk, struct netflow_tcp_state *st, bool counters)
{
	struct tcp_sock *tp = tcp_of(sk);

	st->sent = tcp_written(tp);
	st->received = tcp_read(tp);
	if (counters) {
		st->segs_out = tp->segs_out;
		st->segs_in = tp->segs_in;
		st->total_retrans = tp->total_retrans;
	}
	__sync_fetch_and_or(&st->flags, ST_INIT);
}

static __always_inline void tcp_sample_rtt(struct tcp_sock *tp, struct netflow_tcp_state *st, struct netflow_stats *f,
					   __u64 now)
{
	__u32 srtt = tp->srtt_us >> 3;

	if (!srtt)
		return;
	f->srtt_us = srtt;
	f->rttvar_us = tp->mdev_us >> 2;
	if (st->last_rtt_sample_ns && now - st->last_rtt_sample_ns < rtt_sample_interval_ns)
		return;
	st->last_rtt_sample_ns = now;
	__u32 idx = NETOBS_BUCKET(srtt, rtt_bounds_us, NETFLOW_RTT_BOUNDS, NETFLOW_RTT_BOUNDS);
	if (idx <= NETFLOW_RTT_BOUNDS)
		__sync_fetch_and_add(&f->rtt_buckets[idx], 1);
	__sync_fetch_and_add(&f->rtt_sum_us, srtt);
	__sync_fetch_and_add(&f->rtt_count, 1);
}

/* Nothing moved since the last sync: the walk then leaves the flow alone (no lookup). */
static __always_inline bool tcp_idle(struct sock *sk, const struct netflow_tcp_state *st)
{
	struct tcp_sock *tp = tcp_of(sk);

	return (__u32)st->segs_out == tp->segs_out && (__u32)st->segs_in == tp->segs_in &&
	       (__u32)st->total_retrans == tp->total_retrans && st->received == tcp_read(tp) &&
	       st->sent == ((st->flags & ST_SENT_DONE) ? st->sent_final : tcp_written(tp));
}

/* Moves what the socket did since the last sync into its flow f. Safe on two CPUs at once: each byte
 * and segment is taken by one of them. RTT is sampled if the socket did something, or at an `event`
 * (a state change). Returns the time it read, or 0: the clock is read once per run. */
static __always_inline __u64 tcp_sync(struct sock *sk, struct netflow_tcp_state *st, struct netflow_stats *f,
				      bool event)
{
	struct tcp_sock *tp = tcp_of(sk);
	__u64 written = st->sent_final;

	if (!(st->flags & ST_SENT_DONE)) {
		written = tcp_written(tp);
		/* the flag again, after write_seq: a FIN queued meanwhile set it first, after sent_final */
		if (__sync_fetch_and_or(&st->flags, 0) & ST_SENT_DONE)
			written = st->sent_final;
	}
	__u64 sent = counter_delta64(&st->sent, written);
	__u64 received = counter_delta64(&st->received, tcp_read(tp));
	__u32 out = counter_delta32(&st->segs_out, tp->segs_out);
	__u32 in = counter_delta32(&st->segs_in, tp->segs_in);
	__u32 retrans = counter_delta32(&st->total_retrans, tp->total_retrans);

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
	bool moved = sent | received | out | in | retrans;
	if (!moved && !event)
		return 0;
	__u64 now = bpf_ktime_get_ns();
	tcp_sample_rtt(tp, st, f, now);
	if (moved)
		f->last_seen_ns = now;
	return now;
}

static __always_inline void tcp_set_owner(struct netflow_tcp_state *st, const struct netobs_owner *o, bool watched)
{
	st->key.pid = o->pid;
	st->key.start = o->start;
	st->cgroup_id = o->cgroup_id;
	__builtin_memcpy(st->comm, o->comm, NETFLOW_COMM_LEN);
	if (!watched)
		__sync_fetch_and_or(&st->flags, ST_DROPPED);
}

/* An owner is taken once, before the flow is counted (the flow's key holds it). */
static __always_inline bool tcp_unowned(const struct netflow_tcp_state *st)
{
	return st->key.pid == 0 && !(st->flags & (ST_COUNTED | ST_CLOSED));
}

/* The socket's owner is the current process, in whose context this runs (see struct netobs_owner). */
static __always_inline void tcp_claim_current(struct netflow_tcp_state *st)
{
	struct netobs_owner o;

	if (!tcp_unowned(st))
		return;
	netobs_current_owner(&o);
	tcp_set_owner(st, &o, netobs_current_watched());
}

static __always_inline __u32 sock_netns(struct sock *sk)
{
	return sk->__sk_common.skc_net.net->ns.inum;
}

static __always_inline void tcp_build_key(struct sock *sk, struct netflow_tcp_state *st)
{
	struct netobs_endpoints ep;

	sock_endpoints(sk, &ep);
	key_from_endpoints(&st->key, &ep, IPPROTO_TCP, st->key.direction, st->key.pid, st->key.start);
	__sync_fetch_and_or(&st->flags, ST_KEY_READY);
	if (flow_dropped(&st->key))
		__sync_fetch_and_or(&st->flags, ST_DROPPED);
}

/* A new entry for a socket, zeroed but for its cookie, to fill in before tcp_state_insert: a
 * per-CPU scratch value, or NULL. */
static __always_inline struct netflow_tcp_state *tcp_state_draft(__u64 cookie)
{
	__u32 zero = 0;
	struct netflow_tcp_state *draft = bpf_map_lookup_elem(&tcp_state_template, &zero);

	if (!draft)
		return NULL;
	__builtin_memset(draft, 0, sizeof(*draft));
	draft->cookie = cookie;
	return draft;
}

#define TCP_TABLE &tcp_slots, TCP_SLOT_BITS, &tcp_socks, NETOBS_SLOTS_NETFLOW_TCP

/* The draft becomes the entry of the socket at `key` (replacing a stale one). Returns the entry, or
 * NULL (counted) if there is no room. */
static __always_inline struct netflow_tcp_state *tcp_state_insert(__u64 key, const struct netflow_tcp_state *draft)
{
	struct netflow_tcp_state *st = netobs_slot_put(TCP_TABLE, key, draft, sizeof(*draft));

	if (!st)
		netobs_count(&netflow_lost, NETFLOW_LOST_NO_SOCKET_STATE);
	return st;
}

/* A new entry for the socket at `key`, zeroed, or NULL (counted) if the table is full. */
static __always_inline struct netflow_tcp_state *tcp_state_new(__u64 key, __u64 cookie)
{
	struct netflow_tcp_state *draft = tcp_state_draft(cookie);

	return draft ? tcp_state_insert(key, draft) : NULL;
}

/* The socket's entry; one left by an earlier socket at the same address is dropped. A cookie of 0 is
 * not known yet (a socket the walk adopted before anything asked for its cookie). */
static __always_inline struct netflow_tcp_state *tcp_state_lookup(__u64 key, __u64 cookie)
{
	struct netflow_tcp_state *st = netobs_slot_find(TCP_TABLE, key);

	if (!st)
		return NULL;
	if (st->cookie != cookie && st->cookie && cookie) {
		netobs_slot_drop(TCP_TABLE, key);
		return NULL;
	}
	if (!st->cookie)
		st->cookie = cookie;
	return st;
}

/* A socket first seen in the middle of its life: a connection from before start-up, or one that
 * slipped between the walk and attach. It counts from now. Incoming if its local port listens. */
static __always_inline struct netflow_tcp_state *tcp_adopt(struct sock *sk, __u64 key, __u64 cookie)
{
	struct netflow_tcp_state *st = tcp_state_new(key, cookie);
	struct netobs_endpoints ep;

	if (!st)
		return NULL;
	sock_endpoints(sk, &ep);
	struct netflow_listener l = {.netns = sock_netns(sk), .port = ep.local_port};
	if (bpf_map_lookup_elem(&listeners, &l))
		st->key.direction = NETFLOW_DIR_INCOMING;
	else
		st->key.direction = port_is_ephemeral(ep.local_port) ? NETFLOW_DIR_OUTGOING : NETFLOW_DIR_INCOMING;
	st->flags = ST_MIDLIFE;
	tcp_baseline(sk, st, true);
	return st;
}

/* Brings the socket's flow up to date: creates it and counts the connection the first time.
 * `closing`: the socket reached TCP_CLOSE; count it even if its owner never became known. `event`:
 * a state change (an RTT sample is taken even if nothing moved). */
static __always_inline void tcp_account(struct sock *sk, struct netflow_tcp_state *st, bool closing, bool event)
{
	if (!(st->flags & ST_INIT))
		return; /* not established yet */
	if (!(st->flags & ST_KEY_READY))
		tcp_build_key(sk, st);
	if (!closing && st->key.pid == 0)
		return; /* accepted but not yet owned: the walk, a call or the close names the owner */
	if (st->flags & ST_DROPPED)
		return;
	if ((st->flags & (ST_COUNTED | ST_CLOSED)) && (!closing || (st->flags & ST_CLOSED)) && !event &&
	    tcp_idle(sk, st))
		return;
	struct netflow_stats *f = flow_stats_get(&st->key, st->comm, st->cgroup_id);
	if (!f)
		return;
	if (!(st->flags & (ST_COUNTED | ST_CLOSED))) {
		__sync_fetch_and_or(&st->flags, ST_COUNTED);
		if (!(st->flags & ST_MIDLIFE))
			__sync_fetch_and_add(&f->established, 1);
		__sync_fetch_and_add(&f->active, 1);
	}
	__u64 now = tcp_sync(sk, st, f, event);
	if (closing && !(st->flags & ST_CLOSED)) {
		__sync_fetch_and_add(&f->closed, 1);
		__sync_fetch_and_add(&f->active, -1);
		__sync_fetch_and_or(&st->flags, ST_CLOSED);
		__sync_fetch_and_and(&st->flags, ~(__u64)ST_COUNTED);
		f->last_seen_ns = now ?: bpf_ktime_get_ns();
	}
}

static __always_inline void tcp_count_failed(struct sock *sk, struct netflow_tcp_state *st)
{
	struct netflow_failed_key fk = {};

	tcp_build_key(sk, st);
	if (st->flags & ST_DROPPED)
		return;
	__builtin_memcpy(&fk.flow, &st->key, sizeof(fk.flow));
	fk.error = sk->sk_err;
	__u64 zero = 0, *n = netobs_lookup_or_insert(&failed, &fk, &zero);
	if (n)
		__sync_fetch_and_add(n, 1);
	else
		netobs_count(&netflow_lost, NETFLOW_LOST_FAILED_TABLE_FULL);
	/* the flow of a failed connection still exists, so that its `failed` series has a peer */
	struct netflow_stats *f = flow_stats_get(&st->key, st->comm, st->cgroup_id);
	if (f)
		f->last_seen_ns = bpf_ktime_get_ns();
}

/* Every TCP state change, in the kernel's order; under the socket's lock. */
static __always_inline void netflow_state_change(struct sock *sk, int oldstate, int newstate)
{
	if (sk->sk_protocol != IPPROTO_TCP)
		return;
	__u64 key = netobs_sock_id(sk);
	/* A listener is not a connection; its port makes adopted connections incoming. (A passive child
	 * is cloned from its listener, so its first transition is LISTEN -> SYN_RECV.) */
	if (newstate == TCP_LISTEN || (oldstate == TCP_LISTEN && newstate == TCP_CLOSE)) {
		struct netflow_listener l = {.netns = sock_netns(sk), .port = sk->__sk_common.skc_num};
		__u8 one = 1;
		if (newstate == TCP_LISTEN)
			bpf_map_update_elem(&listeners, &l, &one, BPF_ANY);
		else
			bpf_map_delete_elem(&listeners, &l);
		return;
	}
	if (newstate == TCP_SYN_RECV || (oldstate == TCP_SYN_RECV && newstate == TCP_CLOSE))
		return; /* a passive child: followed from its handshake's end (if any), its owner once accepted */
	if (newstate == TCP_FIN_WAIT2 || newstate == TCP_CLOSE_WAIT || newstate == TCP_CLOSING)
		return; /* the next read or the close takes their figures */
	/* the cookie is made once, when the entry is; a plain load reads it back */
	__u64 cookie = sk->__sk_common.skc_cookie.counter;
	struct netflow_tcp_state *st;

	/* A new connection's entry is written whole, with one map update. */
	if (newstate == TCP_SYN_SENT) { /* connect(2), in the connecting process */
		st = tcp_state_draft(bpf_get_socket_cookie(sk));
		if (!st)
			return;
		st->key.direction = NETFLOW_DIR_OUTGOING;
		/* the owner's filter verdict, taken in its context: later hooks may run in softirq */
		tcp_claim_current(st);
		tcp_state_insert(key, st);
		return;
	}
	st = tcp_state_lookup(key, cookie);
	if (!st && oldstate == TCP_SYN_RECV && newstate == TCP_ESTABLISHED) {
		/* accepted by the kernel, in softirq: its owner is the process that takes it, named at the
		 * first walk or at its close(2) */
		st = tcp_state_draft(bpf_get_socket_cookie(sk));
		if (!st)
			return;
		st->key.direction = NETFLOW_DIR_INCOMING;
		tcp_baseline(sk, st, false);
		tcp_build_key(sk, st);
		tcp_state_insert(key, st);
		return;
	} else if (!st) {
		st = tcp_adopt(sk, key, bpf_get_socket_cookie(sk));
		if (!st)
			return;
		if (newstate == TCP_ESTABLISHED)
			__sync_fetch_and_and(&st->flags, ~(__u64)ST_MIDLIFE); /* it connected just now: a new connection */
	}
	if (newstate == TCP_ESTABLISHED && !(st->flags & ST_INIT)) {
		/* Payload counts from here: the SYN is behind. The key is taken now: at TCP_CLOSE the local
		 * port is already released. The connection itself is counted by the next walk or its close,
		 * whichever comes first: a short one updates its flow once. */
		tcp_baseline(sk, st, false);
		tcp_build_key(sk, st);
		return;
	}
	if (oldstate == TCP_SYN_SENT && newstate == TCP_CLOSE) {
		tcp_count_failed(sk, st);
		return;
	}
	/* FIN_WAIT1 and LAST_ACK are entered only from close(2) and shutdown(2), before the FIN is queued;
	 * inside close(2), inet_release has unhooked the socket from its struct socket. Both run in the
	 * owner's context. */
	struct socket *so = sk->sk_socket;
	if (newstate == TCP_FIN_WAIT1 || newstate == TCP_LAST_ACK) {
		tcp_claim_current(st);
		if (st->flags & ST_SENT_DONE)
			return; /* close(2) after shutdown(2) enters FIN_WAIT1 again, its FIN queued */
		st->sent_final = tcp_written(tcp_of(sk)); /* what it wrote: the FIN takes a sequence number */
		__sync_fetch_and_or(&st->flags, ST_SENT_DONE);
		return;
	}
	if (newstate != TCP_ESTABLISHED && newstate != TCP_CLOSE)
		return;
	if (so && so->sk != sk)
		tcp_claim_current(st);
	tcp_account(sk, st, newstate == TCP_CLOSE, true);
	/* Closed after close(2) (an orphan): nothing can read or write any more, and the release follows
	 * at once. Its entry goes now, and the release finds none. */
	if (newstate == TCP_CLOSE && (sk->__sk_common.skc_flags & (1UL << SOCK_DEAD)))
		netobs_slot_drop(TCP_TABLE, key);
}

/* The socket is freed (tcp_destroy_sock): what its process read after TCP_CLOSE (data that came
 * before the peer's FIN or reset) reaches the flow, and its entry goes. */
static __always_inline void netflow_destroy(struct sock *sk)
{
	__u64 key = netobs_sock_id(sk);
	struct netflow_tcp_state *st = tcp_state_lookup(key, sk->__sk_common.skc_cookie.counter);

	if (!st)
		return;
	tcp_account(sk, st, true, false);
	netobs_slot_drop(TCP_TABLE, key);
}

/* Without the walk only: each call brings the socket's flow up to date. */
static __always_inline void tcp_call(struct sock *sk, int ret, bool sent)
{
	__u64 key = netobs_sock_id(sk);
	struct netflow_tcp_state *st = tcp_state_lookup(key, sk->__sk_common.skc_cookie.counter);

	if (!st) {
		st = tcp_adopt(sk, key, bpf_get_socket_cookie(sk));
		if (!st)
			return;
		/* this call's bytes are already in the kernel's counters: they count too */
		if (sent)
			st->sent -= ret;
		else
			st->received -= ret;
	}
	tcp_claim_current(st);
	if ((st->flags & (ST_DROPPED | ST_KEY_READY)) == (ST_DROPPED | ST_KEY_READY))
		return;
	tcp_account(sk, st, false, false);
}

/* Run by user space before it reads `flows` (exporter/collectors/netflow.py): every open file of every
 * process. Each TCP socket's flow is brought up to date; an accepted socket not yet owned is owned by
 * the process holding it; a connection from before start-up is adopted, and counts from now. */
SEC("iter/task_file")
int collect_tcp(struct bpf_iter__task_file *ctx)
{
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	__u32 zero = 0;

	if (!task || !file)
		return 0;
	struct socket *sock = bpf_sock_from_file(file);
	if (!sock)
		return 0;
	struct sock *sk = sock->sk; /* untrusted: plain loads are fault-safe, helpers refuse it */
	if (!sk || sk->sk_protocol != IPPROTO_TCP)
		return 0;
	__u16 family = sk->__sk_common.skc_family;
	if (family != AF_INET && family != AF_INET6)
		return 0;
	__u8 state = sk->__sk_common.skc_state;
	if (state == TCP_LISTEN) {
		struct netflow_listener l = {.netns = sock_netns(sk), .port = sk->__sk_common.skc_num};
		__u8 one = 1;
		bpf_map_update_elem(&listeners, &l, &one, BPF_ANY);
		return 0;
	}
	__u32 *listeners_only = bpf_map_lookup_elem(&walk_listeners_only, &zero);
	if (listeners_only && *listeners_only)
		return 0;
	__u64 key = netobs_sock_id(sk);
	__u64 cookie = sk->__sk_common.skc_cookie.counter;
	struct netflow_tcp_state *st = tcp_state_lookup(key, cookie);
	if (!st) {
		if (state == TCP_SYN_SENT || state == TCP_CLOSE)
			return 0; /* nothing to count yet, or any more */
		st = tcp_adopt(sk, key, cookie);
		if (!st)
			return 0;
	}
	if (tcp_unowned(st)) {
		struct netobs_owner o;
		netobs_task_owner(task, &o);
		tcp_set_owner(st, &o, netobs_watched(o.pid, o.cgroup_id));
	}
	tcp_account(sk, st, false, false);
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

static __always_inline void udp_add(const struct netflow_udp_state *st, const struct netobs_endpoints *ep,
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
	struct netflow_udp_state *st = bpf_sk_storage_get(&udp_states, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	struct netobs_endpoints ep;

	if (!st) {
		netobs_count(&netflow_lost, NETFLOW_LOST_NO_SOCKET_STATE);
		return;
	}
	if (!(st->flags & ST_INIT)) {
		st->flags = ST_INIT;
		st->key.direction = sent ? NETFLOW_DIR_OUTGOING : NETFLOW_DIR_INCOMING;
		struct netobs_owner o; /* its first user owns its datagrams */
		netobs_current_owner(&o);
		st->key.pid = o.pid;
		st->key.start = o.start;
		st->cgroup_id = o.cgroup_id;
		__builtin_memcpy(st->comm, o.comm, NETFLOW_COMM_LEN);
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
			if (!tcp_walk)
				tcp_call(sk, ret, sent);
		} else if (protocol == IPPROTO_UDP) {
			udp_account(sk, ret, sent, peer);
		} else if (!drop_unknown) {
			other_account(sk, family, ret, sent);
		}
	} else if (family == AF_UNIX ? !drop_unix : !drop_unknown) {
		other_account(sk, family, ret, sent);
	}
}

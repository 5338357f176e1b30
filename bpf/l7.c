// SPDX-License-Identifier: GPL-2.0
/* l7: application requests (HTTP/1.x, Redis, PostgreSQL, MySQL, memcached) paired with their
 * responses and counted, in the kernel.
 *
 * Socket data is seen where the kernel accounts it (tracepoints sock_send_length and
 * sock_recv_length), so only socket calls pay. The bytes are in the user buffer of the system call
 * in progress, found from the task's saved registers: read/write, recvfrom/sendto, readv/writev and
 * recvmsg/sendmsg give their buffer (the first iovec); sendfile, splice and the rest are counted as
 * bytes only.
 *
 * A TCP connection whose data starts with a request head (or a MySQL greeting) is tracked in
 * `conns`: its protocol and role (the side that sends the request is the client), the requests
 * waiting for their responses (several when pipelined) and the response in progress. Heads are
 * parsed from the first L7.CaptureBytes of each message. A complete exchange adds to its series in
 * `l7_series`: count, latency histogram, bytes and body-size histograms. User space reads the
 * series' increments, so its cost follows the number of series, never the number of requests.
 *
 * This file is the engine's frame: its maps, a new connection, a call's data, the close. The rest
 * is included, each part after what it needs:
 *   l7_conn.h        a connection's state: what every protocol keeps, and its protocol's own
 *   l7_io.c          one call's data, and the window of it a parser looks at
 *   l7_series.c      series: found by fingerprint, created, added to (record)
 *   l7_protocols.c   the table of protocols, which includes each protocol's steps (l7_<protocol>.c)
 *   l7_tls.c         TLS plaintext from the library's calls, through the same engine */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "netobs_sock.h"
#include "netobs_filter.h"
#include "netobs_owner.h"
#include "netobs_maps.h"
#include "netobs_slots.h"
#include "l7_db.h"
#include "l7_conn.h"

#define L7_SNIFF_TRIES 8 /* calls looked at on a socket before it is never looked at again */

const volatile __u32 capture_bytes = 512;  /* L7.CaptureBytes */
const volatile __u32 sampling = 100;       /* Common.Sampling: percent of connections tracked */
const volatile __u32 protocols = 1 << L7_PROTO_HTTP; /* Common.IncludeProtocols: 1 << enum l7_protocol */
const volatile __u64 max_connections = 16384; /* L7.MaxConnections */
const volatile bool tls_enabled = false;      /* L7.Tls.Enabled, and user space attached the uprobes */
const volatile __u64 duration_bounds_ns[L7_DURATION_BOUNDS] = {};
const volatile __u64 db_duration_bounds_ns[L7_DURATION_BOUNDS] = {};
const volatile __u64 size_bounds[L7_SIZE_BOUNDS] = {};

/* A followed connection's state lives with its socket: finding it is a pointer read, not a hash
 * lookup (~20 instead of ~55 ns per call), and it goes when the socket is released. `followed`
 * counts them against max_connections; the close (l7_state_change) gives the place back and marks
 * the state `closed`, but does not delete it: a delete from a program frees the value after an
 * RCU-tasks-trace grace period, whose callbacks cost ~2 us a connection here, where the socket's
 * release frees it after a plain RCU one (docs/benchmarks.md). */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct l7_conn);
} conns SEC(".maps");

__u64 followed = 0;

/* A TCP socket not followed and not yet decided about: the calls looked at, and which socket it is
 * (an address is reused by later sockets; a cookie never is). Not socket storage, which allocates a
 * socket's first value with memory-cgroup accounting and frees it through RCU when the socket goes,
 * which every short connection paid, followed or not (docs/benchmarks.md): a table of slots, and
 * behind it an LRU hash, from which a socket evicted is looked at again (bpf/include/netobs_slots.h).
 * An entry goes when its socket is decided about or closes. */
struct l7_sniff {
	__u64 cookie;
	__u32 tries;
	__u32 pad;
};

#define SNIFF_SLOT_BITS 14
NETOBS_SLOTS(sniff_slots, struct l7_sniff, SNIFF_SLOT_BITS);

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(map_flags, BPF_F_NO_COMMON_LRU); /* a list per CPU: no lock shared by every CPU */
	__uint(max_entries, 65536);
	__type(key, __u64);         /* the socket's id */
	__type(value, struct l7_sniff);
} sniffed SEC(".maps");

#define SNIFF_TABLE &sniff_slots, SNIFF_SLOT_BITS, &sniffed, NETOBS_SLOTS_L7_SNIFFED

/* A socket decided about, never to be looked at again (its first 8 calls were no protocol, or the
 * sampling or Common.DropLocalConnections left it out), or whose data is TLS records: in socket
 * storage, whose lookup on each of its later calls is a pointer read (~20 ns less a call than the
 * hash). Its allocation is paid once, by a socket that has lived 8 calls, or that carried a
 * request. */
enum l7_verdict {
	L7_VERDICT_NEVER = 0, /* nothing more is looked at */
	L7_VERDICT_TLS = 1,   /* encrypted: its plaintext comes from the TLS library (bpf/l7_tls.c) */
};
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u8);
} ignored SEC(".maps");

/* The clients a server's series are kept apart by (Kubernetes.Peers): the address of each pod and node
 * of the cluster -> the number user space gave its workload (its node, for a node or a host-network
 * pod). A server's connection from an address not here is one of "the other clients". Written by user
 * space whenever the cluster changes (exporter/enrich/kubernetes_peer_ids.py); empty when the cluster
 * is not watched. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__type(key, struct netobs_addr);
	__type(value, __u32);
} l7_clients SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, L7_LOST_REASONS);
	__type(key, __u32);
	__type(value, __u64);
} l7_lost SEC(".maps");

#include "l7_io.c"

/* Per-CPU room: the parse window and the key of the series being updated. */
struct l7_work {
	struct l7_io io; /* loop state in a map value: the verifier does not walk its every value */
	struct l7_series zero; /* a new series: zero figures, its key and process name */
	struct l7_conn conn_zero;
	struct l7_parse p;     /* last, and followed by room that fill_gather's copies may reach */
	__u8 spare[L7_CAPTURE_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct l7_work);
} l7_work SEC(".maps");

static __always_inline struct l7_work *get_work(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&l7_work, &zero);
}

#include "l7_series.c"
#include "l7_protocols.c"

/* ---------------------------------------------------------------- a new connection */

/* Counts one more call looked at on a socket not followed (`s` is its entry, if it has one): after
 * L7_SNIFF_TRIES of them, the socket is never looked at again. */
static __always_inline void sniff_count(struct sock *sk, __u64 key, struct l7_sniff *s, __u64 cookie)
{
	if (s && s->tries + 1 >= L7_SNIFF_TRIES) {
		bpf_sk_storage_get(&ignored, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		netobs_slot_drop(SNIFF_TABLE, key);
	} else if (s) {
		s->tries++;
	} else {
		struct l7_sniff fresh = {.cookie = cookie, .tries = 1};
		netobs_slot_put(SNIFF_TABLE, key, &fresh, sizeof(fresh));
	}
}

/* The socket is decided about: never looked at again, or encrypted (enum l7_verdict). */
static __always_inline void sniff_decide(struct sock *sk, __u64 key, struct l7_sniff *s, __u8 verdict)
{
	bpf_sk_storage_get(&ignored, sk, &verdict, BPF_SK_STORAGE_GET_F_CREATE);
	if (s)
		netobs_slot_drop(SNIFF_TABLE, key);
}

/* Whether Common.Sampling leaves a new connection out. */
static __always_inline bool sampled_out(void)
{
	return sampling < 100 && bpf_get_prandom_u32() % 100 >= sampling;
}

/* Whether sampling or Common.DropLocalConnections leaves a connection with these endpoints out. */
static __always_inline bool left_out(const struct netobs_endpoints *ep)
{
	if (sampled_out())
		return true;
	return drop_local && (addr_is_loopback(ep->remote_addr, ep->family) ||
			      bpf_map_lookup_elem(&local_addrs, ep->remote_addr));
}

/* Fills in what a connection's series share: its protocol and role, the server's endpoint and the
 * current process. */
static __always_inline void conn_identify(struct l7_conn *c, const struct netobs_endpoints *ep, __u8 protocol,
					  bool client, bool tls)
{
	c->protocol = protocol;
	c->client = client;
	c->tls = tls;
	c->pid = bpf_get_current_pid_tgid() >> 32;
	c->family = ep->family;
	c->client_peer = 0;
	if (client) {
		__builtin_memcpy(c->server_addr, ep->remote_addr, 16);
		c->server_port = ep->remote_port;
	} else {
		__builtin_memcpy(c->server_addr, ep->local_addr, 16);
		c->server_port = ep->local_port;
		__u32 *peer = bpf_map_lookup_elem(&l7_clients, ep->remote_addr);
		if (peer)
			c->client_peer = *peer;
	}
	current_process_name(&c->comm);
	c->start = netobs_current_identity(&c->cgroup_id);
	c->conn_fp = conn_fingerprint(c);
}

/* Takes a place among the L7.MaxConnections followed; false (counted) if there is none. */
static __always_inline bool follow_one(void)
{
	if (__sync_fetch_and_add(&followed, 1) < max_connections)
		return true;
	__sync_fetch_and_sub(&followed, 1);
	netobs_count(&l7_lost, L7_LOST_CONNS_FULL);
	return false;
}

static __always_inline __u64 sock_cookie(struct sock *sk)
{
	__u64 cookie = sk->__sk_common.skc_cookie.counter;
	return cookie ? cookie : bpf_get_socket_cookie(sk);
}

/* A TLS record header: content type 20-23 (change cipher spec, alert, handshake, application data),
 * version 3.0-3.4. */
static __always_inline bool tls_record(const struct l7_parse *p)
{
	__u8 type = l7_at(p, 0);
	return p->n >= 5 && type >= 20 && type <= 23 && l7_at(p, 1) == 3 && l7_at(p, 2) <= 4;
}

static __always_inline void tls_sock_call(struct sock *sk, __u64 cookie);

/* Starts tracking a connection whose data begins with a request head (or a MySQL greeting); false
 * if it does not. */
static __always_inline bool track(struct sock *sk, struct l7_io *io, bool sent)
{
	__u64 key = netobs_sock_id(sk);
	__u64 cookie = sock_cookie(sk);
	struct l7_sniff *s = netobs_slot_find(SNIFF_TABLE, key);
	if (s && s->cookie != cookie)
		s = NULL; /* an earlier socket's */
	struct l7_work *w = get_work();
	struct netobs_endpoints ep;
	if (!w)
		return false;
	bool client = sent;
	bool filled = fill(&w->p, io);
	__u8 protocol = filled ? detect(&w->p, sent, &client) : L7_PROTO_UNKNOWN;
	if (!protocol && !(tls_enabled && filled && tls_record(&w->p))) {
		sniff_count(sk, key, s, cookie);
		return false;
	}
	sock_endpoints(sk, &ep);
	if (left_out(&ep)) {
		sniff_decide(sk, key, s, L7_VERDICT_NEVER);
		return false;
	}
	if (!protocol) { /* TLS: the library's calls give the plaintext */
		sniff_decide(sk, key, s, L7_VERDICT_TLS);
		tls_sock_call(sk, cookie);
		return false;
	}
	struct l7_conn *c = &w->conn_zero;
	conn_identify(c, &ep, protocol, client, false);
	if (!follow_one())
		return false;
	if (!bpf_sk_storage_get(&conns, sk, c, BPF_SK_STORAGE_GET_F_CREATE)) {
		__sync_fetch_and_sub(&followed, 1);
		netobs_count(&l7_lost, L7_LOST_CONNS_FULL);
		return false;
	}
	if (s)
		netobs_slot_drop(SNIFF_TABLE, key); /* tracked from now on: `conns` has it */
	c = bpf_sk_storage_get(&conns, sk, 0, 0);
	return c && protocol_start(c, &w->p, (__u64)sk);
}

/* ---------------------------------------------------------------- a call's data */

static __always_inline void conn_close(struct l7_conn *c, __u64 sk);
static __always_inline void tls_adopt(struct sock *sk, __u8 protocol, bool client);

/* A cleartext connection went TLS (PostgreSQL's SSLRequest was accepted, MySQL's client sent its
 * SSLRequest): from now on its plaintext comes from the library, as for a connection that began
 * with TLS. */
static __always_inline void starttls(struct sock *sk, struct l7_conn *c)
{
	__u8 verdict = L7_VERDICT_TLS, protocol = c->protocol;
	bool client = c->client;

	conn_close(c, (__u64)sk);
	bpf_sk_storage_delete(&conns, sk);
	bpf_sk_storage_get(&ignored, sk, &verdict, BPF_SK_STORAGE_GET_F_CREATE);
	tls_adopt(sk, protocol, client);
}

/* The time of a TCP socket call: the socket's own clock (tcp_clock_cache), the monotonic clock
 * bpf_ktime_get_ns reads, which TCP set in this call - a send's as it began to transmit, a receive's as
 * it copied the data out - read without a helper call (~50 ns a call here). Measured against
 * bpf_ktime_get_ns at these tracepoints (docs/http.md): receives within 1 us, sends a few us earlier
 * on loopback, whose transmission runs the receiver within the call. */
static __always_inline __u64 tcp_call_time(struct sock *sk)
{
	__u64 now = tcp_of(sk)->tcp_clock_cache;
	return now ? now : bpf_ktime_get_ns();
}

/* The work area, set up for a TCP socket call that moved `ret` bytes: where its data is is looked up
 * when first needed, its time is the socket's clock. */
static __always_inline struct l7_work *call_start(struct sock *sk, int ret)
{
	struct l7_work *w = get_work();

	if (!w)
		return NULL;
	io_start(&w->io, (__u64)sk, ret, 0, 0);
	w->io.now = tcp_call_time(sk);
	return w;
}

static __always_inline void l7_sock_io(struct sock *sk, int ret, bool sent)
{
	struct l7_work *w;
	struct l7_conn *c;

	if (ret <= 0)
		return;
	if (sk->__sk_common.skc_family != AF_INET && sk->__sk_common.skc_family != AF_INET6)
		return;
	if (sk->sk_protocol != IPPROTO_TCP)
		return;
	if (!netobs_current_watched())
		return;
	/* A socket decided about returns before anything else is read: the clock, the work area. A
	 * socket with no socket storage at all (every socket until it is followed or decided about)
	 * needs no lookup. */
	c = sock_has_storage(sk) ? bpf_sk_storage_get(&conns, sk, 0, 0) : NULL;
	if (c && c->closed) {
		if (sk->__sk_common.skc_state == TCP_CLOSE)
			return; /* data read after the close */
		bpf_sk_storage_delete(&conns, sk); /* connected again after a disconnect: a new connection */
		c = NULL;
	}
	if (!c) {
		if (sk->__sk_common.skc_state == TCP_CLOSE)
			return; /* data read after the close: nothing can be paired */
		__u8 *verdict = sock_has_storage(sk) ? bpf_sk_storage_get(&ignored, sk, 0, 0) : NULL;
		if (verdict) {
			if (tls_enabled && *verdict == L7_VERDICT_TLS)
				tls_sock_call(sk, 0);
			return;
		}
	}
	w = call_start(sk, ret);
	if (!w)
		return;
	if (!c) {
		if (!track(sk, &w->io, sent))
			return;
		c = bpf_sk_storage_get(&conns, sk, 0, 0);
		if (!c)
			return;
	}
	conn_data(c, w, sent);
	if (tls_enabled && c->went_tls)
		starttls(sk, c);
}

/* ---------------------------------------------------------------- close */

struct close_ctx {
	struct l7_conn *c;
	__u64 now;
};

/* A request that never got its response: counted with status 0. */
static long flush_unanswered(__u64 i, void *data)
{
	struct close_ctx *x = data;
	struct l7_conn *c = x->c;

	if (c->head == c->tail)
		return 1;
	struct l7_req *req = &c->q[c->head & (L7_QUEUE - 1)];
	record(c, req, request_names(c, c->head), c->protocol, 0, l7_no_code, req->count, x->now, req->bytes, 0, 0);
	c->head++;
	return 0;
}

/* A followed connection (of socket sk) has ended: what was in progress is counted, and its place
 * given back. */
static __always_inline void conn_close(struct l7_conn *c, __u64 sk)
{
	if (c->closed)
		return;
	struct close_ctx x = {.c = c, .now = bpf_ktime_get_ns()};
	protocol_close(c, sk, x.now);
	bpf_loop(L7_QUEUE, flush_unanswered, &x, 0);
	c->closed = 1;
	__sync_fetch_and_sub(&followed, 1);
}

static __always_inline void tls_close(struct sock *sk);

static __always_inline void l7_state_change(struct sock *sk, int newstate)
{
	struct l7_conn *c;

	if (newstate != TCP_CLOSE)
		return;
	if (!sock_has_storage(sk)) { /* neither followed nor decided about */
		netobs_slot_drop(SNIFF_TABLE, netobs_sock_id(sk));
		return;
	}
	c = bpf_sk_storage_get(&conns, sk, 0, 0);
	if (c) {
		conn_close(c, (__u64)sk);
		return;
	}
	__u8 *verdict = bpf_sk_storage_get(&ignored, sk, 0, 0);
	if (!verdict) {
		netobs_slot_drop(SNIFF_TABLE, netobs_sock_id(sk)); /* a decided socket has no entry left */
	} else if (tls_enabled && *verdict == L7_VERDICT_TLS) {
		tls_close(sk);
	}
}

#include "l7_tls.c"

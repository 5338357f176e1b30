// SPDX-License-Identifier: GPL-2.0
/* dns: the DNS messages processes send and receive, copied to user space for parsing.
 *
 * Every socket call that moves data (read/write, readv/writev, recvfrom/sendto, recvmsg/sendmsg,
 * recvmmsg/sendmmsg) is seen where the socket layer accounts it (sock_{send,recv}_length, once per
 * message), in every network namespace. A message (UDP) or stream chunk (TCP) with a DNS port at
 * either end is copied, up to DNS_DATA_MAX bytes, from the buffer the system call's registers name.
 * An unconnected UDP socket's peer is the one the cgroup hooks saw for that datagram
 * (bpf/sockets.bpf.c).
 *
 * A UDP message with one plain question (the common case) is handled here: a query waits in
 * `pending`; its answer completes the lookup, counted in `series`. User space reads the series'
 * increments once a second, so its cost follows the number of series, not the lookups. Only an
 * answer whose name has not been sent for learn_interval_ns goes to user space, for the addresses
 * it holds. Everything else (DNS over TCP, several questions, compressed or long names) goes to the
 * ring buffer whole, and user space pairs it the same way. */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "netobs_sock.h"
#include "netobs_filter.h"
#include "netobs_owner.h"
#include "netobs_maps.h"
#include "dns.h"

#define E2BIG 7
#define IOV_MAX_SEEN 4 /* iovec entries of one call copied from */
#define MMSGHDR_SIZE 64

const volatile __u16 dns_ports[DNS_PORTS_MAX] = {53};
const volatile __u64 bounds_ns[DNS_BOUNDS] = {};       /* histogram bucket upper bounds */
const volatile __u64 window_ns = 60000000000ULL;       /* window of max_ns (Common.FlushOutL7Interval) */
const volatile __u64 learn_interval_ns = 1000000000ULL; /* least time between two answers of a name sent up */

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} dns_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, DNS_LOST_REASONS);
	__type(key, __u32);
	__type(value, __u64);
} dns_lost SEC(".maps");

/* The call a message belongs to. */
struct dns_call {
	__u64 sock;
	__u8 sent;
};

/* Per thread inside sendmmsg/recvmmsg: the message the next sock_{send,recv}_length is about. The
 * kernel handles a vector's messages in order, one socket-layer call each; a vector other than the
 * last one, or a message past its end, starts over at 0, and so does a failed call (which ends the
 * system call). */
struct dns_mmsg {
	__u64 vec;
	__u32 vlen;
	__u32 next;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct dns_mmsg);
} mmsg_next SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536); /* Dns.MaxPending */
	__type(key, struct dns_pending_key);
	__type(value, struct dns_pending);
} pending SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384); /* Dns.MaxSeries */
	__type(key, struct dns_series_key);
	__type(value, struct dns_series);
} dns_series SEC(".maps");

/* Queries the full pending table could not keep (counted as pending_full, key with slot 0): their
 * answers are not counted again as unmatched. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct dns_pending_key);
	__type(value, __u8);
} dropped SEC(".maps");

/* Answers that came before their query (struct dns_early); full: the answer counts as unmatched. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct dns_pending_key);
	__type(value, struct dns_early);
} early SEC(".maps");

/* How many answers went to `early` (kernel), were taken out by their query (kernel), and were
 * counted unmatched and deleted (user space, its only writer): a query looks in `early` only while
 * the first exceeds the other two. Each is counted before its entry appears, after it is gone. */
enum { EARLY_ADDED = 0, EARLY_TAKEN = 1, EARLY_EXPIRED = 2, EARLY_COUNTS = 3 };
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, EARLY_COUNTS);
	__type(key, __u32);
	__type(value, __u64);
} early_count SEC(".maps");

/* name hash -> when an answer for it was last sent to user space */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u64);
} learnt SEC(".maps");

/* Per-CPU room for dns_fast. Loop state lives here rather than on the stack: the verifier tracks
 * stack values exactly and would walk every distinct value of a loop counter; map values it does not. */
struct dns_work {
	struct dns_pending pending; /* the query in hand */
	__u64 fence;                /* full_fence's target */
	struct dns_series_key key;
	struct dns_series zero;
	__u64 hash;
	__u32 off;
	__u32 done;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dns_work);
} dns_work SEC(".maps");

/* An event plus room for a copy that starts near its end: lets the verifier bound the copies. */
struct dns_scratch {
	struct dns_event ev;
	__u8 spill[DNS_DATA_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dns_scratch);
} scratch SEC(".maps");

static __always_inline bool is_dns_port(__u16 port)
{
	if (!port)
		return false;
	for (int i = 0; i < DNS_PORTS_MAX; i++) {
		__u16 p = dns_ports[i];
		if (p == port)
			return true;
	}
	return false;
}

/* The struct user_msghdr fields a call needs: its iovec. */
static __always_inline void read_msghdr(__u64 msg, __u64 *iov, __u32 *iovcnt)
{
	__u64 len = 0;

	*iov = 0;
	*iovcnt = 0;
	if (!msg)
		return;
	bpf_probe_read_user(iov, sizeof(*iov), (const void *)(msg + MSGHDR_IOV));
	bpf_probe_read_user(&len, sizeof(len), (const void *)(msg + MSGHDR_IOVLEN));
	*iovcnt = len > IOV_MAX_SEEN ? IOV_MAX_SEEN : (__u32)len;
}

/* Copies up to `length` bytes of the message from one buffer or from the first iovec entries. */
static __always_inline __u64 copy_payload(struct dns_event *ev, __u64 buf, __u64 iov, __u32 iovcnt, __u64 length)
{
	__u64 off = 0;

	barrier_var(length);
	if (length > DNS_DATA_MAX)
		length = DNS_DATA_MAX;
	if (buf) {
		if (bpf_probe_read_user(ev->data, length, (const void *)buf))
			return 0;
		return length;
	}
	for (int i = 0; i < IOV_MAX_SEEN; i++) {
		struct iovec v = {};
		__u64 n;

		if (i >= iovcnt || off >= length)
			break;
		if (bpf_probe_read_user(&v, sizeof(v), (const void *)(iov + i * sizeof(v))))
			break;
		n = v.iov_len > length - off ? length - off : v.iov_len;
		barrier_var(n);
		if (n > DNS_DATA_MAX)
			n = DNS_DATA_MAX;
		/* ev->data is followed by DNS_DATA_MAX bytes of spill: off < DNS_DATA_MAX, n <= DNS_DATA_MAX */
		if (bpf_probe_read_user(ev->data + (off & (DNS_DATA_MAX - 1)), n, v.iov_base))
			break;
		off += n;
	}
	return off;
}

/* ---------------------------------------------------------------- the UDP fast path */

enum fast_result {
	FAST_COUNTED = 0, /* paired or counted here; nothing to send */
	FAST_LEARN = 1,   /* counted here; send it up for the addresses in the answer */
	FAST_USER = 2,    /* not handled: user space parses and pairs it */
};

static __always_inline __u8 byte_at(const struct dns_event *ev, __u32 off)
{
	barrier_var(off); /* keeps the mask: the compiler may prove it useless, the verifier cannot */
	return ev->data[off & (DNS_DATA_MAX - 1)];
}

static __always_inline __u16 u16_at(const struct dns_event *ev, __u32 off)
{
	return ((__u16)byte_at(ev, off) << 8) | byte_at(ev, off + 1);
}

/* A lookup: query p, answered at answer_ns with response_bytes. */
static __always_inline void count_lookup(struct dns_series *s, const struct dns_pending *p, __u64 answer_ns,
					 __u64 response_bytes)
{
	__u64 latency = answer_ns > p->ktime_ns ? answer_ns - p->ktime_ns : 0;
	__u64 window = answer_ns / (window_ns ? window_ns : 1);
	__u32 b = NETOBS_BUCKET(latency, bounds_ns, DNS_BOUNDS, DNS_BOUNDS);

	__sync_fetch_and_add(&s->count, 1);
	__sync_fetch_and_add(&s->sum_ns, latency);
	if (b <= DNS_BOUNDS)
		__sync_fetch_and_add(&s->buckets[b], 1);
	__sync_fetch_and_add(&s->request_bytes, p->request_bytes);
	__sync_fetch_and_add(&s->response_bytes, response_bytes);
	if (s->window != window) { /* races between CPUs here only blur a maximum */
		s->previous_max_ns = s->window + 1 == window ? s->max_ns : 0;
		s->max_ns = 0;
		s->window = window;
	}
	if (latency > s->max_ns)
		s->max_ns = latency;
	s->last_ns = answer_ns;
	__builtin_memcpy(s->comm, p->comm, DNS_COMM_LEN);
	s->cgroup_id = p->cgroup_id;
}

/* Whether the answer's names should go to user space: once per learn_interval_ns per name. */
static __always_inline bool should_learn(__u64 hash, __u64 now)
{
	__u64 *last = bpf_map_lookup_elem(&learnt, &hash);

	if (last && now - *last < learn_interval_ns)
		return false;
	bpf_map_update_elem(&learnt, &hash, &now, BPF_ANY);
	return true;
}

/* Walks the question name's labels from offset 12: done with off at its final zero byte, or not
 * done when it is compressed, cut or longer than DNS_NAME_MAX (user space handles those). */
struct walk_ctx {
	const struct dns_event *ev;
	struct dns_work *w;
	__u32 captured;
};

static long walk_label(__u64 i, void *data)
{
	struct walk_ctx *c = data;
	struct dns_work *w = c->w;
	__u32 off = w->off;
	__u8 len = byte_at(c->ev, off);

	if (len == 0) {
		w->done = 1;
		return 1;
	}
	if ((len & 0xc0) || off + len + 1 >= c->captured || off + len + 1 - 12 >= DNS_NAME_MAX)
		return 1;
	w->off = off + len + 1;
	return 0;
}

struct copy_ctx {
	const struct dns_event *ev;
	struct dns_work *w;
};

/* Copies byte i of the name to w->key.name, lower-cased (label lengths are below 64, so never
 * changed), and adds it to w->hash (FNV-1a). */
static long copy_lower(__u64 i, void *data)
{
	struct copy_ctx *c = data;
	struct dns_work *w = c->w;
	__u8 b = byte_at(c->ev, 12 + (__u32)i);

	b = b >= 'A' && b <= 'Z' ? b + 32 : b;
	w->key.name[i & (DNS_NAME_MAX - 1)] = b;
	w->hash = (w->hash ^ b) * 0x100000001b3ULL;
	return 0;
}

/* Whether a query's peer and an answer's are the same; a peer not known matches any. */
static __always_inline bool same_peer(const struct dns_pending *p, const struct dns_event *ev)
{
	if (!p->remote_port || !ev->remote_port)
		return true;
	__u64 a[2], b[2];

	__builtin_memcpy(a, p->remote_addr, 16);
	__builtin_memcpy(b, ev->remote_addr, 16);
	return p->remote_port == ev->remote_port && a[0] == b[0] && a[1] == b[1];
}

/* The query's figures, in w->pending. */
static __always_inline void query_fill(struct dns_work *w, const struct dns_event *ev, bool client)
{
	struct dns_pending *p = &w->pending;

	p->ktime_ns = ev->ktime_ns;
	p->request_bytes = ev->length;
	p->series.start = netobs_current_identity(&p->cgroup_id);
	__builtin_memcpy(p->remote_addr, ev->remote_addr, 16);
	p->remote_port = ev->remote_port;
	__builtin_memcpy(p->series.server_addr, client ? ev->remote_addr : ev->local_addr, 16);
	p->series.server_port = client ? ev->remote_port : ev->local_port;
	p->series.pid = ev->pid;
	p->series.family = ev->family;
	p->series.client = client;
	p->series.rcode = 0;
	__builtin_memcpy(p->series.name, w->key.name, DNS_NAME_MAX);
	p->series.name_len = w->key.name_len;
	p->series.qtype = w->key.qtype;
	__builtin_memcpy(p->comm, ev->comm, DNS_COMM_LEN);
}

/* A lookup: query q (a copy), answered at answer_ns with response_bytes and rcode. */
static __always_inline void lookup_done(struct dns_work *w, const struct dns_pending *q, __u64 answer_ns,
					__u64 response_bytes, __u8 rcode)
{
	__builtin_memcpy(&w->key, &q->series, sizeof(w->key));
	w->key.rcode = rcode;
	struct dns_series *s = netobs_lookup_or_insert(&dns_series, &w->key, &w->zero);
	if (s)
		count_lookup(s, q, answer_ns, response_bytes);
	else
		netobs_count(&dns_lost, DNS_LOST_SERIES_FULL);
}

/* Takes the early answer at k out, and counts it taken; false if another CPU took it first. */
static __always_inline bool early_drop(const struct dns_pending_key *k)
{
	__u32 taken = EARLY_TAKEN;
	__u64 *t = bpf_map_lookup_elem(&early_count, &taken);

	if (!t || bpf_map_delete_elem(&early, k))
		return false;
	__sync_fetch_and_add(t, 1);
	return true;
}

/* Takes the answer that came before its query (struct dns_early) at k (slot 0) into *answer: false if
 * there is none the query at query_ns may take, or another CPU took it first. */
static __always_inline bool early_take(const struct dns_pending_key *k, __u64 query_ns, struct dns_early *answer)
{
	__u32 added = EARLY_ADDED, taken = EARLY_TAKEN, expired = EARLY_EXPIRED;
	__u64 *t = bpf_map_lookup_elem(&early_count, &taken);
	__u64 *x = bpf_map_lookup_elem(&early_count, &expired);
	__u64 *a = bpf_map_lookup_elem(&early_count, &added);

	/* what left first, what came last: the difference is never below the entries there are */
	if (!t || !x || !a)
		return false;
	__u64 gone = *t + *x;
	if (*a == gone)
		return false; /* `early` is empty: the usual case */
	struct dns_early *e = bpf_map_lookup_elem(&early, k);
	if (!e || query_ns > e->ktime_ns + DNS_EARLY_NS)
		return false; /* none, or one user space counts as unmatched */
	*answer = *e;
	return early_drop(k); /* false: another CPU took it */
}

/* An answer waits in `early` for its query; false (counted unmatched) if the table has no room or
 * holds one already. */
static __always_inline bool early_put(const struct dns_pending_key *k, const struct dns_early *answer)
{
	__u32 added = EARLY_ADDED, taken = EARLY_TAKEN;
	__u64 *a = bpf_map_lookup_elem(&early_count, &added);
	__u64 *t = bpf_map_lookup_elem(&early_count, &taken);

	if (!a || !t)
		return false;
	__sync_fetch_and_add(a, 1); /* before it is there: a query that reads the counts cannot miss it */
	if (bpf_map_update_elem(&early, k, answer, BPF_NOEXIST)) {
		__sync_fetch_and_add(t, 1);
		netobs_count(&dns_lost, DNS_LOST_UNMATCHED);
		return false;
	}
	return true;
}

/* A full barrier: a map entry written before it is visible to another CPU before what is read after it
 * (an atomic operation with a fetch is one on every BPF target). */
static __always_inline void full_fence(struct dns_work *w)
{
	__sync_fetch_and_add(&w->fence, 0);
}

/* A query: waits in `pending` under the first free slot of its (socket, id, question); true if it
 * does. The same question again to the same peer before the answer is a retry: the lookup began
 * with the first. */
static __always_inline bool query_wait(struct dns_work *w, struct dns_pending_key *pkey, const struct dns_event *ev,
				       bool client)
{
	struct dns_pending *p = &w->pending;

	bool free = false;

	for (__u8 slot = 0; slot < DNS_SAME_QUESTION; slot++) {
		pkey->slot = slot;
		struct dns_pending *q = bpf_map_lookup_elem(&pending, pkey);
		if (!q) {
			free = true;
			break;
		}
		if (same_peer(q, ev))
			return false;
	}
	if (!free) {
		netobs_count(&dns_lost, DNS_LOST_PENDING_FULL); /* the same question to more servers at once */
		return false;
	}
	query_fill(w, ev, client);
	long err = bpf_map_update_elem(&pending, pkey, p, BPF_NOEXIST);
	if (err == -E2BIG) {
		struct dns_early answer;
		__u8 one = 1;

		/* The query is marked dropped, then `early` looked at: its answer, read meanwhile on another
		 * CPU before the mark, waits there and makes this a lookup after all; one read later finds the
		 * mark (each side writes its own entry, then looks for the other's: fast_path). */
		pkey->slot = 0;
		bpf_map_update_elem(&dropped, pkey, &one, BPF_ANY);
		full_fence(w);
		if (early_take(pkey, ev->ktime_ns, &answer)) {
			bpf_map_delete_elem(&dropped, pkey);
			lookup_done(w, p, answer.ktime_ns, answer.response_bytes, answer.rcode);
		} else {
			netobs_count(&dns_lost, DNS_LOST_PENDING_FULL);
		}
	}
	return err == 0;
}

/* The query an answer completes: the one to the answer's peer, or, when the answer's peer is not
 * known, the oldest of its (socket, id, question). NULL if none waits; pkey->slot is its slot. */
static __always_inline struct dns_pending *answer_query(struct dns_pending_key *pkey, const struct dns_event *ev)
{
	struct dns_pending *found = NULL;
	__u8 found_slot = 0;

	for (__u8 slot = 0; slot < DNS_SAME_QUESTION; slot++) {
		pkey->slot = slot;
		struct dns_pending *q = bpf_map_lookup_elem(&pending, pkey);
		if (!q || !same_peer(q, ev))
			continue;
		if (ev->remote_port && q->remote_port) {
			found = q;
			found_slot = slot;
			break;
		}
		if (!found || q->ktime_ns < found->ktime_ns) {
			found = q;
			found_slot = slot;
		}
	}
	pkey->slot = found_slot;
	return found;
}

__noinline int dns_fast(struct dns_event *ev)
{
	struct dns_pending_key pkey = {};
	struct dns_pending *p;
	struct dns_work *w;
	__u32 zero = 0, captured, off, name_len;
	bool response, client;

	if (!ev)
		return FAST_USER;
	w = bpf_map_lookup_elem(&dns_work, &zero);
	captured = ev->captured;
	if (!w || captured < 17 || captured > DNS_DATA_MAX)
		return FAST_USER;
	response = byte_at(ev, 2) & 0x80;
	if ((byte_at(ev, 2) & 0x78) || u16_at(ev, 4) != 1) /* opcode QUERY, one question */
		return FAST_USER;
	struct walk_ctx walk = {.ev = ev, .w = w, .captured = captured};
	w->off = 12;
	w->done = 0;
	bpf_loop(DNS_NAME_MAX, walk_label, &walk, 0);
	off = w->off;
	if (!w->done || off < 12 || off + 4 >= captured || off - 12 >= DNS_NAME_MAX)
		return FAST_USER;
	name_len = off - 12 + 1;
	client = ev->sent != response; /* a query written or an answer read: the process asks */

	__builtin_memset(w->key.name, 0, DNS_NAME_MAX);
	w->key.name_len = name_len;
	w->key.qtype = u16_at(ev, off + 1);
	w->hash = 0xcbf29ce484222325ULL;
	struct copy_ctx copy = {.ev = ev, .w = w};
	bpf_loop(name_len, copy_lower, &copy, 0);

	pkey.sock = ev->sock;
	pkey.name_hash = w->hash;
	pkey.id = u16_at(ev, 0);
	pkey.qtype = w->key.qtype;

	/* A query and its answer seen on two CPUs at once, each before the other was in its table: each
	 * side writes its own entry, then looks for the other's. At least one sees the other; the one that
	 * takes the early answer out counts the lookup, once. (An answer counted through `early` sends no
	 * names to user space: the next answer of the name does.) */
	struct dns_pending_key ekey = pkey; /* slot 0: where an answer waits for its query */
	struct dns_early answer;
	__u8 rcode = byte_at(ev, 3) & 0x0f;

	if (!response) {
		if (early_take(&ekey, ev->ktime_ns, &answer)) { /* its answer came first */
			query_fill(w, ev, client);
			lookup_done(w, &w->pending, answer.ktime_ns, answer.response_bytes, answer.rcode);
		} else if (query_wait(w, &pkey, ev, client)) {
			full_fence(w);
			if (early_take(&ekey, ev->ktime_ns, &answer)) { /* it came meanwhile, on another CPU */
				if (bpf_map_delete_elem(&pending, &pkey) == 0)
					lookup_done(w, &w->pending, answer.ktime_ns, answer.response_bytes, answer.rcode);
				else /* another answer took the query: this one had none */
					netobs_count(&dns_lost, DNS_LOST_UNMATCHED);
			}
		}
		return FAST_COUNTED;
	}

	p = answer_query(&pkey, ev);
	if (p) {
		w->pending = *p;
		if (bpf_map_delete_elem(&pending, &pkey)) { /* another answer took it: this one had none */
			netobs_count(&dns_lost, DNS_LOST_UNMATCHED);
			return FAST_COUNTED;
		}
		lookup_done(w, &w->pending, ev->ktime_ns, ev->length, rcode);
		if (rcode == 0 && u16_at(ev, 6) && client && should_learn(pkey.name_hash, ev->ktime_ns))
			return FAST_LEARN;
		return FAST_COUNTED;
	}
	if (!bpf_map_delete_elem(&dropped, &ekey))
		return FAST_COUNTED; /* the answer of a query the table had no room for */
	answer = (struct dns_early){.ktime_ns = ev->ktime_ns, .response_bytes = ev->length, .rcode = rcode};
	if (!early_put(&ekey, &answer)) /* its query may still come */
		return FAST_COUNTED;
	full_fence(w);
	p = answer_query(&pkey, ev); /* the query may have come meanwhile, on another CPU */
	if (p) {
		w->pending = *p;
		if (early_drop(&ekey)) {
			if (bpf_map_delete_elem(&pending, &pkey) == 0)
				lookup_done(w, &w->pending, ev->ktime_ns, ev->length, rcode);
			else /* another answer took the query: this one had none */
				netobs_count(&dns_lost, DNS_LOST_UNMATCHED);
		}
	} else if (!bpf_map_delete_elem(&dropped, &ekey)) {
		early_drop(&ekey); /* its query was dropped meanwhile, the table full: the answer is that one's */
	}
	return FAST_COUNTED;
}

/* Counts one message or chunk, or sends it to user space. */
static __always_inline void emit(const struct dns_call *call, struct netobs_endpoints *ep, __u8 protocol,
				 __u64 buf, __u64 iov, __u32 iovcnt, __u32 length, __u64 ktime_ns)
{
	__u32 zero = 0;
	struct dns_scratch *s;
	struct dns_event *ev;
	__u64 captured;

	s = bpf_map_lookup_elem(&scratch, &zero);
	if (!s)
		return;
	ev = &s->ev;
	ev->ktime_ns = ktime_ns;
	ev->sock = call->sock;
	__builtin_memcpy(ev->local_addr, ep->local_addr, 16);
	__builtin_memcpy(ev->remote_addr, ep->remote_addr, 16);
	ev->pid = bpf_get_current_pid_tgid() >> 32;
	ev->length = length;
	ev->local_port = ep->local_port;
	ev->remote_port = ep->remote_port;
	ev->family = ep->family;
	ev->protocol = protocol;
	ev->sent = call->sent;
	current_process_name(&ev->comm);
	captured = copy_payload(ev, buf, iov, iovcnt, length);
	barrier_var(captured);
	if (captured > DNS_DATA_MAX)
		captured = DNS_DATA_MAX;
	ev->captured = captured;
	ev->paired = 0;
	if (protocol == IPPROTO_UDP) {
		int fast = dns_fast(ev);

		if (fast == FAST_COUNTED)
			return;
		ev->paired = fast == FAST_LEARN;
	}
	ev->start = 0;
	ev->cgroup_id = 0;
	if (!ev->paired) /* user space pairs it: the owner of a query */
		ev->start = netobs_current_identity(&ev->cgroup_id);
	if (bpf_ringbuf_output(&dns_events, ev, offsetof(struct dns_event, data) + captured, 0))
		netobs_count(&dns_lost, DNS_LOST_RINGBUF_FULL);
}

/* The struct mmsghdr of the message of sendmmsg/recvmmsg(vec, vlen) this socket-layer call is about. */
static __always_inline __u64 mmsg_entry(__u64 vec, __u64 vlen)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct dns_mmsg *m = bpf_map_lookup_elem(&mmsg_next, &id);
	struct dns_mmsg first = {.vec = vec, .vlen = vlen, .next = 1};

	if (!m || m->vec != vec || m->vlen != vlen || m->next >= vlen) {
		bpf_map_update_elem(&mmsg_next, &id, &first, BPF_ANY);
		return vec;
	}
	return vec + (__u64)(m->next++) * MMSGHDR_SIZE;
}

/* A failed call ends a sendmmsg/recvmmsg: the thread's next one starts at its first message. */
static __always_inline void mmsg_failed(void)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct dns_mmsg *m = bpf_map_lookup_elem(&mmsg_next, &id);

	if (m)
		m->next = m->vlen;
}

/* Data of a socket whose own address or peer is a DNS port. Seen where the kernel accounts socket
 * data, so other files and sockets cost a few loads; the buffer is the system call's, from its saved
 * registers; an unconnected UDP socket's peer is `peer`, and `peers` its storage. A datagram such a
 * socket reads without its address is looked at if the socket has sent to a DNS port: its peer is
 * then not known (port 0), and the query it answers tells it. */
static __always_inline void dns_sock_io(struct sock *sk, int ret, bool sent, const struct udp_peer *peer,
					struct udp_peers *peers)
{
	struct netobs_syscall sc;
	struct netobs_endpoints ep;
	__u64 a1, a2, buf = 0, iov = 0;
	__u32 iovcnt = 0;
	__u16 family, local, remote;
	__u8 protocol;

	family = sk->__sk_common.skc_family;
	if (family != AF_INET && family != AF_INET6)
		return;
	protocol = sk->sk_protocol;
	if (protocol != IPPROTO_TCP && protocol != IPPROTO_UDP)
		return;
	if (ret <= 0) {
		if (protocol == IPPROTO_UDP)
			mmsg_failed();
		return;
	}
	local = sk->__sk_common.skc_num;
	remote = peer ? peer->port : bpf_ntohs(sk->__sk_common.skc_dport);
	if (is_dns_port(remote)) {
		if (peers && peer && sent && !peers->asks_dns)
			peers->asks_dns = 1;
	} else if (!is_dns_port(local) && (remote || sent || !peers || !peers->asks_dns)) {
		return;
	}
	if (!netobs_current_watched())
		return;
	if (!current_syscall(&sc))
		return;
	a1 = sc.arg2;
	a2 = sc.arg3;
	switch (sc.nr) {
	case NR_read:
	case NR_write:
	case NR_recvfrom:
	case NR_sendto:
		buf = a1;
		break;
	case NR_readv:
	case NR_writev:
		iov = a1;
		iovcnt = a2 > IOV_MAX_SEEN ? IOV_MAX_SEEN : a2;
		break;
	case NR_recvmsg:
	case NR_sendmsg:
		read_msghdr(a1, &iov, &iovcnt);
		break;
	case NR_recvmmsg:
	case NR_sendmmsg:
		read_msghdr(mmsg_entry(a1, a2), &iov, &iovcnt);
		break;
	default:
		return; /* sendfile, splice: not DNS */
	}
	struct dns_call call = {.sock = (__u64)sk, .sent = sent};
	sock_endpoints(sk, &ep);
	if (peer)
		endpoints_set_peer(&ep, peer);
	emit(&call, &ep, protocol, buf, iov, iovcnt, ret, bpf_ktime_get_ns());
}

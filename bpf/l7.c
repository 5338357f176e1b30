// SPDX-License-Identifier: GPL-2.0
/* l7: application requests (HTTP/1.x) paired with their responses and counted, in the kernel.
 *
 * Socket data is seen where the kernel accounts it (tracepoints sock_send_length and
 * sock_recv_length), so only socket calls pay. The bytes are in the user buffer of the system call
 * in progress, found from the task's saved registers: read/write, recvfrom/sendto, readv/writev and
 * recvmsg/sendmsg give their buffer (the first iovec); sendfile, splice and the rest are counted as
 * bytes only.
 *
 * A TCP connection whose data starts with a request head is tracked in `conns`: its role (the side
 * that sends the request is the client), the requests waiting for their responses (several when
 * pipelined) and the response in progress. Heads are parsed from the first L7.CaptureBytes of each
 * message; bodies are skipped by Content-Length, or end at a zero-size chunk, at the next head or
 * when the connection closes. A complete exchange adds to its series in `series`: count, latency
 * histogram, bytes and body-size histograms. User space reads the series' increments, so its cost
 * follows the number of series, never the number of requests. */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "netobs_sock.h"
#include "netobs_filter.h"
#include "netobs_owner.h"
#include "netobs_maps.h"
#include "l7_db.h"

#define L7_MSGS_PER_CALL 16 /* messages of one call looked at (pipelined requests, responses) */
#define L7_DB_STEPS_PER_CALL 1024 /* database messages (RESP elements) of one call looked at */
#define L7_SNIFF_TRIES 8    /* calls looked at on a connection before deciding it is not HTTP */
#define L7_STMT_CACHE 8     /* prepared statements' operations kept in the connection (a power of two) */


const volatile __u32 capture_bytes = 512;  /* L7.CaptureBytes */
const volatile __u32 sampling = 100;       /* Common.Sampling: percent of connections tracked */
const volatile __u32 protocols = 1 << L7_PROTO_HTTP; /* Common.IncludeProtocols: 1 << enum l7_protocol */
const volatile __u64 max_connections = 16384; /* L7.MaxConnections */
const volatile bool tls_enabled = false;      /* L7.Tls.Enabled, and user space attached the uprobes */
const volatile __u64 duration_bounds_ns[L7_DURATION_BOUNDS] = {};
const volatile __u64 db_duration_bounds_ns[L7_DURATION_BOUNDS] = {};
const volatile __u64 size_bounds[L7_SIZE_BOUNDS] = {};

enum resp_mode {
	RESP_IDLE = 0,
	RESP_LENGTH = 1,      /* resp_remaining bytes to come */
	RESP_CHUNKED = 2,     /* ends with a zero-size chunk */
	RESP_UNTIL_NEXT = 3,  /* no length: ends at the next head or when the connection closes */
};

/* A request waiting for its response; for databases, `count` alike requests of one call (a
 * pipeline) wait together. */
struct l7_req {
	__u64 start_ns; /* the process wrote it (client) or read it (server) */
	__u64 bytes;
	__u32 header_len;
	__u32 count;    /* requests waiting in this entry (1 for HTTP) */
	__u8 version;
	__u8 no_body;   /* HEAD: the response has a head only */
	__u8 kind;      /* databases: which message it is (PostgreSQL Query or Execute, memcached kind) */
	__u8 pad[5];
	char op[L7_OP_LEN];
};

/* What only an HTTP request has, beside its queue entry (HTTP keeps at most L7_PIPELINE waiting). */
struct l7_names {
	char target[L7_TARGET_LEN];
	char authority[L7_AUTHORITY_LEN];
	__u64 fp; /* names_fingerprint() of the two */
};

struct l7_conn {
	__u64 req_remaining;  /* bytes of the latest request still to come */
	__u64 resp_remaining; /* RESP_LENGTH: bytes of the response still to come */
	__u64 resp_bytes;
	__u64 resp_last_ns;   /* the last response data */
	__u64 conn_fp;        /* the fingerprint of what its series keys share (see series_fingerprint) */
	__u64 start;          /* the owner's start and cgroup (struct netobs_owner) */
	__u64 cgroup_id;
	__u64 rq_like_hash;   /* the last request head read in full (see http_request_like), or the */
	__s64 rq_like_cl;     /* last whole Redis command: its hash, its Content-Length (HTTP), and */
	__u32 resp_header_len;
	__u32 resp_status;
	__u32 pid;
	__u16 server_port;
	__u16 family;
	__u8 server_addr[16];
	__u8 protocol;
	__u8 client;
	__u8 resp_mode;
	__u8 req_open;        /* the latest request's body has no length: its data continues until a head */
	__u16 like_len;       /* layout of the last response head with a Content-Length (see */
	__u16 like_cl;        /* http_parse_response_like); 0: none yet */
	__u16 rq_like_len;    /* its length (0: none); HTTP: its method, route and Host are those of
			       * q[tail - 1]; Redis: its name is rq_like_op */
	__u8 tls;             /* the data is TLS plaintext, from the library's calls (bpf/l7_tls.c) */
	__u8 rq_pad;
	__u32 head;           /* requests q[head..tail) wait for responses */
	__u32 tail;
	char comm[L7_COMM_LEN];
	/* databases (bpf/l7_db_flow.h) */
	__u64 rq_skip;        /* bytes of the current request message still to come */
	__u64 rs_skip;        /* bytes of the current response message still to come */
	__u64 rs_elems;       /* Redis: elements of the reply in progress still to come */
	__u32 done;           /* responses of q[head] seen in this call and not yet recorded */
	__u32 rq_elems;       /* Redis: arguments of the command in progress still to come */
	__u8 rs_open;         /* a reply is in progress (Redis, memcached) */
	__u8 rs_push;         /* Redis: the reply in progress is a push, not an answer */
	__u8 rs_hit;          /* memcached: the reply in progress has a VALUE */
	__u8 db_state;        /* enum db_state */
	__u8 rs_error;        /* Redis: the reply in progress is an error */
	__u8 rq_seq;          /* MySQL: the sequence id of a packet header that came alone */
	__u8 rs_seq;
	__u8 closed;          /* the connection has ended (TCP_CLOSE): nothing more is parsed */
	__u32 rs_like_len;    /* Redis: the last whole reply that was a success and one element: its */
	__u32 rs_pad;         /* length (0: none) and hash */
	__u64 rs_like_hash;
	char code[L7_OP_LEN]; /* the error code (or memcached reply) of the responses in `done` */
	char rs_code[L7_OP_LEN]; /* the error code of the reply in progress */
	char bound_op[L7_OP_LEN]; /* PostgreSQL: the operation of the statement last bound; MySQL: of
				   * the statement being prepared */
	char rq_like_op[L7_OP_LEN];
	/* PostgreSQL, MySQL: the operations of the statements last prepared or run, by statement
	 * (direct-mapped: stmt_ids[i] holds a statement with stmt % L7_STMT_CACHE == i, if bit i of
	 * stmt_valid is set); a copy of `statements`, which is looked up only when this misses */
	__u32 stmt_ids[L7_STMT_CACHE];
	__u32 stmt_valid;
	__u32 stmt_pad;
	char stmt_ops[L7_STMT_CACHE][L7_OP_LEN];
	struct l7_req q[L7_QUEUE];
	struct l7_names names[L7_PIPELINE]; /* HTTP: of q[i] in names[i % L7_PIPELINE]; others: all 0 */
};

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

/* The operation of each prepared statement: PostgreSQL by name, MySQL by id. */
struct l7_stmt_key {
	__u64 sk;
	__u32 stmt;
	__u32 pad;
};
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384); /* L7.MaxStatements */
	__type(key, struct l7_stmt_key);
	__type(value, char[L7_OP_LEN]);
} statements SEC(".maps");

/* A TCP socket not followed and not yet decided about: the calls looked at, and which socket it is
 * (an address is reused by later sockets; a cookie never is). A hash, not socket storage: socket
 * storage allocates a socket's first value with memory-cgroup accounting and frees it through RCU
 * when the socket goes, which every short connection paid, followed or not (docs/benchmarks.md).
 * LRU: a socket evicted is looked at again. An entry goes when its socket is decided about or
 * closes. */
struct l7_sniff {
	__u64 cookie;
	__u32 tries;
	__u32 pad;
};
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(map_flags, BPF_F_NO_COMMON_LRU); /* a list per CPU: no lock shared by every CPU */
	__uint(max_entries, 65536);
	__type(key, __u64);         /* the socket's address */
	__type(value, struct l7_sniff);
} sniffed SEC(".maps");

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

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384); /* L7.MaxSeries */
	__type(key, __u64);         /* series_fingerprint(value.key) */
	__type(value, struct l7_series);
} l7_series SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, L7_LOST_REASONS);
	__type(key, __u32);
	__type(value, __u64);
} l7_lost SEC(".maps");

/* One socket call's data: where it is and how far the loop over its messages got. */
struct l7_io {
	__u64 sk;
	__u64 buf;  /* user address of the current segment (an iovec, or the buffer), 0: not readable */
	__u64 cap;  /* bytes of the segment */
	__u64 seg_off; /* where the segment starts in the call's data */
	__u64 iov;  /* user address of the next iovec; 0: none */
	__u64 iov_left; /* iovecs after the current one */
	__u64 ret;  /* bytes the call moved */
	__u64 off;  /* bytes of ret handled */
	__u64 now;
	__u64 win_off; /* the window (struct l7_parse) holds the call's bytes from win_off on */
	bool win_valid;
	bool request_dir;
	bool resolved; /* buf and cap were looked up (only when data must be read) */
};

/* Per-CPU room: the parse window and the key of the series being updated. */
struct l7_work {
	struct l7_io io; /* loop state in a map value: the verifier does not walk its every value */
	struct l7_parse p;
	struct l7_series zero; /* a new series: zero figures, its key and process name */
	struct l7_conn conn_zero;
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

/* ---------------------------------------------------------------- series */

/* ---- series fingerprints
 *
 * A series is found by a 64-bit fingerprint of its key rather than by the key: hashing and
 * comparing the 192-byte key on every exchange cost ~170 ns here, a fingerprint of seven words
 * ~20 ns. Each step below is a bijection of h for a given word and of the word for a given h, so
 * keys differing in one word never collide; two keys differing in more than one collide with a
 * probability of 2^-64 per pair (~10^-11 for a full table of 16,384 series). The fingerprint is a
 * function of the key's content only, so connections of one series share it. What a connection's
 * keys share is fingerprinted once (conn_fp), an HTTP route and Host once per parsed head. */
static __always_inline __u64 fp_mix(__u64 h, __u64 word)
{
	h ^= word;
	h *= 0x9e3779b97f4a7c15ULL; /* odd: a bijection modulo 2^64 */
	return h ^ (h >> 32);
}

static __always_inline __u64 conn_fingerprint(const struct l7_conn *c)
{
	const __u64 *addr = (const __u64 *)c->server_addr;
	__u64 h = fp_mix(0x6c37, addr[0]);

	h = fp_mix(h, addr[1]);
	h = fp_mix(h, (__u64)c->pid << 32 | (__u64)c->server_port << 16 | c->family);
	h = fp_mix(h, c->start);
	return fp_mix(h, (__u64)c->tls << 16 | (__u64)c->protocol << 8 | c->client);
}

static __always_inline __u64 names_fingerprint(const struct l7_names *names)
{
	const __u64 *t = (const __u64 *)names->target, *a = (const __u64 *)names->authority;
	__u64 h = 0x4e61;

#pragma unroll
	for (int i = 0; i < L7_TARGET_LEN / 8; i++)
		h = fp_mix(h, t[i]);
#pragma unroll
	for (int i = 0; i < L7_AUTHORITY_LEN / 8; i++)
		h = fp_mix(h, a[i]);
	return h;
}

/* Database names are all zero and their fp 0: the same for every key, like their content. */
static __always_inline __u64 series_fingerprint(const struct l7_conn *c, const struct l7_req *req,
						const struct l7_names *names, __u32 status)
{
	const __u64 *op = (const __u64 *)req->op, *code = (const __u64 *)c->code;
	__u64 h = fp_mix(c->conn_fp, names->fp);

	h = fp_mix(h, op[0]);
	h = fp_mix(h, op[1]);
	h = fp_mix(h, (__u64)status << 8 | req->version);
	h = fp_mix(h, code[0]);
	return fp_mix(h, code[1]);
}

/* A new series: its key written once, with the process name. */
static __always_inline struct l7_series *series_create(struct l7_work *w, __u64 *fp, struct l7_conn *c,
							struct l7_req *req, struct l7_names *names, __u32 status)
{
	struct l7_series_key *k = &w->zero.key;

	__builtin_memcpy(k->server_addr, c->server_addr, 16);
	k->pid = c->pid;
	k->start = c->start;
	k->status = status;
	k->server_port = c->server_port;
	k->family = c->family;
	k->protocol = c->protocol;
	k->client = c->client;
	k->version = req->version;
	k->tls = c->tls;
	__builtin_memcpy(k->op, req->op, L7_OP_LEN);
	__builtin_memcpy(k->target, names->target, L7_TARGET_LEN);
	__builtin_memcpy(k->authority, names->authority, L7_AUTHORITY_LEN);
	__builtin_memcpy(k->code, c->code, L7_OP_LEN);
	__builtin_memcpy(w->zero.comm, c->comm, L7_COMM_LEN);
	w->zero.cgroup_id = c->cgroup_id;
	return netobs_insert(&l7_series, fp, &w->zero);
}

/* Adds n exchanges of req, all ended at end_ns, to their series. */
static __always_inline void record(struct l7_conn *c, struct l7_req *req, struct l7_names *names, __u32 status,
				   __u32 n, __u64 end_ns,
				   __u64 req_bytes, __u64 resp_bytes, __u32 resp_header_len)
{
	__u64 fp = series_fingerprint(c, req, names, status);
	struct l7_series *s = bpf_map_lookup_elem(&l7_series, &fp);

	if (!s) {
		struct l7_work *w = get_work();
		if (w)
			s = series_create(w, &fp, c, req, names, status);
		if (!s) {
			netobs_count(&l7_lost, L7_LOST_SERIES_FULL);
			return;
		}
	}
	__u64 d = end_ns > req->start_ns ? end_ns - req->start_ns : 0;
	__u32 b = NETOBS_BUCKET(d, c->protocol == L7_PROTO_HTTP ? duration_bounds_ns : db_duration_bounds_ns,
				   L7_DURATION_BOUNDS, L7_DURATION_BOUNDS);

	__sync_fetch_and_add(&s->count, n);
	__sync_fetch_and_add(&s->sum_ns, d * n);
	if (b <= L7_DURATION_BOUNDS)
		__sync_fetch_and_add(&s->buckets[b], n);
	__sync_fetch_and_add(&s->request_bytes, req_bytes);
	__sync_fetch_and_add(&s->response_bytes, resp_bytes);
	s->last_ns = end_ns;
	if (c->protocol != L7_PROTO_HTTP)
		return;
	/* HTTP bodies, one exchange at a time */
	__u64 req_body = req->header_len && req_bytes > req->header_len ? req_bytes - req->header_len : 0;
	__u64 resp_body = resp_bytes > resp_header_len ? resp_bytes - resp_header_len : 0;
	__u32 rqb = NETOBS_BUCKET(req_body, size_bounds, L7_SIZE_BOUNDS, L7_SIZE_BOUNDS);
	__u32 rsb = NETOBS_BUCKET(resp_body, size_bounds, L7_SIZE_BOUNDS, L7_SIZE_BOUNDS);

	__sync_fetch_and_add(&s->request_body_sum, req_body);
	__sync_fetch_and_add(&s->response_body_sum, resp_body);
	if (rqb <= L7_SIZE_BOUNDS)
		__sync_fetch_and_add(&s->request_body_buckets[rqb], 1);
	if (rsb <= L7_SIZE_BOUNDS)
		__sync_fetch_and_add(&s->response_body_buckets[rsb], 1);
}

/* The response in progress is complete: its request leaves the queue, the exchange is counted. */
static __always_inline void finish_response(struct l7_conn *c, __u64 end_ns)
{
	c->resp_mode = RESP_IDLE;
	if (c->head == c->tail)
		return;
	struct l7_req *req = &c->q[c->head & (L7_QUEUE - 1)];
	record(c, req, &c->names[c->head & (L7_PIPELINE - 1)], c->resp_status, 1, end_ns, req->bytes, c->resp_bytes,
	       c->resp_header_len);
	c->head++;
	c->resp_bytes = 0;
}

/* ---------------------------------------------------------------- messages */

static __always_inline void call_buffer(struct l7_io *io);

/* Moves to the iovec that holds io->off (writev, sendmsg...: many messages in one call). */
static __always_inline void next_segment(struct l7_io *io)
{
	struct { __u64 base; __u64 len; } iov;

#pragma unroll
	for (int i = 0; i < 4; i++) {
		if (!io->iov_left || io->off < io->seg_off + io->cap)
			return;
		if (bpf_probe_read_user(&iov, sizeof(iov), (const void *)io->iov)) {
			io->buf = 0;
			return;
		}
		io->seg_off += io->cap;
		io->buf = iov.base;
		io->cap = iov.len;
		io->iov += sizeof(iov);
		io->iov_left--;
	}
}

/* Copies the call's data from io->off into the window: L7.CaptureBytes at most, and at most
 * `want` bytes if want is not 0 (a head whose length is expected). */
static __always_inline bool fill_upto(struct l7_parse *p, struct l7_io *io, __u32 want)
{
	__u64 n;

	io->win_valid = false;
	if (!io->resolved) {
		io->resolved = 1;
		call_buffer(io);
	}
	next_segment(io);
	if (!io->buf || io->off >= io->seg_off + io->cap || io->off >= io->ret)
		return false;
	n = io->seg_off + io->cap < io->ret ? io->seg_off + io->cap - io->off : io->ret - io->off;
	if (n > capture_bytes)
		n = capture_bytes;
	if (want && n > want)
		n = want;
	barrier_var(n);
	if (n > L7_CAPTURE_MAX)
		n = L7_CAPTURE_MAX;
	if (n == 0 || bpf_probe_read_user(p->buf, n, (const void *)(io->buf + (io->off - io->seg_off))))
		return false;
	p->n = n;
	io->win_off = io->off;
	io->win_valid = true;
	return true;
}

static __always_inline bool fill(struct l7_parse *p, struct l7_io *io)
{
	return fill_upto(p, io, 0);
}

/* After fill_upto(want): the window holds all the data it could (refilled if want cut it). */
static __always_inline bool fill_rest(struct l7_parse *p, struct l7_io *io, __u32 want)
{
	if (!want || p->n < want || want >= capture_bytes)
		return true;
	return fill(p, io);
}

/* The call's data ends with the zero-size chunk that ends a chunked body. */
static __always_inline bool ends_last_chunk(struct l7_io *io)
{
	char tail[5];

	if (!io->resolved) {
		io->resolved = 1;
		call_buffer(io);
	}
	if (!io->buf || io->ret < 5 || io->seg_off || io->cap < io->ret ||
	    bpf_probe_read_user(tail, sizeof(tail), (const void *)(io->buf + io->ret - 5)))
		return false;
	return tail[0] == '0' && tail[1] == '\r' && tail[2] == '\n' && tail[3] == '\r' && tail[4] == '\n';
}

static __always_inline void add_request_bytes(struct l7_conn *c, __u64 n)
{
	if (c->head != c->tail)
		c->q[(c->tail - 1) & (L7_QUEUE - 1)].bytes += n;
}

static __always_inline long request_step(struct l7_conn *c, struct l7_parse *p, struct l7_io *io, __u64 left)
{
	if (c->req_remaining) {
		__u64 take = c->req_remaining < left ? c->req_remaining : left;
		c->req_remaining -= take;
		add_request_bytes(c, take);
		io->off += take;
		return 0;
	}
	__u32 like_len = c->rq_like_len;
	bool like = false, ok = fill_upto(p, io, like_len);
	if (ok) {
		like = http_request_like(p, like_len, c->rq_like_hash);
		ok = like || (fill_rest(p, io, like_len) && http_parse_request(p));
	}
	if (!ok) {
		if (c->req_open)
			add_request_bytes(c, left);
		io->off = io->ret;
		return 1;
	}
	/* a new request: a response without a length that was still open has ended */
	if (c->resp_mode == RESP_CHUNKED || c->resp_mode == RESP_UNTIL_NEXT)
		finish_response(c, c->resp_last_ns);
	if (c->tail - c->head >= L7_PIPELINE) {
		netobs_count(&l7_lost, L7_LOST_PIPELINE_FULL);
		c->req_open = 0;
		io->off = io->ret;
		return 1;
	}
	struct l7_req *req = &c->q[c->tail & (L7_QUEUE - 1)];
	struct l7_names *names = &c->names[c->tail & (L7_PIPELINE - 1)];
	struct l7_head *h = &p->head;
	if (like) { /* the same head as q[tail - 1]: its fields, not the parser's */
		struct l7_req *last = &c->q[(c->tail - 1) & (L7_QUEUE - 1)];
		struct l7_names *last_names = &c->names[(c->tail - 1) & (L7_PIPELINE - 1)];
		req->header_len = last->header_len;
		req->version = last->version;
		req->no_body = last->no_body;
		__builtin_memcpy(req->op, last->op, L7_OP_LEN);
		__builtin_memcpy(names, last_names, sizeof(*names));
		h->header_len = last->header_len;
		h->content_length = c->rq_like_cl;
		h->chunked = 0;
	} else {
		req->header_len = h->header_len;
		req->version = h->version;
		req->no_body = h->op[0] == 'H';
		__builtin_memcpy(req->op, h->op, L7_OP_LEN);
		__builtin_memcpy(names->target, h->target, L7_TARGET_LEN);
		__builtin_memcpy(names->authority, h->authority, L7_AUTHORITY_LEN);
		names->fp = names_fingerprint(names);
		/* a whole head with a whole route: the next one may be the same */
		c->rq_like_len = h->header_len && !h->chunked && p->target_end ? h->header_len : 0;
		if (c->rq_like_len) {
			c->rq_like_hash = l7_hash(p, h->header_len);
			c->rq_like_cl = h->content_length;
		}
	}
	c->tail++;
	req->start_ns = io->now;
	req->count = 1;
	if (h->header_len && !h->chunked) {
		__u64 len = h->header_len + (h->content_length > 0 ? h->content_length : 0);
		__u64 take = len < left ? len : left;
		req->bytes = take;
		c->req_remaining = len - take;
		c->req_open = 0;
		io->off += take;
		return 0;
	}
	req->bytes = left;
	c->req_open = 1;
	io->off = io->ret;
	return 1;
}

/* Data of a response whose length is known: counted, and the response ends with its last byte. */
static __always_inline long response_data(struct l7_conn *c, struct l7_io *io, __u64 left)
{
	__u64 take = c->resp_remaining < left ? c->resp_remaining : left;

	c->resp_remaining -= take;
	c->resp_bytes += take;
	io->off += take;
	if (!c->resp_remaining)
		finish_response(c, io->now);
	return 0;
}

static __always_inline long response_step(struct l7_conn *c, struct l7_parse *p, struct l7_io *io, __u64 left)
{
	__u64 previous_ns = c->resp_last_ns; /* the last data of a response that a new head ends */

	c->resp_last_ns = io->now;
	if (c->resp_mode == RESP_LENGTH)
		return response_data(c, io, left);
	bool head = false;
	if (fill_upto(p, io, c->like_len)) {
		head = http_parse_response_like(p, c->like_len, c->like_cl);
		if (!head && fill_rest(p, io, c->like_len)) {
			head = http_parse_response(p);
			if (head && p->head.cl_line && !p->head.chunked && p->head.header_len) {
				c->like_len = p->head.header_len;
				c->like_cl = p->head.cl_line;
			}
		}
	}
	if (c->resp_mode != RESP_IDLE) { /* chunked, or until the next head */
		if (!head) {
			c->resp_bytes += left;
			io->off = io->ret;
			if (c->resp_mode == RESP_CHUNKED && ends_last_chunk(io))
				finish_response(c, io->now);
			return 1;
		}
		finish_response(c, io->off ? io->now : previous_ns);
	}
	if (!head) {
		io->off = io->ret; /* data outside any response we know of */
		return 1;
	}
	struct l7_head *h = &p->head;
	__u32 status = h->status;
	if (status < 200 && status != 101) { /* interim (100 Continue): the final response follows */
		io->off += h->header_len && h->header_len < left ? h->header_len : left;
		return 0;
	}
	if (c->head == c->tail) {
		netobs_count(&l7_lost, L7_LOST_UNMATCHED);
		io->off = io->ret;
		return 1;
	}
	struct l7_req *req = &c->q[c->head & (L7_QUEUE - 1)];
	/* 101 and a CONNECT's 2xx: what follows is another protocol, not a body */
	bool no_body = req->no_body || status == 204 || status == 304 || status == 101 ||
		       (req->op[0] == 'C' && status < 300);
	c->resp_status = status;
	c->resp_header_len = h->header_len;
	c->resp_bytes = 0;
	if (h->header_len && (no_body || (!h->chunked && h->content_length >= 0))) {
		c->resp_mode = RESP_LENGTH;
		c->resp_remaining = h->header_len + (no_body ? 0 : h->content_length);
		return response_data(c, io, left);
	}
	c->resp_mode = h->chunked ? RESP_CHUNKED : RESP_UNTIL_NEXT;
	c->resp_bytes = left;
	io->off = io->ret;
	if (c->resp_mode == RESP_CHUNKED && ends_last_chunk(io))
		finish_response(c, io->now);
	return 1;
}

#include "l7_db_flow.h"

struct message_ctx {
	struct l7_work *w;
	struct l7_conn *c;
};

/* One message (or the rest of one) of the call; 1 when the call's data is done. */
#define MESSAGE_STEP(name, request, response)                                        \
	static long name(__u64 i, void *data)                                        \
	{                                                                            \
		struct message_ctx *m = data;                                        \
		struct l7_io *io = &m->w->io;                                        \
		long done;                                                           \
		if (io->off >= io->ret)                                              \
			return 1;                                                    \
		if (io->request_dir)                                                 \
			done = request(m->c, m->w, io->ret - io->off);               \
		else                                                                 \
			done = response(m->c, m->w, io->ret - io->off);              \
		return done || io->off >= io->ret; /* no further round to find out */ \
	}

/* The message steps below are global functions (not static, never inlined): the verifier checks a
 * global function once, on its own, and at a call only its arguments. Inlined into their bpf_loop
 * callback, their bodies (with the header loops they hold) were walked again for every state the
 * callback's loop reached; a verifier that keeps walking a callback until its states converge
 * went past the 1,000,000 instructions it allows a program (HTTP alone), where this is ~165,000
 * for every feature together. A call costs a few nanoseconds. */
__noinline long http_request(struct l7_conn *c, struct l7_work *w, __u64 left)
{
	if (!c || !w) /* a global function's pointer arguments may be NULL, as far as the verifier knows */
		return 1;
	return request_step(c, &w->p, &w->io, left);
}

__noinline long http_response(struct l7_conn *c, struct l7_work *w, __u64 left)
{
	if (!c || !w)
		return 1;
	return response_step(c, &w->p, &w->io, left);
}

/* The database protocols share one callback, so that their one bpf_loop call has one callback:
 * the verifier then inlines the loop. Calls of one loop with different callbacks (which the
 * compiler makes of a switch over bpf_loop calls) go through the helper, an indirect call per
 * message: ~2 us per call of 16 pipelined Redis commands on this VM. */
__noinline long db_request(struct l7_conn *c, struct l7_work *w, __u64 left)
{
	if (!c || !w)
		return 1;
	switch (c->protocol) {
	case L7_PROTO_REDIS:
		return redis_request(c, w, left);
	case L7_PROTO_POSTGRESQL:
		return pg_request(c, w, left);
	case L7_PROTO_MYSQL:
		return mysql_request(c, w, left);
	case L7_PROTO_MEMCACHED:
		return memcached_request(c, w, left);
	}
	return 1;
}

__noinline long db_response(struct l7_conn *c, struct l7_work *w, __u64 left)
{
	if (!c || !w)
		return 1;
	switch (c->protocol) {
	case L7_PROTO_REDIS:
		return redis_response(c, w, left);
	case L7_PROTO_POSTGRESQL:
		return pg_response(c, w, left);
	case L7_PROTO_MYSQL:
		return mysql_response(c, w, left);
	case L7_PROTO_MEMCACHED:
		return memcached_response(c, w, left);
	}
	return 1;
}

MESSAGE_STEP(http_step, http_request, http_response)
MESSAGE_STEP(db_step, db_request, db_response)

/* ---------------------------------------------------------------- a new connection */

/* The buffer of the system call in progress, from the registers it was entered with. */
static __always_inline void call_buffer(struct l7_io *io)
{
	struct { __u64 base; __u64 len; } iov = {};
	struct netobs_syscall call;
	__u64 msg_iov = 0, msg_iovlen = 0;

	if (!current_syscall(&call))
		return;
	switch (call.nr) {
	case NR_read:
	case NR_write:
	case NR_recvfrom:
	case NR_sendto:
		io->buf = call.arg2;
		io->cap = call.arg3;
		return;
	case NR_readv:
	case NR_writev:
		if (call.arg3 >= 1 && !bpf_probe_read_user(&iov, sizeof(iov), (const void *)call.arg2)) {
			io->buf = iov.base;
			io->cap = iov.len;
			io->iov = call.arg2 + sizeof(iov);
			io->iov_left = call.arg3 - 1;
		}
		return;
	case NR_recvmsg:
	case NR_sendmsg:
		if (!bpf_probe_read_user(&msg_iov, sizeof(msg_iov), (const void *)(call.arg2 + MSGHDR_IOV)) &&
		    !bpf_probe_read_user(&msg_iovlen, sizeof(msg_iovlen), (const void *)(call.arg2 + MSGHDR_IOVLEN)) &&
		    msg_iov && msg_iovlen && !bpf_probe_read_user(&iov, sizeof(iov), (const void *)msg_iov)) {
			io->buf = iov.base;
			io->cap = iov.len;
			io->iov = msg_iov + sizeof(iov);
			io->iov_left = msg_iovlen - 1;
		}
		return;
	}
}

static __always_inline bool protocol_enabled(__u32 protocol)
{
	return protocols & (1U << protocol);
}

/* Counts one more call looked at on a socket not followed (`s` is its entry, if it has one): after
 * L7_SNIFF_TRIES of them, the socket is never looked at again. */
static __always_inline void sniff_count(struct sock *sk, __u64 key, struct l7_sniff *s, __u64 cookie)
{
	if (s && s->tries + 1 >= L7_SNIFF_TRIES) {
		bpf_sk_storage_get(&ignored, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		bpf_map_delete_elem(&sniffed, &key);
	} else if (s) {
		s->tries++;
	} else {
		struct l7_sniff fresh = {.cookie = cookie, .tries = 1};
		bpf_map_update_elem(&sniffed, &key, &fresh, BPF_ANY);
	}
}

/* The socket is decided about: never looked at again, or encrypted (enum l7_verdict). */
static __always_inline void sniff_decide(struct sock *sk, __u64 key, struct l7_sniff *s, __u8 verdict)
{
	bpf_sk_storage_get(&ignored, sk, &verdict, BPF_SK_STORAGE_GET_F_CREATE);
	if (s)
		bpf_map_delete_elem(&sniffed, &key);
}

/* The protocol of a connection's first data, and who is the client; L7_PROTO_UNKNOWN if none. A
 * client sends the first request, except for MySQL, where the server greets first. */
static __always_inline __u8 detect(struct l7_parse *p, bool sent, bool *client)
{
	__u8 first = l7_at(p, 0);

	*client = sent;
	if (protocol_enabled(L7_PROTO_HTTP) && http_method_len(p))
		return L7_PROTO_HTTP;
	if (first == '*')
		return protocol_enabled(L7_PROTO_REDIS) && resp_command(p, 0) ? L7_PROTO_REDIS : L7_PROTO_UNKNOWN;
	if (protocol_enabled(L7_PROTO_POSTGRESQL) &&
	    (pg_startup(p, 0) || (first == 'Q' && pg_message(p, 0) && sql_operation(p, 5))))
		return L7_PROTO_POSTGRESQL;
	if (protocol_enabled(L7_PROTO_MYSQL)) {
		if (mysql_greeting(p)) {
			*client = !sent;
			return L7_PROTO_MYSQL;
		}
		if (mysql_header(p, 0) && mysql_command(p, 4, p->msg.seq) &&
		    (p->msg.type == MYSQL_COM_QUERY || p->msg.type == MYSQL_COM_STMT_PREPARE))
			return L7_PROTO_MYSQL;
	}
	if (protocol_enabled(L7_PROTO_MEMCACHED) && first >= 'a' && first <= 'z' && mc_request(p, 0))
		return L7_PROTO_MEMCACHED;
	return L7_PROTO_UNKNOWN;
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
	if (client) {
		__builtin_memcpy(c->server_addr, ep->remote_addr, 16);
		c->server_port = ep->remote_port;
	} else {
		__builtin_memcpy(c->server_addr, ep->local_addr, 16);
		c->server_port = ep->local_port;
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
	__u64 key = (__u64)sk;
	__u64 cookie = sock_cookie(sk);
	struct l7_sniff *s = bpf_map_lookup_elem(&sniffed, &key);
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
		bpf_map_delete_elem(&sniffed, &key); /* tracked from now on: `conns` has it */
	return true;
}

/* The call's data (io, set up by the caller) goes through a followed connection's messages. */
static __always_inline void conn_data(struct l7_conn *c, struct l7_work *w, bool sent)
{
	struct l7_io *io = &w->io;

	io->request_dir = c->client == sent;
	io->win_valid = false;
	struct message_ctx m = {.w = w, .c = c};
	if (c->protocol == L7_PROTO_HTTP) {
		bpf_loop(L7_MSGS_PER_CALL, http_step, &m, 0);
		return;
	}
	bpf_loop(L7_DB_STEPS_PER_CALL, db_step, &m, 0);
	db_flush(c, io->now); /* the responses of this call, recorded together */
}

/* Where a call's data is: `buf` and `cap` if known (TLS plaintext), else looked up from the
 * system call's registers when first needed. */
static __always_inline void io_start(struct l7_io *io, __u64 sk, __u64 ret, __u64 buf, __u64 cap)
{
	io->sk = sk;
	io->buf = buf;
	io->cap = cap;
	io->seg_off = 0;
	io->iov = 0;
	io->iov_left = 0;
	io->off = 0;
	io->ret = ret;
	io->now = bpf_ktime_get_ns();
	io->resolved = buf != 0;
}

static __always_inline void conn_close(struct l7_conn *c);
static __always_inline void tls_adopt(struct sock *sk, __u8 protocol, bool client);

/* A cleartext connection went TLS (PostgreSQL's SSLRequest was accepted, MySQL's client sent its
 * SSLRequest): from now on its
 * plaintext comes from the library, as for a connection that began with TLS. */
static __always_inline void starttls(struct sock *sk, struct l7_conn *c)
{
	__u8 verdict = L7_VERDICT_TLS, protocol = c->protocol;
	bool client = c->client;

	conn_close(c);
	bpf_sk_storage_delete(&conns, sk);
	bpf_sk_storage_get(&ignored, sk, &verdict, BPF_SK_STORAGE_GET_F_CREATE);
	tls_adopt(sk, protocol, client);
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
	/* A socket decided about returns before anything else is read: the clock, the work area */
	c = bpf_sk_storage_get(&conns, sk, 0, 0);
	if (c && c->closed) {
		if (sk->__sk_common.skc_state == TCP_CLOSE)
			return; /* data read after the close */
		bpf_sk_storage_delete(&conns, sk); /* connected again after a disconnect: a new connection */
		c = NULL;
	}
	if (!c) {
		if (sk->__sk_common.skc_state == TCP_CLOSE)
			return; /* data read after the close: nothing can be paired */
		__u8 *verdict = bpf_sk_storage_get(&ignored, sk, 0, 0);
		if (verdict) {
			if (tls_enabled && *verdict == L7_VERDICT_TLS)
				tls_sock_call(sk, 0);
			return;
		}
	}
	w = get_work();
	if (!w)
		return;
	io_start(&w->io, (__u64)sk, ret, 0, 0);
	if (!c) {
		if (!track(sk, &w->io, sent))
			return;
		c = bpf_sk_storage_get(&conns, sk, 0, 0);
		if (!c)
			return;
	}
	conn_data(c, w, sent);
	if (tls_enabled && c->protocol != L7_PROTO_HTTP && (c->db_state & DB_TLS))
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
	__builtin_memset(c->code, 0, L7_OP_LEN);
	record(c, req, &c->names[c->head & (L7_PIPELINE - 1)], 0, req->count, x->now, req->bytes, 0, 0);
	c->head++;
	return 0;
}

/* A followed connection has ended: what was in progress is counted, and its place given back. */
static __always_inline void conn_close(struct l7_conn *c)
{
	if (c->closed)
		return;
	struct close_ctx x = {.c = c, .now = bpf_ktime_get_ns()};
	if (c->protocol != L7_PROTO_HTTP) {
		if (c->resp_mode == RESP_UNTIL_NEXT) /* a MySQL result set */
			db_complete(c, c->resp_last_ns, L7_DB_OK, c->code);
		db_flush(c, x.now);
	} else if (c->resp_mode != RESP_IDLE) {
		finish_response(c, c->resp_last_ns);
	}
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
	c = bpf_sk_storage_get(&conns, sk, 0, 0);
	if (c) {
		conn_close(c);
		return;
	}
	__u8 *verdict = bpf_sk_storage_get(&ignored, sk, 0, 0);
	if (!verdict) {
		__u64 key = (__u64)sk;
		bpf_map_delete_elem(&sniffed, &key); /* a decided socket has no entry left */
	} else if (tls_enabled && *verdict == L7_VERDICT_TLS) {
		tls_close(sk);
	}
}

#include "l7_tls.c"

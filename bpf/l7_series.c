/* Series (part of bpf/l7.c): the figures of one kind of exchange, as one process saw them (struct
 * l7_series in bpf/l7.h). A protocol's step adds each exchange it completes with record(). */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384); /* L7.MaxSeries */
	__type(key, __u64);         /* series_fingerprint(value.key) */
	__type(value, struct l7_series);
} l7_series SEC(".maps");

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

/* Not the protocol: series_fingerprint takes the series' own, which a protocol's steps choose. */
static __always_inline __u64 conn_fingerprint(const struct l7_conn *c)
{
	const __u64 *addr = (const __u64 *)c->server_addr;
	__u64 h = fp_mix(0x6c37, addr[0]);

	h = fp_mix(h, addr[1]);
	h = fp_mix(h, (__u64)c->pid << 32 | (__u64)c->server_port << 16 | c->family);
	h = fp_mix(h, c->start);
	return fp_mix(h, (__u64)c->client_peer << 32 | (__u64)c->tls << 8 | c->client);
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

/* The names and code of a series that has none (a database's names, HTTP's code): all zero, and
 * the names' fp 0, the same for every key, like their content. Never NULL pointers instead: the
 * compiler turns a pointer that may be NULL into a select and a second branch, and the verifier,
 * which does not see that the two agree, refuses the load on the path it thinks NULL. */
static const struct l7_names l7_no_names;
/* read as two words; in .rodata by name: a 16-byte constant would go to .rodata.cst16, a section
 * libbpf does not map */
static const char l7_no_code[L7_OP_LEN] __attribute__((aligned(8), section(".rodata")));

static __always_inline __u64 series_fingerprint(const struct l7_conn *c, const struct l7_req *req,
						const struct l7_names *names, __u8 protocol, __u32 status,
						const char *code)
{
	const __u64 *op = (const __u64 *)req->op, *words = (const __u64 *)code;
	__u64 h = fp_mix(c->conn_fp, names->fp);

	h = fp_mix(h, op[0]);
	h = fp_mix(h, op[1]);
	h = fp_mix(h, (__u64)status << 16 | (__u64)protocol << 8 | req->version);
	h = fp_mix(h, words[0]);
	return fp_mix(h, words[1]);
}

/* A new series: its key written once, with the process name. */
static __always_inline struct l7_series *series_create(struct l7_work *w, __u64 *fp, const struct l7_conn *c,
							const struct l7_req *req, const struct l7_names *names,
							__u8 protocol, __u32 status, const char *code)
{
	struct l7_series_key *k = &w->zero.key;

	__builtin_memcpy(k->server_addr, c->server_addr, 16);
	k->pid = c->pid;
	k->start = c->start;
	k->status = status;
	k->server_port = c->server_port;
	k->family = c->family;
	k->protocol = protocol;
	k->client = c->client;
	k->version = req->version;
	k->tls = c->tls;
	__builtin_memcpy(k->op, req->op, L7_OP_LEN);
	__builtin_memcpy(k->target, names->target, L7_TARGET_LEN);
	__builtin_memcpy(k->authority, names->authority, L7_AUTHORITY_LEN);
	__builtin_memcpy(k->code, code, L7_OP_LEN);
	k->client_peer = c->client_peer;
	__builtin_memcpy(w->zero.comm, c->comm, L7_COMM_LEN);
	w->zero.cgroup_id = c->cgroup_id;
	return netobs_insert(&l7_series, fp, &w->zero);
}

/* Adds n exchanges of req, all ended at end_ns, to their series: that of the connection's process
 * and server, with req's operation and version, the route and Host in `names` (l7_no_names: none),
 * and `protocol`, `status` and `code` (L7_OP_LEN bytes: a database's error code or reply;
 * l7_no_code: none). */
static __always_inline void record(struct l7_conn *c, const struct l7_req *req, const struct l7_names *names,
				   __u8 protocol, __u32 status, const char *code, __u32 n, __u64 end_ns,
				   __u64 req_bytes, __u64 resp_bytes, __u32 resp_header_len)
{
	__u64 fp = series_fingerprint(c, req, names, protocol, status, code);
	struct l7_series *s = bpf_map_lookup_elem(&l7_series, &fp);

	if (!s) {
		struct l7_work *w = get_work();
		if (w)
			s = series_create(w, &fp, c, req, names, protocol, status, code);
		if (!s) {
			netobs_count(&l7_lost, L7_LOST_SERIES_FULL);
			return;
		}
	}
	bool http = protocol == L7_PROTO_HTTP || protocol == L7_PROTO_GRPC;
	__u64 d = end_ns > req->start_ns ? end_ns - req->start_ns : 0;
	__u32 b = NETOBS_BUCKET(d, http ? duration_bounds_ns : db_duration_bounds_ns,
				   L7_DURATION_BOUNDS, L7_DURATION_BOUNDS);

	__sync_fetch_and_add(&s->count, n);
	__sync_fetch_and_add(&s->sum_ns, d * n);
	if (b <= L7_DURATION_BOUNDS)
		__sync_fetch_and_add(&s->buckets[b], n);
	__sync_fetch_and_add(&s->request_bytes, req_bytes);
	__sync_fetch_and_add(&s->response_bytes, resp_bytes);
	s->last_ns = end_ns;
	if (!http)
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

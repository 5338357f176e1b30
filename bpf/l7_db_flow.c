/* Database and cache connections (part of bpf/l7.c): what their steps share - requests queued,
 * responses paired with them and counted, prepared statements remembered. Each protocol's steps
 * are its own file (l7_redis.c, l7_postgresql.c, l7_mysql.c, l7_memcached.c); the parsers are
 * bpf/l7_db.h; the state is struct db_state (bpf/l7_db_state.h).
 *
 * A step looks at the message (or RESP element) at io->off and consumes it: the head now, the rest
 * through rq_skip or rs_skip, across as many calls as it spans. A request enters the queue when its
 * head is seen; alike requests of one call (a pipeline) share an entry. Responses complete the
 * entry at the head of the queue; those of one call are recorded together (db_flush). Data that is
 * not where a message should start is counted (unparsed) and the rest of the call skipped. */

#define L7_HEAD_BYTES 64   /* bytes a message head needs in the window */

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

/* Data not where a message starts: counted, and the rest of the call skipped. A protocol whose
 * state holds a message in progress clears it too (redis_unparsed). */
static __always_inline long unparsed(struct l7_conn *c, struct l7_io *io)
{
	netobs_count(&l7_lost, L7_LOST_UNPARSED);
	c->db.rq_skip = 0;
	c->db.rs_skip = 0;
	io->off = io->ret;
	return 1;
}

/* A new request from the message in p->msg: a new entry, or one more of the last entry when it has
 * the same operation and came in the same call (pipelined). NULL if the queue is full. */
static __always_inline struct l7_req *db_push(struct l7_conn *c, struct l7_parse *p, struct l7_io *io,
					      const char *op, __u8 kind, bool pipeline)
{
	struct l7_req *req;

	if (pipeline && c->head != c->tail) {
		req = &c->q[(c->tail - 1) & (L7_QUEUE - 1)];
		if (req->start_ns == io->now && req->kind == kind && *(__u64 *)req->op == *(const __u64 *)op &&
		    *(__u64 *)(req->op + 8) == *(const __u64 *)(op + 8)) {
			req->count++;
			return req;
		}
	}
	if (c->tail - c->head >= L7_QUEUE) {
		netobs_count(&l7_lost, L7_LOST_PIPELINE_FULL);
		return NULL;
	}
	req = &c->q[c->tail & (L7_QUEUE - 1)];
	c->tail++;
	req->start_ns = io->now;
	req->bytes = 0;
	req->count = 1;
	req->kind = kind;
	__builtin_memcpy(req->op, op, L7_OP_LEN);
	return req;
}

/* The request's rest (or what of it is in this call): skipped, its bytes the newest request's. */
static __always_inline long db_request_rest(struct l7_conn *c, struct l7_io *io, __u64 left)
{
	__u64 bytes = 0;

	skip_rest(&c->db.rq_skip, io, left, &bytes);
	add_request_bytes(c, bytes);
	return 0;
}

/* ---- prepared statements: their operations, kept in `statements` and cached in the connection.
 * pgbench -M prepared binds one of a few statements per request: the connection's copy saves a
 * lookup in the shared LRU table (its hash, its lock-free walk and its reference bit) per Bind. */

static __always_inline void stmt_cache(struct l7_conn *c, __u32 stmt, const char *op)
{
	struct db_statements *s = &c->db.statements;
	__u32 i = stmt & (L7_STMT_CACHE - 1);

	s->ids[i] = stmt;
	__builtin_memcpy(s->ops[i], op, L7_OP_LEN);
	s->valid |= 1U << i;
}

static __always_inline void stmt_remember(struct l7_conn *c, struct l7_stmt_key *sk, const char *op)
{
	stmt_cache(c, sk->stmt, op);
	bpf_map_update_elem(&statements, sk, op, BPF_ANY);
}

/* The operation of statement sk->stmt into op (L7_OP_LEN bytes); false if it is not known. */
static __always_inline bool stmt_operation(struct l7_conn *c, struct l7_stmt_key *sk, char *op)
{
	struct db_statements *s = &c->db.statements;
	__u32 i = sk->stmt & (L7_STMT_CACHE - 1);
	char *known;

	if ((s->valid >> i) & 1 && s->ids[i] == sk->stmt) {
		__builtin_memcpy(op, s->ops[i], L7_OP_LEN);
		return true;
	}
	known = bpf_map_lookup_elem(&statements, sk);
	if (!known)
		return false;
	__builtin_memcpy(op, known, L7_OP_LEN);
	stmt_cache(c, sk->stmt, op);
	return true;
}

static __always_inline void stmt_forget(struct l7_conn *c, struct l7_stmt_key *sk)
{
	struct db_statements *s = &c->db.statements;
	__u32 i = sk->stmt & (L7_STMT_CACHE - 1);

	if (s->ids[i] == sk->stmt)
		s->valid &= ~(1U << i);
	bpf_map_delete_elem(&statements, sk);
}

/* ---- responses */

/* Records the responses in db.done for the request entry at the head of the queue. */
static __always_inline void db_flush(struct l7_conn *c, __u64 end_ns)
{
	struct l7_req *req;
	__u32 n = c->db.done;

	c->db.done = 0;
	if (!n || c->head == c->tail)
		return;
	req = &c->q[c->head & (L7_QUEUE - 1)];
	if (n > req->count)
		n = req->count;
	__u64 share = req->count ? req->bytes * n / req->count : req->bytes;
	record(c, req, &l7_no_names, c->protocol, c->db.status, c->db.code, n, end_ns, share, c->resp_bytes, 0);
	req->bytes -= share;
	req->count -= n;
	c->resp_bytes = 0;
	if (!req->count)
		c->head++;
}

/* n alike responses to the request entry at the head of the queue (n at most what it still waits
 * for); code: the error code or reply word. */
static __always_inline void db_complete_n(struct l7_conn *c, __u64 end_ns, __u32 status, const char *code, __u32 n)
{
	struct db_state *db = &c->db;

	if (c->head == c->tail)
		return; /* an answer to nothing we saw: a greeting, a push, a request sent before start-up */
	if (db->done && (status != db->status || *(__u64 *)db->code != *(const __u64 *)code ||
			 *(__u64 *)(db->code + 8) != *(const __u64 *)(code + 8)))
		db_flush(c, end_ns);
	db->status = status;
	__builtin_memcpy(db->code, code, L7_OP_LEN);
	db->done += n;
	if (db->done >= c->q[c->head & (L7_QUEUE - 1)].count)
		db_flush(c, end_ns);
}

/* One response to the request at the head of the queue. */
static __always_inline void db_complete(struct l7_conn *c, __u64 end_ns, __u32 status, const char *code)
{
	db_complete_n(c, end_ns, status, code, 1);
}

static __always_inline void db_complete_ok(struct l7_conn *c, struct l7_work *w, __u64 end_ns)
{
	__builtin_memset(w->p.msg.code, 0, L7_OP_LEN);
	db_complete(c, end_ns, L7_DB_OK, w->p.msg.code);
}

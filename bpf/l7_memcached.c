/* memcached (part of bpf/l7.c): the text protocol. A retrieval is answered by its VALUE blocks and
 * END (counted as HIT or MISS), a storage command or a single-line one by one line. The state is
 * struct memcached_state (bpf/l7_memcached_state.h); the pairing is bpf/l7_db_flow.c. */

#define MC_LINE_BYTES 320  /* a memcached line: a key is at most 250 bytes */

/* Whether a connection's first data is a command. */
static __always_inline bool memcached_detect(struct l7_parse *p)
{
	__u8 first = l7_at(p, 0);

	return first >= 'a' && first <= 'z' && mc_request(p, 0);
}

static __always_inline long memcached_request(struct l7_conn *c, struct l7_work *w, __u64 left)
{
	struct l7_parse *p = &w->p;
	struct l7_io *io = &w->io;
	__u32 pos;

	if (c->db.rq_skip)
		return db_request_rest(c, io, left);
	pos = window_at(p, io, MC_LINE_BYTES);
	if (pos == ~0U || !mc_request(p, pos))
		return unparsed(c, io);
	c->db.rq_skip = p->msg.len + (p->msg.num >= 0 ? p->msg.num + 2 : 0);
	if (!p->msg.flags) /* noreply: nothing to pair */
		db_push(c, p, io, p->msg.op, p->msg.type, true);
	return 0;
}

static __always_inline long memcached_response(struct l7_conn *c, struct l7_work *w, __u64 left)
{
	struct memcached_state *mc = &c->db.memcached;
	struct l7_parse *p = &w->p;
	struct l7_io *io = &w->io;
	struct l7_req *req;
	__u32 pos;

	if (c->db.rs_skip) {
		skip_rest(&c->db.rs_skip, io, left, &c->resp_bytes);
		return 0;
	}
	pos = window_at(p, io, MC_LINE_BYTES);
	if (pos == ~0U || !mc_reply(p, pos))
		return unparsed(c, io);
	c->db.rs_skip = p->msg.len + (p->msg.num >= 0 ? p->msg.num + 2 : 0);
	if (c->head == c->tail)
		return 0; /* the handshake, or an answer to a request sent before start-up */
	req = &c->q[c->head & (L7_QUEUE - 1)];
	__u64 word = *(__u64 *)p->msg.op;
	if (p->msg.error) {
		mc->rs_hit = 0;
		db_complete(c, io->now, L7_DB_ERROR, p->msg.op);
		return 0;
	}
	if (req->kind == MC_RETRIEVAL || req->kind == MC_STATS) {
		if (word == LIT5('V', 'A', 'L', 'U', 'E')) {
			mc->rs_hit = 1;
			return 0;
		}
		if (word != LIT3('E', 'N', 'D'))
			return 0; /* STAT lines */
		__builtin_memset(p->msg.op, 0, L7_OP_LEN);
		if (req->kind == MC_RETRIEVAL)
			*(__u64 *)p->msg.op = mc->rs_hit ? LIT3('H', 'I', 'T') : LIT4('M', 'I', 'S', 'S');
		mc->rs_hit = 0;
	}
	db_complete(c, io->now, L7_DB_OK, p->msg.op);
	return 0;
}

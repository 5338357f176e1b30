/* Redis (part of bpf/l7.c): commands and replies (RESP2 and RESP3) read an element at a time, or a
 * whole message at once when it is like the last one. The state is struct redis_state
 * (bpf/l7_redis_state.h); the pairing is bpf/l7_db_flow.c. */

#define REDIS_LIKE_MAX 256 /* bytes of a command or reply remembered whole */

/* Whether a connection's first data is a command. */
static __always_inline bool redis_detect(struct l7_parse *p)
{
	return resp_command(p, 0);
}

static __always_inline long redis_unparsed(struct l7_conn *c, struct l7_io *io)
{
	struct redis_state *r = &c->db.redis;

	r->rq_elems = 0;
	r->rs_elems = 0;
	r->rs_open = 0;
	return unparsed(c, io);
}

/* Clients repeat commands byte for byte (a pipeline of alike commands, the same key polled), and
 * servers their replies (+OK, the same value). A message that hashes like the connection's last
 * whole one of its direction is that one again: it is counted without being parsed, and it and
 * the copies that follow it back to back are skipped in one step, instead of one per element. */
static __always_inline bool redis_like(struct l7_parse *p, __u32 pos, __u32 len, __u64 hash)
{
	return len && pos + len <= p->n && l7_hash_at(p, pos, len) == hash;
}

/* A command at pos: remembered if it is whole in the window, counted, and skipped (whole, or its
 * head); false if it is not a command. */
static __always_inline bool redis_command(struct l7_conn *c, struct l7_parse *p, struct l7_io *io, __u32 pos)
{
	struct redis_state *r = &c->db.redis;

	if (!redis_like(p, pos, r->rq_like_len, r->rq_like_hash)) {
		if (!resp_command(p, pos) || !p->msg.len)
			return false;
		__u32 head = p->msg.len;
		__s64 args = p->msg.num;
		__u32 span = resp_command_span(p, pos, head, args);
		if (!span || span > REDIS_LIKE_MAX) { /* an element at a time */
			db_push(c, p, io, p->msg.op, 0, true);
			r->rq_elems = args;
			c->db.rq_skip = head;
			return true;
		}
		r->rq_like_len = span;
		r->rq_like_hash = l7_hash_at(p, pos, span);
		__builtin_memcpy(r->rq_like_op, p->msg.op, L7_OP_LEN);
	}
	__u32 len = r->rq_like_len, n = 1 + l7_repeats(p, pos, len);
	struct l7_req *req = db_push(c, p, io, r->rq_like_op, 0, true);
	if (req)
		req->count += n - 1;
	c->db.rq_skip = (__u64)n * len;
	return true;
}

static __always_inline long redis_request(struct l7_conn *c, struct l7_work *w, __u64 left)
{
	struct redis_state *r = &c->db.redis;
	struct l7_parse *p = &w->p;
	struct l7_io *io = &w->io;
	__u32 pos;

	if (!c->db.rq_skip) {
		pos = window_at(p, io, r->rq_like_len > L7_HEAD_BYTES ? r->rq_like_len : L7_HEAD_BYTES);
		if (pos == ~0U)
			return redis_unparsed(c, io);
		if (r->rq_elems) { /* an argument: a bulk string */
			if (!resp_element(p, pos) || p->msg.type != '$' || !p->msg.len)
				return redis_unparsed(c, io);
			r->rq_elems--;
			c->db.rq_skip = p->msg.len + (p->msg.num >= 0 ? p->msg.num + 2 : 0);
		} else if (!redis_command(c, p, io, pos)) {
			return redis_unparsed(c, io);
		}
	}
	/* the element (or what is left of it) in this call */
	return db_request_rest(c, io, left);
}

/* Replies like the last whole successful one at pos, as many as the request entry at the head of
 * the queue still waits for: counted, and skipped together. False if the reply at pos is another. */
static __always_inline bool redis_replies_like(struct l7_conn *c, struct l7_work *w, __u32 pos)
{
	struct redis_state *r = &c->db.redis;
	struct l7_parse *p = &w->p;
	__u32 len = r->rs_like_len;

	if (c->head == c->tail || !redis_like(p, pos, len, r->rs_like_hash))
		return false;
	__u32 waiting = c->q[c->head & (L7_QUEUE - 1)].count - c->db.done;
	__u32 n = 1 + l7_repeats(p, pos, len);
	if (n > waiting)
		n = waiting ? waiting : 1;
	c->db.rs_skip = (__u64)n * len;
	__builtin_memset(p->msg.code, 0, L7_OP_LEN);
	db_complete_n(c, w->io.now, L7_DB_OK, p->msg.code, n);
	return true;
}

static __always_inline void redis_reply_done(struct l7_conn *c, struct l7_work *w)
{
	struct redis_state *r = &c->db.redis;

	r->rs_open = 0;
	if (r->rs_push)
		return; /* out of band (RESP3 push): answers no request */
	if (r->rs_error)
		db_complete(c, w->io.now, L7_DB_ERROR, r->rs_code);
	else
		db_complete_ok(c, w, w->io.now);
}

/* A new reply at pos (its first element parsed): remembered if it is a success of one element,
 * whole in the window. */
static __always_inline void redis_remember_reply(struct redis_state *r, struct l7_parse *p, __u32 pos)
{
	__u8 t = p->msg.type;
	__u64 len = p->msg.len;

	if (p->msg.error || t == '*' || t == '~' || t == '>' || t == '%' || t == '|')
		return;
	if ((t == '$' || t == '=') && p->msg.num >= 0) /* a bulk string: its data and CRLF */
		len += p->msg.num + 2;
	if (len > REDIS_LIKE_MAX || pos + len > p->n)
		return;
	r->rs_like_len = len;
	r->rs_like_hash = l7_hash_at(p, pos, len);
}

/* The element parsed at pos, of the reply in progress or starting one: what of it is to skip, and
 * the elements it adds to the reply. */
static __always_inline void redis_reply_element(struct l7_conn *c, struct l7_parse *p, __u32 pos)
{
	struct redis_state *r = &c->db.redis;
	__u8 t = p->msg.type;
	__s64 n = p->msg.num;

	if (!r->rs_open) { /* a new reply */
		r->rs_open = 1;
		r->rs_push = t == '>';
		r->rs_error = p->msg.error;
		if (p->msg.error)
			__builtin_memcpy(r->rs_code, p->msg.code, L7_OP_LEN);
		redis_remember_reply(r, p, pos);
	} else if (r->rs_elems) {
		r->rs_elems--;
	}
	c->db.rs_skip = p->msg.len;
	switch (t) {
	case '*': case '~': case '>':
		r->rs_elems += n > 0 ? n : 0;
		break;
	case '%':
		r->rs_elems += n > 0 ? 2 * n : 0;
		break;
	case '|': /* attributes, then the element they describe */
		r->rs_elems += n > 0 ? 2 * n + 1 : 1;
		break;
	case '$': case '!': case '=':
		c->db.rs_skip += n >= 0 ? n + 2 : 0;
		break;
	}
}

static __always_inline long redis_response(struct l7_conn *c, struct l7_work *w, __u64 left)
{
	struct redis_state *r = &c->db.redis;
	struct l7_parse *p = &w->p;
	struct l7_io *io = &w->io;
	__u32 pos;

	if (!c->db.rs_skip) {
		pos = window_at(p, io, r->rs_like_len > L7_HEAD_BYTES ? r->rs_like_len : L7_HEAD_BYTES);
		if (pos == ~0U)
			return redis_unparsed(c, io);
		if (!r->rs_open && redis_replies_like(c, w, pos)) {
			skip_rest(&c->db.rs_skip, io, left, &c->resp_bytes);
			return 0;
		}
		if (!resp_element(p, pos) || !p->msg.len)
			return redis_unparsed(c, io);
		redis_reply_element(c, p, pos);
	}
	/* the element (or what is left of it) in this call; the reply is over with its last one */
	if (skip_rest(&c->db.rs_skip, io, left, &c->resp_bytes) && !r->rs_elems && r->rs_open)
		redis_reply_done(c, w);
	return 0;
}

/* PostgreSQL (part of bpf/l7.c): the frontend/backend protocol v3. A simple Query is answered up to
 * ReadyForQuery; an Execute of the extended protocol by its CommandComplete (or an error), with the
 * operation of the statement its Bind named. The state is struct pg_state
 * (bpf/l7_postgresql_state.h); the pairing is bpf/l7_db_flow.c. */

/* Whether a connection's first data is a startup message, or a simple query. */
static __always_inline bool pg_detect(struct l7_parse *p)
{
	return pg_startup(p, 0) || (l7_at(p, 0) == 'Q' && pg_message(p, 0) && sql_operation(p, 5));
}

/* A Bind: the Execute that follows runs its statement, whose operation is remembered. */
static __always_inline void pg_bind(struct l7_conn *c, struct l7_parse *p, struct l7_stmt_key *sk, __u32 pos)
{
	char *op = c->db.pg.bound_op;
	bool known = false;

	if (pg_bind_message(p, pos)) {
		sk->stmt = p->msg.stmt;
		known = stmt_operation(c, sk, op);
	}
	if (!known) {
		__builtin_memset(op, 0, L7_OP_LEN);
		netobs_count(&l7_lost, L7_LOST_STATEMENT_UNKNOWN);
	}
}

static __always_inline long pg_request(struct l7_conn *c, struct l7_work *w, __u64 left)
{
	struct pg_state *pg = &c->db.pg;
	struct l7_parse *p = &w->p;
	struct l7_io *io = &w->io;
	struct l7_stmt_key sk = {.sk = io->sk};
	__u32 pos, len;

	if (c->db.rq_skip)
		return db_request_rest(c, io, left);
	pos = window_at(p, io, L7_HEAD_BYTES);
	if (pos == ~0U)
		return unparsed(c, io);
	if (!(pg->flags & PG_STARTED)) {
		len = pg_startup(p, pos);
		if (len) {
			if (p->msg.type == 'S')
				pg->flags |= PG_SSL_ASKED;
			else
				pg->flags |= PG_STARTED;
			c->db.rq_skip = len;
			return 0;
		}
		pg->flags |= PG_STARTED; /* followed from a query: the startup was before */
	}
	if (!pg_message(p, pos))
		return unparsed(c, io);
	c->db.rq_skip = p->msg.num;
	switch (p->msg.type) {
	case 'Q':
		if (sql_operation(p, pos + 5))
			db_push(c, p, io, p->msg.op, PG_QUERY, false);
		break;
	case 'P': /* Parse: the statement's operation, for the Executes that use it */
		if (pg_parse_message(p, pos)) {
			sk.stmt = p->msg.stmt;
			stmt_remember(c, &sk, p->msg.op);
		}
		break;
	case 'B':
		pg_bind(c, p, &sk, pos);
		break;
	case 'E':
		db_push(c, p, io, pg->bound_op, PG_EXECUTE, false);
		break;
	}
	return 0;
}

/* The one-byte answer to an SSLRequest at pos: S (TLS follows), G (GSSAPI encryption) or N; false
 * if the byte is none of them (a message follows). */
static __always_inline bool pg_ssl_answer(struct l7_conn *c, struct l7_parse *p, struct l7_io *io, __u32 pos)
{
	__u8 answer = l7_at(p, pos);

	c->db.pg.flags &= ~PG_SSL_ASKED;
	if (answer != 'S' && answer != 'G' && answer != 'N')
		return false;
	if (answer != 'N')
		c->went_tls = 1;
	io->off += 1;
	return true;
}

/* A message of the response to the request at the head of the queue. */
static __always_inline void pg_answer(struct l7_conn *c, struct l7_work *w, struct l7_req *req, __u32 pos)
{
	struct pg_state *pg = &c->db.pg;
	struct l7_parse *p = &w->p;
	__u64 now = w->io.now;

	switch (p->msg.type) {
	case 'C': /* CommandComplete */
	case 'I': /* EmptyQueryResponse */
	case 's': /* PortalSuspended */
		if (req->kind == PG_EXECUTE)
			db_complete_ok(c, w, now);
		break;
	case 'E': /* ErrorResponse */
		pg_error_code(p, pos);
		if (req->kind == PG_EXECUTE) {
			db_complete(c, now, L7_DB_ERROR, p->msg.code);
			pg->flags |= PG_FAILED;
		} else {
			pg->flags |= PG_FAILED;
			__builtin_memcpy(pg->rs_code, p->msg.code, L7_OP_LEN);
		}
		break;
	case 'Z': /* ReadyForQuery: a simple query is over; after an error, the Executes skipped */
		if (req->kind == PG_QUERY) {
			if (pg->flags & PG_FAILED)
				db_complete(c, now, L7_DB_ERROR, pg->rs_code);
			else
				db_complete_ok(c, w, now);
		} else if (pg->flags & PG_FAILED) {
			db_flush(c, now);
			c->head = c->tail; /* not executed: not counted */
		}
		pg->flags &= ~PG_FAILED;
		break;
	}
}

static __always_inline long pg_response(struct l7_conn *c, struct l7_work *w, __u64 left)
{
	struct l7_parse *p = &w->p;
	struct l7_io *io = &w->io;
	__u32 pos;

	if (c->db.rs_skip) {
		skip_rest(&c->db.rs_skip, io, left, &c->resp_bytes);
		return 0;
	}
	if (c->went_tls) {
		io->off = io->ret;
		return 1;
	}
	pos = window_at(p, io, L7_HEAD_BYTES);
	if (pos == ~0U)
		return unparsed(c, io);
	if ((c->db.pg.flags & PG_SSL_ASKED) && pg_ssl_answer(c, p, io, pos))
		return 0;
	if (!pg_message(p, pos))
		return unparsed(c, io);
	c->db.rs_skip = p->msg.num;
	if (c->head == c->tail)
		return 0; /* the handshake, or an answer to a request sent before start-up */
	pg_answer(c, w, &c->q[c->head & (L7_QUEUE - 1)], pos);
	return 0;
}

/* Database and cache connections: messages framed, requests queued, responses paired with them and
 * counted. Part of bpf/l7.c (it uses its connection state, window and series); the parsers are
 * bpf/l7_db.h.
 *
 * A step looks at the message (or RESP element) at io->off and consumes it: the head now, the rest
 * through rq_skip or rs_skip, across as many calls as it spans. A request enters the queue when its
 * head is seen; alike requests of one call (a pipeline) share an entry. Responses complete the
 * entry at the head of the queue; those of one call are recorded together (db_flush). Data that is
 * not where a message should start is counted (unparsed) and the rest of the call skipped. */
#ifndef NETOBS_L7_DB_FLOW_H
#define NETOBS_L7_DB_FLOW_H

#define L7_HEAD_BYTES 64   /* bytes a message head needs in the window */
#define MC_LINE_BYTES 320  /* a memcached line: a key is at most 250 bytes */

enum db_state {
	PG_STARTED = 1,   /* PostgreSQL: the startup message is behind */
	PG_SSL_ASKED = 2, /* PostgreSQL: an SSLRequest waits for its one-byte answer */
	DB_TLS = 4,       /* PostgreSQL, MySQL: the connection went TLS: nothing more to read here */
	PG_FAILED = 8,    /* PostgreSQL: an error; the server skips the rest until Sync */
	MY_RQ_ALONE = 16, /* MySQL: a request packet's header came alone; its payload comes next */
	MY_RS_ALONE = 32, /* MySQL: the same for a response packet */
};

enum pg_kind {
	PG_QUERY = 1,   /* simple query: answered up to ReadyForQuery */
	PG_EXECUTE = 2, /* extended protocol: answered by CommandComplete (or an error) */
};

enum mysql_kind {
	MYSQL_OTHER = 1,
	MYSQL_PREPARE = 2,
};

/* Where io->off is in the window, reading `need` bytes from it if the window does not hold them;
 * ~0 if the call's data cannot be read. */
static __always_inline __u32 window_at(struct l7_parse *p, struct l7_io *io, __u32 need)
{
	if (io->win_valid && io->off >= io->win_off) {
		__u64 rel = io->off - io->win_off;
		__u64 end = io->win_off + p->n; /* the window reaches the end of the data: nothing more to read */
		if (rel < p->n && (rel + need <= p->n || end >= io->ret || end >= io->seg_off + io->cap))
			return (__u32)rel;
	}
	return fill(p, io) ? 0 : ~0U;
}

/* Skips what is left of a message; true if that was the whole of it. */
static __always_inline bool skip_rest(__u64 *skip, struct l7_io *io, __u64 left, __u64 *bytes)
{
	__u64 take = *skip < left ? *skip : left;

	*skip -= take;
	*bytes += take;
	io->off += take;
	return !*skip;
}

static __always_inline long unparsed(struct l7_conn *c, struct l7_io *io)
{
	netobs_count(&l7_lost, L7_LOST_UNPARSED);
	c->rq_skip = 0;
	c->rq_elems = 0;
	c->rs_skip = 0;
	c->rs_elems = 0;
	c->rs_open = 0;
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

/* ---- prepared statements: their operations, kept in `statements` and cached in the connection.
 * pgbench -M prepared binds one of a few statements per request: the connection's copy saves a
 * lookup in the shared LRU table (its hash, its lock-free walk and its reference bit) per Bind. */

static __always_inline void stmt_cache(struct l7_conn *c, __u32 stmt, const char *op)
{
	__u32 i = stmt & (L7_STMT_CACHE - 1);

	c->stmt_ids[i] = stmt;
	__builtin_memcpy(c->stmt_ops[i], op, L7_OP_LEN);
	c->stmt_valid |= 1U << i;
}

static __always_inline void stmt_remember(struct l7_conn *c, struct l7_stmt_key *sk, const char *op)
{
	stmt_cache(c, sk->stmt, op);
	bpf_map_update_elem(&statements, sk, op, BPF_ANY);
}

/* The operation of statement sk->stmt into op (L7_OP_LEN bytes); false if it is not known. */
static __always_inline bool stmt_operation(struct l7_conn *c, struct l7_stmt_key *sk, char *op)
{
	__u32 i = sk->stmt & (L7_STMT_CACHE - 1);
	char *known;

	if ((c->stmt_valid >> i) & 1 && c->stmt_ids[i] == sk->stmt) {
		__builtin_memcpy(op, c->stmt_ops[i], L7_OP_LEN);
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
	__u32 i = sk->stmt & (L7_STMT_CACHE - 1);

	if (c->stmt_ids[i] == sk->stmt)
		c->stmt_valid &= ~(1U << i);
	bpf_map_delete_elem(&statements, sk);
}

/* The request bytes just consumed belong to the newest request. */
static __always_inline void request_bytes(struct l7_conn *c, __u64 n)
{
	if (c->head != c->tail)
		c->q[(c->tail - 1) & (L7_QUEUE - 1)].bytes += n;
}

/* Records the responses in c->done for the request entry at the head of the queue. */
static __always_inline void db_flush(struct l7_conn *c, __u64 end_ns)
{
	struct l7_req *req;
	__u32 n = c->done;

	c->done = 0;
	if (!n || c->head == c->tail)
		return;
	req = &c->q[c->head & (L7_QUEUE - 1)];
	if (n > req->count)
		n = req->count;
	__u64 share = req->count ? req->bytes * n / req->count : req->bytes;
	record(c, req, &c->names[0], c->resp_status, n, end_ns, share, c->resp_bytes, 0); /* names: 0 */
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
	if (c->head == c->tail)
		return; /* an answer to nothing we saw: a greeting, a push, a request sent before start-up */
	if (c->done && (status != c->resp_status || *(__u64 *)c->code != *(const __u64 *)code ||
			*(__u64 *)(c->code + 8) != *(const __u64 *)(code + 8)))
		db_flush(c, end_ns);
	c->resp_status = status;
	__builtin_memcpy(c->code, code, L7_OP_LEN);
	c->done += n;
	if (c->done >= c->q[c->head & (L7_QUEUE - 1)].count)
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

/* ---------------------------------------------------------------- Redis */

#define REDIS_LIKE_MAX 256 /* bytes of a command or reply remembered whole */

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
	if (!redis_like(p, pos, c->rq_like_len, c->rq_like_hash)) {
		if (!resp_command(p, pos) || !p->msg.len)
			return false;
		__u32 head = p->msg.len;
		__s64 args = p->msg.num;
		__u32 span = resp_command_span(p, pos, head, args);
		if (!span || span > REDIS_LIKE_MAX) { /* an element at a time */
			db_push(c, p, io, p->msg.op, 0, true);
			c->rq_elems = args;
			c->rq_skip = head;
			return true;
		}
		c->rq_like_len = span;
		c->rq_like_hash = l7_hash_at(p, pos, span);
		__builtin_memcpy(c->rq_like_op, p->msg.op, L7_OP_LEN);
	}
	__u32 len = c->rq_like_len, n = 1 + l7_repeats(p, pos, len);
	struct l7_req *req = db_push(c, p, io, c->rq_like_op, 0, true);
	if (req)
		req->count += n - 1;
	c->rq_skip = (__u64)n * len;
	return true;
}

static __always_inline long redis_request(struct l7_conn *c, struct l7_work *w, __u64 left)
{
	struct l7_parse *p = &w->p;
	struct l7_io *io = &w->io;
	__u64 bytes = 0;
	__u32 pos;

	if (!c->rq_skip) {
		pos = window_at(p, io, c->rq_like_len > L7_HEAD_BYTES ? c->rq_like_len : L7_HEAD_BYTES);
		if (pos == ~0U)
			return unparsed(c, io);
		if (c->rq_elems) { /* an argument: a bulk string */
			if (!resp_element(p, pos) || p->msg.type != '$' || !p->msg.len)
				return unparsed(c, io);
			c->rq_elems--;
			c->rq_skip = p->msg.len + (p->msg.num >= 0 ? p->msg.num + 2 : 0);
		} else if (!redis_command(c, p, io, pos)) {
			return unparsed(c, io);
		}
	}
	/* the element (or what is left of it) in this call */
	skip_rest(&c->rq_skip, io, left, &bytes);
	request_bytes(c, bytes);
	return 0;
}

/* Replies like the last whole successful one at pos, as many as the request entry at the head of
 * the queue still waits for: counted, and skipped together. False if the reply at pos is another. */
static __always_inline bool redis_replies_like(struct l7_conn *c, struct l7_work *w, __u32 pos)
{
	struct l7_parse *p = &w->p;
	__u32 len = c->rs_like_len;

	if (c->head == c->tail || !redis_like(p, pos, len, c->rs_like_hash))
		return false;
	__u32 waiting = c->q[c->head & (L7_QUEUE - 1)].count - c->done;
	__u32 n = 1 + l7_repeats(p, pos, len);
	if (n > waiting)
		n = waiting ? waiting : 1;
	c->rs_skip = (__u64)n * len;
	__builtin_memset(p->msg.code, 0, L7_OP_LEN);
	db_complete_n(c, w->io.now, L7_DB_OK, p->msg.code, n);
	return true;
}

static __always_inline void redis_reply_done(struct l7_conn *c, struct l7_work *w)
{
	c->rs_open = 0;
	if (c->rs_push)
		return; /* out of band (RESP3 push): answers no request */
	if (c->rs_error)
		db_complete(c, w->io.now, L7_DB_ERROR, c->rs_code);
	else
		db_complete_ok(c, w, w->io.now);
}

/* A new reply at pos (its first element parsed): remembered if it is a success of one element,
 * whole in the window. */
static __always_inline void redis_remember_reply(struct l7_conn *c, struct l7_parse *p, __u32 pos)
{
	__u8 t = p->msg.type;
	__u64 len = p->msg.len;

	if (p->msg.error || t == '*' || t == '~' || t == '>' || t == '%' || t == '|')
		return;
	if ((t == '$' || t == '=') && p->msg.num >= 0) /* a bulk string: its data and CRLF */
		len += p->msg.num + 2;
	if (len > REDIS_LIKE_MAX || pos + len > p->n)
		return;
	c->rs_like_len = len;
	c->rs_like_hash = l7_hash_at(p, pos, len);
}

static __always_inline long redis_response(struct l7_conn *c, struct l7_work *w, __u64 left)
{
	struct l7_parse *p = &w->p;
	struct l7_io *io = &w->io;
	__u32 pos;

	if (!c->rs_skip) {
		pos = window_at(p, io, c->rs_like_len > L7_HEAD_BYTES ? c->rs_like_len : L7_HEAD_BYTES);
		if (pos == ~0U)
			return unparsed(c, io);
		if (!c->rs_open && redis_replies_like(c, w, pos)) {
			skip_rest(&c->rs_skip, io, left, &c->resp_bytes);
			return 0;
		}
		if (!resp_element(p, pos) || !p->msg.len)
			return unparsed(c, io);
		__u8 t = p->msg.type;
		__s64 n = p->msg.num;
		if (!c->rs_open) { /* a new reply */
			c->rs_open = 1;
			c->rs_push = t == '>';
			c->rs_error = p->msg.error;
			if (p->msg.error)
				__builtin_memcpy(c->rs_code, p->msg.code, L7_OP_LEN);
			redis_remember_reply(c, p, pos);
		} else if (c->rs_elems) {
			c->rs_elems--;
		}
		c->rs_skip = p->msg.len;
		switch (t) {
		case '*': case '~': case '>':
			c->rs_elems += n > 0 ? n : 0;
			break;
		case '%':
			c->rs_elems += n > 0 ? 2 * n : 0;
			break;
		case '|': /* attributes, then the element they describe */
			c->rs_elems += n > 0 ? 2 * n + 1 : 1;
			break;
		case '$': case '!': case '=':
			c->rs_skip += n >= 0 ? n + 2 : 0;
			break;
		}
	}
	/* the element (or what is left of it) in this call; the reply is over with its last one */
	if (skip_rest(&c->rs_skip, io, left, &c->resp_bytes) && !c->rs_elems && c->rs_open)
		redis_reply_done(c, w);
	return 0;
}

/* ---------------------------------------------------------------- PostgreSQL */

static __always_inline long pg_request(struct l7_conn *c, struct l7_work *w, __u64 left)
{
	struct l7_parse *p = &w->p;
	struct l7_io *io = &w->io;
	struct l7_stmt_key sk = {.sk = io->sk};
	__u64 bytes = 0;
	__u32 pos, len;

	if (c->rq_skip) {
		skip_rest(&c->rq_skip, io, left, &bytes);
		request_bytes(c, bytes);
		return 0;
	}
	pos = window_at(p, io, L7_HEAD_BYTES);
	if (pos == ~0U)
		return unparsed(c, io);
	if (!(c->db_state & PG_STARTED)) {
		len = pg_startup(p, pos);
		if (len) {
			if (p->msg.type == 'S')
				c->db_state |= PG_SSL_ASKED;
			else
				c->db_state |= PG_STARTED;
			c->rq_skip = len;
			return 0;
		}
		c->db_state |= PG_STARTED; /* followed from a query: the startup was before */
	}
	if (!pg_message(p, pos))
		return unparsed(c, io);
	c->rq_skip = p->msg.num;
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
	case 'B': { /* Bind: the Execute that follows runs this statement */
		bool known = false;
		if (pg_bind_message(p, pos)) {
			sk.stmt = p->msg.stmt;
			known = stmt_operation(c, &sk, c->bound_op);
		}
		if (!known) {
			__builtin_memset(c->bound_op, 0, L7_OP_LEN);
			netobs_count(&l7_lost, L7_LOST_STATEMENT_UNKNOWN);
		}
		break;
	}
	case 'E':
		db_push(c, p, io, c->bound_op, PG_EXECUTE, false);
		break;
	}
	return 0;
}

static __always_inline long pg_response(struct l7_conn *c, struct l7_work *w, __u64 left)
{
	struct l7_parse *p = &w->p;
	struct l7_io *io = &w->io;
	struct l7_req *req;
	__u32 pos;

	if (c->rs_skip) {
		skip_rest(&c->rs_skip, io, left, &c->resp_bytes);
		return 0;
	}
	if (c->db_state & DB_TLS) {
		io->off = io->ret;
		return 1;
	}
	pos = window_at(p, io, L7_HEAD_BYTES);
	if (pos == ~0U)
		return unparsed(c, io);
	if (c->db_state & PG_SSL_ASKED) { /* one byte: S (TLS follows), G (GSSAPI encryption) or N */
		__u8 answer = l7_at(p, pos);
		c->db_state &= ~PG_SSL_ASKED;
		if (answer == 'S' || answer == 'G' || answer == 'N') {
			if (answer != 'N')
				c->db_state |= DB_TLS;
			io->off += 1;
			return 0;
		}
	}
	if (!pg_message(p, pos))
		return unparsed(c, io);
	c->rs_skip = p->msg.num;
	if (c->head == c->tail)
		return 0; /* the handshake, or an answer to a request sent before start-up */
	req = &c->q[c->head & (L7_QUEUE - 1)];
	switch (p->msg.type) {
	case 'C': /* CommandComplete */
	case 'I': /* EmptyQueryResponse */
	case 's': /* PortalSuspended */
		if (req->kind == PG_EXECUTE)
			db_complete_ok(c, w, io->now);
		break;
	case 'E': /* ErrorResponse */
		pg_error_code(p, pos);
		if (req->kind == PG_EXECUTE) {
			db_complete(c, io->now, L7_DB_ERROR, p->msg.code);
			c->db_state |= PG_FAILED;
		} else {
			c->db_state |= PG_FAILED;
			__builtin_memcpy(c->rs_code, p->msg.code, L7_OP_LEN);
		}
		break;
	case 'Z': /* ReadyForQuery: a simple query is over; after an error, the Executes skipped */
		if (req->kind == PG_QUERY) {
			if (c->db_state & PG_FAILED)
				db_complete(c, io->now, L7_DB_ERROR, c->rs_code);
			else
				db_complete_ok(c, w, io->now);
		} else if (c->db_state & PG_FAILED) {
			db_flush(c, io->now);
			c->head = c->tail; /* not executed: not counted */
		}
		c->db_state &= ~PG_FAILED;
		break;
	}
	return 0;
}

/* ---------------------------------------------------------------- MySQL */

/* Where the payload of the packet at io->off starts in the window, with its sequence id in *seq
 * and its length in msg.num;
 * ~0 if there is none to look at. A header that comes alone in its call (MariaDB reads 4 bytes,
 * then the payload) is consumed now and its payload looked at in the next call (`alone`). */
static __always_inline __u32 mysql_payload(struct l7_conn *c, struct l7_work *w, __u64 left, __u64 *skip,
					   __u8 *seq, __u8 alone_flag, __u8 *alone_seq)
{
	struct l7_parse *p = &w->p;
	struct l7_io *io = &w->io;
	__u32 pos = window_at(p, io, L7_HEAD_BYTES);

	if (pos == ~0U)
		return ~0U;
	if (c->db_state & alone_flag) { /* the payload of a header seen alone */
		c->db_state &= ~alone_flag;
		*seq = *alone_seq;
		p->msg.num = *skip; /* the payload's bytes */
		return pos;
	}
	if (!mysql_header(p, pos))
		return ~0U;
	*skip = p->msg.num + 4;
	*seq = p->msg.seq;
	if (left == 4) {
		c->db_state |= alone_flag;
		*alone_seq = p->msg.seq;
		*skip = p->msg.num;
		io->off += 4;
		return ~1U;
	}
	return pos + 4;
}

static __always_inline long mysql_request(struct l7_conn *c, struct l7_work *w, __u64 left)
{
	struct l7_parse *p = &w->p;
	struct l7_io *io = &w->io;
	struct l7_stmt_key sk = {.sk = io->sk};
	__u64 bytes = 0;
	__u32 pos;
	__u8 seq = 0;

	if (c->rq_skip && !(c->db_state & MY_RQ_ALONE)) {
		skip_rest(&c->rq_skip, io, left, &bytes);
		request_bytes(c, bytes);
		return 0;
	}
	pos = mysql_payload(c, w, left, &c->rq_skip, &seq, MY_RQ_ALONE, &c->rq_seq);
	if (pos == ~1U)
		return 0;
	if (pos == ~0U)
		return unparsed(c, io);
	if (seq == 1 && p->msg.num == MYSQL_SSL_REQUEST_LEN && ((__u32)l7_word(p, pos) & MYSQL_CLIENT_SSL)) {
		c->db_state |= DB_TLS; /* the client's SSLRequest: TLS follows (starttls) */
		return 0;
	}
	if (!mysql_command(p, pos, seq))
		return 0; /* the handshake, or a command we do not know: skipped */
	if (c->resp_mode == RESP_UNTIL_NEXT) { /* the previous result set is over */
		c->resp_mode = RESP_IDLE;
		db_complete(c, c->resp_last_ns, L7_DB_OK, c->code);
	}
	sk.stmt = p->msg.stmt;
	switch (p->msg.type) {
	case MYSQL_COM_QUIT:
	case MYSQL_COM_STMT_SEND_LONG_DATA:
		return 0;
	case MYSQL_COM_STMT_CLOSE:
		stmt_forget(c, &sk);
		return 0;
	case MYSQL_COM_STMT_PREPARE:
		__builtin_memcpy(c->bound_op, p->msg.op, L7_OP_LEN);
		*(__u64 *)p->msg.op = LIT7('P', 'R', 'E', 'P', 'A', 'R', 'E');
		*(__u64 *)(p->msg.op + 8) = 0;
		db_push(c, p, io, p->msg.op, MYSQL_PREPARE, false);
		return 0;
	case MYSQL_COM_STMT_EXECUTE:
		if (!stmt_operation(c, &sk, p->msg.op)) {
			*(__u64 *)p->msg.op = LIT7('E', 'X', 'E', 'C', 'U', 'T', 'E');
			*(__u64 *)(p->msg.op + 8) = 0;
			netobs_count(&l7_lost, L7_LOST_STATEMENT_UNKNOWN);
		}
		break;
	}
	db_push(c, p, io, p->msg.op, MYSQL_OTHER, false);
	return 0;
}

static __always_inline long mysql_response(struct l7_conn *c, struct l7_work *w, __u64 left)
{
	struct l7_parse *p = &w->p;
	struct l7_io *io = &w->io;
	struct l7_req *req;
	__u32 pos;
	__u8 seq = 0;

	if (c->rs_skip && !(c->db_state & MY_RS_ALONE)) {
		skip_rest(&c->rs_skip, io, left, &c->resp_bytes);
		return 0;
	}
	c->resp_last_ns = io->now;
	pos = mysql_payload(c, w, left, &c->rs_skip, &seq, MY_RS_ALONE, &c->rs_seq);
	if (pos == ~1U)
		return 0;
	if (pos == ~0U)
		return unparsed(c, io);
	if (c->head == c->tail || c->resp_mode == RESP_UNTIL_NEXT)
		return 0; /* the handshake, or the rest of a result set */
	req = &c->q[c->head & (L7_QUEUE - 1)];
	__u8 first = l7_at(p, pos);
	if (first == 0xff) { /* ERR: the error code, 2 bytes little-endian */
		__builtin_memset(p->msg.code, 0, L7_OP_LEN);
		*(__u16 *)p->msg.code = (__u16)l7_word(p, pos + 1);
		db_complete(c, io->now, L7_DB_ERROR, p->msg.code);
		return 0;
	}
	if (first == 0x00 || (first == 0xfe && p->msg.num < 9)) { /* OK (or EOF) */
		if (req->kind == MYSQL_PREPARE && first == 0x00) {
			struct l7_stmt_key sk = {.sk = io->sk, .stmt = (__u32)l7_word(p, pos + 1)};
			stmt_remember(c, &sk, c->bound_op);
		}
		db_complete_ok(c, w, io->now);
		return 0;
	}
	/* a result set: its packets continue until the next command (or the close) */
	__builtin_memset(c->code, 0, L7_OP_LEN);
	c->resp_mode = RESP_UNTIL_NEXT;
	return 0;
}

/* ---------------------------------------------------------------- memcached */

static __always_inline long memcached_request(struct l7_conn *c, struct l7_work *w, __u64 left)
{
	struct l7_parse *p = &w->p;
	struct l7_io *io = &w->io;
	__u64 bytes = 0;
	__u32 pos;

	if (c->rq_skip) {
		skip_rest(&c->rq_skip, io, left, &bytes);
		request_bytes(c, bytes);
		return 0;
	}
	pos = window_at(p, io, MC_LINE_BYTES);
	if (pos == ~0U || !mc_request(p, pos))
		return unparsed(c, io);
	c->rq_skip = p->msg.len + (p->msg.num >= 0 ? p->msg.num + 2 : 0);
	if (!p->msg.flags) /* noreply: nothing to pair */
		db_push(c, p, io, p->msg.op, p->msg.type, true);
	return 0;
}

static __always_inline long memcached_response(struct l7_conn *c, struct l7_work *w, __u64 left)
{
	struct l7_parse *p = &w->p;
	struct l7_io *io = &w->io;
	struct l7_req *req;
	__u32 pos;

	if (c->rs_skip) {
		skip_rest(&c->rs_skip, io, left, &c->resp_bytes);
		return 0;
	}
	pos = window_at(p, io, MC_LINE_BYTES);
	if (pos == ~0U || !mc_reply(p, pos))
		return unparsed(c, io);
	c->rs_skip = p->msg.len + (p->msg.num >= 0 ? p->msg.num + 2 : 0);
	if (c->head == c->tail)
		return 0; /* the handshake, or an answer to a request sent before start-up */
	req = &c->q[c->head & (L7_QUEUE - 1)];
	__u64 word = *(__u64 *)p->msg.op;
	if (p->msg.error) {
		c->rs_hit = 0;
		db_complete(c, io->now, L7_DB_ERROR, p->msg.op);
		return 0;
	}
	if (req->kind == MC_RETRIEVAL || req->kind == MC_STATS) {
		if (word == LIT5('V', 'A', 'L', 'U', 'E')) {
			c->rs_hit = 1;
			return 0;
		}
		if (word != LIT3('E', 'N', 'D'))
			return 0; /* STAT lines */
		__builtin_memset(p->msg.op, 0, L7_OP_LEN);
		if (req->kind == MC_RETRIEVAL)
			*(__u64 *)p->msg.op = c->rs_hit ? LIT3('H', 'I', 'T') : LIT4('M', 'I', 'S', 'S');
		c->rs_hit = 0;
	}
	db_complete(c, io->now, L7_DB_OK, p->msg.op);
	return 0;
}

#endif

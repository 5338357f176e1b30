/* MySQL and MariaDB (part of bpf/l7.c): the client/server protocol. A command is answered by OK,
 * ERR or a result set, which goes on until the next command (or the close); a prepared statement's
 * operation is remembered from its COM_STMT_PREPARE for the executions that follow. The state is
 * struct mysql_state (bpf/l7_mysql_state.h); the pairing is bpf/l7_db_flow.c. */

/* Whether a connection's first data is the server's greeting (then the side that reads it is the
 * client: *client is set) or a query. */
static __always_inline bool mysql_detect(struct l7_parse *p, bool sent, bool *client)
{
	if (mysql_greeting(p)) {
		*client = !sent;
		return true;
	}
	return mysql_header(p, 0) && mysql_command(p, 4, p->msg.seq) &&
	       (p->msg.type == MYSQL_COM_QUERY || p->msg.type == MYSQL_COM_STMT_PREPARE);
}

/* The result set in progress (if any) is over: one OK response. */
static __always_inline void mysql_result_set_end(struct l7_conn *c)
{
	if (!c->db.mysql.result_set)
		return;
	c->db.mysql.result_set = 0;
	db_complete(c, c->resp_last_ns, L7_DB_OK, c->db.code);
}

/* Where the payload of the packet at io->off starts in the window, with its sequence id in *seq
 * and its length in msg.num;
 * ~0 if there is none to look at. A header that comes alone in its call (MariaDB reads 4 bytes,
 * then the payload) is consumed now and its payload looked at in the next call (`alone`). */
static __always_inline __u32 mysql_payload(struct l7_conn *c, struct l7_work *w, __u64 left, __u64 *skip,
					   __u8 *seq, __u8 alone_flag, __u8 *alone_seq)
{
	struct mysql_state *my = &c->db.mysql;
	struct l7_parse *p = &w->p;
	struct l7_io *io = &w->io;
	__u32 pos = window_at(p, io, L7_HEAD_BYTES);

	if (pos == ~0U)
		return ~0U;
	if (my->flags & alone_flag) { /* the payload of a header seen alone */
		my->flags &= ~alone_flag;
		*seq = *alone_seq;
		p->msg.num = *skip; /* the payload's bytes */
		return pos;
	}
	if (!mysql_header(p, pos))
		return ~0U;
	*skip = p->msg.num + 4;
	*seq = p->msg.seq;
	if (left == 4) {
		my->flags |= alone_flag;
		*alone_seq = p->msg.seq;
		*skip = p->msg.num;
		io->off += 4;
		return ~1U;
	}
	return pos + 4;
}

/* A command parsed into p->msg: queued, its prepared statement remembered or forgotten. */
static __always_inline void mysql_command_queue(struct l7_conn *c, struct l7_parse *p, struct l7_io *io)
{
	struct l7_stmt_key sk = {.sk = io->sk, .stmt = p->msg.stmt};

	switch (p->msg.type) {
	case MYSQL_COM_QUIT:
	case MYSQL_COM_STMT_SEND_LONG_DATA:
		return;
	case MYSQL_COM_STMT_CLOSE:
		stmt_forget(c, &sk);
		return;
	case MYSQL_COM_STMT_PREPARE:
		__builtin_memcpy(c->db.mysql.prepared_op, p->msg.op, L7_OP_LEN);
		*(__u64 *)p->msg.op = LIT7('P', 'R', 'E', 'P', 'A', 'R', 'E');
		*(__u64 *)(p->msg.op + 8) = 0;
		db_push(c, p, io, p->msg.op, MYSQL_PREPARE, false);
		return;
	case MYSQL_COM_STMT_EXECUTE:
		if (!stmt_operation(c, &sk, p->msg.op)) {
			*(__u64 *)p->msg.op = LIT7('E', 'X', 'E', 'C', 'U', 'T', 'E');
			*(__u64 *)(p->msg.op + 8) = 0;
			netobs_count(&l7_lost, L7_LOST_STATEMENT_UNKNOWN);
		}
		break;
	}
	db_push(c, p, io, p->msg.op, MYSQL_OTHER, false);
}

static __always_inline long mysql_request(struct l7_conn *c, struct l7_work *w, __u64 left)
{
	struct mysql_state *my = &c->db.mysql;
	struct l7_parse *p = &w->p;
	struct l7_io *io = &w->io;
	__u32 pos;
	__u8 seq = 0;

	if (c->db.rq_skip && !(my->flags & MYSQL_RQ_ALONE))
		return db_request_rest(c, io, left);
	pos = mysql_payload(c, w, left, &c->db.rq_skip, &seq, MYSQL_RQ_ALONE, &my->rq_seq);
	if (pos == ~1U)
		return 0;
	if (pos == ~0U)
		return unparsed(c, io);
	if (seq == 1 && p->msg.num == MYSQL_SSL_REQUEST_LEN && ((__u32)l7_word(p, pos) & MYSQL_CLIENT_SSL)) {
		c->went_tls = 1; /* the client's SSLRequest: TLS follows (starttls) */
		return 0;
	}
	if (!mysql_command(p, pos, seq))
		return 0; /* the handshake, or a command we do not know: skipped */
	mysql_result_set_end(c); /* the previous result set is over */
	mysql_command_queue(c, p, io);
	return 0;
}

static __always_inline long mysql_response(struct l7_conn *c, struct l7_work *w, __u64 left)
{
	struct mysql_state *my = &c->db.mysql;
	struct l7_parse *p = &w->p;
	struct l7_io *io = &w->io;
	struct l7_req *req;
	__u32 pos;
	__u8 seq = 0;

	if (c->db.rs_skip && !(my->flags & MYSQL_RS_ALONE)) {
		skip_rest(&c->db.rs_skip, io, left, &c->resp_bytes);
		return 0;
	}
	c->resp_last_ns = io->now;
	pos = mysql_payload(c, w, left, &c->db.rs_skip, &seq, MYSQL_RS_ALONE, &my->rs_seq);
	if (pos == ~1U)
		return 0;
	if (pos == ~0U)
		return unparsed(c, io);
	if (c->head == c->tail || my->result_set)
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
			stmt_remember(c, &sk, my->prepared_op);
		}
		db_complete_ok(c, w, io->now);
		return 0;
	}
	/* a result set: its packets continue until the next command (or the close) */
	__builtin_memset(c->db.code, 0, L7_OP_LEN);
	my->result_set = 1;
	return 0;
}

/* The connection has ended: so has the result set in progress. */
static __always_inline void mysql_close(struct l7_conn *c)
{
	mysql_result_set_end(c);
}

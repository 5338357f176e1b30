/* The protocols the engine follows (part of bpf/l7.c), in one table: which protocol a connection's
 * first data is (detect), which steps read its messages (conn_data, and the request and response
 * steps below), and what its close counts (protocol_close, request_names).
 *
 * A protocol is its state - l7_<protocol>_state.h, a member of the union in struct l7_conn
 * (l7_conn.h), or of the one in struct db_state (l7_db_state.h) for a database - and its steps,
 * l7_<protocol>.c, included and listed here. */

#include "l7_http1.c"
#include "l7_http2.c"
#include "l7_db_flow.c"
#include "l7_redis.c"
#include "l7_postgresql.c"
#include "l7_mysql.c"
#include "l7_memcached.c"

#define L7_MSGS_PER_CALL 16 /* messages of one call looked at (pipelined requests, responses) */
#define L7_DB_STEPS_PER_CALL 1024 /* database messages (RESP elements) of one call looked at */

static __always_inline bool protocol_enabled(__u32 protocol)
{
	return protocols & (1U << protocol);
}

/* The protocol of a connection's first data, and who is the client; L7_PROTO_UNKNOWN if none. A
 * client sends the first request, except for MySQL, where the server greets first. */
static __always_inline __u8 detect(struct l7_parse *p, bool sent, bool *client)
{
	*client = sent;
	if (protocol_enabled(L7_PROTO_HTTP) && http1_detect(p))
		return L7_PROTO_HTTP;
	if (protocol_enabled(L7_PROTO_HTTP) && (h2_preface(p) || h2_headers_frame(p, sent, client)))
		return L7_PROTO_HTTP2;
	if (l7_at(p, 0) == '*') /* a Redis command: no other protocol is tried */
		return protocol_enabled(L7_PROTO_REDIS) && redis_detect(p) ? L7_PROTO_REDIS : L7_PROTO_UNKNOWN;
	if (protocol_enabled(L7_PROTO_POSTGRESQL) && pg_detect(p))
		return L7_PROTO_POSTGRESQL;
	if (protocol_enabled(L7_PROTO_MYSQL) && mysql_detect(p, sent, client))
		return L7_PROTO_MYSQL;
	if (protocol_enabled(L7_PROTO_MEMCACHED) && memcached_detect(p))
		return L7_PROTO_MEMCACHED;
	return L7_PROTO_UNKNOWN;
}

/* ---------------------------------------------------------------- message steps */

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
	return http1_request_step(c, &w->p, &w->io, left);
}

__noinline long http_response(struct l7_conn *c, struct l7_work *w, __u64 left)
{
	if (!c || !w)
		return 1;
	return http1_response_step(c, &w->p, &w->io, left);
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

/* The call's data (io, set up by the caller) goes through a followed connection's messages. */
static __always_inline void conn_data(struct l7_conn *c, struct l7_work *w, bool sent)
{
	struct l7_io *io = &w->io;

	io->request_dir = c->client == sent;
	io->win_valid = false;
	struct message_ctx m = {.w = w, .c = c};
	if (c->protocol == L7_PROTO_HTTP2) {
		h2_data(c, w);
		return;
	}
	if (c->protocol == L7_PROTO_HTTP) {
		if (!c->http1.upgraded)
			bpf_loop(L7_MSGS_PER_CALL, http_step, &m, 0);
		if (c->http1.upgraded == HTTP1_UPGRADE_PENDING && io->off < io->ret)
			h2_upgrade(c, w); /* the rest of the call, if HTTP/2 follows */
		return;
	}
	bpf_loop(L7_DB_STEPS_PER_CALL, db_step, &m, 0);
	db_flush(c, io->now); /* the responses of this call, recorded together */
}

/* ---------------------------------------------------------------- close */

/* A connection begins to be followed, its first data in the window: false if the state its protocol
 * keeps beside struct l7_conn could not be made (counted). */
static __always_inline bool protocol_start(struct l7_conn *c, const struct l7_parse *p, __u64 sk)
{
	if (c->protocol != L7_PROTO_HTTP2 || h2_start(sk, h2_preface(p)))
		return true;
	netobs_count(&l7_lost, L7_LOST_CONNS_FULL);
	return false;
}

/* A followed connection (of socket sk) has ended: what its protocol had in progress is counted (the
 * requests still waiting are counted after, with no response). */
static __always_inline void protocol_close(struct l7_conn *c, __u64 sk, __u64 now)
{
	switch (c->protocol) {
	case L7_PROTO_HTTP:
		http1_close(c);
		return;
	case L7_PROTO_HTTP2:
		h2_close(c, sk);
		return;
	case L7_PROTO_MYSQL:
		mysql_close(c);
		break;
	}
	db_flush(c, now);
}

/* The route and Host of the series of the request in q[i]; databases have none. */
static __always_inline const struct l7_names *request_names(struct l7_conn *c, __u32 i)
{
	return c->protocol == L7_PROTO_HTTP ? &c->http1.names[i & (L7_PIPELINE - 1)] : &l7_no_names;
}

/* PostgreSQL: what a followed connection keeps between calls (struct db_state's `pg`). Its steps
 * are bpf/l7_postgresql.c; its parser bpf/l7_db.h. */
#ifndef NETOBS_L7_POSTGRESQL_STATE_H
#define NETOBS_L7_POSTGRESQL_STATE_H

#include "l7.h"

enum pg_kind { /* struct l7_req.kind */
	PG_QUERY = 1,   /* simple query: answered up to ReadyForQuery */
	PG_EXECUTE = 2, /* extended protocol: answered by CommandComplete (or an error) */
};

enum pg_flag {
	PG_STARTED = 1,   /* the startup message is behind */
	PG_SSL_ASKED = 2, /* an SSLRequest waits for its one-byte answer */
	PG_FAILED = 4,    /* an error; the server skips the rest until Sync */
};

struct pg_state {
	__u8 flags;              /* enum pg_flag */
	__u8 pad[7];
	char rs_code[L7_OP_LEN]; /* the error code of a failed simple query, until its ReadyForQuery */
	char bound_op[L7_OP_LEN]; /* the operation of the statement last bound */
};

#endif

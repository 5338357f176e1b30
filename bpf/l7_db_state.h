/* Databases and caches: what a followed connection keeps between calls (struct l7_conn's `db`):
 * what their pairing shares (bpf/l7_db_flow.c), then what only its protocol keeps. */
#ifndef NETOBS_L7_DB_STATE_H
#define NETOBS_L7_DB_STATE_H

#include "l7.h"
#include "l7_redis_state.h"
#include "l7_postgresql_state.h"
#include "l7_mysql_state.h"
#include "l7_memcached_state.h"

#define L7_STMT_CACHE 8 /* prepared statements' operations kept in the connection (a power of two) */

/* The operations of the statements last prepared or run, by statement (direct-mapped: ids[i] holds
 * a statement with stmt % L7_STMT_CACHE == i, if bit i of `valid` is set); a copy of `statements`,
 * which is looked up only when this misses. */
struct db_statements {
	__u32 ids[L7_STMT_CACHE];
	__u32 valid;
	__u32 pad;
	char ops[L7_STMT_CACHE][L7_OP_LEN];
};

struct db_state {
	__u64 rq_skip;        /* bytes of the current request message still to come */
	__u64 rs_skip;        /* bytes of the current response message still to come */
	__u32 done;           /* responses of q[head] seen in this call and not yet recorded */
	__u32 status;         /* their status (enum l7_db_status) */
	char code[L7_OP_LEN]; /* their error code (or memcached reply) */
	struct db_statements statements; /* PostgreSQL, MySQL */
	union {
		struct redis_state redis;
		struct pg_state pg;
		struct mysql_state mysql;
		struct memcached_state memcached;
	};
};

#endif

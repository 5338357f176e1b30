/* Redis: what a followed connection keeps between calls (struct db_state's `redis`). Its steps are
 * bpf/l7_redis.c; its parser (RESP) bpf/l7_db.h. */
#ifndef NETOBS_L7_REDIS_STATE_H
#define NETOBS_L7_REDIS_STATE_H

#include "l7.h"

struct redis_state {
	/* the last whole command (see redis_like): its hash, length (0: none) and name */
	__u64 rq_like_hash;
	char rq_like_op[L7_OP_LEN];
	__u16 rq_like_len;
	__u8 rs_open;         /* a reply is in progress */
	__u8 rs_push;         /* the reply in progress is a push, not an answer */
	__u8 rs_error;        /* the reply in progress is an error */
	__u8 pad[3];
	/* the last whole reply that was a success and one element: its hash and length (0: none) */
	__u64 rs_like_hash;
	__u32 rs_like_len;
	__u32 rq_elems;       /* arguments of the command in progress still to come */
	__u64 rs_elems;       /* elements of the reply in progress still to come */
	char rs_code[L7_OP_LEN]; /* the error code of the reply in progress */
};

#endif

/* MySQL and MariaDB: what a followed connection keeps between calls (struct db_state's
 * `mysql`). Its steps are bpf/l7_mysql.c; its parser bpf/l7_db.h. */
#ifndef NETOBS_L7_MYSQL_STATE_H
#define NETOBS_L7_MYSQL_STATE_H

#include "l7.h"

enum mysql_kind { /* struct l7_req.kind */
	MYSQL_OTHER = 1,
	MYSQL_PREPARE = 2,
};

enum mysql_flag {
	MYSQL_RQ_ALONE = 1, /* a request packet's header came alone; its payload comes next */
	MYSQL_RS_ALONE = 2, /* the same for a response packet */
};

struct mysql_state {
	__u8 flags;       /* enum mysql_flag */
	__u8 rq_seq;      /* the sequence id of a packet header that came alone */
	__u8 rs_seq;
	__u8 result_set;  /* a result set is in progress: it ends at the next command (or the close) */
	__u8 pad[4];
	char prepared_op[L7_OP_LEN]; /* the operation of the statement being prepared */
};

#endif

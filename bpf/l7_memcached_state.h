/* memcached: what a followed connection keeps between calls (struct db_state's `memcached`).
 * Its steps are bpf/l7_memcached.c; its parser (the text protocol) bpf/l7_db.h. */
#ifndef NETOBS_L7_MEMCACHED_STATE_H
#define NETOBS_L7_MEMCACHED_STATE_H

#include "l7.h"

struct memcached_state {
	__u8 rs_hit; /* the reply in progress has a VALUE */
};

#endif

/* A followed connection's state (part of bpf/l7.c): what every protocol keeps - who the connection
 * is, the requests waiting for their responses - and, in a union, what only its protocol keeps. A
 * protocol's state is its own header (l7_<protocol>_state.h); its steps read and write it. */
#ifndef NETOBS_L7_CONN_H
#define NETOBS_L7_CONN_H

#include "l7.h"

/* A request waiting for its response; for databases, `count` alike requests of one call (a
 * pipeline) wait together. */
struct l7_req {
	__u64 start_ns; /* the process wrote it (client) or read it (server) */
	__u64 bytes;
	__u32 header_len;
	__u32 count;    /* requests waiting in this entry (1 for HTTP) */
	__u8 version;
	__u8 no_body;   /* HEAD: the response has a head only */
	__u8 kind;      /* databases: which message it is (PostgreSQL Query or Execute, memcached kind) */
	__u8 pad[5];
	char op[L7_OP_LEN];
};

/* What only an HTTP request has beside its operation: the route and Host of its series. */
struct l7_names {
	char target[L7_TARGET_LEN];
	char authority[L7_AUTHORITY_LEN];
	__u64 fp; /* names_fingerprint() of the two */
};

/* Each protocol's own state (they may hold the structs above). */
#include "l7_http1_state.h"
#include "l7_db_state.h"

struct l7_conn {
	/* who: what the connection's series share (conn_identify) */
	__u64 conn_fp;        /* the fingerprint of what its series keys share (see series_fingerprint) */
	__u64 start;          /* the owner's start and cgroup (struct netobs_owner) */
	__u64 cgroup_id;
	__u32 pid;
	__u16 server_port;
	__u16 family;
	__u8 server_addr[16];
	__u8 protocol;        /* enum l7_protocol: which member of the union below is in use */
	__u8 client;
	__u8 tls;             /* the data is TLS plaintext, from the library's calls (bpf/l7_tls.c) */
	__u8 closed;          /* the connection has ended (TCP_CLOSE): nothing more is parsed */
	__u8 went_tls;        /* the connection went TLS (PostgreSQL's or MySQL's SSLRequest): its
			       * plaintext comes from the library from now on (starttls) */
	__u8 pad[3];
	__u32 client_peer;    /* a server's: the client's workload (`l7_clients`), 0 if not known */
	__u32 pad2;
	char comm[L7_COMM_LEN];
	/* requests q[head..tail) wait for responses; the responses' bytes and time */
	__u32 head;
	__u32 tail;
	__u64 resp_bytes;     /* response bytes not yet recorded */
	__u64 resp_last_ns;   /* the last response data */
	struct l7_req q[L7_QUEUE];
	union {
		struct http1_state http1; /* L7_PROTO_HTTP */
		struct db_state db;       /* the databases and caches */
	};
};

/* The request bytes just consumed belong to the newest request. */
static __always_inline void add_request_bytes(struct l7_conn *c, __u64 n)
{
	if (c->head != c->tail)
		c->q[(c->tail - 1) & (L7_QUEUE - 1)].bytes += n;
}

#endif

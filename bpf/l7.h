/* Structs shared by bpf/l7.c and exporter/collectors/l7_maps.py (ctypes mirrors).
 * Any change here must be made there too; the collector checks the sizes against this
 * object's BTF at load time and refuses to run on a mismatch. */
#ifndef NETOBS_L7_H
#define NETOBS_L7_H

#define L7_CAPTURE_MAX 1024 /* bytes of a message head parsed at most (L7.CaptureBytes) */
#define L7_COMM_LEN 16
#define L7_OP_LEN 16        /* HTTP method, database operation, database error code */
#define L7_TARGET_LEN 64    /* HTTP route: path without query, ids folded to {id} */
#define L7_AUTHORITY_LEN 64 /* HTTP Host header (a power of two) */
#define L7_PIPELINE 8       /* HTTP requests of one connection waiting for their responses */
#define L7_QUEUE 32         /* database requests (alike pipelined ones share one) waiting */
#define L7_DURATION_BOUNDS 14 /* latency histogram bucket bounds; BOUNDS + 1 buckets */
#define L7_SIZE_BOUNDS 12     /* body size histogram bucket bounds */

enum l7_protocol {
	L7_PROTO_UNKNOWN = 0,
	L7_PROTO_HTTP = 1,
	L7_PROTO_REDIS = 2,
	L7_PROTO_POSTGRESQL = 3,
	L7_PROTO_MYSQL = 4,
	L7_PROTO_MEMCACHED = 5,
	L7_PROTO_GRPC = 6,    /* series only: gRPC calls of an HTTP/2 connection */
	L7_PROTO_HTTP2 = 7,   /* connections only: their series are HTTP's or gRPC's */
	L7_PROTOCOLS = 8,
};

/* The status of a database or cache operation (struct l7_series_key.status). */
enum l7_db_status {
	L7_DB_NO_RESPONSE = 0, /* the connection closed first */
	L7_DB_OK = 1,
	L7_DB_ERROR = 2,       /* an error reply: its code is in struct l7_series_key.code */
};

enum l7_lost_reason {
	L7_LOST_CONNS_FULL = 0,    /* too many connections tracked at once (L7.MaxConnections) */
	L7_LOST_SERIES_FULL = 1,   /* the series table is full: a request was not counted */
	L7_LOST_PIPELINE_FULL = 2, /* more than L7_PIPELINE requests waited for responses on one connection */
	L7_LOST_UNMATCHED = 3,     /* a response with no request waiting for it */
	L7_LOST_UNPARSED = 4,      /* data of a followed connection that is not where a message starts */
	L7_LOST_STATEMENT_UNKNOWN = 5, /* a prepared statement run whose preparation is not known (see `statements`) */
	L7_LOST_TLS_SOCKET_UNKNOWN = 6, /* TLS plaintext whose connection is not known (its socket calls were not seen) */
	L7_LOST_HEADER_UNKNOWN = 7, /* HTTP/2: a response whose :status (grpc-status) may be a table entry not known */
	L7_LOST_REASONS = 8,
};

/* One series of requests, as one process saw them (client or server). */
struct l7_series_key {
	__u8 server_addr[16]; /* IPv4 in the first 4 bytes */
	__u64 start;          /* the process's start (struct netobs_owner): with pid, one process for good */
	__u32 pid;
	__u32 status;         /* HTTP status code, or enum l7_db_status; 0: no response (the connection closed first) */
	__u16 server_port;
	__u16 family;
	__u8 protocol;        /* enum l7_protocol */
	__u8 client;          /* 1: the process sent the request, 0: it answered it */
	__u8 version;         /* HTTP: 10, 11 or 20 */
	__u8 tls;             /* 1: the exchange was encrypted (its plaintext came from the TLS library) */
	char op[L7_OP_LEN];
	char target[L7_TARGET_LEN];
	char authority[L7_AUTHORITY_LEN];
	char code[L7_OP_LEN]; /* databases: the error code, or the reply (memcached); see bpf/l7_db.h */
	__u32 client_peer;    /* a server's series: its clients' workload (see `l7_clients`); 0: not known */
	__u32 pad;
};

/* Cumulative figures of one series, updated by the kernel; user space reads the increments. The
 * map is keyed by a 64-bit fingerprint of `key` (see series_fingerprint in bpf/l7.c), which the
 * kernel computes from a few words instead of hashing and comparing the whole key on every
 * exchange; the key itself is written once, when the series is created. */
struct l7_series {
	__u64 count;
	__u64 sum_ns;
	__u64 buckets[L7_DURATION_BOUNDS + 1];
	__u64 request_bytes;   /* whole messages, head and body */
	__u64 response_bytes;
	__u64 request_body_sum;
	__u64 response_body_sum;
	__u64 request_body_buckets[L7_SIZE_BOUNDS + 1];
	__u64 response_body_buckets[L7_SIZE_BOUNDS + 1];
	__u64 last_ns;
	__u64 cgroup_id;       /* the process's cgroup v2 id */
	char comm[L7_COMM_LEN];
	struct l7_series_key key;
};

#endif

/* HTTP/1.x: what a followed connection keeps between calls (struct l7_conn's `http1`; included by
 * l7_conn.h, after struct l7_names). Its steps are bpf/l7_http1.c; its head parser
 * bpf/l7_http.h. */
#ifndef NETOBS_L7_HTTP1_STATE_H
#define NETOBS_L7_HTTP1_STATE_H

#include "l7.h"

enum resp_mode {
	RESP_IDLE = 0,
	RESP_LENGTH = 1,      /* resp_remaining bytes to come */
	RESP_CHUNKED = 2,     /* ends with a zero-size chunk */
	RESP_UNTIL_NEXT = 3,  /* no length: ends at the next head or when the connection closes */
};

/* After a 101 (Switching Protocols), what follows is another protocol. */
enum http1_upgrade {
	HTTP1_UPGRADE_NONE = 0,
	HTTP1_UPGRADE_PENDING = 1, /* q[head] got its 101: the next data says whether HTTP/2 follows (h2c) */
	HTTP1_UPGRADE_OTHER = 2,   /* another protocol (WebSocket...): the 101 is counted, nothing more is read */
};

struct http1_state {
	__u64 req_remaining;  /* bytes of the latest request still to come */
	__u64 resp_remaining; /* RESP_LENGTH: bytes of the response still to come */
	__u64 rq_like_hash;   /* the last request head read in full (see http_request_like): its hash, */
	__s64 rq_like_cl;     /* its Content-Length */
	__u32 resp_status;    /* the response in progress: its status and head's length */
	__u32 resp_header_len;
	__u16 rq_like_len;    /* the last request head's length (0: none); its method, route and Host
			       * are those of q[tail - 1] */
	__u16 like_len;       /* layout of the last response head with a Content-Length (see */
	__u16 like_cl;        /* http_parse_response_like); 0: none yet */
	__u8 resp_mode;       /* enum resp_mode */
	__u8 req_open;        /* the latest request's body has no length: its data continues until a head */
	__u8 upgraded;        /* enum http1_upgrade */
	struct l7_names names[L7_PIPELINE]; /* of q[i] in names[i % L7_PIPELINE] */
};

#endif

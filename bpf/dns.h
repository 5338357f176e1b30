/* Structs shared by bpf/dns.c and exporter/collectors/dns_maps.py (ctypes mirrors).
 * Any change here must be made there too; the collector checks the sizes against this
 * object's BTF at load time and refuses to run on a mismatch. */
#ifndef NETOBS_DNS_H
#define NETOBS_DNS_H

#define DNS_DATA_MAX 1024 /* bytes of a DNS message copied; the rest is only counted */
#define DNS_PORTS_MAX 8   /* server ports watched (53 and the configured extra ones) */
#define DNS_COMM_LEN 16
#define DNS_NAME_MAX 128  /* question names (wire form) paired in the kernel; longer ones go to user space */
#define DNS_BOUNDS 19     /* latency histogram bucket bounds; there are BOUNDS + 1 buckets */

enum dns_lost_reason {
	DNS_LOST_RINGBUF_FULL = 0, /* the ring buffer had no room: user space is behind */
	DNS_LOST_PENDING_FULL = 1, /* too many queries waiting for their answer */
	DNS_LOST_SERIES_FULL = 2,  /* the series table is full: a lookup was not counted */
	DNS_LOST_UNMATCHED = 3,    /* an answer with no query waiting for it */
	DNS_LOST_REASONS = 4,
};

/* UDP lookups are paired and aggregated in the kernel (the fast path). A query waits here until its
 * answer comes or user space times it out. The answer echoes the id and the question, so the socket,
 * the id and the question identify the query even when the answer's peer is not known (read with
 * recv() or recvfrom() without an address). `slot` tells apart the same question with the same id in
 * flight on one socket to different servers (DNS_SAME_QUESTION at most). */
#define DNS_SAME_QUESTION 4

struct dns_pending_key {
	__u64 sock;
	__u64 name_hash; /* FNV-1a of the question name as in dns_series_key.name, over name_len bytes */
	__u16 id;
	__u16 qtype;
	__u8 slot;
	__u8 pad[3];
};

/* One series of lookups. The name is the question name as on the wire (length-prefixed labels and
 * the final zero), lower-cased, zero-padded. */
struct dns_series_key {
	__u8 server_addr[16];
	__u64 start; /* the process's start (struct netobs_owner): with pid, one process for good */
	__u32 pid;
	__u16 server_port;
	__u16 qtype;
	__u16 family;
	__u8 client; /* 1: the process asked (outgoing), 0: it answered (incoming) */
	__u8 rcode;
	__u8 name_len;
	__u8 pad[3];
	__u8 name[DNS_NAME_MAX];
};

struct dns_pending {
	__u64 ktime_ns; /* when the query was written (client) or read (server) */
	__u64 request_bytes;
	__u8 remote_addr[16]; /* the peer: the server the query went to (client), the client (server) */
	__u16 remote_port;    /* 0: the peer is not known */
	__u8 pad[6];
	__u64 cgroup_id;              /* the process's cgroup v2 id */
	struct dns_series_key series; /* rcode still 0 */
	char comm[DNS_COMM_LEN];
};

/* An answer read before its query's send call returned: on loopback the server can answer, and the
 * client's other thread read the answer, while the sending thread is still inside sendto(2), before
 * the query is seen. The query, if it comes within DNS_EARLY_NS, completes with it; user space counts
 * one left older than twice that as `unmatched`. Keyed like `pending`, with slot 0. */
#define DNS_EARLY_NS 1000000000ULL

struct dns_early {
	__u64 ktime_ns; /* when the answer was read */
	__u64 response_bytes;
	__u8 rcode;
	__u8 pad[7];
};

/* Cumulative figures of one series, updated by the kernel; user space reads the increments. */
struct dns_series {
	__u64 count;
	__u64 sum_ns;
	__u64 buckets[DNS_BOUNDS + 1];
	__u64 window;          /* index of the window max_ns belongs to (ktime / window_ns) */
	__u64 max_ns;
	__u64 previous_max_ns; /* max of the window before */
	__u64 last_ns;
	__u64 request_bytes;
	__u64 response_bytes;
	__u64 cgroup_id;
	char comm[DNS_COMM_LEN];
};

/* One DNS message (UDP) or one chunk of a DNS-over-TCP stream, as a process read or wrote it.
 * Addresses as in struct netobs_endpoints: IPv4 in the first 4 bytes, IPv4-mapped IPv6 as IPv4. */
struct dns_event {
	__u64 ktime_ns;  /* CLOCK_MONOTONIC: entry of a send, exit of a receive */
	__u64 sock;      /* address of the struct sock: names the socket while it lives */
	__u64 start;     /* the process's start and cgroup (struct netobs_owner); 0 when the kernel */
	__u64 cgroup_id; /* paired the message (the query's are then in `pending`) */
	__u8 local_addr[16];
	__u8 remote_addr[16];
	__u32 pid;       /* thread-group id (the process) */
	__u32 length;    /* bytes the call moved for this message or chunk */
	__u16 local_port;  /* host order */
	__u16 remote_port; /* host order; 0: the peer is not known (a datagram read without its address) */
	__u16 family;    /* AF_INET or AF_INET6 */
	__u16 captured;  /* bytes of data[] filled: min(length, DNS_DATA_MAX) */
	__u8 protocol;   /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 sent;       /* 1: written by the process, 0: read by it */
	__u8 paired;     /* 1: already counted by the kernel; sent only for the names in its answer */
	__u8 pad[5];
	char comm[DNS_COMM_LEN];
	__u8 data[DNS_DATA_MAX];
};

#endif

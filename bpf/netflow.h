/* Structs shared by bpf/netflow.c and exporter/collectors/netflow_maps.py (ctypes mirrors).
 * Any change here must be made there too; the collector checks the sizes against this
 * object's BTF at load time and refuses to run on a mismatch. */
#ifndef NETOBS_NETFLOW_H
#define NETOBS_NETFLOW_H

#define NETFLOW_RTT_BOUNDS 18 /* histogram bucket bounds; there are BOUNDS + 1 buckets */
#define NETFLOW_COMM_LEN 16

enum netflow_direction {
	NETFLOW_DIR_UNKNOWN = 0,
	NETFLOW_DIR_INCOMING = 1, /* accepted by a local listener, or UDP received first */
	NETFLOW_DIR_OUTGOING = 2, /* connected by a local process, or UDP sent first */
};

enum netflow_lost_reason {
	NETFLOW_LOST_FLOW_TABLE_FULL = 0,
	NETFLOW_LOST_FAILED_TABLE_FULL = 1,
	NETFLOW_LOST_NO_SOCKET_STATE = 2,
	NETFLOW_LOST_REASONS = 3,
};

/* One flow: what a series is made of. Ports are host order; 0 means an ephemeral port
 * folded to '*'. IPv4 addresses use the first 4 bytes; IPv4-mapped IPv6 is stored as IPv4. */
struct netflow_key {
	__u8 local_addr[16];
	__u8 remote_addr[16];
	__u64 start;   /* the process's start (struct netobs_owner): a reused pid is another flow */
	__u32 pid;
	__u16 local_port;
	__u16 remote_port;
	__u16 family;  /* AF_INET, AF_INET6, AF_UNIX, or another address family */
	__u8 protocol; /* IPPROTO_TCP, IPPROTO_UDP, or 0 */
	__u8 direction;
};

/* Cumulative counters of one flow, updated by the kernel with atomic adds. */
struct netflow_stats {
	__u64 bytes_sent;
	__u64 bytes_received;
	__u64 packets_sent; /* TCP segments (tcp_sock.segs_out) or datagrams */
	__u64 packets_received;
	__u64 retransmits;
	__u64 established;
	__u64 closed;
	__s64 active;
	__u64 rtt_buckets[NETFLOW_RTT_BOUNDS + 1];
	__u64 rtt_sum_us;
	__u64 rtt_count;
	__u32 srtt_us;   /* last sampled smoothed RTT (tcpi_rtt) */
	__u32 rttvar_us; /* last sampled RTT variance (tcpi_rttvar) */
	__u64 last_seen_ns; /* bpf_ktime_get_ns (CLOCK_MONOTONIC) of the last update */
	__u64 cgroup_id;    /* the owner's cgroup when the flow was created */
	char comm[NETFLOW_COMM_LEN];
};

/* Connections that failed to connect, per flow and errno. */
struct netflow_failed_key {
	struct netflow_key flow;
	__u32 error; /* positive errno: ECONNREFUSED, ETIMEDOUT, ... */
};

#endif

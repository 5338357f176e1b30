/* Structs shared by dns.bpf.c and exporter/collectors/dns_maps.py (ctypes mirrors).
 * Any change here must be made there too; the collector checks the sizes against this
 * object's BTF at load time and refuses to run on a mismatch. */
#ifndef NETOBS_DNS_H
#define NETOBS_DNS_H

#define DNS_DATA_MAX 1024 /* bytes of a DNS message copied; the rest is only counted */
#define DNS_PORTS_MAX 8   /* server ports watched (53 and the configured extra ones) */
#define DNS_COMM_LEN 16

enum dns_lost_reason {
	DNS_LOST_RINGBUF_FULL = 0, /* the ring buffer had no room: user space is behind */
	DNS_LOST_CALLS_FULL = 1,   /* too many threads inside a socket call at once */
	DNS_LOST_REASONS = 2,
};

/* One DNS message (UDP) or one chunk of a DNS-over-TCP stream, as a process read or wrote it.
 * Addresses as in struct netobs_endpoints: IPv4 in the first 4 bytes, IPv4-mapped IPv6 as IPv4. */
struct dns_event {
	__u64 ktime_ns;  /* CLOCK_MONOTONIC: entry of a send, exit of a receive */
	__u64 sock;      /* address of the struct sock: names the socket while it lives */
	__u8 local_addr[16];
	__u8 remote_addr[16];
	__u32 pid;       /* thread-group id (the process) */
	__u32 length;    /* bytes the call moved for this message or chunk */
	__u16 local_port;  /* host order */
	__u16 remote_port; /* host order */
	__u16 family;    /* AF_INET or AF_INET6 */
	__u16 captured;  /* bytes of data[] filled: min(length, DNS_DATA_MAX) */
	__u8 protocol;   /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 sent;       /* 1: written by the process, 0: read by it */
	__u8 pad[6];
	char comm[DNS_COMM_LEN];
	__u8 data[DNS_DATA_MAX];
};

#endif

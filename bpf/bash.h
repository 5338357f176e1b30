/* Structs shared by bash.bpf.c and exporter/collectors/bash_maps.py (ctypes mirrors).
 * Any change here must be made there too; the collector checks the sizes against this
 * object's BTF at load time and refuses to run on a mismatch. */
#ifndef NETOBS_BASH_H
#define NETOBS_BASH_H

#define BASH_LINE_MAX 4096 /* bytes of a line kept by the kernel side; longer ones are truncated */
#define BASH_COMM_LEN 16

enum bash_lost_reason {
	BASH_LOST_RING_FULL = 0,   /* the ring buffer had no room: user space is behind */
	BASH_LOST_READ_FAILED = 1, /* the line could not be read from the process's memory */
	BASH_LOST_REASONS = 2,
};

/* One line returned by readline() in an interactive bash. */
struct bash_event {
	__u64 ktime_ns; /* bpf_ktime_get_ns (CLOCK_MONOTONIC) when readline returned */
	__u32 pid;      /* thread group id, in the initial pid namespace */
	__u32 uid;      /* real uid, in the initial user namespace */
	__u32 len;      /* bytes in line, without the terminating NUL */
	__u8 truncated; /* 1 when the line was longer than BASH_LINE_MAX bytes */
	__u8 pad[3];
	char comm[BASH_COMM_LEN];
	char line[BASH_LINE_MAX + 1]; /* NUL-terminated */
};

#endif

// SPDX-License-Identifier: GPL-2.0
/* A tiny object that exercises every part of exporter.bpf: constants, array, hash, per-CPU and
 * ring buffer maps, tp_btf and tracepoint programs, and programs that cannot attach or load. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

struct loader_test_traffic {
	__u64 bytes;
	__u64 calls;
};

struct loader_test_event {
	__u32 pid;
	__u32 tid;
	char tag[8];
};

const volatile __u32 target_pid = 0;
const volatile char event_tag[8] = {};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} sent_bytes_total SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, struct loader_test_traffic);
} sent_by_pid SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} sent_bytes_per_cpu SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} uprobe_hits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 * 1024);
} getppid_events SEC(".maps");

static __always_inline bool is_target(void)
{
	return (bpf_get_current_pid_tgid() >> 32) == target_pid;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(count_sent, struct sock *sk, int ret, int flags)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	__u32 zero = 0;
	__u64 *total, *on_this_cpu;
	struct loader_test_traffic *traffic, fresh = {};

	if (!is_target() || ret <= 0)
		return 0;
	total = bpf_map_lookup_elem(&sent_bytes_total, &zero);
	if (total)
		__sync_fetch_and_add(total, ret);
	on_this_cpu = bpf_map_lookup_elem(&sent_bytes_per_cpu, &zero);
	if (on_this_cpu)
		*on_this_cpu += ret;
	traffic = bpf_map_lookup_elem(&sent_by_pid, &pid);
	if (!traffic) {
		bpf_map_update_elem(&sent_by_pid, &pid, &fresh, BPF_NOEXIST);
		traffic = bpf_map_lookup_elem(&sent_by_pid, &pid);
		if (!traffic)
			return 0;
	}
	__sync_fetch_and_add(&traffic->bytes, ret);
	__sync_fetch_and_add(&traffic->calls, 1);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_getppid")
int report_getppid(struct trace_event_raw_sys_enter *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct loader_test_event *event;
	int i;

	if (!is_target())
		return 0;
	event = bpf_ringbuf_reserve(&getppid_events, sizeof(*event), 0);
	if (!event)
		return 0;
	event->pid = pid_tgid >> 32;
	event->tid = (__u32)pid_tgid;
	/* Byte by byte: each read stays volatile, so the compiler cannot fold in the zeros. */
	for (i = 0; i < sizeof(event->tag); i++)
		event->tag[i] = event_tag[i];
	bpf_ringbuf_submit(event, 0);
	return 0;
}

/* Loads, but its tracepoint does not exist: attach must fail for it alone. */
SEC("tracepoint/nonexistent/nothing")
int attach_missing(void *ctx)
{
	return 0;
}

/* Not loaded unless enabled ("?"); user space attaches it to a function offset in a library. */
SEC("?uprobe")
int count_uprobe(struct pt_regs *ctx)
{
	__u32 zero = 0;
	__u64 *hits;

	if (!is_target())
		return 0;
	hits = bpf_map_lookup_elem(&uprobe_hits, &zero);
	if (hits)
		__sync_fetch_and_add(hits, 1);
	return 0;
}

/* Not loaded unless enabled ("?"); its BTF target does not exist, so loading it must fail. */
SEC("?tp_btf/nonexistent_btf_tracepoint")
int load_missing(void *ctx)
{
	return 0;
}

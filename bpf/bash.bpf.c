// SPDX-License-Identifier: GPL-2.0
/* bash: every line an interactive bash reads, taken when readline() returns it.
 *
 * User space attaches bash_readline as a uretprobe to each distinct bash binary it finds
 * (the host's and, optionally, those of containers), at the file offset of `readline`.
 * Non-interactive bash (`bash -c`, scripts) never calls readline, so it is not seen.
 * Empty lines (and end of input, a NULL return) are skipped here; everything else goes to
 * user space as-is through the `bash_commands` ring buffer, where it is redacted. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "bash.h"
#include "netobs_filter.h"
#include "netobs_maps.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20); /* about 250 lines of full length */
} bash_commands SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, BASH_LOST_REASONS);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

/* BPF_KRETPROBE reads the return value with PT_REGS_RC; it serves uretprobes as well
 * (libbpf 1.1 has no BPF_URETPROBE). */
SEC("uretprobe")
int BPF_KRETPROBE(bash_readline, const char *line)
{
	struct bash_event *e;
	char first = 0, next = 0;
	long n;

	if (!line || !netobs_current_watched())
		return 0;
	if (bpf_probe_read_user(&first, sizeof(first), line) < 0) {
		netobs_count(&lost, BASH_LOST_READ_FAILED);
		return 0;
	}
	if (!first)
		return 0;

	e = bpf_ringbuf_reserve(&bash_commands, sizeof(*e), 0);
	if (!e) {
		netobs_count(&lost, BASH_LOST_RING_FULL);
		return 0;
	}
	n = bpf_probe_read_user_str(e->line, sizeof(e->line), line);
	if (n <= 0) {
		bpf_ringbuf_discard(e, 0);
		netobs_count(&lost, BASH_LOST_READ_FAILED);
		return 0;
	}
	e->len = n - 1;
	e->truncated = 0;
	/* A full buffer may hold the whole line or only its start: look one byte further. */
	if (n == sizeof(e->line) &&
	    bpf_probe_read_user(&next, sizeof(next), line + BASH_LINE_MAX) == 0 && next)
		e->truncated = 1;
	e->ktime_ns = bpf_ktime_get_ns();
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->uid = (__u32)bpf_get_current_uid_gid();
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	return 0;
}

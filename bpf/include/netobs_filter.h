/* Which processes the programs watch: iLogtail's include/exclude parameters, resolved by user space
 * (exporter/enrich/filters.py) into verdicts per cgroup and per process, written into the maps below
 * (exporter/collectors/watchlist.py). Consulted at the entry of the hooks that run in the context of
 * the process concerned, so excluded workloads cost one or two hash lookups per event.
 *
 * A process's verdict is its pid's entry if it has one, else its cgroup's (cgroup v2 id), else it is
 * watched: a process or container newer than user space's last scan is reported, and user space
 * applies the filters to what it reports (so one that lives between two scans is filtered too). */
#ifndef NETOBS_FILTER_H
#define NETOBS_FILTER_H

#include <bpf/bpf_helpers.h>

#define NETOBS_FILTER_OFF 0     /* no filter parameter: every process */
#define NETOBS_FILTER_EXCLUDE 1 /* only excludes: every process but those with a 0 verdict */
#define NETOBS_FILTER_INCLUDE 2 /* something must match: user space gives a 0 verdict to the rest */

const volatile __u8 netobs_filter_mode = NETOBS_FILTER_OFF;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); /* cgroup v2 id (the cgroup directory's inode) */
	__type(value, __u8); /* 1 watched, 0 not */
} netobs_cgroup_verdicts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32); /* tgid */
	__type(value, __u8);
} netobs_pid_verdicts SEC(".maps");

/* Whether a process (thread group `tgid`, in the cgroup `cgroup`) is watched. */
static __always_inline bool netobs_watched(__u32 tgid, __u64 cgroup)
{
	__u8 *verdict;

	if (netobs_filter_mode == NETOBS_FILTER_OFF)
		return true;
	verdict = bpf_map_lookup_elem(&netobs_pid_verdicts, &tgid);
	if (verdict)
		return *verdict;
	verdict = bpf_map_lookup_elem(&netobs_cgroup_verdicts, &cgroup);
	if (verdict)
		return *verdict;
	return true;
}

/* Whether the current process is watched. */
static __always_inline bool netobs_current_watched(void)
{
	if (netobs_filter_mode == NETOBS_FILTER_OFF)
		return true;
	return netobs_watched(bpf_get_current_pid_tgid() >> 32, bpf_get_current_cgroup_id());
}

#endif

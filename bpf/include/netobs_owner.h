/* Who a flow, a lookup or a request belongs to, in terms user space can resolve after the process is
 * gone: the pid with the process's start (a pid is reused, the pair never is), its cgroup v2 id and
 * its name. Taken once, where a socket, a query or a series is first seen, never on every call.
 *
 * The cgroup's own name and its two ancestors' go into `netobs_cgroups` the first time a cgroup is
 * seen: container runtimes name a container's cgroup after its id, and the pod's after its uid
 * (exporter/enrich/cgroups.py), so user space finds the container of a process that lived for a
 * millisecond even after its cgroup directory has been removed. User space takes the entries
 * (reads and deletes them); a cgroup taken is recorded again when next first seen. */
#ifndef NETOBS_OWNER_H
#define NETOBS_OWNER_H

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include "netobs_sock.h"

#define NETOBS_CGROUP_NAME_LEN 128
#define NETOBS_CGROUP_LEVELS 3 /* the cgroup's directory, its parent's and its grandparent's */
#define NETOBS_CLOCK_TICK_NS 10000000ULL /* 1 / USER_HZ: /proc/<pid>/stat counts the start in these */

struct netobs_owner {
	__u64 start;     /* the process's start, clock ticks after boot (field 22 of /proc/<pid>/stat) */
	__u64 cgroup_id; /* its cgroup v2 id: the inode of the cgroup's directory */
	__u32 pid;       /* thread-group id */
	__u32 pad;
	char comm[16];   /* the thread-group leader's name */
};

/* names[0] is the cgroup's directory name, names[1] its parent's, names[2] its grandparent's; "" above
 * the root (whose own name is ""). */
struct netobs_cgroup_names {
	char names[NETOBS_CGROUP_LEVELS][NETOBS_CGROUP_NAME_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct netobs_cgroup_names);
} netobs_cgroups SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct netobs_cgroup_names);
} netobs_cgroup_scratch SEC(".maps");

/* Kernels before 6.14 name kernfs_node's parent `parent`; later ones `__parent`. Both are read
 * through flavours, so that the code compiles against either kernel's vmlinux.h (x86 and arm64 are
 * dumped from different kernels). */
struct kernfs_node___old {
	struct kernfs_node *parent;
} __attribute__((preserve_access_index));
struct kernfs_node___new {
	struct kernfs_node *__parent;
} __attribute__((preserve_access_index));

static __always_inline struct kernfs_node *netobs_kn_parent(struct kernfs_node *kn)
{
	struct kernfs_node___new *new = (void *)kn;

	if (bpf_core_field_exists(new->__parent))
		return BPF_CORE_READ(new, __parent);
	return BPF_CORE_READ((struct kernfs_node___old *)kn, parent);
}

/* Records the names of a task's cgroup for user space; false if the table refused them. */
static __always_inline bool netobs_cgroup_record(struct task_struct *task, __u64 cgroup_id)
{
	__u32 zero = 0;
	struct netobs_cgroup_names *n = bpf_map_lookup_elem(&netobs_cgroup_scratch, &zero);

	if (!n)
		return false;
	struct kernfs_node *kn = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn);
	for (int i = 0; i < NETOBS_CGROUP_LEVELS; i++) {
		n->names[i][0] = 0;
		if (!kn)
			continue;
		bpf_probe_read_kernel_str(n->names[i], NETOBS_CGROUP_NAME_LEN, BPF_CORE_READ(kn, name));
		kn = netobs_kn_parent(kn);
	}
	return bpf_map_update_elem(&netobs_cgroups, &cgroup_id, n, BPF_ANY) == 0;
}

/* How many times user space has taken the entries of netobs_cgroups (exporter/collectors/owners.py
 * adds 1 after each take's deletes): a cgroup recorded before the last take may have to be recorded
 * again. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} netobs_cgroups_taken SEC(".maps");

/* The cgroup each CPU recorded (or found recorded) last, and the take it was after. A CPU's next
 * owner is nearly always in the same cgroup: two loads then tell its names wait for user space (array
 * lookups, which the verifier inlines), where the hash lookup was a helper call. */
struct netobs_cgroup_last {
	__u64 id;
	__u64 taken;
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct netobs_cgroup_last);
} netobs_cgroup_last SEC(".maps");

/* This CPU's entry of netobs_cgroup_last, and in *take the count of user space's takes; NULL if a
 * lookup failed (never: both are arrays). */
static __always_inline struct netobs_cgroup_last *netobs_cgroup_last_get(__u64 *take)
{
	__u32 zero = 0;
	struct netobs_cgroup_last *last = bpf_map_lookup_elem(&netobs_cgroup_last, &zero);
	__u64 *taken = bpf_map_lookup_elem(&netobs_cgroups_taken, &zero);

	if (!last || !taken)
		return NULL;
	*take = *taken;
	return last;
}

/* Records the names of a task's cgroup, unless they are already waiting for user space. */
static __always_inline void netobs_cgroup_seen(struct task_struct *task, __u64 cgroup_id)
{
	__u64 take;
	struct netobs_cgroup_last *last = netobs_cgroup_last_get(&take);

	if (!last || (last->id == cgroup_id && last->taken == take))
		return;
	if (!bpf_map_lookup_elem(&netobs_cgroups, &cgroup_id) && !netobs_cgroup_record(task, cgroup_id))
		return;
	last = netobs_cgroup_last_get(&take); /* looked up again: nothing is kept across the record */
	if (last) {
		last->id = cgroup_id;
		last->taken = take;
	}
}

/* A running task's process start, and its cgroup in *cgroup_id (what bpf_get_current_cgroup_id gives
 * the current task), whose names it records. `task` is a BTF pointer (bpf_get_current_task_btf):
 * plain loads, no helper call. */
static __always_inline __u64 netobs_task_identity(struct task_struct *task, __u64 *cgroup_id)
{
	__u64 id = task->cgroups->dfl_cgrp->kn->id;

	*cgroup_id = id;
	netobs_cgroup_seen(task, id);
	return task->group_leader->start_boottime / NETOBS_CLOCK_TICK_NS;
}

/* The current process's start, and its cgroup in *cgroup_id, whose names it records. */
static __always_inline __u64 netobs_current_identity(__u64 *cgroup_id)
{
	return netobs_task_identity(bpf_get_current_task_btf(), cgroup_id);
}

/* The current process as user space will attribute it; records its cgroup's names. One helper call:
 * the rest are loads through the task's BTF pointer. */
static __always_inline void netobs_current_owner(struct netobs_owner *o)
{
	struct task_struct *task = bpf_get_current_task_btf();

	o->pid = task->tgid;
	task_process_name(task, &o->comm);
	o->start = netobs_task_identity(task, &o->cgroup_id);
}

/* A task's process, as netobs_current_owner takes the current one (for iterators, which run in user
 * space's context, not the task's). */
static __always_inline void netobs_task_owner(struct task_struct *task, struct netobs_owner *o)
{
	struct task_struct *leader = BPF_CORE_READ(task, group_leader);

	o->pid = BPF_CORE_READ(task, tgid);
	o->start = BPF_CORE_READ(leader, start_boottime) / NETOBS_CLOCK_TICK_NS;
	o->cgroup_id = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
	BPF_CORE_READ_STR_INTO(&o->comm, leader, comm);
	netobs_cgroup_seen(task, o->cgroup_id);
}

/* The current process's start only: for what is keyed by process on every call (datagrams of other
 * socket families), where the cgroup is taken when the flow is created. */
static __always_inline __u64 netobs_current_start(void)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	return BPF_CORE_READ(task, group_leader, start_boottime) / NETOBS_CLOCK_TICK_NS;
}

#endif

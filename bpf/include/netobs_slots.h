/* Per-socket entries found without a map call: a table of slots, an array indexed by a hash of the
 * socket's address, each taken and freed with one atomic operation, and a hash map behind it for a
 * socket whose slot another socket holds.
 *
 * Why: an array lookup is a few instructions the verifier inlines, where each hash map call returns
 * through this kernel's return thunks, and a hash map's insert allocates and its delete frees, each
 * under a bucket lock. A short connection's per-socket entries were half of netflow's program time
 * (docs/benchmarks.md).
 *
 * A table is an array map `slots` (NETOBS_SLOTS), a hash (or LRU hash) map `more` from the socket's
 * id to a value, and its index in netobs_spilled, which counts the entries `more` may hold: while
 * it holds none, nothing looks there. The functions take the maps as arguments and are always
 * inlined, so that the verifier sees each call with its own maps. */
#ifndef NETOBS_SLOTS_H
#define NETOBS_SLOTS_H

#include <bpf/bpf_helpers.h>

#ifndef EEXIST
#define EEXIST 17
#endif

#define NETOBS_SLOT_BUSY 1ULL /* or'ed into a slot's id while its value is being written */

enum netobs_slot_table {
	NETOBS_SLOTS_NETFLOW_TCP = 0,
	NETOBS_SLOTS_L7_SNIFFED = 1,
	NETOBS_SLOT_TABLES = 2,
};

/* Defines `name`, a table of slots for values of type `value_t`: an array map of 1 << bits, each slot
 * the socket's id (netobs_sock_id; 0: free) and its value. */
#define NETOBS_SLOTS(name, value_t, bits)                  \
	struct name##_slot {                               \
		__u64 sk;                                  \
		value_t value;                             \
	};                                                 \
	struct {                                           \
		__uint(type, BPF_MAP_TYPE_ARRAY);          \
		__uint(max_entries, 1 << (bits));          \
		__type(key, __u32);                        \
		__type(value, struct name##_slot);         \
	} name SEC(".maps")

/* Per table: how many entries its hash map may hold, never fewer than it does. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NETOBS_SLOT_TABLES);
	__type(key, __u32);
	__type(value, __s64);
} netobs_spilled SEC(".maps");

/* The socket's address as a number: a key, and the hash that picks its slot. The verifier refuses
 * arithmetic on a pointer but not the difference of two: this is the socket's distance from a map of
 * this object, the same in every program and every table. */
static __always_inline __u64 netobs_sock_id(const void *sk)
{
	__u64 id = (__u64)sk - (__u64)&netobs_spilled;

	asm volatile("" : "+r"(id)); /* a number from here on: the compiler must not fold it into a pointer */
	return id;
}

static __always_inline void *netobs_slot_of(void *slots, __u32 bits, __u64 id)
{
	__u32 i = (id * 0x9E3779B97F4A7C15ULL) >> (64 - bits); /* Fibonacci hashing */

	return bpf_map_lookup_elem(slots, &i);
}

static __always_inline __s64 *netobs_slots_spilled(__u32 table)
{
	return bpf_map_lookup_elem(&netobs_spilled, &table);
}

/* The value of socket `id`, or NULL. */
static __always_inline void *netobs_slot_find(void *slots, __u32 bits, void *more, __u32 table, __u64 id)
{
	__u64 *slot = netobs_slot_of(slots, bits, id);

	if (slot && *slot == id)
		return slot + 1;
	__s64 *spilled = netobs_slots_spilled(table);
	if (spilled && *spilled > 0)
		return bpf_map_lookup_elem(more, &id);
	return NULL;
}

/* `init` (`size` bytes) becomes the value of socket `id`, replacing one left there: in its slot if that
 * is free, or else in `more`. Returns the value, or NULL if `more` is full. */
static __always_inline void *netobs_slot_put(void *slots, __u32 bits, void *more, __u32 table, __u64 id,
					     const void *init, __u32 size)
{
	__u64 *slot = netobs_slot_of(slots, bits, id);
	__s64 *spilled = netobs_slots_spilled(table);

	if (!slot || !spilled)
		return NULL;
	/* The slot is taken while it is written: a reader that holds no socket lock (the walk of files)
	 * never reads another socket's value as this one's. */
	if (__sync_val_compare_and_swap(slot, 0, id | NETOBS_SLOT_BUSY) == 0 ||
	    __sync_val_compare_and_swap(slot, id, id | NETOBS_SLOT_BUSY) == id) {
		__builtin_memcpy(slot + 1, init, size);
		__sync_lock_test_and_set(slot, id);
		return slot + 1;
	}
	__sync_fetch_and_add(spilled, 1); /* before the entry is there: a reader of 0 cannot miss it */
	long err = bpf_map_update_elem(more, &id, init, BPF_NOEXIST);
	if (err == -EEXIST) {
		__sync_fetch_and_add(spilled, -1);
		err = bpf_map_update_elem(more, &id, init, BPF_EXIST);
	} else if (err) {
		__sync_fetch_and_add(spilled, -1);
	}
	return err ? NULL : bpf_map_lookup_elem(more, &id);
}

/* Socket `id` has no value any more. */
static __always_inline void netobs_slot_drop(void *slots, __u32 bits, void *more, __u32 table, __u64 id)
{
	__u64 *slot = netobs_slot_of(slots, bits, id);
	__s64 *spilled = netobs_slots_spilled(table);

	if (slot && *slot == id) {
		__sync_val_compare_and_swap(slot, id, 0);
		return;
	}
	if (spilled && *spilled > 0 && bpf_map_delete_elem(more, &id) == 0)
		__sync_fetch_and_add(spilled, -1);
}

#endif

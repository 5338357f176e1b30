/* What every feature does with its maps, written once: count an event in an array of counters (the
 * lost events of each reason), find an entry or insert it, and find a histogram bucket. */
#ifndef NETOBS_MAPS_H
#define NETOBS_MAPS_H

#include <bpf/bpf_helpers.h>

#ifndef EEXIST
#define EEXIST 17
#endif

/* Adds one to counter `index` of an array map of __u64 (a reason the feature lost an event). */
static __always_inline void netobs_count(void *counters, __u32 index)
{
	__u64 *n = bpf_map_lookup_elem(counters, &index);

	if (n)
		__sync_fetch_and_add(n, 1);
}

/* Inserts `init` at `key` unless an entry is there, and returns the entry; NULL if the map is full.
 * Two CPUs inserting the same key at once both get the one entry that won. */
static __always_inline void *netobs_insert(void *map, const void *key, const void *init)
{
	long err = bpf_map_update_elem(map, key, init, BPF_NOEXIST);

	if (err && err != -EEXIST)
		return NULL;
	return bpf_map_lookup_elem(map, key);
}

/* The entry at `key`, inserted from `init` if there is none; NULL if the map is full. */
static __always_inline void *netobs_lookup_or_insert(void *map, const void *key, const void *init)
{
	void *v = bpf_map_lookup_elem(map, key);

	return v ? v : netobs_insert(map, key, init);
}

/* The histogram bucket of v among the first n of `max` ascending upper bounds (bucket i holds
 * bounds[i-1] < v <= bounds[i]; bucket n what exceeds them all): how many bounds v exceeds. `max` is
 * a constant at each call. Branch-free, so the verifier walks one path, not one per bucket. Values
 * and bounds stay below 2^63. */
#define NETOBS_BUCKET(v, bounds, n, max)                                          \
	({                                                                        \
		__u64 __bucket = 0;                                               \
		_Pragma("unroll") for (__u32 __i = 0; __i < (max); __i++)         \
			if (__i < (n))                                            \
				__bucket += ((__u64)(bounds)[__i] - (__u64)(v)) >> 63; \
		(__u32) __bucket;                                                 \
	})

#endif

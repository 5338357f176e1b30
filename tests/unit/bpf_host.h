/* What the kernel's parsers need to build for the host (tests/unit/l7_host.c, tests/unit/h2_host.c):
 * bpf_loop becomes a plain loop with the same contract (the callback returns 1 to stop) and the
 * unaligned 8-byte load a memcpy. Everything else is the very code the BPF program runs. */
#ifndef NETOBS_BPF_HOST_H
#define NETOBS_BPF_HOST_H

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

#define L7_LOOP(n, cb, ctx)                                   \
	do {                                                  \
		for (__u64 l7_i_ = 0; l7_i_ < (n); l7_i_++)   \
			if ((cb)(l7_i_, (ctx)))               \
				break;                        \
	} while (0)
#define L7_LOAD64(w, src) memcpy(&(w), (src), sizeof(__u64))

#include <linux/types.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#endif

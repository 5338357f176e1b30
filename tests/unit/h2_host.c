/* The kernel's HPACK decoder (bpf/l7_hpack.h), built for the host so that tests/unit/test_hpack.py can feed it
 * RFC 7541's examples, the blocks of an encoder and random bytes through ctypes.
 *
 *   clang -Ibpf -Wall -Werror -O2 -shared -fPIC -o h2_host.so tests/unit/h2_host.c
 *
 * tests/unit/bpf_host.h makes bpf_loop a plain loop; everything else is the very code the BPF program runs. */

#include "bpf_host.h"
#include "l7_hpack.h"

/* The sizes of the structs, then the offset of every field of struct h2_fields, struct hpack_table and
 * struct hpack_value, for the ctypes mirrors to check themselves. */
const unsigned long hpack_layout[] = {
	sizeof(struct hpack_table),
	sizeof(struct hpack_value),
	sizeof(struct h2_fields),
	offsetof(struct h2_fields, status),
	offsetof(struct h2_fields, seen),
	offsetof(struct h2_fields, unknown),
	offsetof(struct h2_fields, grpc),
	offsetof(struct h2_fields, error),
	offsetof(struct h2_fields, method),
	offsetof(struct h2_fields, path),
	offsetof(struct h2_fields, authority),
	offsetof(struct h2_fields, grpc_status),
	offsetof(struct hpack_table, inserted),
	offsetof(struct hpack_table, known),
	offsetof(struct hpack_table, kept),
	offsetof(struct hpack_table, pad),
	offsetof(struct hpack_table, field),
	offsetof(struct hpack_table, value),
	offsetof(struct hpack_table, values),
	offsetof(struct hpack_value, len),
	offsetof(struct hpack_value, pad),
	offsetof(struct hpack_value, value),
};

/* The lengths the mirrors and the tests' expectations are built with. */
const unsigned long hpack_constants[] = {
	L7_CAPTURE_MAX, L7_OP_LEN, H2_VALUE_LEN, HPACK_DEPTH, HPACK_VALUES, HPACK_FIELDS_PER_BLOCK,
};

#include "parse_host.h"

/* The block is decoded in the window, which holds its first n bytes; it ends at `end`: a block larger
 * than the window, as its frame's length says, goes on past it. */
void hpack_decode_over(const unsigned char *block, unsigned n, unsigned end, int fill, const unsigned char *stale,
		       unsigned stale_n, struct hpack_table *t, struct h2_fields *out)
{
	hpack_decode(load(block, n, fill, stale, stale_n), 0, end, t, out);
}

/* Decodes one block with *t carried between calls. */
void hpack_decode_block(const unsigned char *block, unsigned n, struct hpack_table *t, struct h2_fields *out)
{
	hpack_decode_over(block, n, n, 0xff, 0, 0, t, out);
}

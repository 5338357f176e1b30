/* HPACK (RFC 7541): the header blocks of HTTP/2, decoded for the fields netobs reports.
 *
 * A header block refers to entries that earlier blocks of its connection and direction inserted into
 * a dynamic table, newest first (index 62 is the latest insertion still in the table). The decoder
 * keeps no sizes and evicts nothing: an encoder never refers to an evicted entry, so index 62 + k is
 * always the k-th latest insertion, and remembering the latest insertions is enough for any
 * reference up to that depth. Only the fields netobs reports keep their value; an insertion of any
 * other field is remembered as `H2_FIELD_OTHER`.
 *
 * When a block is missed or cut short (the exporter started mid-connection, a block larger than the
 * window), insertions may have been missed, so older entries are no longer known: `known` counts the
 * latest insertions that are certain, and a reference past them gives `unknown`, never a guess.
 *
 * The decoder reads the window of a struct l7_parse below p->n and writes only *t and *out, so the
 * same code builds for the kernel (bpf_loop) and for the unit tests (tests/unit/h2_host.c). */
#ifndef NETOBS_L7_HPACK_H
#define NETOBS_L7_HPACK_H

#include "l7_http.h"

#define H2_VALUE_LEN 64  /* bytes of a value kept: :path and :authority (L7_TARGET_LEN, L7_AUTHORITY_LEN) */
#define HPACK_DEPTH 256  /* the latest insertions of a dynamic table whose field is remembered */
#define HPACK_VALUES 32  /* the latest values of reported fields remembered (both powers of two) */
#define HPACK_FIELDS_PER_BLOCK 64 /* representations of one block decoded at most */

/* The fields netobs reports. */
enum h2_field {
	H2_FIELD_OTHER = 0,
	H2_FIELD_METHOD = 1,
	H2_FIELD_PATH = 2,
	H2_FIELD_AUTHORITY = 3,
	H2_FIELD_STATUS = 4,
	H2_FIELD_CONTENT_TYPE = 5,
	H2_FIELD_GRPC_STATUS = 6,
	H2_FIELD_UNKNOWN = 7, /* an insertion whose name referred to an entry not known */
	H2_FIELDS = 8,
};

/* The value of an insertion of a reported field. */
struct hpack_value {
	__u8 len;    /* bytes of value (at most H2_VALUE_LEN: longer values are cut) */
	__u8 pad[7]; /* the value starts on a word: it is copied a word at a time */
	char value[H2_VALUE_LEN];
};

/* The dynamic table of one direction of a connection, as far as it is known: the field of each of
 * the latest HPACK_DEPTH insertions, and the values of the latest HPACK_VALUES that are reported. A
 * 4,096-byte table (HTTP/2's default) holds at most 128 entries, each costing 32 bytes and more, so
 * every entry it can hold is within reach; an encoder that adds an entry per request (a changing
 * grpc-timeout) does not push a :path inserted long ago out of it. */
struct hpack_table {
	__u32 inserted; /* insertions since the table began: insertion i is at [i % HPACK_DEPTH] */
	__u32 known;    /* the latest `known` insertions are certain (at most HPACK_DEPTH) */
	__u32 kept;     /* values kept since the table began: value k is values[k % HPACK_VALUES] */
	__u32 pad;
	__u8 field[HPACK_DEPTH];   /* enum h2_field */
	__u16 value[HPACK_DEPTH];  /* a reported field's value number (kept, modulo 2^16) */
	struct hpack_value values[HPACK_VALUES];
};

/* What one header block said. A field absent from the block keeps its value (zeros when the caller
 * cleared *out first), so a HEADERS block and its CONTINUATIONs decode into one struct. */
struct h2_fields {
	__u32 status;   /* :status; 0: none */
	__u8 seen;      /* bit (1 << enum h2_field) per field found */
	__u8 unknown;   /* a representation referred to an entry that is not known: it may have been any field */
	__u8 grpc;      /* content-type is application/grpc (or application/grpc+...) */
	__u8 error;     /* the block is malformed, or cut short by the window: insertions may have been missed */
	char method[L7_OP_LEN];
	char path[H2_VALUE_LEN];      /* as sent, not folded; cut at H2_VALUE_LEN */
	char authority[H2_VALUE_LEN];
	char grpc_status[L7_OP_LEN];  /* the grpc-status value, as sent ("0" ... "16") */
};

#include "l7_hpack_huffman.h"

#ifndef LIT3
#define LIT3(a, b, c) (LIT2(a, b) | L7_B(c, 2))
#endif

struct hpack_ctx {
	struct l7_parse *p;
	struct hpack_table *t;
	struct h2_fields *out;
};

/* The decoder's loop state lives in *p (the parse window's scratch fields), not on the stack: the
 * verifier then checks one iteration of a loop instead of following every value of its counter.
 *   pos:   where the next representation (or string) starts;  vend: where the block ends
 *   vpos, vlimit: the string being read;  out: bytes decoded;  vwant: the most to keep
 *   vcount: the Huffman state;  vspace: the state may end a string;  vbad: malformed
 *   vmode:  1 when a name is decoded (into head.op), 0 for a value (into head.target) */

/* Marks the block malformed, or cut short: what it inserted past here is unknown. */
static __always_inline long hpack_fail(struct hpack_ctx *x)
{
	x->out->error = 1;
	x->t->known = 0;
	return 1;
}

/* An integer with a prefix of `mask` bits (RFC 7541 5.1) at p->pos, which moves past it. Values
 * past 2^28 set *bad: no length or index of a header block is that large. */
static __always_inline __u32 hpack_int(struct l7_parse *p, __u8 mask, bool *bad)
{
	__u32 pos = p->pos, v = l7_at(p, pos) & mask;

	pos++;
	if (v == mask) {
		*bad = true;
#pragma unroll
		for (int k = 0; k < 4; k++) {
			__u8 b = l7_at(p, pos);
			pos++;
			v += (__u32)(b & 0x7f) << (7 * k);
			if (!(b & 0x80)) {
				*bad = false;
				break;
			}
		}
	}
	p->pos = pos;
	return v;
}

static __always_inline void hpack_put(struct l7_parse *p, __u8 c)
{
	__u32 out = p->out;

	if (p->vmode)
		p->head.op[out & (L7_OP_LEN - 1)] = c;
	else
		p->head.target[out & (H2_VALUE_LEN - 1)] = c;
	p->out = out + 1;
}

/* One nibble of a Huffman string through the decoding machine; false if the string is malformed. */
static __always_inline bool huff_nibble(struct l7_parse *p, __u32 nibble)
{
	__u32 e = hpack_huff_fsm[((p->vcount & 0xff) << 4 | (nibble & 15)) & (256 * 16 - 1)];

	if (e & HPACK_HUFF_FAIL)
		return false;
	if ((e & HPACK_HUFF_EMIT) && p->out < p->vwant)
		hpack_put(p, (e >> 16) & 0xff);
	p->vcount = e & 0xff;
	p->vspace = !!(e & HPACK_HUFF_ACCEPT);
	return true;
}

static long huff_byte(__u64 i, void *ctx)
{
	struct l7_parse *p = ((struct l7_loop_ctx *)ctx)->p;
	__u32 pos = p->vpos + (__u32)i;
	__u8 b;

	if (pos >= p->vlimit || p->out >= p->vwant)
		return 1;
	b = l7_at(p, pos);
	if (!huff_nibble(p, b >> 4) || !huff_nibble(p, b)) {
		p->vbad = 1;
		return 1;
	}
	return 0;
}

static long raw_byte(__u64 i, void *ctx)
{
	struct l7_parse *p = ((struct l7_loop_ctx *)ctx)->p;
	__u32 pos = p->vpos + (__u32)i;

	if (pos >= p->vlimit || p->out >= p->vwant)
		return 1;
	hpack_put(p, l7_at(p, pos));
	return 0;
}

/* The string literal at p->pos (RFC 7541 5.2), which moves past it: its first `want` bytes decoded
 * into head.op (name) or head.target (value) if `keep`, else skipped. Returns the bytes kept; sets
 * p->vbad if it is malformed or goes past the block. */
static __always_inline __u32 hpack_string(struct l7_parse *p, bool keep, bool name)
{
	struct l7_loop_ctx ctx = {.p = p};
	bool huffman = l7_at(p, p->pos) & 0x80, bad = false;
	__u32 len = hpack_int(p, 0x7f, &bad);

	/* past the block, or past the window: what the window does not hold is never guessed */
	p->vbad = bad || len > p->vend || p->pos > p->vend - len || p->pos + len > p->n;
	if (p->vbad)
		return 0;
	p->vpos = p->pos;
	p->vlimit = p->pos + len;
	p->pos += len;
	p->out = 0;
	if (!keep)
		return 0;
	p->vmode = name;
	p->vwant = name ? L7_OP_LEN - 1 : H2_VALUE_LEN;
	p->vcount = 0;
	p->vspace = 1;
	if (!huffman) {
		L7_LOOP(H2_VALUE_LEN, raw_byte, &ctx);
		return p->out;
	}
	/* a value cut at vwant ends early: its padding is not checked */
	L7_LOOP(H2_VALUE_LEN * 4, huff_byte, &ctx);
	if (p->out < p->vwant && !p->vspace)
		p->vbad = 1;
	return p->out;
}

/* Copies n bytes of src (n <= size) into dst and clears the rest: a word at a time. */
#define HPACK_COPY(dst, src, n, size)                                                  \
	do {                                                                           \
		_Pragma("unroll") for (int __w = 0; __w < (size) / 8; __w++) {         \
			__u64 __v;                                                     \
			__u32 __keep = (n) > __w * 8 ? (n) - __w * 8 : 0;              \
			L7_LOAD64(__v, (const char *)(src) + __w * 8);                 \
			*(__u64 *)((char *)(dst) + __w * 8) = __v & L7_MASK(__keep);   \
		}                                                                      \
	} while (0)

/* The field of a literal name decoded into head.op (len bytes). */
static __always_inline __u8 name_field(struct l7_parse *p, __u32 len)
{
	__u64 w0, w1;

	L7_LOAD64(w0, p->head.op);
	L7_LOAD64(w1, p->head.op + 8);
	w0 &= L7_MASK(len);
	w1 &= L7_MASK(len > 8 ? len - 8 : 0);
	if (len == 7 && w0 == LIT7(':', 'm', 'e', 't', 'h', 'o', 'd'))
		return H2_FIELD_METHOD;
	if (len == 5 && w0 == LIT5(':', 'p', 'a', 't', 'h'))
		return H2_FIELD_PATH;
	if (len == 10 && w0 == LIT8(':', 'a', 'u', 't', 'h', 'o', 'r', 'i') && w1 == LIT2('t', 'y'))
		return H2_FIELD_AUTHORITY;
	if (len == 7 && w0 == LIT7(':', 's', 't', 'a', 't', 'u', 's'))
		return H2_FIELD_STATUS;
	if (len == 12 && w0 == LIT8('c', 'o', 'n', 't', 'e', 'n', 't', '-') && w1 == LIT4('t', 'y', 'p', 'e'))
		return H2_FIELD_CONTENT_TYPE;
	if (len == 11 && w0 == LIT8('g', 'r', 'p', 'c', '-', 's', 't', 'a') && w1 == (LIT2('t', 'u') | L7_B('s', 2)))
		return H2_FIELD_GRPC_STATUS;
	return H2_FIELD_OTHER;
}

/* The field of static table entry idx (RFC 7541 Appendix A), 1 <= idx <= 61. */
static __always_inline __u8 static_field(__u32 idx)
{
	if (idx == 1)
		return H2_FIELD_AUTHORITY;
	if (idx == 2 || idx == 3)
		return H2_FIELD_METHOD;
	if (idx == 4 || idx == 5)
		return H2_FIELD_PATH;
	if (idx >= 8 && idx <= 14)
		return H2_FIELD_STATUS;
	if (idx == 31)
		return H2_FIELD_CONTENT_TYPE;
	return H2_FIELD_OTHER;
}

/* The :status values of static entries 8-14, as a 3-byte word each. */
static __always_inline __u64 static_status(__u32 idx)
{
	switch (idx) {
	case 8:
		return LIT3('2', '0', '0');
	case 9:
		return LIT3('2', '0', '4');
	case 10:
		return LIT3('2', '0', '6');
	case 11:
		return LIT3('3', '0', '4');
	case 12:
		return LIT3('4', '0', '0');
	case 13:
		return LIT3('4', '0', '4');
	}
	return LIT3('5', '0', '0');
}

/* Writes the value of static entry idx (one with a value netobs keeps) into head.target; its length. */
static __always_inline __u32 static_value(struct l7_parse *p, __u32 idx)
{
	__u64 v = 0;
	__u32 len = 3;

	if (idx == 2) {
		v = LIT3('G', 'E', 'T');
	} else if (idx == 3) {
		v = LIT4('P', 'O', 'S', 'T');
		len = 4;
	} else if (idx == 4) {
		v = '/';
		len = 1;
	} else if (idx == 5) {
		v = LIT8('/', 'i', 'n', 'd', 'e', 'x', '.', 'h');
		*(__u64 *)(p->head.target + 8) = LIT3('t', 'm', 'l');
		len = 11;
	} else if (idx >= 8 && idx <= 14) {
		v = static_status(idx);
	} else {
		len = 0;
	}
	*(__u64 *)p->head.target = v;
	return len;
}

/* Where dynamic index idx (>= 62) is in the table's arrays, or HPACK_DEPTH if it is not known. */
static __always_inline __u32 dynamic_at(const struct hpack_table *t, __u32 idx)
{
	__u32 back = idx - 62;

	if (back >= t->known || back >= HPACK_DEPTH)
		return HPACK_DEPTH;
	return (t->inserted - 1 - back) & (HPACK_DEPTH - 1);
}

/* The field of dynamic index idx (>= 62). */
static __always_inline __u8 dynamic_field(const struct hpack_table *t, __u32 idx)
{
	__u32 at = dynamic_at(t, idx);

	return at < HPACK_DEPTH ? t->field[at & (HPACK_DEPTH - 1)] : H2_FIELD_UNKNOWN;
}

/* The field of dynamic index idx, and where its value is if it is reported: NULL when the entry is
 * not known, or its value no longer kept (then *field is H2_FIELD_UNKNOWN). */
static __always_inline struct hpack_value *dynamic_entry(struct hpack_table *t, __u32 idx, __u8 *field)
{
	__u32 at = dynamic_at(t, idx);
	__u16 v;

	*field = at < HPACK_DEPTH ? t->field[at & (HPACK_DEPTH - 1)] : H2_FIELD_UNKNOWN;
	if (*field == H2_FIELD_OTHER || *field == H2_FIELD_UNKNOWN)
		return NULL;
	v = t->value[at & (HPACK_DEPTH - 1)];
	if ((__u16)(t->kept - v) - 1U >= HPACK_VALUES) { /* kept, then pushed out by later values */
		*field = H2_FIELD_UNKNOWN;
		return NULL;
	}
	return &t->values[v & (HPACK_VALUES - 1)];
}

/* A field's value (head.target, len bytes) goes where the block's result keeps it. */
static __always_inline void hpack_emit(struct l7_parse *p, struct h2_fields *out, __u8 field, __u32 len)
{
	const char *v = (const char *)p->head.target;
	__u64 w0, w1;

	out->seen |= 1 << (field & 7);
	switch (field) {
	case H2_FIELD_METHOD:
		HPACK_COPY(out->method, v, len < L7_OP_LEN - 1 ? len : L7_OP_LEN - 1, L7_OP_LEN);
		break;
	case H2_FIELD_PATH:
		HPACK_COPY(out->path, v, len, H2_VALUE_LEN);
		break;
	case H2_FIELD_AUTHORITY:
		HPACK_COPY(out->authority, v, len, H2_VALUE_LEN);
		break;
	case H2_FIELD_STATUS:
		out->status = len == 3 && v[0] >= '1' && v[0] <= '9' && v[1] >= '0' && v[1] <= '9' && v[2] >= '0' &&
					      v[2] <= '9'
				      ? (v[0] - '0') * 100 + (v[1] - '0') * 10 + (v[2] - '0')
				      : 0;
		break;
	case H2_FIELD_CONTENT_TYPE:
		L7_LOAD64(w0, v);
		L7_LOAD64(w1, v + 8);
		out->grpc = len >= 16 && w0 == LIT8('a', 'p', 'p', 'l', 'i', 'c', 'a', 't') &&
			    w1 == LIT8('i', 'o', 'n', '/', 'g', 'r', 'p', 'c') && (len == 16 || v[16] == '+' || v[16] == ';');
		break;
	case H2_FIELD_GRPC_STATUS:
		HPACK_COPY(out->grpc_status, v, len < L7_OP_LEN - 1 ? len : L7_OP_LEN - 1, L7_OP_LEN);
		break;
	case H2_FIELD_UNKNOWN:
		out->unknown = 1;
		break;
	}
}

/* A field added to the dynamic table: the table's next insertion. */
static __always_inline void hpack_insert(struct l7_parse *p, struct hpack_table *t, __u8 field, __u32 len)
{
	__u32 at = t->inserted & (HPACK_DEPTH - 1);

	t->field[at] = field;
	if (field != H2_FIELD_OTHER && field != H2_FIELD_UNKNOWN) {
		struct hpack_value *v = &t->values[t->kept & (HPACK_VALUES - 1)];
		t->value[at] = t->kept;
		t->kept++;
		v->len = len;
		HPACK_COPY(v->value, p->head.target, len, H2_VALUE_LEN);
	}
	t->inserted++;
	if (t->known < HPACK_DEPTH)
		t->known++;
}

/* An indexed field (RFC 7541 6.1). */
static __always_inline long hpack_indexed(struct hpack_ctx *x, __u32 idx)
{
	struct l7_parse *p = x->p;
	__u8 field;
	__u32 len;

	if (idx == 0)
		return hpack_fail(x);
	if (idx < 62) {
		field = static_field(idx);
		if (field != H2_FIELD_OTHER)
			hpack_emit(p, x->out, field, static_value(p, idx));
		return 0;
	}
	struct hpack_value *v = dynamic_entry(x->t, idx, &field);
	if (field == H2_FIELD_UNKNOWN)
		x->out->unknown = 1;
	if (!v)
		return 0;
	len = v->len < H2_VALUE_LEN ? v->len : H2_VALUE_LEN;
	HPACK_COPY(p->head.target, v->value, len, H2_VALUE_LEN);
	hpack_emit(p, x->out, field, len);
	return 0;
}

/* A literal field (RFC 7541 6.2), with its name indexed (name > 0) or literal. */
static __always_inline long hpack_literal(struct hpack_ctx *x, __u32 name, bool insert)
{
	struct l7_parse *p = x->p;
	__u8 field = H2_FIELD_OTHER;
	__u32 len;

	if (!name) {
		len = hpack_string(p, true, true);
		if (p->vbad)
			return hpack_fail(x);
		field = len < L7_OP_LEN - 1 ? name_field(p, len) : H2_FIELD_OTHER;
	} else if (name < 62) {
		field = static_field(name);
	} else {
		field = dynamic_field(x->t, name);
	}
	len = hpack_string(p, field != H2_FIELD_OTHER && field != H2_FIELD_UNKNOWN, false);
	if (p->vbad)
		return hpack_fail(x);
	if (field != H2_FIELD_OTHER)
		hpack_emit(p, x->out, field, len);
	if (insert)
		hpack_insert(p, x->t, field, len);
	return 0;
}

/* One representation of the block; 1 when the block is done. */
static long hpack_step(__u64 i, void *data)
{
	struct hpack_ctx *x = data;
	struct l7_parse *p = x->p;
	bool bad = false;
	__u32 v;
	__u8 b;

	if (p->pos >= p->vend)
		return 1;
	if (p->pos >= p->n)
		return hpack_fail(x); /* the block goes on past the window */
	b = l7_at(p, p->pos);
	if (b & 0x80) {
		v = hpack_int(p, 0x7f, &bad);
		return bad || p->pos > p->vend || p->pos > p->n ? hpack_fail(x) : hpack_indexed(x, v);
	}
	if ((b & 0xe0) == 0x20) { /* dynamic table size update: nothing is evicted here (see the top) */
		hpack_int(p, 0x1f, &bad);
		return bad || p->pos > p->vend || p->pos > p->n ? hpack_fail(x) : 0;
	}
	v = hpack_int(p, b & 0x40 ? 0x3f : 0x0f, &bad);
	if (bad || p->pos > p->vend || p->pos > p->n)
		return hpack_fail(x);
	return hpack_literal(x, v, b & 0x40);
}

/* Decodes the header block (or fragment) in p->buf[from, end) into *out, with the dynamic table *t
 * of its connection and direction. A block going past the window (p->n) is decoded as far as it
 * goes and marked an error. */
static __always_inline void hpack_decode(struct l7_parse *p, __u32 from, __u32 end, struct hpack_table *t,
					 struct h2_fields *out)
{
	struct hpack_ctx x = {.p = p, .t = t, .out = out};

	p->pos = from;
	p->vend = end;
	L7_LOOP(HPACK_FIELDS_PER_BLOCK, hpack_step, &x);
	if (p->pos < p->vend && !out->error)
		hpack_fail(&x); /* more representations than are decoded */
}

#endif

/* HTTP/1.x message heads, parsed from the bytes a process read or wrote.
 *
 * The parser works on one window (the first L7.CaptureBytes of a message) in a struct l7_parse and
 * fills its struct l7_head: method, route, Host, version or status, where the head ends and how
 * the body is framed. It only reads p->buf below p->n and writes p->head, so the same code builds
 * for the kernel (bpf_loop) and for the unit tests (tests/unit/l7_host.c, plain loops). */
#ifndef NETOBS_L7_HTTP_H
#define NETOBS_L7_HTTP_H

#include "l7.h"

#ifndef L7_LOOP
#define L7_LOOP(n, cb, ctx) bpf_loop((n), (cb), (ctx), 0)
#endif

#define L7_BUF_MASK (L7_CAPTURE_MAX - 1)

/* One 8-byte load, aligned or not: BPF allows unaligned map value access where the CPU does
 * (x86, arm64); a memcpy would become eight byte loads. */
#ifndef L7_LOAD64
#define L7_LOAD64(w, src) ((w) = *(const __u64 *)(src))
#endif

struct l7_head {
	__s64 content_length; /* -1: no Content-Length header */
	__u32 header_len;     /* bytes of the head, empty line included; 0: it does not end in the window */
	__u32 status;         /* responses */
	__u8 version;         /* 10 or 11; 0: not seen */
	__u8 chunked;         /* Transfer-Encoding present: the body ends with a zero-size chunk */
	__u8 request;         /* 1: a request head, 0: a response head */
	__u8 pad;
	__u16 cl_line;        /* where the Content-Length line starts; 0: none */
	__u16 pad2;
	char op[L7_OP_LEN];
	char target[L7_TARGET_LEN];
	char authority[L7_AUTHORITY_LEN];
};

/* One message (or RESP element) of a database or cache protocol, as bpf/l7_db.h parses it. */
struct l7_msg {
	__s64 num;       /* RESP: the element's length or count (-1: null); PostgreSQL: the message's bytes;
			  * MySQL: the payload's bytes; memcached: the data block's bytes (-1: none) */
	__u32 len;       /* bytes of the header (RESP), of the head through the name (Redis command), of
			  * the line (memcached); 0: it does not end in the window */
	__u32 stmt;      /* PostgreSQL: hash of a statement name; MySQL: a statement id */
	__u8 type;       /* RESP type byte; PostgreSQL message type; MySQL command or first payload byte */
	__u8 seq;        /* MySQL sequence id */
	__u8 error;      /* an error reply */
	__u8 flags;      /* memcached: the request has noreply */
	__u32 pad;
	char op[L7_OP_LEN];   /* command or SQL keyword, reply word (memcached) */
	char code[L7_OP_LEN]; /* error code: Redis error prefix, SQLSTATE, MySQL code (2 bytes LE) */
};

struct l7_parse {
	__u8 buf[L7_CAPTURE_MAX + 8]; /* the window; 8 spare bytes let a word be read at its last byte */
	__u32 n;                      /* bytes of buf filled */
	/* loop state */
	__u32 pos;
	__u32 out;      /* bytes of head.target written */
	__u32 seg_out;  /* where the current path segment starts in head.target */
	__u32 seg_len;
	__u32 seg_flags;
	__u32 target_end;
	__u32 in_query;
	__u32 written;  /* high-water mark of head.target: bytes past out are cleared at the end */
	__u32 vpos;     /* header value loops */
	__u32 vcount;
	__s64 vnum;
	__u32 vneg;     /* the number loops of bpf/l7_db.h */
	__u32 vlimit;
	__u32 vmode;
	__u32 vend;
	__u32 vtoken;
	__u32 vspace;
	__u32 vwant;
	__u32 vbad;
	__u64 vhash;    /* l7_hash_at */
	__u32 vhfrom;
	__u32 vhlen;
	__u32 span_pos; /* resp_command_span */
	__u32 span_left;
	__u32 rep_pos;  /* l7_repeats */
	__u32 rep_len;
	struct l7_head head;
	struct l7_msg msg;
};

enum { SEG_DIGITS = 1, SEG_HEX = 2, SEG_HAS_DIGIT = 4 };

struct l7_loop_ctx {
	struct l7_parse *p;
};

static __always_inline __u8 l7_at(const struct l7_parse *p, __u32 i)
{
	return i < p->n ? p->buf[i & L7_BUF_MASK] : 0;
}

static __always_inline __u8 l7_lower(__u8 c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* Literals as little-endian words, compared a word at a time: no loop for the verifier to walk. */
#define L7_B(c, i) ((__u64)(__u8)(c) << (8 * (i)))
#define LIT2(a, b) (L7_B(a, 0) | L7_B(b, 1))
#define LIT4(a, b, c, d) (LIT2(a, b) | L7_B(c, 2) | L7_B(d, 3))
#define LIT5(a, b, c, d, e) (LIT4(a, b, c, d) | L7_B(e, 4))
#define LIT6(a, b, c, d, e, f) (LIT5(a, b, c, d, e) | L7_B(f, 5))
#define LIT7(a, b, c, d, e, f, g) (LIT6(a, b, c, d, e, f) | L7_B(g, 6))
#define LIT8(a, b, c, d, e, f, g, h) (LIT7(a, b, c, d, e, f, g) | L7_B(h, 7))
#define L7_MASK(n) ((n) >= 8 ? ~0ULL : (1ULL << (8 * ((n) & 7))) - 1)
#define L7_FOLD 0x2020202020202020ULL /* ORed in: ASCII letters become lower case */

/* The 8 bytes at off; bytes at or past p->n read as 0. */
static __always_inline __u64 l7_word(const struct l7_parse *p, __u32 off)
{
	__u64 w;
	__u32 valid;

	if (off >= p->n)
		return 0;
	L7_LOAD64(w, &p->buf[off & L7_BUF_MASK]);
	valid = p->n - off;
	return valid >= 8 ? w : w & ((1ULL << (8 * valid)) - 1);
}

static __always_inline bool l7_is(const struct l7_parse *p, __u32 off, __u64 lit, __u32 len)
{
	return (l7_word(p, off) & L7_MASK(len)) == lit;
}

/* Case-insensitive; lit is lower case. */
static __always_inline bool l7_is_i(const struct l7_parse *p, __u32 off, __u64 lit, __u32 len)
{
	return ((l7_word(p, off) | L7_FOLD) & L7_MASK(len)) == lit;
}

/* Length of the request method the window starts with (followed by a space), or 0. */
static __always_inline __u32 http_method_len(const struct l7_parse *p)
{
	__u64 w = l7_word(p, 0);

	if ((w & L7_MASK(4)) == LIT4('G', 'E', 'T', ' '))
		return 3;
	if ((w & L7_MASK(5)) == LIT5('P', 'O', 'S', 'T', ' '))
		return 4;
	if ((w & L7_MASK(4)) == LIT4('P', 'U', 'T', ' '))
		return 3;
	if ((w & L7_MASK(5)) == LIT5('H', 'E', 'A', 'D', ' '))
		return 4;
	if ((w & L7_MASK(7)) == LIT7('D', 'E', 'L', 'E', 'T', 'E', ' '))
		return 6;
	if ((w & L7_MASK(6)) == LIT6('P', 'A', 'T', 'C', 'H', ' '))
		return 5;
	if (w == LIT8('O', 'P', 'T', 'I', 'O', 'N', 'S', ' '))
		return 7;
	if (w == LIT8('C', 'O', 'N', 'N', 'E', 'C', 'T', ' '))
		return 7;
	if ((w & L7_MASK(6)) == LIT6('T', 'R', 'A', 'C', 'E', ' '))
		return 5;
	return 0;
}

/* ---------------------------------------------------------------- the route */

static __always_inline void target_put(struct l7_parse *p, __u8 c)
{
	__u32 out = p->out;
	if (out >= L7_TARGET_LEN - 1)
		return; /* truncated: the last byte stays 0 */
	p->head.target[out & (L7_TARGET_LEN - 1)] = c;
	p->out = out + 1;
}

/* An id: all digits, or 8+ hex digits and dashes with a digit among them (hashes, UUIDs), or 20+
 * characters with a digit among them (base64 tokens). It becomes {id}. */
static __always_inline void segment_end(struct l7_parse *p)
{
	__u32 len = p->seg_len, f = p->seg_flags;

	if (len && ((f & SEG_DIGITS) || (len >= 8 && (f & SEG_HEX) && (f & SEG_HAS_DIGIT)) ||
		    (len >= 20 && (f & SEG_HAS_DIGIT)))) {
		if (p->out > p->written)
			p->written = p->out;
		p->out = p->seg_out;
		target_put(p, '{');
		target_put(p, 'i');
		target_put(p, 'd');
		target_put(p, '}');
	}
	p->seg_len = 0;
}

static long target_clear(__u64 i, void *ctx)
{
	struct l7_parse *p = ((struct l7_loop_ctx *)ctx)->p;

	p->head.target[(p->out + (__u32)i) & (L7_TARGET_LEN - 1)] = 0;
	return 0;
}

static long target_byte(__u64 i, void *ctx)
{
	struct l7_parse *p = ((struct l7_loop_ctx *)ctx)->p;
	__u32 pos = p->pos + (__u32)i;
	__u8 c;

	if (pos >= p->n)
		return 1;
	c = l7_at(p, pos);
	if (c <= ' ' || c == 0x7f) { /* a space ends it; control bytes make the version check fail */
		if (!p->in_query)
			segment_end(p);
		p->target_end = pos;
		return 1;
	}
	if (p->in_query)
		return 0;
	if (c == '?' || c == '#') {
		segment_end(p);
		p->in_query = 1;
		return 0;
	}
	if (c == '/') {
		segment_end(p);
		target_put(p, '/');
		p->seg_out = p->out;
		p->seg_flags = SEG_DIGITS | SEG_HEX;
		return 0;
	}
	if (c >= '0' && c <= '9')
		p->seg_flags |= SEG_HAS_DIGIT;
	else
		p->seg_flags &= ~SEG_DIGITS;
	if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == '-'))
		p->seg_flags &= ~SEG_HEX;
	p->seg_len++;
	target_put(p, c);
	return 0;
}

/* ---------------------------------------------------------------- header lines */

/* Header values are read by loops whose state lives in *p, not on the stack: the verifier then
 * checks one iteration instead of following every value of a counter. */
static long length_digit(__u64 i, void *ctx)
{
	struct l7_parse *p = ((struct l7_loop_ctx *)ctx)->p;
	__u8 c = l7_at(p, p->vpos + (__u32)i);

	if (c == ' ' || c == '\t') {
		return p->vcount ? 1 : 0;
	}
	if (c < '0' || c > '9')
		return 1;
	if (p->vcount >= 18) { /* too long to be a real length: none */
		p->vcount = 0;
		return 1;
	}
	p->vnum = p->vnum * 10 + (c - '0');
	p->vcount++;
	return 0;
}

/* The common case read a word at a time: at most one space, then 1 to 7 digits and a byte of the
 * window that is not one (a head cut at its end leaves fewer than 8 bytes after the last header's
 * value). False if the value is laid out otherwise (the loop then reads it). */
static __always_inline bool content_length_word(struct l7_parse *p, __u32 s)
{
	__u64 w, v = 0;
	__u32 n = 8;

	if (l7_at(p, s) == ' ')
		s++;
	if (s >= p->n)
		return false;
	w = l7_word(p, s); /* bytes past the window read as 0, not a digit */
#pragma unroll
	for (__u32 i = 0; i < 8; i++) {
		__u8 c = w >> (8 * i);
		if (c < '0' || c > '9') {
			n = i;
			break;
		}
		v = v * 10 + (c - '0');
	}
	if (n == 0 || n == 8 || s + n >= p->n) /* the value may go on past the window */
		return false;
	p->head.content_length = v;
	return true;
}

static __always_inline void parse_content_length(struct l7_parse *p, __u32 s)
{
	struct l7_loop_ctx ctx = {.p = p};

	if (content_length_word(p, s))
		return;
	p->vpos = s;
	p->vnum = 0;
	p->vcount = 0;
	L7_LOOP(24, length_digit, &ctx);
	if (p->vcount)
		p->head.content_length = p->vnum;
}

static long authority_byte(__u64 i, void *ctx)
{
	struct l7_parse *p = ((struct l7_loop_ctx *)ctx)->p;
	__u8 c = l7_at(p, p->vpos + (__u32)i);
	__u32 out = p->vcount;

	if (!out && (c == ' ' || c == '\t'))
		return 0;
	if (c == '\r' || c == '\n' || c == 0 || c == ' ' || out >= L7_AUTHORITY_LEN - 1)
		return 1;
	p->head.authority[out & (L7_AUTHORITY_LEN - 1)] = l7_lower(c);
	p->vcount = out + 1;
	return 0;
}

static __always_inline void copy_authority(struct l7_parse *p, __u32 s)
{
	struct l7_loop_ctx ctx = {.p = p};

	p->vpos = s;
	p->vcount = 0;
	L7_LOOP(L7_AUTHORITY_LEN + 16, authority_byte, &ctx);
}

/* A header line starts at s. Returns 1 at the empty line that ends the head. */
static __always_inline long header_line(struct l7_parse *p, __u32 s)
{
	__u8 c = l7_lower(l7_at(p, s));

	if (c == '\r' && l7_at(p, s + 1) == '\n') {
		p->head.header_len = s + 2;
		return 1;
	}
	if (c == '\n') {
		p->head.header_len = s + 1;
		return 1;
	}
	if (c == 'c' && l7_is_i(p, s, LIT8('c', 'o', 'n', 't', 'e', 'n', 't', '-'), 8) &&
	    l7_is_i(p, s + 8, LIT7('l', 'e', 'n', 'g', 't', 'h', ':'), 7)) {
		p->head.cl_line = s;
		parse_content_length(p, s + 15);
	}
	else if (c == 't' && l7_is_i(p, s, LIT8('t', 'r', 'a', 'n', 's', 'f', 'e', 'r'), 8) &&
		 l7_is_i(p, s + 8, LIT8('-', 'e', 'n', 'c', 'o', 'd', 'i', 'n'), 8) &&
		 l7_is_i(p, s + 16, LIT2('g', ':'), 2))
		p->head.chunked = 1;
	else if (c == 'h' && p->head.request && !p->head.authority[0] && /* the first Host counts */
		 l7_is_i(p, s, LIT5('h', 'o', 's', 't', ':'), 5))
		copy_authority(p, s + 5);
	return 0;
}

/* Moves to the next line feed, four words per step; at each, looks at the line after it. Bytes past
 * p->n are stale, but a line feed among them lies past every real byte of its word: found first
 * only when there is none before it, and then pos >= n ends the loop. */
static long header_step(__u64 i, void *ctx)
{
	struct l7_parse *p = ((struct l7_loop_ctx *)ctx)->p;
	__u32 pos = p->pos, k = 0;
	__u64 x, m = 0, w;

#pragma unroll
	for (__u32 j = 0; j < 4; j++) {
		if (pos >= p->n)
			return 1;
		L7_LOAD64(w, &p->buf[pos & L7_BUF_MASK]);
		x = w ^ 0x0a0a0a0a0a0a0a0aULL;
		m = (x - 0x0101010101010101ULL) & ~x & 0x8080808080808080ULL;
		if (m)
			break;
		pos += 8;
	}
	if (!m) {
		p->pos = pos;
		return 0;
	}
	/* the lowest flagged byte is exact */
	if (!(m & 0xffffffffULL)) {
		k += 4;
		m >>= 32;
	}
	if (!(m & 0xffffULL)) {
		k += 2;
		m >>= 16;
	}
	if (!(m & 0xffULL))
		k += 1;
	pos += k;
	p->pos = pos + 1;
	if (pos >= p->n)
		return 1;
	return header_line(p, pos + 1);
}

static __always_inline void head_reset(struct l7_parse *p)
{
	__builtin_memset(&p->head, 0, sizeof(p->head));
	p->head.content_length = -1;
}

/* The route of the request target at `from` into head.target: the path without its query, ids
 * folded to {id}. p->target_end is where the target ends (0: at the window's end). HTTP/2 folds its
 * :path with it too. */
static __always_inline void http_route(struct l7_parse *p, __u32 from)
{
	struct l7_loop_ctx ctx = {.p = p};

	p->pos = from;
	p->out = 0;
	p->seg_out = 0;
	p->seg_len = 0;
	p->seg_flags = SEG_DIGITS | SEG_HEX;
	p->target_end = 0;
	p->in_query = 0;
	p->written = 0;
	L7_LOOP(L7_CAPTURE_MAX, target_byte, &ctx);
	if (!p->target_end && !p->in_query)
		segment_end(p); /* the window ended inside the target: its last segment still folds */
	if (p->written > p->out) /* a folded id left bytes behind */
		L7_LOOP(p->written - p->out, target_clear, &ctx);
}

/* Parses a request head at the start of the window. Returns false if the window does not start
 * with one. */
static __always_inline bool http_parse_request(struct l7_parse *p)
{
	struct l7_loop_ctx ctx = {.p = p};
	__u32 mlen = http_method_len(p), end;
	__u8 first;

	if (!mlen)
		return false;
	first = l7_at(p, mlen + 1);
	/* origin form (/path), asterisk (OPTIONS *), absolute form (http://...), authority (CONNECT) */
	if (first != '/' && first != '*' && first != 'h' && l7_at(p, 0) != 'C')
		return false;
	head_reset(p);
	p->head.request = 1;
	*(__u64 *)p->head.op = l7_word(p, 0) & L7_MASK(mlen);
	http_route(p, mlen + 1);
	end = p->target_end;
	if (!end)
		return true; /* a target longer than the window: method and route prefix only */
	if (l7_word(p, end) == LIT8(' ', 'H', 'T', 'T', 'P', '/', '1', '.')) {
		__u8 minor = l7_at(p, end + 8);
		p->head.version = minor == '0' ? 10 : 11;
	} else {
		return false; /* HTTP/0.9 or not HTTP */
	}
	p->pos = end + 9;
	L7_LOOP(L7_CAPTURE_MAX, header_step, &ctx);
	return true;
}

/* The status line of a response at the start of the window: status and version. */
static __always_inline bool http_status_line(struct l7_parse *p)
{
	__u8 d0, d1, d2;

	if ((l7_word(p, 0) & L7_MASK(7)) != LIT7('H', 'T', 'T', 'P', '/', '1', '.') || l7_at(p, 8) != ' ')
		return false;
	d0 = l7_at(p, 9);
	d1 = l7_at(p, 10);
	d2 = l7_at(p, 11);
	if (d0 < '1' || d0 > '5' || d1 < '0' || d1 > '9' || d2 < '0' || d2 > '9')
		return false;
	head_reset(p);
	p->head.version = l7_at(p, 7) == '0' ? 10 : 11;
	p->head.status = (d0 - '0') * 100 + (d1 - '0') * 10 + (d2 - '0');
	return true;
}

/* Parses a response head ("HTTP/1.x NNN ...") at the start of the window. */
static __always_inline bool http_parse_response(struct l7_parse *p)
{
	struct l7_loop_ctx ctx = {.p = p};

	if (!http_status_line(p))
		return false;
	p->pos = 12;
	L7_LOOP(L7_CAPTURE_MAX, header_step, &ctx);
	return true;
}

/* A response head laid out like the previous one of its connection (a server answers alike): the
 * head ends at header_len and its Content-Length line starts at cl_line. Then only the status and
 * the length are read, not every line. False if the layout differs; http_parse_response() then. */
static __always_inline bool http_parse_response_like(struct l7_parse *p, __u32 header_len, __u32 cl_line)
{
	if (!header_len || !cl_line || header_len > p->n || !http_status_line(p))
		return false;
	if ((l7_word(p, header_len - 4) & L7_MASK(4)) != LIT4('\r', '\n', '\r', '\n') ||
	    l7_at(p, cl_line - 1) != '\n' ||
	    !l7_is_i(p, cl_line, LIT8('c', 'o', 'n', 't', 'e', 'n', 't', '-'), 8) ||
	    !l7_is_i(p, cl_line + 8, LIT7('l', 'e', 'n', 'g', 't', 'h', ':'), 7))
		return false;
	parse_content_length(p, cl_line + 15);
	if (p->head.content_length < 0)
		return false;
	p->head.header_len = header_len;
	p->head.cl_line = cl_line;
	return true;
}

/* ---------------------------------------------------------------- a head seen before */

/* L7_HASH_WORDS words of the hash per step (a head of up to 128 bytes in one callback call); the
 * last word is masked to the bytes below p->vhlen. */
#define L7_HASH_WORDS 16
static long hash_step(__u64 i, void *ctx)
{
	struct l7_parse *p = ((struct l7_loop_ctx *)ctx)->p;
	__u64 h = p->vhash, w;

#pragma unroll
	for (__u32 j = 0; j < L7_HASH_WORDS; j++) {
		__u32 off = ((__u32)i * L7_HASH_WORDS + j) * 8;
		if (off >= p->vhlen) {
			p->vhash = h;
			return 1;
		}
		L7_LOAD64(w, &p->buf[(p->vhfrom + off) & L7_BUF_MASK]);
		if (p->vhlen - off < 8)
			w &= (1ULL << (8 * (p->vhlen - off))) - 1;
		h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
		h ^= h >> 29;
	}
	p->vhash = h;
	return 0;
}

/* A 64-bit hash of the len bytes of the window at from (from + len <= p->n), a word at a time. */
static __always_inline __u64 l7_hash_at(struct l7_parse *p, __u32 from, __u32 len)
{
	struct l7_loop_ctx ctx = {.p = p};

	p->vhash = len;
	p->vhfrom = from;
	p->vhlen = len;
	L7_LOOP((L7_CAPTURE_MAX + 8 * L7_HASH_WORDS - 1) / (8 * L7_HASH_WORDS), hash_step, &ctx);
	return p->vhash;
}

static __always_inline __u64 l7_hash(struct l7_parse *p, __u32 len)
{
	return l7_hash_at(p, 0, len);
}

/* Keep-alive clients repeat their request head byte for byte. If the window starts with the
 * head of hash `hash` and length `len` (the last one of the connection that http_parse_request
 * read in full), the request is that one again and need not be parsed. */
static __always_inline bool http_request_like(struct l7_parse *p, __u32 len, __u64 hash)
{
	if (!len || len > p->n || len < 4 ||
	    (l7_word(p, len - 4) & L7_MASK(4)) != LIT4('\r', '\n', '\r', '\n'))
		return false;
	return l7_hash(p, len) == hash;
}

#endif

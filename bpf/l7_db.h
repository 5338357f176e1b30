/* Database and cache protocols, parsed from the bytes a process read or wrote: Redis (RESP2 and
 * RESP3), PostgreSQL (frontend/backend protocol v3), MySQL/MariaDB (client/server protocol) and
 * memcached (text protocol).
 *
 * Each parser looks at one message (or RESP element) at position pos of the window of a struct
 * l7_parse and fills p->msg: its type, its length, the operation (command name or SQL keyword) and
 * the error code. They only read p->buf below p->n, so the same code builds for the kernel and for
 * the unit tests (tests/unit/l7_host.c). How messages pair into exchanges is bpf/l7_db_flow.c and
 * each protocol's steps (bpf/l7_redis.c, bpf/l7_postgresql.c, bpf/l7_mysql.c, bpf/l7_memcached.c). */
#ifndef NETOBS_L7_DB_H
#define NETOBS_L7_DB_H

#include "l7_http.h"

#define PG_SSL_REQUEST 80877103
#define PG_GSSENC_REQUEST 80877104
#define PG_PROTOCOL_3 196608
#define PG_MAX_MESSAGE (1U << 30)

#define LIT1(a) L7_B(a, 0)
#define LIT3(a, b, c) (LIT2(a, b) | L7_B(c, 2))

enum { OP_UPPER = 1, OP_WORD = 2 /* letters and '_' only */, OP_TO_CODE = 4 /* into msg.code */ };

static __always_inline __u8 l7_upper(__u8 c)
{
	return c >= 'a' && c <= 'z' ? c - 32 : c;
}

static __always_inline bool l7_is_letter(__u8 c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static __always_inline bool l7_crlf(const struct l7_parse *p, __u32 pos)
{
	return (l7_word(p, pos) & L7_MASK(2)) == LIT2('\r', '\n');
}

static __always_inline __u32 l7_be32(const struct l7_parse *p, __u32 pos)
{
	return __builtin_bswap32((__u32)l7_word(p, pos));
}

/* ---------------------------------------------------------------- numbers, words, lines */

static long number_digit(__u64 i, void *ctx)
{
	struct l7_parse *p = ((struct l7_loop_ctx *)ctx)->p;
	__u32 pos = p->vpos;
	__u8 c = l7_at(p, pos);

	if (i == 0 && c == '-') {
		p->vneg = 1;
		p->vpos = pos + 1;
		return 0;
	}
	if (c < '0' || c > '9')
		return 1;
	if (p->vcount >= 19) { /* too long for a length or a 64-bit integer */
		p->vbad = 1;
		return 1;
	}
	p->vnum = (__s64)((__u64)p->vnum * 10 + (c - '0')); /* 19 digits can pass 2^63: wraps, defined */
	p->vcount++;
	p->vpos = pos + 1;
	return 0;
}

/* A decimal number at pos, maybe negative: p->vnum, and p->vpos just past it. False if none. */
static __always_inline bool l7_number(struct l7_parse *p, __u32 pos)
{
	struct l7_loop_ctx ctx = {.p = p};
	__u64 w = l7_word(p, pos);
	__u8 d0 = w & 0xff, d1 = (w >> 8) & 0xff, d2 = (w >> 16) & 0xff;

	/* most lengths and counts have one or two digits: no loop for them */
	if (d0 >= '0' && d0 <= '9' && (d1 < '0' || d1 > '9') && pos + 1 < p->n) {
		p->vnum = d0 - '0';
		p->vpos = pos + 1;
		return true;
	}
	if (d0 >= '0' && d0 <= '9' && d1 >= '0' && d1 <= '9' && (d2 < '0' || d2 > '9') && pos + 2 < p->n) {
		p->vnum = (d0 - '0') * 10 + (d1 - '0');
		p->vpos = pos + 2;
		return true;
	}

	p->vpos = pos;
	p->vnum = 0;
	p->vcount = 0;
	p->vneg = 0;
	p->vbad = 0;
	L7_LOOP(21, number_digit, &ctx); /* a sign, 19 digits, and one more to see it is too long */
	if (!p->vcount || p->vbad)
		return false;
	if (p->vneg)
		p->vnum = (__s64)(0 - (__u64)p->vnum); /* -(-2^63) wraps too */
	return true;
}

static long op_byte(__u64 i, void *ctx)
{
	struct l7_parse *p = ((struct l7_loop_ctx *)ctx)->p;
	__u32 out = p->vcount;
	__u8 c = l7_at(p, p->vpos + (__u32)i);
	char *dst = p->vmode & OP_TO_CODE ? p->msg.code : p->msg.op;

	if (out >= p->vlimit || out >= L7_OP_LEN - 1)
		return 1;
	if (p->vmode & OP_WORD) {
		if (!l7_is_letter(c) && c != '_')
			return 1;
	} else if (c <= ' ' || c >= 0x7f) {
		return 1;
	}
	dst[out & (L7_OP_LEN - 1)] = p->vmode & OP_UPPER ? l7_upper(c) : c;
	p->vcount = out + 1;
	return 0;
}

/* Copies the word at pos (at most limit bytes, 15 at most) into msg.op or msg.code; its length. */
static __always_inline __u32 l7_copy_word(struct l7_parse *p, __u32 pos, __u32 limit, __u32 mode)
{
	struct l7_loop_ctx ctx = {.p = p};
	char *dst = mode & OP_TO_CODE ? p->msg.code : p->msg.op;

	__builtin_memset(dst, 0, L7_OP_LEN);
	p->vpos = pos;
	p->vcount = 0;
	p->vlimit = limit;
	p->vmode = mode;
	L7_LOOP(L7_OP_LEN, op_byte, &ctx);
	return p->vcount;
}

/* The index of the lowest flagged byte of a "has zero byte" mask: exact (higher ones may not be). */
static __always_inline __u32 l7_lowest_byte(__u64 m)
{
	__u32 k = 0;

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
	return k;
}

/* Moves p->vpos to the first line feed at or after it, a word per step (see header_step). */
static long lf_step(__u64 i, void *ctx)
{
	struct l7_parse *p = ((struct l7_loop_ctx *)ctx)->p;
	__u32 pos = p->vpos;
	__u64 w, x, m;

	if (pos >= p->n) {
		p->vpos = p->n;
		return 1;
	}
	L7_LOAD64(w, &p->buf[pos & L7_BUF_MASK]);
	x = w ^ 0x0a0a0a0a0a0a0a0aULL;
	m = (x - 0x0101010101010101ULL) & ~x & 0x8080808080808080ULL;
	if (!m) {
		p->vpos = pos + 8;
		return 0;
	}
	pos += l7_lowest_byte(m);
	p->vpos = pos < p->n ? pos : p->n;
	return 1;
}

/* Bytes of the line at pos, its line feed included; 0 if it does not end in the window. */
static __always_inline __u32 l7_line_len(struct l7_parse *p, __u32 pos)
{
	struct l7_loop_ctx ctx = {.p = p};

	__u64 w = l7_word(p, pos), x = w ^ 0x0a0a0a0a0a0a0a0aULL;
	__u64 m = (x - 0x0101010101010101ULL) & ~x & 0x8080808080808080ULL;

	if (pos >= p->n)
		return 0;
	if (m) { /* a short line (+OK, :1) ends in its first word: no loop */
		__u32 k = l7_lowest_byte(m);
		return pos + k < p->n ? k + 1 : 0;
	}
	p->vpos = pos;
	L7_LOOP(L7_CAPTURE_MAX / 8 + 1, lf_step, &ctx);
	return p->vpos < p->n ? p->vpos + 1 - pos : 0;
}

/* ---------------------------------------------------------------- SQL */

static long sql_skip(__u64 i, void *ctx)
{
	struct l7_parse *p = ((struct l7_loop_ctx *)ctx)->p;
	__u32 pos = p->vpos;
	__u8 c = l7_at(p, pos);

	if (pos >= p->n)
		return 1;
	if (p->vmode == 1) { /* in a block comment */
		if (c == '*' && l7_at(p, pos + 1) == '/') {
			p->vmode = 0;
			p->vpos = pos + 2;
		} else {
			p->vpos = pos + 1;
		}
		return 0;
	}
	if (p->vmode == 2) { /* in a line comment */
		if (c == '\n')
			p->vmode = 0;
		p->vpos = pos + 1;
		return 0;
	}
	if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '(' || c == ';') {
		p->vpos = pos + 1;
		return 0;
	}
	if (c == '/' && l7_at(p, pos + 1) == '*') {
		p->vmode = 1;
		p->vpos = pos + 2;
		return 0;
	}
	if (c == '-' && l7_at(p, pos + 1) == '-') {
		p->vmode = 2;
		p->vpos = pos + 2;
		return 0;
	}
	return 1;
}

/* The operation of the SQL text at pos: its first keyword, upper case, into msg.op. Spaces,
 * parentheses and comments before it are skipped. False if there is no keyword. */
static __always_inline bool sql_operation(struct l7_parse *p, __u32 pos)
{
	struct l7_loop_ctx ctx = {.p = p};

	p->vpos = pos;
	p->vmode = 0;
	L7_LOOP(128, sql_skip, &ctx);
	if (p->vmode || !l7_is_letter(l7_at(p, p->vpos)))
		return false;
	return l7_copy_word(p, p->vpos, L7_OP_LEN - 1, OP_UPPER | OP_WORD) > 0;
}

/* ---------------------------------------------------------------- Redis */

static __always_inline void resp_reset(struct l7_parse *p, __u8 t)
{
	p->msg.type = t;
	p->msg.num = 0;
	p->msg.len = 0;
	p->msg.error = 0;
}

/* A RESP element at pos: msg.type, msg.num (a length or count; -1: null; the value of an
 * integer) and msg.len (the header's bytes through its CRLF; 0: it does not end in the window).
 * The element's data (bulk strings) follows the header. A simple string, error, integer, null,
 * double, boolean or big number is all header. An error's first word goes to msg.code. False:
 * not RESP. */
static __always_inline bool resp_element(struct l7_parse *p, __u32 pos)
{
	__u8 t = l7_at(p, pos);

	resp_reset(p, t);
	switch (t) {
	case '$': case '*': case '%': case '~': case '>': case '!': case '=': case '|': case ':':
		if (!l7_number(p, pos + 1))
			return false;
		if (p->vpos + 2 > p->n)
			return true; /* cut by the window */
		if (!l7_crlf(p, p->vpos))
			return false;
		p->msg.num = p->vnum;
		p->msg.len = p->vpos + 2 - pos;
		p->msg.error = t == '!';
		return true;
	case '+': case '-': case '_': case ',': case '#': case '(':
		p->msg.len = l7_line_len(p, pos);
		if (t == '-') {
			p->msg.error = 1;
			l7_copy_word(p, pos + 1, L7_OP_LEN - 1, OP_WORD | OP_TO_CODE);
		}
		return true;
	}
	return false;
}

/* A command at pos: an array of bulk strings, the first one its name. msg.op: the name, upper
 * case; msg.num: the arguments after it; msg.len: the bytes through the name's CRLF (0: not in
 * the window). False if pos does not start a command. */
static __always_inline bool resp_command(struct l7_parse *p, __u32 pos)
{
	__u32 head, name;
	__s64 args, len;

	if (l7_at(p, pos) != '*' || !resp_element(p, pos) || !p->msg.len)
		return false;
	args = p->msg.num;
	head = p->msg.len;
	if (args < 1 || args > (1LL << 31) || l7_at(p, pos + head) != '$' ||
	    !resp_element(p, pos + head) || !p->msg.len)
		return false;
	len = p->msg.num;
	name = head + p->msg.len;
	if (len < 1 || len > 64 || !l7_is_letter(l7_at(p, pos + name)))
		return false;
	l7_copy_word(p, pos + name, (__u32)len, OP_UPPER);
	p->msg.num = args - 1;
	p->msg.len = 0;
	if (pos + name + (__u32)len + 2 > p->n)
		return true; /* the name is cut by the window */
	if (!l7_crlf(p, pos + name + (__u32)len))
		return false;
	p->msg.len = name + (__u32)len + 2;
	return true;
}

static long resp_arg_step(__u64 i, void *ctx)
{
	struct l7_parse *p = ((struct l7_loop_ctx *)ctx)->p;
	__u32 pos = p->span_pos;

	if (!p->span_left)
		return 1;
	if (l7_at(p, pos) != '$' || !resp_element(p, pos) || !p->msg.len || p->msg.num < 0 ||
	    p->msg.num > L7_CAPTURE_MAX || pos + p->msg.len + (__u32)p->msg.num + 2 > p->n) {
		p->span_pos = 0;
		return 1;
	}
	p->span_pos = pos + p->msg.len + (__u32)p->msg.num + 2;
	p->span_left--;
	return 0;
}

#define RESP_SPAN_ARGS 8

/* The bytes of the whole command at pos, if all of it is in the window and it has at most
 * RESP_SPAN_ARGS arguments after its name; 0 otherwise. head and args are what resp_command found
 * (msg.len and msg.num), which this overwrites. */
static __always_inline __u32 resp_command_span(struct l7_parse *p, __u32 pos, __u32 head, __s64 args)
{
	struct l7_loop_ctx ctx = {.p = p};

	if (!head || args < 0 || args > RESP_SPAN_ARGS)
		return 0;
	p->span_pos = pos + head;
	p->span_left = (__u32)args;
	L7_LOOP(RESP_SPAN_ARGS + 1, resp_arg_step, &ctx);
	return p->span_left || p->span_pos <= pos ? 0 : p->span_pos - pos;
}

/* ---------------------------------------------------------------- a message repeated */

static long repeat_step(__u64 i, void *ctx)
{
	struct l7_parse *p = ((struct l7_loop_ctx *)ctx)->p;
	__u32 x = p->rep_pos;
	__u64 a, b, d;

#pragma unroll
	for (__u32 j = 0; j < 4; j++) {
		if (x >= p->n) {
			p->rep_pos = p->n;
			return 1;
		}
		L7_LOAD64(a, &p->buf[x & L7_BUF_MASK]);
		L7_LOAD64(b, &p->buf[(x - p->rep_len) & L7_BUF_MASK]);
		d = a ^ b;
		if (p->n - x < 8)
			d &= (1ULL << (8 * (p->n - x))) - 1;
		if (d) {
			p->rep_pos = x + l7_lowest_byte(d);
			return 1;
		}
		x += 8;
	}
	p->rep_pos = x;
	return 0;
}

/* How many copies of the len bytes at pos follow them back to back in the window: the bytes from
 * pos + len on equal those len bytes before them, a word at a time. */
static __always_inline __u32 l7_repeats(struct l7_parse *p, __u32 pos, __u32 len)
{
	struct l7_loop_ctx ctx = {.p = p};

	if (!len || pos + len > p->n)
		return 0;
	p->rep_pos = pos + len;
	p->rep_len = len;
	L7_LOOP(L7_CAPTURE_MAX / 32 + 1, repeat_step, &ctx);
	return (p->rep_pos - pos - len) / len;
}

/* ---------------------------------------------------------------- PostgreSQL */

/* The length of a startup message, SSLRequest or GSSENCRequest at pos (they have no type byte),
 * or 0. msg.type is 'S' for the SSL and GSS requests, 0 for a startup message. */
static __always_inline __u32 pg_startup(struct l7_parse *p, __u32 pos)
{
	__u32 len = l7_be32(p, pos), code = l7_be32(p, pos + 4);

	if (pos + 8 > p->n)
		return 0;
	p->msg.type = 0;
	if (len == 8 && (code == PG_SSL_REQUEST || code == PG_GSSENC_REQUEST)) {
		p->msg.type = 'S';
		return 8;
	}
	if (len > 8 && len < 10000 && code == PG_PROTOCOL_3)
		return len;
	return 0;
}

/* A message at pos: msg.type and msg.num (its bytes, the type byte included). */
static __always_inline bool pg_message(struct l7_parse *p, __u32 pos)
{
	__u8 t = l7_at(p, pos);
	__u32 len = l7_be32(p, pos + 1);

	if (pos + 5 > p->n || len < 4 || len > PG_MAX_MESSAGE || !((t >= 'A' && t <= 'Z') || (t >= 'a' && t <= 'z') ||
								  (t >= '1' && t <= '3')))
		return false;
	p->msg.type = t;
	p->msg.num = (__s64)len + 1;
	return true;
}

static long cstring_byte(__u64 i, void *ctx)
{
	struct l7_parse *p = ((struct l7_loop_ctx *)ctx)->p;
	__u32 pos = p->vpos;
	__u8 c = l7_at(p, pos);

	if (pos >= p->n)
		return 1;
	p->vpos = pos + 1;
	if (!c) {
		p->vcount = 1;
		return 1;
	}
	p->vnum = (__s64)((__u64)p->vnum * 31 + c);
	return 0;
}

/* A NUL-terminated string at pos: its hash in msg.stmt and p->vpos past its NUL. False if it does
 * not end in the window (names of statements and portals are short). */
static __always_inline bool pg_cstring(struct l7_parse *p, __u32 pos)
{
	struct l7_loop_ctx ctx = {.p = p};

	p->vpos = pos;
	p->vnum = 0;
	p->vcount = 0;
	L7_LOOP(128, cstring_byte, &ctx);
	p->msg.stmt = (__u32)p->vnum;
	return p->vcount;
}

/* Parse ('P'): statement name, then the SQL text. msg.stmt and msg.op. */
static __always_inline bool pg_parse_message(struct l7_parse *p, __u32 pos)
{
	return pg_cstring(p, pos + 5) && sql_operation(p, p->vpos);
}

/* Bind ('B'): portal name, then statement name. msg.stmt. */
static __always_inline bool pg_bind_message(struct l7_parse *p, __u32 pos)
{
	return pg_cstring(p, pos + 5) && pg_cstring(p, p->vpos);
}

static long error_field(__u64 i, void *ctx)
{
	struct l7_parse *p = ((struct l7_loop_ctx *)ctx)->p;
	__u32 pos = p->vpos;
	__u8 c = l7_at(p, pos);

	if (pos >= p->n)
		return 1;
	if (p->vmode) { /* at a field's type byte */
		if (!c)
			return 1;
		if (c == 'C') {
			__u64 code = l7_word(p, pos + 1) & L7_MASK(5);
			__builtin_memcpy(p->msg.code, &code, sizeof(code));
			return 1;
		}
		p->vmode = 0;
	} else if (!c) {
		p->vmode = 1;
	}
	p->vpos = pos + 1;
	return 0;
}

/* ErrorResponse ('E'): its SQLSTATE (the 'C' field) into msg.code. */
static __always_inline void pg_error_code(struct l7_parse *p, __u32 pos)
{
	struct l7_loop_ctx ctx = {.p = p};

	__builtin_memset(p->msg.code, 0, L7_OP_LEN);
	p->vpos = pos + 5;
	p->vmode = 1;
	L7_LOOP(256, error_field, &ctx);
}

/* ---------------------------------------------------------------- MySQL */

#define MYSQL_COM_QUIT 0x01
#define MYSQL_COM_INIT_DB 0x02
#define MYSQL_COM_QUERY 0x03
#define MYSQL_COM_PING 0x0e
#define MYSQL_COM_STMT_PREPARE 0x16
#define MYSQL_COM_STMT_EXECUTE 0x17
#define MYSQL_COM_STMT_SEND_LONG_DATA 0x18
#define MYSQL_COM_STMT_CLOSE 0x19
#define MYSQL_COM_STMT_RESET 0x1a
#define MYSQL_CLIENT_SSL 0x0800     /* a capability flag of the client's SSLRequest */
#define MYSQL_SSL_REQUEST_LEN 32    /* its payload: flags, max packet, charset, 23 zero bytes */

/* A packet header at pos (4 bytes): msg.num (payload bytes) and msg.seq. MariaDB reads a header
 * alone, then its payload: the payload can begin in the next call. */
static __always_inline bool mysql_header(struct l7_parse *p, __u32 pos)
{
	__u64 w = l7_word(p, pos);

	if (pos + 4 > p->n)
		return false;
	p->msg.num = w & 0xffffff;
	p->msg.seq = (w >> 24) & 0xff;
	return p->msg.num > 0;
}

/* The server's greeting (protocol 10, a version string): what a client reads first. */
static __always_inline bool mysql_greeting(struct l7_parse *p)
{
	__u8 v = l7_at(p, 5);

	return mysql_header(p, 0) && p->msg.seq == 0 && l7_at(p, 4) == 10 && p->msg.num >= 32 &&
	       p->msg.num < 1024 && v >= '1' && v <= '9';
}

/* A command whose payload starts at pos (sequence id seq), with its operation in msg.op: the SQL
 * keyword of COM_QUERY and COM_STMT_PREPARE, a name for the others; msg.type: the command;
 * msg.stmt: the statement of COM_STMT_EXECUTE and COM_STMT_CLOSE. False if it is not a command
 * (a command has sequence id 0) or one we do not follow. */
static __always_inline bool mysql_command(struct l7_parse *p, __u32 pos, __u8 seq)
{
	if (seq != 0 || pos >= p->n)
		return false;
	p->msg.type = l7_at(p, pos);
	__builtin_memset(p->msg.op, 0, L7_OP_LEN);
	p->msg.stmt = (__u32)l7_word(p, pos + 1);
	switch (p->msg.type) {
	case MYSQL_COM_QUERY: /* with query attributes (MySQL 8.0.23+): 0 parameters, 1 set, then the SQL */
		if ((l7_word(p, pos + 1) & L7_MASK(2)) == LIT2(0, 1))
			return sql_operation(p, pos + 3);
		return sql_operation(p, pos + 1);
	case MYSQL_COM_STMT_PREPARE:
		return sql_operation(p, pos + 1);
	case MYSQL_COM_STMT_EXECUTE:
		return true; /* the operation of the statement it executes */
	case MYSQL_COM_PING:
		*(__u64 *)p->msg.op = LIT4('P', 'I', 'N', 'G');
		return true;
	case MYSQL_COM_INIT_DB:
		*(__u64 *)p->msg.op = LIT7('I', 'N', 'I', 'T', '_', 'D', 'B');
		return true;
	case MYSQL_COM_STMT_RESET:
		*(__u64 *)p->msg.op = LIT5('R', 'E', 'S', 'E', 'T');
		return true;
	case MYSQL_COM_QUIT:
	case MYSQL_COM_STMT_SEND_LONG_DATA:
	case MYSQL_COM_STMT_CLOSE:
		return true; /* no response */
	}
	return false;
}

/* ---------------------------------------------------------------- memcached */

enum mc_kind {
	MC_NONE = 0,
	MC_RETRIEVAL = 1, /* get, gets, gat, gats: VALUE blocks, then END */
	MC_STORAGE = 2,   /* set, add, replace, append, prepend, cas: a data block follows the line */
	MC_SINGLE = 3,    /* delete, incr, decr, touch, version, verbosity, flush_all: one line */
	MC_STATS = 4,     /* stats: STAT lines, then END */
};

static long token_byte(__u64 i, void *ctx)
{
	struct l7_parse *p = ((struct l7_loop_ctx *)ctx)->p;
	__u32 pos = p->vpos;
	__u8 c = l7_at(p, pos);

	if (pos >= p->vend || c == '\r' || c == '\n')
		return 1;
	p->vpos = pos + 1;
	if (c == ' ') {
		if (!p->vspace)
			p->vtoken++;
		p->vspace = 1;
		return 0;
	}
	p->vspace = 0;
	if (p->vtoken != p->vwant)
		return 0;
	if (c < '0' || c > '9' || p->vcount >= 18) {
		p->vbad = 1;
		return 0;
	}
	p->vnum = (__s64)((__u64)p->vnum * 10 + (c - '0')); /* 19 digits can pass 2^63: wraps, defined */
	p->vcount++;
	return 0;
}

/* The number in token `want` (0 is the line's first word) of the line at pos that is `len` bytes
 * long; -1 if it has none. */
static __always_inline __s64 mc_token_number(struct l7_parse *p, __u32 pos, __u32 len, __u32 want)
{
	struct l7_loop_ctx ctx = {.p = p};

	p->vpos = pos;
	p->vend = pos + len;
	p->vtoken = 0;
	p->vspace = 0;
	p->vwant = want;
	p->vnum = 0;
	p->vcount = 0;
	p->vbad = 0;
	L7_LOOP(L7_CAPTURE_MAX, token_byte, &ctx);
	return p->vcount && !p->vbad ? p->vnum : -1;
}

static __always_inline __u32 mc_kind_of(const char *op)
{
	__u64 w = *(const __u64 *)op, w2 = *(const __u64 *)(op + 8);

	if (w == LIT3('g', 'e', 't') || w == LIT4('g', 'e', 't', 's') || w == LIT3('g', 'a', 't') ||
	    w == LIT4('g', 'a', 't', 's'))
		return MC_RETRIEVAL;
	if (w == LIT3('s', 'e', 't') || w == LIT3('a', 'd', 'd') || w == LIT7('r', 'e', 'p', 'l', 'a', 'c', 'e') ||
	    w == LIT6('a', 'p', 'p', 'e', 'n', 'd') || w == LIT7('p', 'r', 'e', 'p', 'e', 'n', 'd') ||
	    w == LIT3('c', 'a', 's'))
		return MC_STORAGE;
	if (w == LIT6('d', 'e', 'l', 'e', 't', 'e') || w == LIT4('i', 'n', 'c', 'r') || w == LIT4('d', 'e', 'c', 'r') ||
	    w == LIT5('t', 'o', 'u', 'c', 'h') || w == LIT7('v', 'e', 'r', 's', 'i', 'o', 'n') ||
	    (w == LIT8('v', 'e', 'r', 'b', 'o', 's', 'i', 't') && w2 == LIT1('y')) ||
	    (w == LIT8('f', 'l', 'u', 's', 'h', '_', 'a', 'l') && w2 == LIT1('l')))
		return MC_SINGLE;
	if (w == LIT5('s', 't', 'a', 't', 's'))
		return MC_STATS;
	return MC_NONE;
}

/* A request line at pos: msg.op (the command), msg.type (enum mc_kind), msg.num (a storage
 * command's data bytes, -1 for the others), msg.len (the line's bytes) and msg.flags (1:
 * noreply). False if it is not a command line that ends in the window. */
static __always_inline bool mc_request(struct l7_parse *p, __u32 pos)
{
	__u32 len, kind;

	if (!l7_copy_word(p, pos, L7_OP_LEN - 1, OP_WORD))
		return false;
	kind = mc_kind_of(p->msg.op);
	len = l7_line_len(p, pos);
	if (kind == MC_NONE || !len || len < 3 || l7_at(p, pos + len - 2) != '\r')
		return false;
	__u8 after = l7_at(p, pos + p->vcount);
	if (after != ' ' && after != '\r')
		return false;
	p->msg.type = kind;
	p->msg.len = len;
	p->msg.num = kind == MC_STORAGE ? mc_token_number(p, pos, len, 4) : -1;
	p->msg.flags = len > 10 && (l7_word(p, pos + len - 10) & L7_MASK(8)) ==
				   LIT8(' ', 'n', 'o', 'r', 'e', 'p', 'l', 'y');
	return kind != MC_STORAGE || p->msg.num >= 0;
}

/* A reply line at pos: msg.op (its first word, upper case, empty for a number), msg.len (the
 * line's bytes; 0: not in the window), msg.num (VALUE: the data bytes; -1 otherwise), msg.error
 * (ERROR, CLIENT_ERROR, SERVER_ERROR). */
static __always_inline bool mc_reply(struct l7_parse *p, __u32 pos)
{
	__u64 w;

	p->msg.len = l7_line_len(p, pos);
	p->msg.num = -1;
	p->msg.error = 0;
	if (!p->msg.len)
		return false;
	l7_copy_word(p, pos, L7_OP_LEN - 1, OP_WORD | OP_UPPER);
	w = *(__u64 *)p->msg.op;
	if (w == LIT5('V', 'A', 'L', 'U', 'E'))
		p->msg.num = mc_token_number(p, pos, p->msg.len, 3);
	p->msg.error = w == LIT5('E', 'R', 'R', 'O', 'R') || w == LIT8('C', 'L', 'I', 'E', 'N', 'T', '_', 'E') ||
		       w == LIT8('S', 'E', 'R', 'V', 'E', 'R', '_', 'E');
	return w != LIT5('V', 'A', 'L', 'U', 'E') || p->msg.num >= 0;
}

#endif

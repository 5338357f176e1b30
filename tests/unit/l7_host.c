/* The kernel's HTTP/1.x head parser (bpf/l7_http.h) and database and cache parsers (bpf/l7_db.h), built
 * for the host so that tests/unit/test_l7_http_parser.py and tests/unit/test_l7_{db,redis,pg,mysql,memcached}
 * _parser.py can feed them byte literals and random input through ctypes.
 *
 *   clang -Ibpf -Wall -Werror -O2 -shared -fPIC -o l7_host.so tests/unit/l7_host.c
 *
 * tests/unit/bpf_host.h makes bpf_loop a plain loop; everything else is the very code the BPF program runs. */

#include "bpf_host.h"

#include "l7_http.h"

/* sizeof and the offset of every field of struct l7_head, for the ctypes mirror to check itself. */
const unsigned long l7_head_layout[] = {
	sizeof(struct l7_head),
	offsetof(struct l7_head, content_length),
	offsetof(struct l7_head, header_len),
	offsetof(struct l7_head, status),
	offsetof(struct l7_head, version),
	offsetof(struct l7_head, chunked),
	offsetof(struct l7_head, request),
	offsetof(struct l7_head, pad),
	offsetof(struct l7_head, cl_line),
	offsetof(struct l7_head, pad2),
	offsetof(struct l7_head, op),
	offsetof(struct l7_head, target),
	offsetof(struct l7_head, authority),
};

const unsigned long l7_capture_max = L7_CAPTURE_MAX;

unsigned long l7_head_size(void)
{
	return sizeof(struct l7_head);
}

#include "parse_host.h"

int parse_request_over(const unsigned char *data, unsigned n, int fill, const unsigned char *stale,
		       unsigned stale_n, struct l7_head *out)
{
	struct l7_parse *p = load(data, n, fill, stale, stale_n);
	int ok = http_parse_request(p);

	memcpy(out, &p->head, sizeof(*out));
	return ok;
}

int parse_response_over(const unsigned char *data, unsigned n, int fill, const unsigned char *stale,
			unsigned stale_n, struct l7_head *out)
{
	struct l7_parse *p = load(data, n, fill, stale, stale_n);
	int ok = http_parse_response(p);

	memcpy(out, &p->head, sizeof(*out));
	return ok;
}

unsigned method_len_over(const unsigned char *data, unsigned n, int fill, const unsigned char *stale,
			 unsigned stale_n)
{
	return http_method_len(load(data, n, fill, stale, stale_n));
}

int parse_request(const unsigned char *data, unsigned n, struct l7_head *out)
{
	return parse_request_over(data, n, 0, 0, 0, out);
}

int parse_response(const unsigned char *data, unsigned n, struct l7_head *out)
{
	return parse_response_over(data, n, 0, 0, 0, out);
}

unsigned method_len(const unsigned char *data, unsigned n)
{
	return method_len_over(data, n, 0, 0, 0);
}

/* http_parse_response_like: the layout (header_len, cl_line) of an earlier head of the connection */
int parse_response_like(const unsigned char *data, unsigned n, unsigned header_len, unsigned cl_line,
			struct l7_head *out)
{
	struct l7_parse *p = load(data, n, 0, 0, 0);
	int ok = http_parse_response_like(p, header_len, cl_line);

	memcpy(out, &p->head, sizeof(*out));
	return ok;
}

/* l7_hash and http_request_like: a head seen before, by its hash and length */
unsigned long long head_hash(const unsigned char *data, unsigned n, unsigned len)
{
	return l7_hash(load(data, n, 0, 0, 0), len);
}

int request_like(const unsigned char *data, unsigned n, unsigned len, unsigned long long hash)
{
	return http_request_like(load(data, n, 0, 0, 0), len, hash);
}

/* ---------------------------------------------------------------- bpf/l7_db.h
 *
 * The database and cache parsers (tests/unit/test_l7_*_parser.py). Each wrapper loads the window
 * like the ones above, runs one parser at pos and copies out the whole struct l7_msg: the fields a
 * parser does not document keep what fill put there, as in the kernel's reused per-CPU buffer. */

#include "l7_db.h"

const unsigned long l7_msg_layout[] = {
	sizeof(struct l7_msg),
	offsetof(struct l7_msg, num),
	offsetof(struct l7_msg, len),
	offsetof(struct l7_msg, stmt),
	offsetof(struct l7_msg, type),
	offsetof(struct l7_msg, seq),
	offsetof(struct l7_msg, error),
	offsetof(struct l7_msg, flags),
	offsetof(struct l7_msg, pad),
	offsetof(struct l7_msg, op),
	offsetof(struct l7_msg, code),
};

#define L7_DB_WINDOW const unsigned char *data, unsigned n, int fill, const unsigned char *stale, unsigned stale_n
#define L7_DB_LOAD() struct l7_parse *p = load(data, n, fill, stale, stale_n)
#define L7_DB_OUT() memcpy(out, &p->msg, sizeof(*out))

/* A parser at pos whose answer is a bool or a length. */
#define L7_DB_WRAP(ret, name)                                                        \
	ret name##_over(L7_DB_WINDOW, unsigned pos, struct l7_msg *out)              \
	{                                                                            \
		L7_DB_LOAD();                                                        \
		ret r = name(p, pos);                                                \
		L7_DB_OUT();                                                         \
		return r;                                                            \
	}

L7_DB_WRAP(int, resp_element)
L7_DB_WRAP(int, resp_command)
L7_DB_WRAP(unsigned, pg_startup)
L7_DB_WRAP(int, pg_message)
L7_DB_WRAP(int, pg_parse_message)
L7_DB_WRAP(int, pg_bind_message)
L7_DB_WRAP(int, sql_operation)
L7_DB_WRAP(int, mysql_header)
L7_DB_WRAP(int, mc_request)
L7_DB_WRAP(int, mc_reply)
L7_DB_WRAP(unsigned, l7_line_len)

/* pg_error_code returns nothing: the SQLSTATE is in out->code */
void pg_error_code_over(L7_DB_WINDOW, unsigned pos, struct l7_msg *out)
{
	L7_DB_LOAD();
	pg_error_code(p, pos);
	L7_DB_OUT();
}

int mysql_greeting_over(L7_DB_WINDOW, struct l7_msg *out)
{
	L7_DB_LOAD();
	int r = mysql_greeting(p);
	L7_DB_OUT();
	return r;
}

int mysql_command_over(L7_DB_WINDOW, unsigned pos, unsigned seq, struct l7_msg *out)
{
	L7_DB_LOAD();
	int r = mysql_command(p, pos, (__u8)seq);
	L7_DB_OUT();
	return r;
}

/* l7_number: the number in *num and where it ends (p->vpos) in *end */
int l7_number_over(L7_DB_WINDOW, unsigned pos, struct l7_msg *out, long long *num, unsigned *end)
{
	L7_DB_LOAD();
	int r = l7_number(p, pos);
	L7_DB_OUT();
	*num = p->vnum;
	*end = p->vpos;
	return r;
}

/* A command remembered whole (bpf/l7_redis.c): resp_command_span after resp_command at pos (0 if
 * that fails), l7_repeats and l7_hash_at. */
unsigned resp_command_span_over(L7_DB_WINDOW, unsigned pos)
{
	L7_DB_LOAD();
	if (!resp_command(p, pos) || !p->msg.len)
		return 0;
	return resp_command_span(p, pos, p->msg.len, p->msg.num);
}

unsigned l7_repeats_over(L7_DB_WINDOW, unsigned pos, unsigned len)
{
	L7_DB_LOAD();
	return l7_repeats(p, pos, len);
}

unsigned long long l7_hash_at_over(L7_DB_WINDOW, unsigned from, unsigned len)
{
	L7_DB_LOAD();
	return l7_hash_at(p, from, len);
}

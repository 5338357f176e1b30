/* libFuzzer targets of the kernel's L7 parsers, built for the host through tests/unit/l7_host.c (the very
 * code the BPF programs run), one target per protocol:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -Ibpf -DFUZZ_HTTP \
 *         -o fuzz_http tests/fuzz/l7_fuzz.c          (FUZZ_REDIS, FUZZ_PG, FUZZ_MYSQL, FUZZ_MEMCACHED)
 *
 * The input is [position][layout][window...]: the window is what the kernel copies of a call's data;
 * the first bytes choose where in it a parser starts (as a message boundary found earlier would) and
 * the layout of an earlier head or command (HTTP's like-parsers, MySQL's sequence number). Each target
 * runs every parser of its protocol on the window. A parser may say no; it must never read or write
 * outside its buffer, nor do anything undefined (tests/fuzz/run.py runs them). */

#include "../unit/l7_host.c"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *input, size_t size)
{
	struct l7_head head;
	struct l7_msg msg;

	if (size < 2)
		return 0;
	unsigned n = size - 2 > L7_CAPTURE_MAX ? L7_CAPTURE_MAX : (unsigned)(size - 2);
	const unsigned char *data = input + 2;
	unsigned pos = n ? input[0] % n : 0;
	unsigned layout = input[1];

	(void)head;
	(void)msg;
	(void)pos;
	(void)layout;
#if defined(FUZZ_HTTP)
	parse_request(data, n, &head);
	parse_response(data, n, &head);
	method_len(data, n);
	parse_response_like(data, n, pos, layout % (pos + 1), &head);
	request_like(data, n, pos, head_hash(data, n, pos));
	parse_request_over(data, n, 0xff, data, n, &head); /* stale bytes behind a shorter window */
#elif defined(FUZZ_REDIS)
	resp_element_over(data, n, 0, 0, 0, pos, &msg);
	resp_command_over(data, n, 0, 0, 0, pos, &msg);
	resp_command_span_over(data, n, 0, 0, 0, pos);
	long long num;
	unsigned end;
	l7_number_over(data, n, 0, 0, 0, pos, &msg, &num, &end);
	l7_repeats_over(data, n, 0, 0, 0, pos, layout);
	l7_hash_at_over(data, n, 0, 0, 0, pos, layout);
#elif defined(FUZZ_PG)
	pg_startup_over(data, n, 0, 0, 0, pos, &msg);
	pg_message_over(data, n, 0, 0, 0, pos, &msg);
	pg_parse_message_over(data, n, 0, 0, 0, pos, &msg);
	pg_bind_message_over(data, n, 0, 0, 0, pos, &msg);
	pg_error_code_over(data, n, 0, 0, 0, pos, &msg);
	sql_operation_over(data, n, 0, 0, 0, pos, &msg);
#elif defined(FUZZ_MYSQL)
	mysql_header_over(data, n, 0, 0, 0, pos, &msg);
	mysql_greeting_over(data, n, 0, 0, 0, &msg);
	mysql_command_over(data, n, 0, 0, 0, pos, layout, &msg);
	sql_operation_over(data, n, 0, 0, 0, pos, &msg);
#elif defined(FUZZ_MEMCACHED)
	mc_request_over(data, n, 0, 0, 0, pos, &msg);
	mc_reply_over(data, n, 0, 0, 0, pos, &msg);
	l7_line_len_over(data, n, 0, 0, 0, pos, &msg);
#else
#error "define one of FUZZ_HTTP, FUZZ_REDIS, FUZZ_PG, FUZZ_MYSQL, FUZZ_MEMCACHED"
#endif
	return 0;
}

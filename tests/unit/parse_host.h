/* The parse window of the kernel's parsers, for their host builds (tests/unit/l7_host.c, h2_host.c): include it
 * after the parser's headers. */
#ifndef NETOBS_PARSE_HOST_H
#define NETOBS_PARSE_HOST_H

/* Static like the per-CPU map value the BPF program parses in: every call reuses it. The whole struct
 * (window past n, loop state) is first set to fill, then the window to the stale bytes (say, a longer
 * message parsed before), then to the data, of which the window holds the first n bytes (at most
 * L7_CAPTURE_MAX): a test can prove that neither stale bytes nor an earlier parse leak into the result. */
static struct l7_parse parse_state;

static struct l7_parse *load(const unsigned char *data, unsigned n, int fill, const unsigned char *stale,
			     unsigned stale_n)
{
	struct l7_parse *p = &parse_state;

	if (n > L7_CAPTURE_MAX)
		n = L7_CAPTURE_MAX;
	if (stale_n > sizeof(p->buf))
		stale_n = sizeof(p->buf);
	memset(p, fill, sizeof(*p));
	if (stale_n)
		memcpy(p->buf, stale, stale_n);
	if (n)
		memcpy(p->buf, data, n);
	p->n = n;
	return p;
}

#endif

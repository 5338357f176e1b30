/* HTTP/1.x (part of bpf/l7.c): requests queued as their heads are read, responses paired with them
 * in order (several wait when pipelined) and counted. Heads are parsed from the first
 * L7.CaptureBytes of each message (bpf/l7_http.h); bodies are skipped by Content-Length, or end at
 * a zero-size chunk, at the next head or when the connection closes. The state is struct
 * http1_state (bpf/l7_http1_state.h). */

/* Whether a connection's first data is a request head. */
static __always_inline bool http1_detect(const struct l7_parse *p)
{
	return http_method_len(p);
}

/* A request's body is in progress: the next request data is not a head. */
static __always_inline bool http1_in_request(const struct l7_conn *c)
{
	return c->http1.req_remaining || c->http1.req_open;
}

/* The response in progress is complete: its request leaves the queue, the exchange is counted. */
static __always_inline void http1_finish_response(struct l7_conn *c, __u64 end_ns)
{
	struct http1_state *h1 = &c->http1;

	h1->resp_mode = RESP_IDLE;
	if (c->head == c->tail)
		return;
	struct l7_req *req = &c->q[c->head & (L7_QUEUE - 1)];
	record(c, req, &h1->names[c->head & (L7_PIPELINE - 1)], c->protocol, h1->resp_status, l7_no_code, 1, end_ns,
	       req->bytes, c->resp_bytes, h1->resp_header_len);
	c->head++;
	c->resp_bytes = 0;
}

/* The call's data ends with the zero-size chunk that ends a chunked body. */
static __always_inline bool ends_last_chunk(struct l7_io *io)
{
	char tail[5];

	io_resolve(io);
	if (!io->buf || io->ret < 5 || io->seg_off || io->cap < io->ret ||
	    bpf_probe_read_user(tail, sizeof(tail), (const void *)(io->buf + io->ret - 5)))
		return false;
	return tail[0] == '0' && tail[1] == '\r' && tail[2] == '\n' && tail[3] == '\r' && tail[4] == '\n';
}

/* A new request's entry from its head: the parser's, or that of q[tail - 1] if it is alike. */
static __always_inline void http1_queue(struct l7_conn *c, struct l7_parse *p, bool like)
{
	struct http1_state *h1 = &c->http1;
	struct l7_req *req = &c->q[c->tail & (L7_QUEUE - 1)];
	struct l7_names *names = &h1->names[c->tail & (L7_PIPELINE - 1)];
	struct l7_head *h = &p->head;

	if (like) { /* the same head as q[tail - 1]: its fields, not the parser's */
		struct l7_req *last = &c->q[(c->tail - 1) & (L7_QUEUE - 1)];
		struct l7_names *last_names = &h1->names[(c->tail - 1) & (L7_PIPELINE - 1)];
		req->header_len = last->header_len;
		req->version = last->version;
		req->no_body = last->no_body;
		__builtin_memcpy(req->op, last->op, L7_OP_LEN);
		__builtin_memcpy(names, last_names, sizeof(*names));
		h->header_len = last->header_len;
		h->content_length = h1->rq_like_cl;
		h->chunked = 0;
		return;
	}
	req->header_len = h->header_len;
	req->version = h->version;
	req->no_body = h->op[0] == 'H';
	__builtin_memcpy(req->op, h->op, L7_OP_LEN);
	__builtin_memcpy(names->target, h->target, L7_TARGET_LEN);
	__builtin_memcpy(names->authority, h->authority, L7_AUTHORITY_LEN);
	names->fp = names_fingerprint(names);
	/* a whole head with a whole route: the next one may be the same */
	h1->rq_like_len = h->header_len && !h->chunked && p->target_end ? h->header_len : 0;
	if (h1->rq_like_len) {
		h1->rq_like_hash = l7_hash(p, h->header_len);
		h1->rq_like_cl = h->content_length;
	}
}

static __always_inline long http1_request_step(struct l7_conn *c, struct l7_parse *p, struct l7_io *io, __u64 left)
{
	struct http1_state *h1 = &c->http1;

	if (h1->req_remaining) {
		__u64 take = h1->req_remaining < left ? h1->req_remaining : left;
		h1->req_remaining -= take;
		add_request_bytes(c, take);
		io->off += take;
		return 0;
	}
	__u32 like_len = h1->rq_like_len;
	bool like = false, ok = fill_upto(p, io, like_len, capture_bytes);
	if (ok) {
		like = http_request_like(p, like_len, h1->rq_like_hash);
		ok = like || (fill_rest(p, io, like_len, capture_bytes) && http_parse_request(p));
	}
	if (!ok) {
		if (h1->req_open)
			add_request_bytes(c, left);
		io->off = io->ret;
		return 1;
	}
	/* a new request: a response without a length that was still open has ended */
	if (h1->resp_mode == RESP_CHUNKED || h1->resp_mode == RESP_UNTIL_NEXT)
		http1_finish_response(c, c->resp_last_ns);
	if (c->tail - c->head >= L7_PIPELINE) {
		netobs_count(&l7_lost, L7_LOST_PIPELINE_FULL);
		h1->req_open = 0;
		io->off = io->ret;
		return 1;
	}
	http1_queue(c, p, like);
	struct l7_req *req = &c->q[c->tail & (L7_QUEUE - 1)];
	struct l7_head *h = &p->head;
	c->tail++;
	req->start_ns = io->now;
	req->count = 1;
	if (h->header_len && !h->chunked) {
		__u64 len = h->header_len + (h->content_length > 0 ? h->content_length : 0);
		__u64 take = len < left ? len : left;
		req->bytes = take;
		h1->req_remaining = len - take;
		h1->req_open = 0;
		io->off += take;
		return 0;
	}
	req->bytes = left;
	h1->req_open = 1;
	io->off = io->ret;
	return 1;
}

/* Data of a response whose length is known: counted, and the response ends with its last byte. */
static __always_inline long http1_response_data(struct l7_conn *c, struct l7_io *io, __u64 left)
{
	struct http1_state *h1 = &c->http1;
	__u64 take = h1->resp_remaining < left ? h1->resp_remaining : left;

	h1->resp_remaining -= take;
	c->resp_bytes += take;
	io->off += take;
	if (!h1->resp_remaining)
		http1_finish_response(c, io->now);
	return 0;
}

/* The response head at io->off, parsed from the window; false if there is none. */
static __always_inline bool http1_response_head(struct http1_state *h1, struct l7_parse *p, struct l7_io *io)
{
	if (!fill_upto(p, io, h1->like_len, capture_bytes))
		return false;
	if (http_parse_response_like(p, h1->like_len, h1->like_cl))
		return true;
	if (!fill_rest(p, io, h1->like_len, capture_bytes) || !http_parse_response(p))
		return false;
	if (p->head.cl_line && !p->head.chunked && p->head.header_len) {
		h1->like_len = p->head.header_len;
		h1->like_cl = p->head.cl_line;
	}
	return true;
}

static __always_inline long http1_response_step(struct l7_conn *c, struct l7_parse *p, struct l7_io *io, __u64 left)
{
	struct http1_state *h1 = &c->http1;
	__u64 previous_ns = c->resp_last_ns; /* the last data of a response that a new head ends */

	c->resp_last_ns = io->now;
	if (h1->resp_mode == RESP_LENGTH)
		return http1_response_data(c, io, left);
	bool head = http1_response_head(h1, p, io);
	if (h1->resp_mode != RESP_IDLE) { /* chunked, or until the next head */
		if (!head) {
			c->resp_bytes += left;
			io->off = io->ret;
			if (h1->resp_mode == RESP_CHUNKED && ends_last_chunk(io))
				http1_finish_response(c, io->now);
			return 1;
		}
		http1_finish_response(c, io->off ? io->now : previous_ns);
	}
	if (!head) {
		io->off = io->ret; /* data outside any response we know of */
		return 1;
	}
	struct l7_head *h = &p->head;
	__u32 status = h->status;
	if (status < 200 && status != 101) { /* interim (100 Continue): the final response follows */
		io->off += h->header_len && h->header_len < left ? h->header_len : left;
		return 0;
	}
	if (c->head == c->tail) {
		netobs_count(&l7_lost, L7_LOST_UNMATCHED);
		io->off = io->ret;
		return 1;
	}
	if (status == 101) { /* counted once what follows is known (h2_upgrade): HTTP/2 or another protocol */
		__u64 take = h->header_len && h->header_len < left ? h->header_len : left;
		h1->upgraded = HTTP1_UPGRADE_PENDING;
		h1->resp_status = status;
		h1->resp_header_len = h->header_len;
		c->resp_bytes = take;
		io->off += take;
		return 1;
	}
	struct l7_req *req = &c->q[c->head & (L7_QUEUE - 1)];
	/* a CONNECT's 2xx: what follows is another protocol, not a body */
	bool no_body = req->no_body || status == 204 || status == 304 ||
		       (req->op[0] == 'C' && status < 300);
	h1->resp_status = status;
	h1->resp_header_len = h->header_len;
	c->resp_bytes = 0;
	if (h->header_len && (no_body || (!h->chunked && h->content_length >= 0))) {
		h1->resp_mode = RESP_LENGTH;
		h1->resp_remaining = h->header_len + (no_body ? 0 : h->content_length);
		return http1_response_data(c, io, left);
	}
	h1->resp_mode = h->chunked ? RESP_CHUNKED : RESP_UNTIL_NEXT;
	c->resp_bytes = left;
	io->off = io->ret;
	if (h1->resp_mode == RESP_CHUNKED && ends_last_chunk(io))
		http1_finish_response(c, io->now);
	return 1;
}

/* The connection has ended: a response without a length that was open ends with its last data. */
static __always_inline void http1_close(struct l7_conn *c)
{
	if (c->http1.resp_mode != RESP_IDLE || c->http1.upgraded == HTTP1_UPGRADE_PENDING)
		http1_finish_response(c, c->resp_last_ns);
}

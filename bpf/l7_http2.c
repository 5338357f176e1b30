/* HTTP/2 (RFC 9113) and gRPC: the frames of a followed connection, their streams paired and counted.
 *
 * A connection whose first data is the client preface is followed as L7_PROTO_HTTP2, in clear or as
 * TLS plaintext; so is an HTTP/1.1 connection upgraded to h2c (h2_upgrade), and one begun before the
 * exporter, found by a HEADERS frame (h2_headers_frame). Each direction is a sequence of frames, cut anywhere by the calls: `struct h2_dir`
 * keeps the frame in progress (a header cut by a call is put together in `hdr`). A HEADERS block is
 * decoded (bpf/l7_hpack.h) with its direction's dynamic table, in the call where its payload starts.
 *
 * A stream lives from the request's first HEADERS to the response's END_STREAM (or RST_STREAM), and
 * is then added to its series like an HTTP/1.x exchange: version 20, the :method, the folded :path
 * and the :authority; a gRPC call (content-type application/grpc) is a series of L7_PROTO_GRPC, its
 * path not folded and its grpc-status as the code. A streaming call is one stream, so one call.
 *
 * The state of an HTTP/2 connection (~20 KB: two dynamic tables and the streams in progress) is kept
 * in `h2_conns`, beside the connection's struct l7_conn, only for HTTP/2 connections. */

#include "l7_hpack.h"

#define H2_STREAMS 64          /* streams of one connection in progress at once (a power of two) */
#define H2_FRAMES_PER_CALL 512 /* frames (or the rest of one) of one call looked at */
#define H2_PREFACE_LEN 24      /* "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" */

enum h2_frame_type {
	H2_DATA = 0,
	H2_HEADERS = 1,
	H2_RST_STREAM = 3,
	H2_PUSH_PROMISE = 5,
	H2_GOAWAY = 7,
	H2_CONTINUATION = 9,
};

enum h2_flag {
	H2_END_STREAM = 0x1,
	H2_END_HEADERS = 0x4,
	H2_PADDED = 0x8,
	H2_PRIORITY = 0x20,
};

struct h2_stream {
	__u64 start_ns;   /* the request's first frame */
	__u64 req_bytes;  /* the stream's frames in each direction, frame headers included */
	__u64 resp_bytes;
	__u64 req_body;   /* DATA payloads, padding excluded */
	__u64 resp_body;
	__u32 id;         /* 0: the slot is free */
	__u32 status;     /* :status; 0: no response head yet */
	__u8 grpc;
	__u8 status_unknown; /* the response head referred to entries not known: its :status is not certain */
	__u8 grpc_unknown;   /* gRPC: a response block referred to entries not known, and no grpc-status came */
	__u8 pad[5];
	char method[L7_OP_LEN];
	char grpc_status[L7_OP_LEN];
	struct l7_names names; /* the folded route (gRPC: the path as sent) and :authority */
};

/* One direction of a connection: the frame in progress and the dynamic table of its header blocks. */
struct h2_dir {
	__u32 len;      /* the current frame's payload length */
	__u32 left;     /* bytes of its payload still to come; 0: a frame header is next */
	__u32 stream;
	__u8 type;
	__u8 flags;
	__u8 have;      /* bytes of the next frame header already seen, in hdr (a call cut it) */
	__u8 end_stream; /* a HEADERS with END_STREAM continues in CONTINUATION frames */
	__u8 unsynced;  /* found mid-connection: where frames start is not known until a call starts
			 * with what looks like a frame header */
	__u8 pad[7];
	__u8 hdr[16];
	struct hpack_table table;
};

struct h2_conn {
	__u32 preface;       /* bytes of the client preface still to come */
	__u32 pad;
	struct h2_dir dir[2]; /* [1]: the requests' direction (client to server), [0]: the responses' */
	struct h2_stream streams[H2_STREAMS]; /* stream id in streams[(id >> 1) % H2_STREAMS] */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* ~20 KB each: memory for the HTTP/2 connections there are */
	__uint(max_entries, 16384);            /* L7.MaxConnections */
	__type(key, __u64);                    /* the socket's address: replaced when a later socket there
						* is found HTTP/2, deleted at the close */
	__type(value, struct h2_conn);
} h2_conns SEC(".maps");

/* A new connection's state: zeros, the value a map insert copies. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct h2_conn);
} h2_zero SEC(".maps");

/* Per-CPU room for a header block's fields, and for the exchange a stream's end records (off the
 * stack: the calls from a socket program down to a Huffman string's loop stay within 512 bytes). */
struct h2_work {
	struct h2_fields fields;
	struct l7_req req;
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct h2_work);
} h2_work SEC(".maps");

/* Whether the window starts with the client preface. */
static __always_inline bool h2_preface(const struct l7_parse *p)
{
	return l7_word(p, 0) == LIT8('P', 'R', 'I', ' ', '*', ' ', 'H', 'T') &&
	       l7_word(p, 8) == LIT8('T', 'P', '/', '2', '.', '0', '\r', '\n') &&
	       l7_word(p, 16) == LIT8('\r', '\n', 'S', 'M', '\r', '\n', '\r', '\n');
}

/* Whether the window starts with what looks like a frame header. */
static __always_inline bool h2_plausible(const struct l7_parse *p)
{
	return p->n >= 9 && !l7_at(p, 0) && l7_at(p, 1) <= 0x40 && l7_at(p, 3) <= H2_CONTINUATION &&
	       !(l7_at(p, 5) & 0x80);
}

/* Whether the window starts with the HEADERS frame of a request or a response, on a connection
 * whose preface was not seen (it began before the exporter), and who is its client. The frame
 * must fit HTTP/2's default frame size with known flags, on a client's (odd) stream, and its block
 * must begin with a pseudo-header found in the static table: :method, :scheme, :path or :authority
 * for a request, :status for a response. Text protocols start with bytes that make a length past
 * 16,384; anything less certain is left to a later call. `sent`: the process wrote it. */
static __always_inline bool h2_headers_frame(const struct l7_parse *p, bool sent, bool *client)
{
	__u32 len = (__u32)l7_at(p, 0) << 16 | (__u32)l7_at(p, 1) << 8 | l7_at(p, 2);
	__u8 flags = l7_at(p, 4), first;
	__u32 stream = l7_be32(p, 5), at = 9, name;

	if (len == 0 || len > 16384 || l7_at(p, 3) != H2_HEADERS || (stream & 0x80000000) || !(stream & 1) ||
	    (flags & ~(H2_END_STREAM | H2_END_HEADERS | H2_PADDED | H2_PRIORITY)))
		return false;
	if (p->n < capture_bytes && p->n < 9 + len)
		return false; /* the window holds all the call's data, and the frame does not fit in it */
	if (flags & H2_PADDED)
		at++;
	if (flags & H2_PRIORITY)
		at += 5;
	first = l7_at(p, at);
	if (first & 0x80)
		name = first & 0x7f; /* indexed */
	else if ((first & 0xc0) == 0x40)
		name = first & 0x3f; /* literal, indexed name */
	else
		name = first & 0x0f;
	if (name >= 1 && name <= 7) {
		*client = sent;
		return true;
	}
	if (name >= 8 && name <= 14) {
		*client = !sent;
		return true;
	}
	return false;
}

/* Whether the window starts with a SETTINGS frame (not an acknowledgement): what a server sends
 * first on an HTTP/2 connection. */
static __always_inline bool h2_settings(const struct l7_parse *p)
{
	__u32 len = (__u32)l7_at(p, 0) << 16 | (__u32)l7_at(p, 1) << 8 | l7_at(p, 2);

	return p->n >= 9 && len % 6 == 0 && len <= 16384 && l7_at(p, 3) == 4 && !l7_at(p, 4) && !l7_be32(p, 5);
}

/* A connection found to be HTTP/2: its state, fresh. */
static __always_inline bool h2_start(__u64 sk, bool preface)
{
	__u32 zero = 0;
	struct h2_conn *init = bpf_map_lookup_elem(&h2_zero, &zero);
	struct h2_conn *h;

	if (!init || bpf_map_update_elem(&h2_conns, &sk, init, BPF_ANY))
		return false;
	h = bpf_map_lookup_elem(&h2_conns, &sk);
	if (!h)
		return false;
	h->preface = preface ? H2_PREFACE_LEN : 0;
	h->dir[0].unsynced = !preface;
	h->dir[1].unsynced = !preface;
	return true;
}

static __always_inline struct h2_stream *h2_slot(struct h2_conn *h, __u32 id)
{
	return &h->streams[(id >> 1) & (H2_STREAMS - 1)];
}

/* The stream `id` if it is in progress. */
static __always_inline struct h2_stream *h2_find(struct h2_conn *h, __u32 id)
{
	struct h2_stream *s = h2_slot(h, id);

	return id && s->id == id ? s : NULL;
}

/* A stream has ended: counted like an HTTP/1.x exchange, and its slot freed. A global function: its
 * stack (record's) is not added to the decoder's, below the frame loop (512 bytes in all). */
__noinline int h2_finish(struct l7_conn *c, struct h2_stream *s, __u64 end_ns)
{
	__u32 zero = 0;
	if (!c || !s)
		return 0;
	struct h2_work *hw = bpf_map_lookup_elem(&h2_work, &zero);
	struct l7_req *req = hw ? &hw->req : NULL;

	if (s->status_unknown || (s->grpc && s->grpc_unknown && !s->grpc_status[0])) {
		netobs_count(&l7_lost, L7_LOST_HEADER_UNKNOWN); /* its status may have been any */
	} else if (req) {
		__builtin_memset(req, 0, sizeof(*req));
		req->start_ns = s->start_ns;
		req->version = 20;
		__builtin_memcpy(req->op, s->method, L7_OP_LEN);
		/* record() counts a body as what follows the head: here, the DATA payloads */
		req->header_len = s->req_bytes > s->req_body ? s->req_bytes - s->req_body : 0;
		record(c, req, &s->names, s->grpc ? L7_PROTO_GRPC : L7_PROTO_HTTP, s->status,
		       s->grpc ? s->grpc_status : l7_no_code, 1, end_ns, s->req_bytes, s->resp_bytes,
		       s->resp_bytes > s->resp_body ? s->resp_bytes - s->resp_body : 0);
	}
	s->id = 0;
	return 0;
}

/* The fields of a request's head start a stream. */
static __always_inline void h2_request(struct h2_conn *h, struct l7_parse *p, struct h2_fields *f, __u32 id,
				       __u64 now)
{
	struct h2_stream *s = h2_slot(h, id);

	if (s->id == id)
		return; /* trailers */
	if (s->id) {
		netobs_count(&l7_lost, L7_LOST_PIPELINE_FULL); /* more than H2_STREAMS in progress */
		return;
	}
	__builtin_memset(s, 0, sizeof(*s));
	s->id = id;
	s->start_ns = now;
	s->grpc = f->grpc;
	__builtin_memcpy(s->method, f->method, L7_OP_LEN);
	__builtin_memcpy(s->names.authority, f->authority, L7_AUTHORITY_LEN);
	if (f->grpc) { /* a gRPC method is a name, never an id: kept as sent, cut to a C string */
		__builtin_memcpy(s->names.target, f->path, L7_TARGET_LEN);
		s->names.target[L7_TARGET_LEN - 1] = 0;
	} else if (f->path[0]) {
		/* the window is free once the block is decoded: the route is folded there */
		__builtin_memcpy(p->buf, f->path, H2_VALUE_LEN);
		p->n = H2_VALUE_LEN; /* the route ends at the first 0 byte, as at a space */
		__builtin_memset(p->head.target, 0, L7_TARGET_LEN);
		http_route(p, 0);
		__builtin_memcpy(s->names.target, p->head.target, L7_TARGET_LEN);
	}
	s->names.fp = names_fingerprint(&s->names);
}

/* The fields of a response's head, or of its trailers. */
static __always_inline void h2_response(struct h2_conn *h, struct h2_fields *f, __u32 id)
{
	struct h2_stream *s = h2_find(h, id);

	if (!s) {
		if (id & 1) /* a pushed stream (even) has no request */
			netobs_count(&l7_lost, L7_LOST_UNMATCHED);
		return;
	}
	if (!s->status) {
		s->status = f->status;
		s->status_unknown = !f->status && f->unknown;
	}
	if (f->seen & (1 << H2_FIELD_GRPC_STATUS))
		__builtin_memcpy(s->grpc_status, f->grpc_status, L7_OP_LEN);
	else if (f->unknown)
		s->grpc_unknown = 1;
}

/* The payload of the frame in progress starts at io->off: what the stream needs of it is read. */
static __always_inline void h2_payload(struct l7_conn *c, struct l7_work *w, struct h2_conn *h, struct h2_dir *d,
				       bool request)
{
	struct l7_parse *p = &w->p;
	__u32 zero = 0, from = 0, end = d->len, pad = 0;
	struct h2_work *hw;
	struct h2_fields *f;

	if (!fill_gather(p, &w->io, d->len)) {
		if (d->type != H2_DATA && d->type != H2_GOAWAY)
			d->table.known = 0; /* a header block not seen */
		return;
	}
	if (d->flags & H2_PADDED && d->type != H2_CONTINUATION && d->type != H2_GOAWAY) {
		pad = l7_at(p, 0);
		from = 1;
		end = pad + 1 <= d->len ? d->len - pad : 0;
	}
	if (d->type == H2_DATA) {
		struct h2_stream *s = h2_find(h, d->stream);
		__u32 padding = d->len - (end > from ? end - from : 0);
		if (s && request) /* the frame's start counted its whole payload as body */
			s->req_body -= padding;
		else if (s)
			s->resp_body -= padding;
		return;
	}
	if (d->type == H2_GOAWAY) { /* streams past the last one processed were not, and will be retried */
		__u32 last = l7_be32(p, 0) & 0x7fffffff;
		if (!request) {
#pragma unroll
			for (int i = 0; i < H2_STREAMS; i++)
				if (h->streams[i].id > last)
					h->streams[i].id = 0;
		}
		return;
	}
	if (d->type == H2_HEADERS && (d->flags & H2_PRIORITY))
		from += 5;
	if (d->type == H2_PUSH_PROMISE)
		from += 4;
	hw = bpf_map_lookup_elem(&h2_work, &zero);
	if (!hw || from > end)
		return;
	f = &hw->fields;
	__builtin_memset(f, 0, sizeof(*f));
	hpack_decode(p, from, end, &d->table, f);
	if (d->type != H2_HEADERS) /* CONTINUATION, PUSH_PROMISE: for the table only */
		return;
	if (request)
		h2_request(h, p, f, d->stream, w->io.now);
	else
		h2_response(h, f, d->stream);
}

/* The frame in progress has ended: END_STREAM takes effect. */
static __always_inline void h2_frame_end(struct l7_conn *c, struct h2_conn *h, struct h2_dir *d, bool request,
					 __u64 now)
{
	bool end_stream = false;

	if (d->type == H2_DATA)
		end_stream = d->flags & H2_END_STREAM;
	else if (d->type == H2_HEADERS && (d->flags & H2_END_HEADERS))
		end_stream = d->flags & H2_END_STREAM;
	else if (d->type == H2_HEADERS)
		d->end_stream = d->flags & H2_END_STREAM;
	else if (d->type == H2_CONTINUATION && (d->flags & H2_END_HEADERS))
		end_stream = d->end_stream;
	if (d->type == H2_RST_STREAM) {
		struct h2_stream *s = h2_find(h, d->stream);
		if (s)
			h2_finish(c, s, now); /* with what it has: its status if the response began */
		return;
	}
	if (!end_stream || request)
		return; /* a request's end changes nothing: its response is awaited */
	struct h2_stream *s = h2_find(h, d->stream);
	if (s)
		h2_finish(c, s, now);
}

/* A frame header, complete in d->hdr: the frame in progress from now on. */
static __always_inline void h2_frame_start(struct h2_conn *h, struct h2_dir *d, bool request)
{
	__u8 *b = d->hdr;
	struct h2_stream *s;

	d->len = (__u32)b[0] << 16 | (__u32)b[1] << 8 | b[2];
	d->left = d->len;
	d->type = b[3];
	d->flags = b[4];
	d->stream = ((__u32)b[5] << 24 | (__u32)b[6] << 16 | (__u32)b[7] << 8 | b[8]) & 0x7fffffff;
	d->have = 0;
	if (d->type != H2_DATA && d->type != H2_HEADERS && d->type != H2_CONTINUATION)
		return;
	s = h2_find(h, d->stream);
	if (!s)
		return;
	if (request) {
		s->req_bytes += 9 + d->len;
		if (d->type == H2_DATA)
			s->req_body += d->len;
	} else {
		s->resp_bytes += 9 + d->len;
		if (d->type == H2_DATA)
			s->resp_body += d->len;
	}
}

/* Whether the frame's payload is read, or only skipped. */
static __always_inline bool h2_reads_payload(const struct h2_dir *d)
{
	return d->type == H2_HEADERS || d->type == H2_CONTINUATION || d->type == H2_PUSH_PROMISE ||
	       d->type == H2_GOAWAY || (d->type == H2_DATA && (d->flags & H2_PADDED));
}

/* One frame (or the rest of one) of the call; 1 when the call's data is done. A global function:
 * the verifier checks it once, on its own (see http_request). */
__noinline long h2_frame(struct l7_conn *c, struct l7_work *w, struct h2_conn *h)
{
	if (!c || !w || !h)
		return 1;
	struct l7_io *io = &w->io;
	if (io->off >= io->ret)
		return 1;
	__u64 left = io->ret - io->off;
	bool request = io->request_dir;
	/* the byte, masked: the compiler takes a bool for 0 or 1, the verifier does not */
	struct h2_dir *d = &h->dir[*(volatile __u8 *)&io->request_dir & 1];

	if (request && h->preface) {
		__u32 take = left < h->preface ? left : h->preface;
		h->preface -= take;
		io->off += take;
		return 0;
	}
	if (d->unsynced) {
		if (io->off || !fill_upto(&w->p, io, 9, L7_CAPTURE_MAX) || !h2_plausible(&w->p)) {
			io->off = io->ret;
			return 1;
		}
		d->unsynced = 0;
	}
	if (!d->left) { /* a frame header, maybe cut by the call (then finished by the next) */
		__u32 have = d->have & 15;
		if (have >= 9 || !fill_upto(&w->p, io, 9 - have, L7_CAPTURE_MAX))
			return 1;
		__u32 n = w->p.n < 9 - have ? w->p.n : 9 - have;
#pragma unroll
		for (__u32 i = 0; i < 9; i++)
			if (i >= have && i - have < n)
				d->hdr[i & 15] = w->p.buf[(i - have) & L7_BUF_MASK];
		io->off += n;
		d->have = have + n;
		if (d->have < 9)
			return 0;
		h2_frame_start(h, d, request);
		if (!d->len) {
			h2_frame_end(c, h, d, request, io->now);
			return 0;
		}
		if (io->off >= io->ret)
			return 1;
		left = io->ret - io->off;
	}
	/* the frame's payload, in the same round: a call of many small frames takes a round each */
	if (d->left == d->len && h2_reads_payload(d)) {
		h2_payload(c, w, h, d, request);
		w->io.win_valid = false;
	}
	__u32 take = left < d->left ? left : d->left;
	d->left -= take;
	io->off += take;
	if (!d->left)
		h2_frame_end(c, h, d, request, io->now);
	return 0;
}

struct h2_ctx {
	struct l7_work *w;
	struct l7_conn *c;
	struct h2_conn *h;
};

static long h2_step(__u64 i, void *data)
{
	struct h2_ctx *x = data;

	return h2_frame(x->c, x->w, x->h) ? 1 : 0;
}

/* The call's data of a followed HTTP/2 connection. */
static __always_inline void h2_data(struct l7_conn *c, struct l7_work *w)
{
	__u64 key = w->io.sk;
	struct h2_conn *h = bpf_map_lookup_elem(&h2_conns, &key);
	struct h2_ctx x = {.w = w, .c = c, .h = h};

	if (!h)
		return;
	bpf_loop(H2_FRAMES_PER_CALL, h2_step, &x, 0);
	if (w->io.off < w->io.ret) { /* more frames than looked at: where the next call's start is unknown */
		struct h2_dir *d = &h->dir[*(volatile __u8 *)&w->io.request_dir & 1];
		d->unsynced = 1;
		d->left = 0;
		d->have = 0;
		d->table.known = 0;
		netobs_count(&l7_lost, L7_LOST_UNPARSED);
	}
}

struct h2_close_ctx {
	struct l7_conn *c;
	struct h2_conn *h;
	__u64 now;
};

static long h2_close_stream(__u64 i, void *data)
{
	struct h2_close_ctx *x = data;
	struct h2_stream *s = &x->h->streams[i & (H2_STREAMS - 1)];

	if (s->id)
		h2_finish(x->c, s, x->now);
	return 0;
}

/* A followed HTTP/2 connection has ended: its streams in progress are counted (those without a
 * response as such), and its state goes. */
static __always_inline void h2_close(struct l7_conn *c, __u64 sk)
{
	struct h2_close_ctx x = {.c = c, .h = bpf_map_lookup_elem(&h2_conns, &sk), .now = bpf_ktime_get_ns()};

	if (!x.h)
		return;
	bpf_loop(H2_STREAMS, h2_close_stream, &x, 0);
	bpf_map_delete_elem(&h2_conns, &sk);
}

/* An HTTP/1.1 request got its 101 (HTTP1_UPGRADE_PENDING), and data follows at io->off. If it is
 * HTTP/2 (the client's preface, or the server's SETTINGS: an `Upgrade: h2c`), the connection goes on
 * as HTTP/2, the upgrading request as its stream 1, whose response comes in frames (RFC 7540 3.2);
 * otherwise the 101 is counted and nothing more is read. */
static __always_inline void h2_upgrade(struct l7_conn *c, struct l7_work *w)
{
	struct l7_io *io = &w->io;
	struct l7_req *req = &c->q[c->head & (L7_QUEUE - 1)];
	__u64 key = io->sk;
	struct h2_stream *s;
	struct h2_conn *h;

	if (!fill_upto(&w->p, io, H2_PREFACE_LEN, L7_CAPTURE_MAX))
		return;
	if (!(io->request_dir ? h2_preface(&w->p) : h2_settings(&w->p)) || c->head == c->tail ||
	    !h2_start(key, true) || !(h = bpf_map_lookup_elem(&h2_conns, &key))) {
		http1_finish_response(c, c->resp_last_ns);
		c->http1.upgraded = HTTP1_UPGRADE_OTHER;
		return;
	}
	s = h2_slot(h, 1);
	s->id = 1;
	s->start_ns = req->start_ns;
	s->req_bytes = req->bytes;
	s->req_body = req->bytes > req->header_len ? req->bytes - req->header_len : 0;
	s->resp_bytes = c->resp_bytes; /* the 101's head */
	__builtin_memcpy(s->method, req->op, L7_OP_LEN);
	__builtin_memcpy(&s->names, &c->http1.names[c->head & (L7_PIPELINE - 1)], sizeof(s->names));
	c->head = c->tail;
	c->resp_bytes = 0;
	c->protocol = L7_PROTO_HTTP2; /* the union's HTTP/1.x state is no longer read */
	h2_data(c, w);
}

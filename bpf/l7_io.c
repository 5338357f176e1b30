/* One socket call's data (part of bpf/l7.c): where it is - the system call's buffer, or the iovecs
 * of readv/writev and recvmsg/sendmsg one after another - and the window of it that a parser looks
 * at (struct l7_parse). A protocol's step reads the message at io->off and moves io->off past what
 * it consumed. */

/* One socket call's data: where it is and how far the loop over its messages got. */
struct l7_io {
	__u64 sk;
	__u64 buf;  /* user address of the current segment (an iovec, or the buffer), 0: not readable */
	__u64 cap;  /* bytes of the segment */
	__u64 seg_off; /* where the segment starts in the call's data */
	__u64 iov;  /* user address of the next iovec; 0: none */
	__u64 iov_left; /* iovecs after the current one */
	__u64 ret;  /* bytes the call moved */
	__u64 off;  /* bytes of ret handled */
	__u64 now;
	__u64 win_off; /* the window (struct l7_parse) holds the call's bytes from win_off on */
	__u64 gathered;    /* fill_gather's loop: bytes copied so far, of gather_want */
	__u64 gather_want;
	bool win_valid;
	bool request_dir;
	bool resolved; /* buf and cap were looked up (only when data must be read) */
};

/* Where a call's data is: `buf` and `cap` if known (TLS plaintext), else looked up from the
 * system call's registers when first needed. The caller sets the call's time, io->now. */
static __always_inline void io_start(struct l7_io *io, __u64 sk, __u64 ret, __u64 buf, __u64 cap)
{
	io->sk = sk;
	io->buf = buf;
	io->cap = cap;
	io->seg_off = 0;
	io->iov = 0;
	io->iov_left = 0;
	io->off = 0;
	io->ret = ret;
	io->resolved = buf != 0;
}

/* The buffer of the system call in progress, from the registers it was entered with. */
static __always_inline void call_buffer(struct l7_io *io)
{
	struct { __u64 base; __u64 len; } iov = {};
	struct netobs_syscall call;
	__u64 msg_iov = 0, msg_iovlen = 0;

	if (!current_syscall(&call))
		return;
	switch (call.nr) {
	case NR_read:
	case NR_write:
	case NR_recvfrom:
	case NR_sendto:
		io->buf = call.arg2;
		io->cap = call.arg3;
		return;
	case NR_readv:
	case NR_writev:
		if (call.arg3 >= 1 && !bpf_probe_read_user(&iov, sizeof(iov), (const void *)call.arg2)) {
			io->buf = iov.base;
			io->cap = iov.len;
			io->iov = call.arg2 + sizeof(iov);
			io->iov_left = call.arg3 - 1;
		}
		return;
	case NR_recvmsg:
	case NR_sendmsg:
		if (!bpf_probe_read_user(&msg_iov, sizeof(msg_iov), (const void *)(call.arg2 + MSGHDR_IOV)) &&
		    !bpf_probe_read_user(&msg_iovlen, sizeof(msg_iovlen), (const void *)(call.arg2 + MSGHDR_IOVLEN)) &&
		    msg_iov && msg_iovlen && !bpf_probe_read_user(&iov, sizeof(iov), (const void *)msg_iov)) {
			io->buf = iov.base;
			io->cap = iov.len;
			io->iov = msg_iov + sizeof(iov);
			io->iov_left = msg_iovlen - 1;
		}
		return;
	}
}

/* Looks up where the call's data is, the first time it is needed. */
static __always_inline void io_resolve(struct l7_io *io)
{
	if (!io->resolved) {
		io->resolved = 1;
		call_buffer(io);
	}
}

/* Moves to the iovec that holds io->off (writev, sendmsg...: many messages in one call). */
static __always_inline void next_segment(struct l7_io *io)
{
	struct { __u64 base; __u64 len; } iov;

#pragma unroll
	for (int i = 0; i < 4; i++) {
		if (!io->iov_left || io->off < io->seg_off + io->cap)
			return;
		if (bpf_probe_read_user(&iov, sizeof(iov), (const void *)io->iov)) {
			io->buf = 0;
			return;
		}
		io->seg_off += io->cap;
		io->buf = iov.base;
		io->cap = iov.len;
		io->iov += sizeof(iov);
		io->iov_left--;
	}
}

/* Copies the call's data from io->off into the window: `limit` bytes at most (L7.CaptureBytes for a
 * message head, at most L7_CAPTURE_MAX), and at most `want` bytes if want is not 0 (a head whose
 * length is expected). */
static __always_inline bool fill_upto(struct l7_parse *p, struct l7_io *io, __u32 want, __u32 limit)
{
	__u64 n;

	io->win_valid = false;
	io_resolve(io);
	next_segment(io);
	if (!io->buf || io->off >= io->seg_off + io->cap || io->off >= io->ret)
		return false;
	n = io->seg_off + io->cap < io->ret ? io->seg_off + io->cap - io->off : io->ret - io->off;
	if (n > limit)
		n = limit;
	if (want && n > want)
		n = want;
	barrier_var(n);
	if (n > L7_CAPTURE_MAX)
		n = L7_CAPTURE_MAX;
	if (n == 0 || bpf_probe_read_user(p->buf, n, (const void *)(io->buf + (io->off - io->seg_off))))
		return false;
	p->n = n;
	io->win_off = io->off;
	io->win_valid = true;
	return true;
}

struct gather_ctx {
	struct l7_parse *p;
	struct l7_io *io;
};

static long gather_step(__u64 i, void *data)
{
	struct gather_ctx *x = data;
	struct l7_io *io = x->io;
	__u64 n = io->gathered, len;

	if (n >= io->gather_want || io->off >= io->ret)
		return 1;
	next_segment(io);
	if (!io->buf || io->off >= io->seg_off + io->cap)
		return 1;
	len = io->seg_off + io->cap < io->ret ? io->seg_off + io->cap - io->off : io->ret - io->off;
	if (len > io->gather_want - n)
		len = io->gather_want - n;
	barrier_var(len);
	if (len > L7_CAPTURE_MAX)
		len = L7_CAPTURE_MAX;
	/* n < L7_CAPTURE_MAX and len <= L7_CAPTURE_MAX: the copy may pass the window's end, into the
	 * spare room that follows it in struct l7_work */
	if (n >= L7_CAPTURE_MAX || !len ||
	    bpf_probe_read_user(&x->p->buf[n & (L7_CAPTURE_MAX - 1)], len,
				(const void *)(io->buf + (io->off - io->seg_off))))
		return 1;
	io->gathered = n + len;
	io->off += len;
	return 0;
}

/* Copies up to `want` bytes (at most L7_CAPTURE_MAX) of the call's data from io->off into the
 * window, across as many iovecs as hold them: a writer may hand one message to sendmsg in many
 * pieces (grpc-core writes an HTTP/2 header block as ~25). Leaves the call's segment where the
 * copy ended: the caller moves io->off at least that far before reading on. */
static __always_inline bool fill_gather(struct l7_parse *p, struct l7_io *io, __u32 want)
{
	struct gather_ctx x = {.p = p, .io = io};
	__u64 start = io->off;

	io->win_valid = false;
	io_resolve(io);
	io->gathered = 0;
	io->gather_want = want < L7_CAPTURE_MAX ? want : L7_CAPTURE_MAX;
	bpf_loop(64, gather_step, &x, 0);
	io->off = start;
	p->n = io->gathered;
	return p->n > 0;
}

/* The window from io->off: L7.CaptureBytes of it. */
static __always_inline bool fill(struct l7_parse *p, struct l7_io *io)
{
	return fill_upto(p, io, 0, capture_bytes);
}

/* After fill_upto(want, limit): the window holds all it could (refilled if want cut it). */
static __always_inline bool fill_rest(struct l7_parse *p, struct l7_io *io, __u32 want, __u32 limit)
{
	if (!want || p->n < want || want >= limit)
		return true;
	return fill_upto(p, io, 0, limit);
}

/* Where io->off is in the window, reading `need` bytes from it if the window does not hold them;
 * ~0 if the call's data cannot be read. */
static __always_inline __u32 window_at(struct l7_parse *p, struct l7_io *io, __u32 need)
{
	if (io->win_valid && io->off >= io->win_off) {
		__u64 rel = io->off - io->win_off;
		__u64 end = io->win_off + p->n; /* the window reaches the end of the data: nothing more to read */
		if (rel < p->n && (rel + need <= p->n || end >= io->ret || end >= io->seg_off + io->cap))
			return (__u32)rel;
	}
	return fill(p, io) ? 0 : ~0U;
}

/* Skips what is left of a message (*skip bytes, added to *bytes); true if that was all of it. */
static __always_inline bool skip_rest(__u64 *skip, struct l7_io *io, __u64 left, __u64 *bytes)
{
	__u64 take = *skip < left ? *skip : left;

	*skip -= take;
	*bytes += take;
	io->off += take;
	return !*skip;
}

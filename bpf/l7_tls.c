// SPDX-License-Identifier: GPL-2.0
/* l7 over TLS: the plaintext of a TLS library's read and write calls, through the same engine as
 * cleartext (bpf/l7.c). Included at the end of l7.c.
 *
 * OpenSSL: uprobes on SSL_read, SSL_write, SSL_read_ex and SSL_write_ex (or on the internal
 * functions they call, where a uprobe costs less: exporter/collectors/x86_calls.py) note each call's
 * arguments by thread (`tls_calls`); one uretprobe takes the plaintext when the call returns: the
 * bytes read are only there then. Which TCP connection a session uses is learnt from the socket
 * layer: a socket whose data is TLS records has the verdict L7_VERDICT_TLS, and its calls made
 * inside a library call name the session's socket (`tls_sessions`, for reads OpenSSL serves from
 * its own buffer without a system call).
 *
 * A TLS connection's state is in a hash keyed by the socket (`tls_conns`), not in socket storage:
 * uprobes may not use socket storage. The socket layer creates it, with the connection's
 * endpoints; the plaintext decides its protocol, as a cleartext connection's first data does; its
 * close (l7_state_change) counts what was in progress and deletes it. */

/* A library read or write in progress on a thread; ssl 0: none. */
struct tls_call {
	__u64 ssl;     /* the session (SSL *) */
	__u64 buf;     /* the caller's plaintext buffer */
	__u64 len_ptr; /* _ex: where the call stores the bytes it moved; 0: its return value says */
	__u64 sk;      /* the socket a system call inside it used; 0: none yet */
	__u64 cookie;
	__u8 sent;
	__u8 done;     /* its data was counted at the entry (Go's Write) */
	__u8 pad[6];
};
/* In task storage: a pointer read per call where a hash costs ~250 ns an update; it goes with its
 * thread. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct tls_call);
} tls_calls SEC(".maps");

/* Go's crypto/tls: a call of (*Conn).Read or Write by goroutine, not by thread, since a goroutine
 * waiting inside Read may resume on another thread. Its g is in a register at every instruction of
 * Go code, and in the registers a system call entered with (current_user_g). */
const volatile bool go_tls_enabled = false; /* L7.Tls.Libraries has go */

struct go_call_key {
	__u64 g;
	__u32 tgid;
	__u32 pad;
};
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH); /* LRU: a goroutine that never returns leaves its entry */
	__uint(max_entries, 16384);
	__type(key, struct go_call_key);
	__type(value, struct tls_call);
} go_calls SEC(".maps");

struct tls_session_key {
	__u64 ssl;
	__u32 tgid;
	__u32 pad;
};
struct tls_socket {
	__u64 sk;
	__u64 cookie;
};
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct tls_session_key);
	__type(value, struct tls_socket);
} tls_sessions SEC(".maps");

struct tls_conn {
	__u64 cookie;
	struct netobs_endpoints ep;
	__u16 tries;   /* plaintext calls looked at without finding a protocol */
	__u8 decided;  /* 1: not followed; nothing more is looked at */
	__u8 held_len; /* bytes of a short read held back (see tls_hold) */
	__u8 held_sent;
	__u8 pad;
	__u64 held;
	struct l7_conn c; /* c.protocol 0: not decided yet */
};
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 16384); /* L7.MaxConnections */
	__type(key, __u64);         /* the socket's address */
	__type(value, struct tls_conn);
} tls_conns SEC(".maps");

/* A new TLS connection's state: only the fields before `c` are ever written here, so `c` stays zero. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tls_conn);
} tls_fresh SEC(".maps");

/* A TLS connection's state, new (an earlier socket's at that address, whose close was not seen, is
 * replaced): its socket and endpoints, its protocol not decided yet. */
static __always_inline struct tls_conn *tls_conn_new(struct sock *sk, __u64 cookie)
{
	__u64 key = (__u64)sk;
	__u32 zero = 0;
	struct tls_conn *t = bpf_map_lookup_elem(&tls_fresh, &zero);

	if (!t)
		return NULL;
	t->cookie = cookie;
	sock_endpoints(sk, &t->ep);
	if (bpf_map_update_elem(&tls_conns, &key, t, BPF_ANY)) {
		netobs_count(&l7_lost, L7_LOST_CONNS_FULL);
		return NULL;
	}
	return bpf_map_lookup_elem(&tls_conns, &key);
}

/* A call on a socket with TLS data (from the socket layer): inside a library call, the socket is
 * that session's. `cookie` 0: not known yet. */
static __always_inline void tls_sock_call(struct sock *sk, __u64 cookie)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct tls_call *call = bpf_task_storage_get(&tls_calls, bpf_get_current_task_btf(), 0, 0);
	__u64 key = (__u64)sk;

	if ((!call || !call->ssl) && go_tls_enabled) {
		struct go_call_key go = {.g = current_user_g(), .tgid = id >> 32};
		call = go.g ? bpf_map_lookup_elem(&go_calls, &go) : NULL;
	}
	if (!call || !call->ssl || call->sk == key)
		return;
	if (!cookie)
		cookie = sock_cookie(sk);
	call->sk = key;
	call->cookie = cookie;
	struct tls_session_key session = {.ssl = call->ssl, .tgid = id >> 32};
	struct tls_socket where = {.sk = key, .cookie = cookie};
	struct tls_socket *known = bpf_map_lookup_elem(&tls_sessions, &session);
	if (!known || known->sk != key || known->cookie != cookie) /* a lookup costs less than an update */
		bpf_map_update_elem(&tls_sessions, &session, &where, BPF_ANY);
	struct tls_conn *t = bpf_map_lookup_elem(&tls_conns, &key);
	if (!t || t->cookie != cookie)
		tls_conn_new(sk, cookie);
}

/* A followed cleartext connection went TLS (starttls): its protocol and roles stay what they were,
 * since a server may read its plaintext in pieces no first message can be told from (MariaDB reads a
 * packet's header, then its payload). */
static __always_inline void tls_adopt(struct sock *sk, __u8 protocol, bool client)
{
	struct tls_conn *t = tls_conn_new(sk, sock_cookie(sk));

	if (t && follow_one())
		conn_identify(&t->c, &t->ep, protocol, client, true);
}

/* A socket with TLS data has closed. */
static __always_inline void tls_close(struct sock *sk)
{
	__u64 key = (__u64)sk;
	struct tls_conn *t = bpf_map_lookup_elem(&tls_conns, &key);

	if (!t)
		return;
	if (t->c.protocol && t->cookie == sock_cookie(sk))
		conn_close(&t->c, key);
	bpf_map_delete_elem(&tls_conns, &key);
}

/* ---------------------------------------------------------------- the library's calls
 * (BPF_KPROBE reads a function's arguments from its registers: the same in a uprobe) */

static __always_inline void tls_enter(void *ssl, const void *buf, void *len_ptr, bool sent)
{
	if (!netobs_current_watched())
		return;
	struct tls_call *call = bpf_task_storage_get(&tls_calls, bpf_get_current_task_btf(), 0,
						     BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!call)
		return;
	call->ssl = (__u64)ssl;
	call->buf = (__u64)buf;
	call->len_ptr = (__u64)len_ptr;
	call->sk = 0;
	call->cookie = 0;
	call->sent = sent;
}

SEC("uprobe")
int BPF_KPROBE(ssl_write, void *ssl, const void *buf, int num)
{
	tls_enter(ssl, buf, NULL, true);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(ssl_read, void *ssl, void *buf, int num)
{
	tls_enter(ssl, buf, NULL, false);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(ssl_write_ex, void *ssl, const void *buf, __u64 num, __u64 *written)
{
	tls_enter(ssl, buf, written, true);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(ssl_read_ex, void *ssl, void *buf, __u64 num, __u64 *readbytes)
{
	tls_enter(ssl, buf, readbytes, false);
	return 0;
}

/* The plaintext of one call goes to its connection: the first decides the protocol. */
/* A message read a few bytes at a time, where its first bytes decide: Go's net/http server reads one
 * byte of the next request on its own (a background read, to notice a closed connection) and hands
 * it to the request's reader; MariaDB reads a packet's 4-byte header, then its payload. Each time the
 * next read lands right after the first in the same buffer. A short read where a protocol is yet to
 * be found, or an HTTP request must start, is held back; if the next read in the same direction
 * follows it in memory, the two are one call's data. false: the call was held, nothing more to do. */
static __always_inline bool tls_hold(struct tls_conn *t, __u64 *buf, __u64 *n, bool sent)
{
	struct l7_conn *c = &t->c;
	__u64 before = 0, mask;

	if (c->protocol && (c->protocol != L7_PROTO_HTTP || c->client != sent || http1_in_request(c)))
		return true;
	if (t->held_len && t->held_sent == sent) {
		__u8 len = t->held_len & 7;
		mask = (1ULL << (len * 8)) - 1;
		t->held_len = 0;
		if (*buf > len && !bpf_probe_read_user(&before, len, (const void *)(*buf - len)) &&
		    (before & mask) == (t->held & mask)) {
			*buf -= len;
			*n += len;
		}
		return true;
	}
	if (*n >= 8 || bpf_probe_read_user(&t->held, *n & 7, (const void *)*buf))
		return true;
	t->held_len = *n;
	t->held_sent = sent;
	return false;
}

static __always_inline void tls_data(struct tls_conn *t, __u64 sk, __u64 buf, __u64 n, bool sent)
{
	struct l7_work *w = get_work();
	struct l7_conn *c = &t->c;

	if (!w || !tls_hold(t, &buf, &n, sent))
		return;
	io_start(&w->io, sk, n, buf, n);
	w->io.now = bpf_ktime_get_ns();
	if (!c->protocol) {
		bool client = sent;
		__u8 protocol = fill(&w->p, &w->io) ? detect(&w->p, sent, &client) : L7_PROTO_UNKNOWN;
		if (!protocol) {
			if (++t->tries >= L7_SNIFF_TRIES)
				t->decided = 1;
			return;
		}
		if (sampled_out()) {
			t->decided = 1;
			return;
		}
		if (!follow_one()) {
			t->decided = 1;
			return;
		}
		conn_identify(c, &t->ep, protocol, client, true);
		if (!protocol_start(c, &w->p, sk)) {
			t->decided = 1;
			return;
		}
	}
	conn_data(c, w, sent);
}

/* The bytes a call moved go to its session's connection. */
static __always_inline void tls_finish(struct tls_call *call, __u64 n, __u64 id)
{
	if (!call->sk) { /* served from the library's buffer: the session's socket, as last seen */
		struct tls_session_key session = {.ssl = call->ssl, .tgid = id >> 32};
		struct tls_socket *where = bpf_map_lookup_elem(&tls_sessions, &session);
		if (!where) {
			netobs_count(&l7_lost, L7_LOST_TLS_SOCKET_UNKNOWN);
			return;
		}
		call->sk = where->sk;
		call->cookie = where->cookie;
	}
	struct tls_conn *t = bpf_map_lookup_elem(&tls_conns, &call->sk);
	if (!t || t->cookie != call->cookie) {
		netobs_count(&l7_lost, L7_LOST_TLS_SOCKET_UNKNOWN);
		return;
	}
	if (!t->decided)
		tls_data(t, call->sk, call->buf, n, call->sent);
}

/* Every function's return: SSL_read and SSL_write return the bytes moved; the _ex ones, and the
 * internal functions they call (exporter/collectors/x86_calls.py), a positive number and the bytes
 * in *len_ptr. */
SEC("uretprobe")
int BPF_KRETPROBE(ssl_return, int ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct tls_call *found = bpf_task_storage_get(&tls_calls, bpf_get_current_task_btf(), 0, 0);
	struct tls_call call;
	__u64 n = ret;

	if (!found || !found->ssl)
		return 0;
	call = *found;
	found->ssl = 0;
	if (ret <= 0)
		return 0;
	if (call.len_ptr && bpf_probe_read_user(&n, sizeof(n), (const void *)call.len_ptr))
		return 0;
	if (n)
		tls_finish(&call, n, id);
	return 0;
}

/* ---------------------------------------------------------------- Go's crypto/tls
 * (*Conn).Read(b []byte) (int, error) and Write: the receiver, then the slice's pointer and length,
 * in registers; n comes back in the first result register. Returns are caught by uprobes on the
 * function's RET instructions (user space finds them): a uretprobe rewrites the return address on
 * the stack, which Go's stack growth and traceback do not expect. */

static __always_inline void go_enter(struct pt_regs *ctx, bool sent)
{
	if (!netobs_current_watched())
		return;
	struct go_call_key key = {.g = NETOBS_GO_G(ctx), .tgid = bpf_get_current_pid_tgid() >> 32};
	struct tls_call call = {.ssl = NETOBS_GO_ARG1(ctx), .buf = NETOBS_GO_ARG2(ctx), .sent = sent};
	bpf_map_update_elem(&go_calls, &key, &call, BPF_ANY);
}

SEC("uprobe")
int go_tls_read(struct pt_regs *ctx)
{
	go_enter(ctx, false);
	return 0;
}

/* A Write returns once all of b is written, or fails: its data is counted at the entry, when the
 * session's socket is known, so that a reply read by another goroutine, on another thread, is never
 * seen before its request (loopback answers before Write has returned). */
SEC("uprobe")
int go_tls_write(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct go_call_key key = {.g = NETOBS_GO_G(ctx), .tgid = id >> 32};
	__u64 n = NETOBS_GO_ARG3(ctx);

	go_enter(ctx, true);
	struct tls_call *call = bpf_map_lookup_elem(&go_calls, &key);
	struct tls_session_key session = {.ssl = NETOBS_GO_ARG1(ctx), .tgid = id >> 32};
	struct tls_socket *where = bpf_map_lookup_elem(&tls_sessions, &session);
	if (!call || !where || !n)
		return 0;
	struct tls_call now = *call;
	now.sk = where->sk;
	now.cookie = where->cookie;
	call->done = 1;
	tls_finish(&now, n, id);
	return 0;
}

/* (*Conn).clientHandshake and serverHandshake: the socket they read and write is the session's,
 * for a first Read served from the records the handshake read ahead (no system call). No data: the
 * entry stays until the goroutine's next Read or Write replaces it. */
SEC("uprobe")
int go_tls_handshake(struct pt_regs *ctx)
{
	if (!netobs_current_watched())
		return 0;
	struct go_call_key key = {.g = NETOBS_GO_G(ctx), .tgid = bpf_get_current_pid_tgid() >> 32};
	struct tls_call call = {.ssl = NETOBS_GO_ARG1(ctx)};
	bpf_map_update_elem(&go_calls, &key, &call, BPF_ANY);
	return 0;
}

SEC("uprobe")
int go_tls_return(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct go_call_key key = {.g = NETOBS_GO_G(ctx), .tgid = id >> 32};
	struct tls_call *found = bpf_map_lookup_elem(&go_calls, &key);
	struct tls_call call;
	long n = (long)NETOBS_GO_ARG1(ctx);

	if (!found)
		return 0;
	call = *found;
	bpf_map_delete_elem(&go_calls, &key);
	if (n > 0 && !call.done)
		tls_finish(&call, n, id);
	return 0;
}

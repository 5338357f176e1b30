// SPDX-License-Identifier: GPL-2.0
/* dns: the DNS messages processes send and receive, copied to user space for parsing.
 *
 * Every socket call that moves data (read/write, readv/writev, recvfrom/sendto, recvmsg/sendmsg,
 * recvmmsg/sendmmsg) is seen at syscall entry and exit, in every network namespace. At entry the
 * file descriptor is resolved to its socket; a TCP or UDP socket with a DNS port at either end is
 * remembered for the thread, as is an unconnected UDP socket whose peer is only known per
 * datagram. At exit each message (UDP) or stream chunk (TCP) that involves a DNS port is copied,
 * up to DNS_DATA_MAX bytes, into the ring buffer. Queries are paired with answers in user space,
 * which also follows the 2-byte framing of DNS over TCP. */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "netobs_sock.h"
#include "dns.h"

char LICENSE[] SEC("license") = "GPL";

#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define MMSG_MAX 8   /* messages of one sendmmsg/recvmmsg looked at */
#define IOV_MAX_SEEN 4 /* iovec entries of one call copied from */
#define MMSGHDR_SIZE 64
#define MSGHDR_IOV 16    /* offsetof(struct user_msghdr, msg_iov) */
#define MSGHDR_IOVLEN 24 /* offsetof(struct user_msghdr, msg_iovlen) */
#define MMSGHDR_LEN 56   /* offsetof(struct mmsghdr, msg_len) */

const volatile __u16 dns_ports[DNS_PORTS_MAX] = {53};
const volatile bool filter_pids = false;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} dns_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, DNS_LOST_REASONS);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u8);
} watched_pids SEC(".maps");

/* One thread inside a socket call: what its exit needs. */
struct dns_call {
	__u64 sock;
	__u64 buf;      /* read/write/recvfrom/sendto: the buffer */
	__u64 iov;      /* readv/writev/recvmsg/sendmsg: struct iovec * */
	__u64 name;     /* sendto/recvfrom/sendmsg/recvmsg: struct sockaddr * of the peer, or 0 */
	__u64 mmsg;     /* sendmmsg/recvmmsg: struct mmsghdr * */
	__u64 ktime_ns; /* at entry */
	__u32 iovcnt;
	__u8 sent;
	__u8 pad[3];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct dns_call);
} calls SEC(".maps");

/* An event plus room for a copy that starts near its end: lets the verifier bound the copies. */
struct dns_scratch {
	struct dns_event ev;
	__u8 spill[DNS_DATA_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dns_scratch);
} scratch SEC(".maps");

static __always_inline void count_lost(__u32 reason)
{
	__u64 *n = bpf_map_lookup_elem(&lost, &reason);
	if (n)
		__sync_fetch_and_add(n, 1);
}

static __always_inline bool is_dns_port(__u16 port)
{
	if (!port)
		return false;
	for (int i = 0; i < DNS_PORTS_MAX; i++) {
		__u16 p = dns_ports[i];
		if (p == port)
			return true;
	}
	return false;
}

static __always_inline bool pid_watched(__u32 pid)
{
	return !filter_pids || bpf_map_lookup_elem(&watched_pids, &pid);
}

/* Reads the peer of an unconnected UDP socket from a user sockaddr. */
static __always_inline bool peer_from_sockaddr(struct netobs_endpoints *ep, __u64 addr)
{
	__u8 sa[28] = {};
	__u16 family;

	if (!addr || bpf_probe_read_user(sa, sizeof(sa), (const void *)addr))
		return false;
	family = *(__u16 *)sa;
	if (family == AF_INET) {
		ep->remote_port = bpf_ntohs(*(__u16 *)(sa + 2));
		__builtin_memset(ep->remote_addr, 0, 16);
		__builtin_memcpy(ep->remote_addr, sa + 4, 4);
		if (ep->family == AF_INET6) { /* dual-stack socket: report IPv4 as IPv4 */
			__builtin_memcpy(ep->local_addr, ep->local_addr + 12, 4);
			__builtin_memset(ep->local_addr + 4, 0, 12);
			ep->family = AF_INET;
		}
		return true;
	}
	if (family == AF_INET6) {
		ep->remote_port = bpf_ntohs(*(__u16 *)(sa + 2));
		__builtin_memcpy(ep->remote_addr, sa + 8, 16);
		endpoints_unmap_v4(ep);
		return true;
	}
	return false;
}

/* ---------------------------------------------------------------- entry */

static __always_inline int begin(long fd, __u8 sent, __u64 buf, __u64 iov, __u32 iovcnt, __u64 name, __u64 mmsg)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct netobs_endpoints ep;
	struct sock *sk;
	__u16 protocol, family;

	if (!pid_watched(id >> 32))
		return 0;
	sk = fd_to_sock((int)fd);
	if (!sk)
		return 0;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return 0;
	protocol = BPF_CORE_READ(sk, sk_protocol);
	if (protocol != IPPROTO_TCP && protocol != IPPROTO_UDP)
		return 0;
	sock_endpoints(sk, &ep);
	if (!is_dns_port(ep.local_port) && !is_dns_port(ep.remote_port)) {
		/* only an unconnected UDP socket may still talk to a DNS port, per datagram */
		if (protocol != IPPROTO_UDP || ep.remote_port || (!name && !mmsg))
			return 0;
	}
	struct dns_call call = {
		.sock = (__u64)sk,
		.buf = buf,
		.iov = iov,
		.name = name,
		.mmsg = mmsg,
		.ktime_ns = bpf_ktime_get_ns(),
		.iovcnt = iovcnt,
		.sent = sent,
	};
	if (bpf_map_update_elem(&calls, &id, &call, BPF_ANY))
		count_lost(DNS_LOST_CALLS_FULL);
	return 0;
}

/* The struct user_msghdr fields a call needs: the peer's address and the iovec. */
static __always_inline void read_msghdr(__u64 msg, __u64 *name, __u64 *iov, __u32 *iovcnt)
{
	__u64 len = 0;

	*name = 0;
	*iov = 0;
	*iovcnt = 0;
	if (!msg)
		return;
	bpf_probe_read_user(name, sizeof(*name), (const void *)msg);
	bpf_probe_read_user(iov, sizeof(*iov), (const void *)(msg + MSGHDR_IOV));
	bpf_probe_read_user(&len, sizeof(len), (const void *)(msg + MSGHDR_IOVLEN));
	*iovcnt = len > IOV_MAX_SEEN ? IOV_MAX_SEEN : (__u32)len;
}

SEC("tracepoint/syscalls/sys_enter_read")
int dns_enter_read(struct trace_event_raw_sys_enter *ctx)
{
	return begin(ctx->args[0], 0, ctx->args[1], 0, 0, 0, 0);
}

SEC("tracepoint/syscalls/sys_enter_write")
int dns_enter_write(struct trace_event_raw_sys_enter *ctx)
{
	return begin(ctx->args[0], 1, ctx->args[1], 0, 0, 0, 0);
}

SEC("tracepoint/syscalls/sys_enter_readv")
int dns_enter_readv(struct trace_event_raw_sys_enter *ctx)
{
	return begin(ctx->args[0], 0, 0, ctx->args[1], ctx->args[2] > IOV_MAX_SEEN ? IOV_MAX_SEEN : ctx->args[2], 0, 0);
}

SEC("tracepoint/syscalls/sys_enter_writev")
int dns_enter_writev(struct trace_event_raw_sys_enter *ctx)
{
	return begin(ctx->args[0], 1, 0, ctx->args[1], ctx->args[2] > IOV_MAX_SEEN ? IOV_MAX_SEEN : ctx->args[2], 0, 0);
}

SEC("tracepoint/syscalls/sys_enter_recvfrom")
int dns_enter_recvfrom(struct trace_event_raw_sys_enter *ctx)
{
	return begin(ctx->args[0], 0, ctx->args[1], 0, 0, ctx->args[4], 0);
}

SEC("tracepoint/syscalls/sys_enter_sendto")
int dns_enter_sendto(struct trace_event_raw_sys_enter *ctx)
{
	return begin(ctx->args[0], 1, ctx->args[1], 0, 0, ctx->args[4], 0);
}

SEC("tracepoint/syscalls/sys_enter_recvmsg")
int dns_enter_recvmsg(struct trace_event_raw_sys_enter *ctx)
{
	__u64 name, iov;
	__u32 iovcnt;

	read_msghdr(ctx->args[1], &name, &iov, &iovcnt);
	return begin(ctx->args[0], 0, 0, iov, iovcnt, name, 0);
}

SEC("tracepoint/syscalls/sys_enter_sendmsg")
int dns_enter_sendmsg(struct trace_event_raw_sys_enter *ctx)
{
	__u64 name, iov;
	__u32 iovcnt;

	read_msghdr(ctx->args[1], &name, &iov, &iovcnt);
	return begin(ctx->args[0], 1, 0, iov, iovcnt, name, 0);
}

SEC("tracepoint/syscalls/sys_enter_recvmmsg")
int dns_enter_recvmmsg(struct trace_event_raw_sys_enter *ctx)
{
	return begin(ctx->args[0], 0, 0, 0, 0, 0, ctx->args[1]);
}

SEC("tracepoint/syscalls/sys_enter_sendmmsg")
int dns_enter_sendmmsg(struct trace_event_raw_sys_enter *ctx)
{
	return begin(ctx->args[0], 1, 0, 0, 0, 0, ctx->args[1]);
}

/* ---------------------------------------------------------------- exit */

/* Copies up to `length` bytes of the message from one buffer or from the first iovec entries. */
static __always_inline __u64 copy_payload(struct dns_event *ev, __u64 buf, __u64 iov, __u32 iovcnt, __u64 length)
{
	__u64 off = 0;

	barrier_var(length);
	if (length > DNS_DATA_MAX)
		length = DNS_DATA_MAX;
	if (buf) {
		if (bpf_probe_read_user(ev->data, length, (const void *)buf))
			return 0;
		return length;
	}
	for (int i = 0; i < IOV_MAX_SEEN; i++) {
		struct iovec v = {};
		__u64 n;

		if (i >= iovcnt || off >= length)
			break;
		if (bpf_probe_read_user(&v, sizeof(v), (const void *)(iov + i * sizeof(v))))
			break;
		n = v.iov_len > length - off ? length - off : v.iov_len;
		barrier_var(n);
		if (n > DNS_DATA_MAX)
			n = DNS_DATA_MAX;
		/* ev->data is followed by DNS_DATA_MAX bytes of spill: off < DNS_DATA_MAX, n <= DNS_DATA_MAX */
		if (bpf_probe_read_user(ev->data + (off & (DNS_DATA_MAX - 1)), n, v.iov_base))
			break;
		off += n;
	}
	return off;
}

/* Sends one message or chunk to user space, if a DNS port is at either end. */
static __always_inline void emit(const struct dns_call *call, struct netobs_endpoints *ep, __u8 protocol,
				 __u64 name, __u64 buf, __u64 iov, __u32 iovcnt, __u32 length, __u64 ktime_ns)
{
	__u32 zero = 0;
	struct dns_scratch *s;
	struct dns_event *ev;
	__u64 captured;

	if (protocol == IPPROTO_UDP && name)
		peer_from_sockaddr(ep, name); /* unconnected: this datagram's peer */
	if (!is_dns_port(ep->local_port) && !is_dns_port(ep->remote_port))
		return;
	s = bpf_map_lookup_elem(&scratch, &zero);
	if (!s)
		return;
	ev = &s->ev;
	ev->ktime_ns = ktime_ns;
	ev->sock = call->sock;
	__builtin_memcpy(ev->local_addr, ep->local_addr, 16);
	__builtin_memcpy(ev->remote_addr, ep->remote_addr, 16);
	ev->pid = bpf_get_current_pid_tgid() >> 32;
	ev->length = length;
	ev->local_port = ep->local_port;
	ev->remote_port = ep->remote_port;
	ev->family = ep->family;
	ev->protocol = protocol;
	ev->sent = call->sent;
	current_process_name(&ev->comm);
	captured = copy_payload(ev, buf, iov, iovcnt, length);
	barrier_var(captured);
	if (captured > DNS_DATA_MAX)
		captured = DNS_DATA_MAX;
	ev->captured = captured;
	if (bpf_ringbuf_output(&dns_events, ev, offsetof(struct dns_event, data) + captured, 0))
		count_lost(DNS_LOST_RINGBUF_FULL);
}

static __always_inline int finish(long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct dns_call *call = bpf_map_lookup_elem(&calls, &id);
	struct netobs_endpoints ep;
	struct sock *sk;
	__u8 protocol;
	__u64 now;

	if (!call)
		return 0;
	if (ret <= 0)
		goto out;
	sk = (struct sock *)call->sock;
	protocol = BPF_CORE_READ(sk, sk_protocol);
	now = call->sent ? call->ktime_ns : bpf_ktime_get_ns();
	if (!call->mmsg) {
		sock_endpoints(sk, &ep);
		emit(call, &ep, protocol, call->name, call->buf, call->iov, call->iovcnt, ret, now);
		goto out;
	}
	for (int i = 0; i < MMSG_MAX; i++) { /* ret is the number of messages */
		__u64 hdr = call->mmsg + (__u64)i * MMSGHDR_SIZE;
		__u64 name = 0, iov = 0;
		__u32 iovcnt = 0, len = 0;

		if (i >= ret)
			break;
		read_msghdr(hdr, &name, &iov, &iovcnt);
		bpf_probe_read_user(&len, sizeof(len), (const void *)(hdr + MMSGHDR_LEN));
		sock_endpoints(sk, &ep);
		emit(call, &ep, protocol, name, 0, iov, iovcnt, len, now);
	}
out:
	bpf_map_delete_elem(&calls, &id);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_read")
int dns_exit_read(struct trace_event_raw_sys_exit *ctx) { return finish(ctx->ret); }

SEC("tracepoint/syscalls/sys_exit_write")
int dns_exit_write(struct trace_event_raw_sys_exit *ctx) { return finish(ctx->ret); }

SEC("tracepoint/syscalls/sys_exit_readv")
int dns_exit_readv(struct trace_event_raw_sys_exit *ctx) { return finish(ctx->ret); }

SEC("tracepoint/syscalls/sys_exit_writev")
int dns_exit_writev(struct trace_event_raw_sys_exit *ctx) { return finish(ctx->ret); }

SEC("tracepoint/syscalls/sys_exit_recvfrom")
int dns_exit_recvfrom(struct trace_event_raw_sys_exit *ctx) { return finish(ctx->ret); }

SEC("tracepoint/syscalls/sys_exit_sendto")
int dns_exit_sendto(struct trace_event_raw_sys_exit *ctx) { return finish(ctx->ret); }

SEC("tracepoint/syscalls/sys_exit_recvmsg")
int dns_exit_recvmsg(struct trace_event_raw_sys_exit *ctx) { return finish(ctx->ret); }

SEC("tracepoint/syscalls/sys_exit_sendmsg")
int dns_exit_sendmsg(struct trace_event_raw_sys_exit *ctx) { return finish(ctx->ret); }

SEC("tracepoint/syscalls/sys_exit_recvmmsg")
int dns_exit_recvmmsg(struct trace_event_raw_sys_exit *ctx) { return finish(ctx->ret); }

SEC("tracepoint/syscalls/sys_exit_sendmmsg")
int dns_exit_sendmmsg(struct trace_event_raw_sys_exit *ctx) { return finish(ctx->ret); }

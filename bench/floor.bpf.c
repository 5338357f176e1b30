// SPDX-License-Identifier: GPL-2.0
/* The socket programs of bpf/sockets.bpf.c replaced by two floors of what they can cost, for
 * bench/churn_floor.py. Every map, helper and other program is the real object's, so the exporter
 * loads either build as it loads its own (NETOBS_BPF_OBJECTS).
 *
 * -DFLOOR_NOTHING: the four socket programs return at once. What is left is the kernel running a
 * program at each event, and the exporter's process: no design of the programs costs less.
 *
 * -DFLOOR_LEAST: the least any design must do to count a short TCP connection exactly and find out
 * its protocol, done as cheaply as the real code can do it:
 * - L7 finds a connection's protocol from its data, so it copies the first message of each direction
 *   and runs the detection on it (later calls return after one lookup of the socket's verdict);
 * - netflow adds each connection's figures to its flow once, when the connection reaches TCP_CLOSE:
 *   one lookup of the flow and the socket's own counters added.
 * It leaves out what the real programs must do besides, so it is a lower bound: the owner taken at
 * connect(2) (here the flow is whichever process runs the close), failed connections, RTT samples,
 * the baselines of connections open before start-up, the count of calls looked at before L7 gives
 * up, DNS over TCP. UDP and other sockets go through the real per-call code. Each part runs if its
 * feature is on, as in the real object: with Common.ProtocolProcess=false, netflow's alone. */
#define NETOBS_BENCH_PROGRAMS /* bpf/sockets.bpf.c leaves its socket programs to this file */
#include "sockets.bpf.c"

#ifdef FLOOR_LEAST
/* L7's least: the first data of each direction (by the socket's own counters) is copied and looked
 * at. A send's bytes written so far count the SYN, which bytes_acked holds once acknowledged. */
static __always_inline void least_look(struct sock *sk, int ret, bool sent)
{
	struct tcp_sock *tp = tcp_of(sk);
	struct l7_work *w;
	bool client;

	if (ret <= 0 || bpf_sk_storage_get(&ignored, sk, 0, 0))
		return;
	if (sent ? (__u64)(__u32)(tp->write_seq - tp->snd_una) + tp->bytes_acked > (__u64)ret + 1
		 : tp->bytes_received > (__u64)ret)
		return;
	w = call_start(sk, ret);
	if (w && fill(&w->p, &w->io) && detect(&w->p, sent, &client))
		w->io.gathered++; /* keeps the detection's result used */
}

/* netflow's least: a connection's figures, added to its flow once, at TCP_CLOSE. */
static __always_inline void least_close(struct sock *sk, int oldstate, int newstate)
{
	struct tcp_sock *tp = tcp_of(sk);
	struct netobs_endpoints ep;
	struct netflow_key k = {};
	char comm[NETFLOW_COMM_LEN] = {};
	struct netflow_stats *f;

	if (newstate != TCP_CLOSE || oldstate == TCP_LISTEN || oldstate == TCP_SYN_RECV || oldstate == TCP_SYN_SENT)
		return;
	sock_endpoints(sk, &ep);
	key_from_endpoints(&k, &ep, IPPROTO_TCP, NETFLOW_DIR_OUTGOING, bpf_get_current_pid_tgid() >> 32, 0);
	if (port_is_ephemeral(k.remote_port))
		k.remote_port = 0; /* one flow per pair of processes, as the real keys make */
	f = flow_stats_get(&k, comm, 0);
	if (!f)
		return;
	__sync_fetch_and_add(&f->bytes_sent, tcp_written(tp));
	__sync_fetch_and_add(&f->bytes_received, tcp_read(tp));
	__sync_fetch_and_add(&f->packets_sent, tp->segs_out);
	__sync_fetch_and_add(&f->packets_received, tp->segs_in);
	__sync_fetch_and_add(&f->closed, 1);
}
#endif

static __always_inline void floor_call(struct sock *sk, int ret, bool sent)
{
#ifdef FLOOR_LEAST
	__u16 family = sk->__sk_common.skc_family;

	if (sk->sk_protocol != IPPROTO_TCP || (family != AF_INET && family != AF_INET6))
		on_socket_call(sk, ret, sent);
	else if (l7_enabled)
		least_look(sk, ret, sent);
#endif
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(sock_send, struct sock *sk, int ret, int flags)
{
	floor_call(sk, ret, true);
	return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(sock_recv, struct sock *sk, int ret, int flags)
{
	if (!(flags & MSG_PEEK))
		floor_call(sk, ret, false);
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(sock_state, struct sock *sk, int oldstate, int newstate)
{
#ifdef FLOOR_LEAST
	if (netflow_enabled && sk->sk_protocol == IPPROTO_TCP)
		least_close(sk, oldstate, newstate);
#endif
	return 0;
}

SEC("tp_btf/tcp_destroy_sock")
int BPF_PROG(sock_destroy, struct sock *sk)
{
	return 0;
}

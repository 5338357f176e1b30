/* Socket helpers shared by the feature programs: addresses of a struct sock, the socket
 * behind a file descriptor, the process name. CO-RE reads only; no kernel versions. */
#ifndef NETOBS_SOCK_H
#define NETOBS_SOCK_H

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define AF_UNIX 1
#define AF_INET 2
#define AF_INET6 10
#define MSG_PEEK 2
#define S_IFMT 00170000
#define S_IFSOCK 0140000

/* A socket's endpoints, local view. Addresses as in struct netflow_key. */
struct netobs_endpoints {
	__u8 local_addr[16];
	__u8 remote_addr[16];
	__u16 local_port;  /* host order */
	__u16 remote_port; /* host order */
	__u16 family;
};

static __always_inline bool ipv6_is_v4mapped(const __u8 *a)
{
	const __u32 *w = (const __u32 *)a;
	return w[0] == 0 && w[1] == 0 && w[2] == bpf_htonl(0x0000ffff);
}

/* Turns ::ffff:a.b.c.d on both ends into plain IPv4, so a dual-stack socket's IPv4 traffic
 * is reported as IPv4. */
static __always_inline void endpoints_unmap_v4(struct netobs_endpoints *ep)
{
	if (ep->family != AF_INET6)
		return;
	if (!ipv6_is_v4mapped(ep->remote_addr) ||
	    (!ipv6_is_v4mapped(ep->local_addr) && ((__u64 *)ep->local_addr)[0] |
						     ((__u64 *)ep->local_addr)[1]))
		return;
	__builtin_memcpy(ep->local_addr, ep->local_addr + 12, 4);
	__builtin_memset(ep->local_addr + 4, 0, 12);
	__builtin_memcpy(ep->remote_addr, ep->remote_addr + 12, 4);
	__builtin_memset(ep->remote_addr + 4, 0, 12);
	ep->family = AF_INET;
}

/* Whether the socket holds a value of any socket-storage map: bpf_sk_storage_get finds none while
 * sk_bpf_storage is NULL, the first thing it reads. A plain load where each map's lookup is a helper
 * call. */
static __always_inline bool sock_has_storage(const struct sock *sk)
{
	return sk->sk_bpf_storage;
}

/* Plain loads: `sk` is a BTF pointer (a tracepoint's argument, or a walk's untrusted pointer, whose
 * loads the kernel makes fault-safe); a BPF_CORE_READ would be a helper call per field. */
static __always_inline void sock_endpoints(const struct sock *sk, struct netobs_endpoints *ep)
{
	__builtin_memset(ep, 0, sizeof(*ep));
	ep->family = sk->__sk_common.skc_family;
	ep->local_port = sk->__sk_common.skc_num;
	ep->remote_port = bpf_ntohs(sk->__sk_common.skc_dport);
	if (ep->family == AF_INET) {
		((__u32 *)ep->local_addr)[0] = sk->__sk_common.skc_rcv_saddr;
		((__u32 *)ep->remote_addr)[0] = sk->__sk_common.skc_daddr;
	} else if (ep->family == AF_INET6) {
		for (int i = 0; i < 4; i++) {
			((__u32 *)ep->local_addr)[i] = sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[i];
			((__u32 *)ep->remote_addr)[i] = sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[i];
		}
		endpoints_unmap_v4(ep);
	}
}

static __always_inline bool addr_is_zero(const __u8 *a)
{
	return (((const __u64 *)a)[0] | ((const __u64 *)a)[1]) == 0;
}

static __always_inline bool addr_is_loopback(const __u8 *a, __u16 family)
{
	if (family == AF_INET)
		return a[0] == 127;
	if (family == AF_INET6) {
		const __u32 *w = (const __u32 *)a;
		return w[0] == 0 && w[1] == 0 && w[2] == 0 && w[3] == bpf_htonl(1);
	}
	return false;
}

/* The process (thread-group leader) name: a worker thread's own name would split series. Plain loads
 * through the task's BTF pointer, no helper call (each call returns through this kernel's return
 * thunk); the kernel keeps comm padded with NULs. */
static __always_inline void task_process_name(struct task_struct *task, char (*buf)[16])
{
	__builtin_memcpy(buf, task->group_leader->comm, 16);
}

static __always_inline void current_process_name(char (*buf)[16])
{
	task_process_name(bpf_get_current_task_btf(), buf);
}

/* The system call numbers of the calls that move socket data from user buffers, and where a call's
 * number and arguments are in the registers it entered with (struct pt_regs), per architecture. */
#if defined(__TARGET_ARCH_x86)
#define NR_read 0
#define NR_write 1
#define NR_readv 19
#define NR_writev 20
#define NR_sendto 44
#define NR_recvfrom 45
#define NR_sendmsg 46
#define NR_recvmsg 47
#define NR_recvmmsg 299
#define NR_sendmmsg 307
#define NETOBS_SYSCALL_NR(r) ((r)->orig_ax)
#define NETOBS_SYSCALL_ARG2(r) ((r)->si)
#define NETOBS_SYSCALL_ARG3(r) ((r)->dx)
#define NETOBS_SYSCALL_ARG5(r) ((r)->r8)
/* Go's register ABI (Go >= 1.17): the first integer arguments and results, and the goroutine */
#define NETOBS_GO_ARG1(r) ((r)->ax)
#define NETOBS_GO_ARG2(r) ((r)->bx)
#define NETOBS_GO_ARG3(r) ((r)->cx)
#define NETOBS_GO_G(r) ((r)->r14)
#elif defined(__TARGET_ARCH_arm64)
/* asm-generic numbers */
#define NR_read 63
#define NR_write 64
#define NR_readv 65
#define NR_writev 66
#define NR_sendto 206
#define NR_recvfrom 207
#define NR_sendmsg 211
#define NR_recvmsg 212
#define NR_recvmmsg 243
#define NR_sendmmsg 269
#define NETOBS_SYSCALL_NR(r) ((r)->syscallno)
#define NETOBS_SYSCALL_ARG2(r) ((r)->regs[1])
#define NETOBS_SYSCALL_ARG3(r) ((r)->regs[2])
#define NETOBS_SYSCALL_ARG5(r) ((r)->regs[4])
#define NETOBS_GO_ARG1(r) ((r)->regs[0])
#define NETOBS_GO_ARG2(r) ((r)->regs[1])
#define NETOBS_GO_ARG3(r) ((r)->regs[2])
#define NETOBS_GO_G(r) ((r)->regs[28])
#else
#error "netobs: no system call table for this __TARGET_ARCH (x86 and arm64 are built)"
#endif
/* the same on every 64-bit architecture */
#define MSGHDR_IOV 16    /* offsetof(struct user_msghdr, msg_iov) */
#define MSGHDR_IOVLEN 24 /* offsetof(struct user_msghdr, msg_iovlen) */

/* The system call the current task is in, from the registers it entered with: what the socket
 * layer's tracepoints (tp_btf/sock_{send,recv}_length) need to find the call's buffer. */
struct netobs_syscall {
	__u64 nr;
	__u64 arg2; /* the buffer, iovec or msghdr */
	__u64 arg3; /* its length, or the iovec count */
	__u64 arg5; /* sendto/recvfrom's address */
};

extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;

/* The socket as a struct tcp_sock whose fields are read by plain loads (the kernel makes each a
 * fault-safe load): a BPF_CORE_READ is a helper call, ~50-100 ns each on kernels with return
 * thunks, and netflow's walk reads a dozen fields of every socket, l7 its clock on every call. */
static __always_inline struct tcp_sock *tcp_of(struct sock *sk)
{
	return bpf_rdonly_cast(sk, bpf_core_type_id_kernel(struct tcp_sock));
}

/* task_pt_regs(task) - task->stack: where a task's saved user registers are on its kernel stack, a
 * constant of the kernel's build (THREAD_SIZE, less its padding and the registers' size). Learned
 * from the first call of bpf_task_pt_regs; 0 until then. */
__u64 netobs_pt_regs_offset = 0;

/* The registers the current task entered the kernel with, read by plain fault-safe loads: after the
 * first call, without bpf_task_pt_regs, a helper call (~30 ns each on a kernel with return thunks). */
static __always_inline struct pt_regs *current_user_regs(void)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u64 stack = (__u64)task->stack;
	__u64 offset = netobs_pt_regs_offset;

	if (offset)
		return bpf_rdonly_cast((void *)(stack + offset), bpf_core_type_id_kernel(struct pt_regs));
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
	if (regs && stack)
		netobs_pt_regs_offset = (__u64)regs - stack;
	return regs;
}

/* The goroutine (Go's g) the current task ran when it entered the kernel: a Go program keeps it in a
 * register (R14, X28), so the system calls of one goroutine tell it apart from others on the same
 * thread. 0 outside a system call. For tp_btf programs. */
static __always_inline __u64 current_user_g(void)
{
	struct pt_regs *regs = current_user_regs();
	__u64 g;

	if (!regs)
		return 0;
	g = NETOBS_GO_G(regs);
	barrier_var(g);
	return g;
}

/* For tp_btf programs: direct loads from the task's saved registers. False outside a syscall. */
static __always_inline bool current_syscall(struct netobs_syscall *call)
{
	struct pt_regs *regs = current_user_regs();
	__u64 v;

	if (!regs)
		return false;
	/* barriers keep the compiler from merging these loads with stack loads, which the verifier
	 * would refuse (one instruction, two pointer types) */
	v = NETOBS_SYSCALL_NR(regs);
	barrier_var(v);
	call->nr = v;
	v = NETOBS_SYSCALL_ARG2(regs);
	barrier_var(v);
	call->arg2 = v;
	v = NETOBS_SYSCALL_ARG3(regs);
	barrier_var(v);
	call->arg3 = v;
	v = NETOBS_SYSCALL_ARG5(regs);
	barrier_var(v);
	call->arg5 = v;
	return true;
}

#endif

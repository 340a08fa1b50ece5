/* Perf buffer producer on tracepoint raw_syscalls/sys_enter: for each syscall of target_tgid
 * (0: any) outputs {seq, pid} to the current CPU's buffer; failed outputs counted in
 * `dropped`. */
#include "vmlinux.h"
#include <bpf_helpers.h>

struct event {
	__u64 seq;
	__u32 pid;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} events SEC(".maps");

__u32 target_tgid;
__u64 seq;
__u64 dropped;

SEC("tracepoint/raw_syscalls/sys_enter")
int produce(void *ctx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct event e = {};

	if (target_tgid && pid != target_tgid)
		return 0;
	e.seq = __sync_fetch_and_add(&seq, 1);
	e.pid = pid;
	if (bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, &e, sizeof(e)) < 0)
		__sync_fetch_and_add(&dropped, 1);
	return 0;
}

char _license[] SEC("license") = "GPL";

/* Ring buffer producer on tracepoint raw_syscalls/sys_enter: for each syscall of target_tgid
 * (0: any) writes {seq, pid} records with increasing seq; failed reservations counted in
 * `dropped`. */
#include "vmlinux.h"
#include <bpf_helpers.h>

struct event {
	__u64 seq;
	__u32 pid;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} events SEC(".maps");

__u32 target_tgid;
__u64 seq;
__u64 dropped;

SEC("tracepoint/raw_syscalls/sys_enter")
int produce(void *ctx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct event *e;

	if (target_tgid && pid != target_tgid)
		return 0;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		__sync_fetch_and_add(&dropped, 1);
		return 0;
	}
	e->seq = __sync_fetch_and_add(&seq, 1);
	e->pid = pid;
	e->pad = 0;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

char _license[] SEC("license") = "GPL";

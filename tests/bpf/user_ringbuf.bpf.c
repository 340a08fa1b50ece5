/* User ring buffer drainer: on each syscall of target_tgid (0: any) drains `requests`, adding
 * each sample's first u64 to `total` and counting samples in `drained`; `drain_syscall` does
 * the same when run with BPF_PROG_TEST_RUN. */
#include "vmlinux.h"
#include <bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_USER_RINGBUF);
	__uint(max_entries, 64 * 1024);
} requests SEC(".maps");

__u32 target_tgid;
__u64 total;
__u64 drained;

static long on_sample(struct bpf_dynptr *dynptr, void *ctx)
{
	__u64 v;

	if (bpf_dynptr_read(&v, sizeof(v), dynptr, 0, 0))
		return 1; /* stop: malformed sample */
	__sync_fetch_and_add(&total, v);
	__sync_fetch_and_add(&drained, 1);
	return 0;
}

SEC("tracepoint/raw_syscalls/sys_enter")
int drain(void *ctx)
{
	if (target_tgid && (bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	bpf_user_ringbuf_drain(&requests, on_sample, NULL, 0);
	return 0;
}

SEC("syscall")
int drain_syscall(void *ctx)
{
	return bpf_user_ringbuf_drain(&requests, on_sample, NULL, 0);
}

char _license[] SEC("license") = "GPL";

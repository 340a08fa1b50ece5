/* uprobe + uretprobe counting calls of whatever function they are attached to (target given at
 * attach time), from target_tgid (0: any), keeping the last first argument and return value. */
#include "vmlinux.h"
#include <bpf_helpers.h>
#include <bpf_tracing.h>

__u32 target_tgid;
__u64 calls;
__u64 returns;
__u64 last_arg;
__u64 last_ret;

static __always_inline int mine(void)
{
	return !target_tgid || (bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

SEC("uprobe")
int BPF_UPROBE(uprobe_entry, __u64 arg)
{
	if (mine()) {
		__sync_fetch_and_add(&calls, 1);
		last_arg = arg;
	}
	return 0;
}

SEC("uretprobe")
int BPF_URETPROBE(uprobe_return, __u64 ret)
{
	if (mine()) {
		__sync_fetch_and_add(&returns, 1);
		last_ret = ret;
	}
	return 0;
}

char _license[] SEC("license") = "GPL";

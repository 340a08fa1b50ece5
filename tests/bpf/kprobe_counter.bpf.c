/* kprobe + kretprobe counting calls of __x64_sys_getpgid (os.getpgid) from the process whose
 * tgid is in `target_tgid` (0: any process); x86-64 syscall wrapper name. */
#include "vmlinux.h"
#include <bpf_helpers.h>
#include <bpf_tracing.h>

__u32 target_tgid;
__u64 entries;
__u64 returns;

static __always_inline int mine(void)
{
	return !target_tgid || (bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

SEC("kprobe/__x64_sys_getpgid")
int BPF_KPROBE(getpgid_entry)
{
	if (mine())
		__sync_fetch_and_add(&entries, 1);
	return 0;
}

SEC("kretprobe/__x64_sys_getpgid")
int BPF_KRETPROBE(getpgid_return, long ret)
{
	if (mine())
		__sync_fetch_and_add(&returns, 1);
	return 0;
}

char _license[] SEC("license") = "GPL";

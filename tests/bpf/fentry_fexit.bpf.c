/* fentry/fexit pair on __x64_sys_getpgid counting entries and exits of target_tgid (0: any)
 * and keeping the last return value. */
#include "vmlinux.h"
#include <bpf_helpers.h>
#include <bpf_tracing.h>

__u32 target_tgid;
__u64 entries;
__u64 exits;
long last_ret;

static __always_inline int mine(void)
{
	return !target_tgid || (bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

SEC("fentry/__x64_sys_getpgid")
int BPF_PROG(getpgid_fentry, const struct pt_regs *regs)
{
	if (mine())
		__sync_fetch_and_add(&entries, 1);
	return 0;
}

SEC("fexit/__x64_sys_getpgid")
int BPF_PROG(getpgid_fexit, const struct pt_regs *regs, long ret)
{
	if (mine()) {
		__sync_fetch_and_add(&exits, 1);
		last_ret = ret;
	}
	return 0;
}

char _license[] SEC("license") = "GPL";

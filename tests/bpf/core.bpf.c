/* CO-RE: reads the current task's tgid/pid and its parent's tgid through BPF_CORE_READ
 * (field offsets relocated against the running kernel's BTF); runs under test_run. */
#include "vmlinux.h"
#include <bpf_helpers.h>
#include <bpf_core_read.h>

__u32 seen_tgid = 0;
__u32 seen_pid = 0;
__u32 seen_ppid = 0;
__u32 has_pid_field = 0;

SEC("tc")
int read_task(struct __sk_buff *skb)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	seen_tgid = BPF_CORE_READ(task, tgid);
	seen_pid = BPF_CORE_READ(task, pid);
	seen_ppid = BPF_CORE_READ(task, real_parent, tgid);
	has_pid_field = bpf_core_field_exists(task->pid);
	return 0;
}

char _license[] SEC("license") = "GPL";

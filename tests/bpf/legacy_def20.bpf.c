/* Legacy object: maps in SEC("maps") as the 20-byte struct bpf_map_def (no BTF), programs in
 * the classic sections sharing a .text subprogram.  libbpf 1.x refuses it; bpf.legacy loads it. */
#include "vmlinux.h"
#include <bpf_helpers.h>

struct bpf_map_def {
	unsigned int type;
	unsigned int key_size;
	unsigned int value_size;
	unsigned int max_entries;
	unsigned int map_flags;
};

struct bpf_map_def SEC("maps") counters = {
	.type = BPF_MAP_TYPE_ARRAY,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u64),
	.max_entries = 8,
};

struct bpf_map_def SEC("maps") lengths = {
	.type = BPF_MAP_TYPE_HASH,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u64),
	.max_entries = 64,
};

/* A BPF-to-BPF subprogram in .text: every program below calls it. */
static __attribute__((noinline)) int bump(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);

	if (!v)
		return 0;
	__sync_fetch_and_add(v, 1);
	return (int)*v;
}

SEC("socket")
int sock_count(struct __sk_buff *skb)
{
	__u32 len = skb->len;
	__u64 one = 1;

	bpf_map_update_elem(&lengths, &len, &one, BPF_ANY);
	bump(0);
	return skb->len;
}

SEC("xdp")
int xdp_count(struct xdp_md *ctx)
{
	bump(1);
	return XDP_PASS;
}

SEC("classifier")
int cls_count(struct __sk_buff *skb)
{
	return bump(2) > 0 ? 0 : 2;
}

SEC("action")
int act_count(struct __sk_buff *skb)
{
	bump(3);
	return 0;
}

SEC("kprobe/__x64_sys_getpgid")
int kprobe_count(void *ctx)
{
	bump(4);
	return 0;
}

SEC("kretprobe/__x64_sys_getpgid")
int kretprobe_count(void *ctx)
{
	bump(5);
	return 0;
}

SEC("tracepoint/raw_syscalls/sys_enter")
int tp_count(void *ctx)
{
	bump(6);
	return 0;
}

SEC("raw_tracepoint/sys_enter")
int raw_tp_count(void *ctx)
{
	bump(7);
	return 0;
}

char _license[] SEC("license") = "GPL";

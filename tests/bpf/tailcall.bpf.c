/* Tail calls through program arrays: entry jumps to jump_table[slot] (filled at run time),
 * entry_static to jump_static[0] (initialised declaratively, filled by libbpf at load). */
#include "vmlinux.h"
#include <bpf_helpers.h>

__u32 slot = 0;

SEC("tc")
int tail_one(struct __sk_buff *skb)
{
	return 11;
}

SEC("tc")
int tail_two(struct __sk_buff *skb)
{
	return 22;
}

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} jump_table SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 2);
	__uint(key_size, sizeof(__u32));
	__array(values, int(struct __sk_buff *));
} jump_static SEC(".maps") = {
	.values = { [0] = (void *)&tail_two },
};

SEC("tc")
int entry(struct __sk_buff *skb)
{
	bpf_tail_call(skb, &jump_table, slot);
	return 1; /* the slot was empty */
}

SEC("tc")
int entry_static(struct __sk_buff *skb)
{
	bpf_tail_call(skb, &jump_static, 0);
	return 1;
}

char _license[] SEC("license") = "GPL";

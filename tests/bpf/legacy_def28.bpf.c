/* Legacy object: maps in SEC("maps") as the 28-byte struct bpf_map_def that adds
 * inner_map_idx and pinning (2 = pinned under the loader's pin path); a map-in-map and a
 * .text subprogram calling another.  No BTF.  Loaded by bpf.legacy.load_elf. */
#include "vmlinux.h"
#include <bpf_helpers.h>

#define PIN_GLOBAL_NS 2

struct bpf_map_def {
	unsigned int type;
	unsigned int key_size;
	unsigned int value_size;
	unsigned int max_entries;
	unsigned int map_flags;
	unsigned int inner_map_idx; /* index (by offset) of the inner map's template definition */
	unsigned int pinning;
};

struct bpf_map_def SEC("maps") inner_tmpl = {
	.type = BPF_MAP_TYPE_ARRAY,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u64),
	.max_entries = 1,
};

struct bpf_map_def SEC("maps") outer = {
	.type = BPF_MAP_TYPE_ARRAY_OF_MAPS,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u32),
	.max_entries = 2,
	.inner_map_idx = 0,
};

struct bpf_map_def SEC("maps") shared = {
	.type = BPF_MAP_TYPE_ARRAY,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u64),
	.max_entries = 4,
	.pinning = PIN_GLOBAL_NS,
};

static __attribute__((noinline)) int add_shared(__u32 idx, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&shared, &idx);

	if (!v)
		return 0;
	__sync_fetch_and_add(v, n);
	return 1;
}

/* Adds to inner map 0 of outer (when set) and to shared[idx] through add_shared. */
static __attribute__((noinline)) int bump(__u32 idx)
{
	__u32 zero = 0;
	void *inner = bpf_map_lookup_elem(&outer, &zero);

	if (inner) {
		__u64 *v = bpf_map_lookup_elem(inner, &zero);
		if (v)
			__sync_fetch_and_add(v, 1);
	}
	return add_shared(idx, 1);
}

SEC("socket")
int sock_count(struct __sk_buff *skb)
{
	bump(0);
	return skb->len;
}

SEC("tc_cls")
int cls_count(struct __sk_buff *skb)
{
	return bump(1) ? 0 : 2;
}

SEC("tc_act")
int act_count(struct __sk_buff *skb)
{
	bump(2);
	return 0;
}

SEC("xdp")
int xdp_count(struct xdp_md *ctx)
{
	bump(3);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";

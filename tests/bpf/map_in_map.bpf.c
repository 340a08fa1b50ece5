/* Maps of maps: `outer` declares its inner map's template with __array(values, ...), `outer_fd`
 * has none (the loader must give it one); bump_inner adds 1 to inner map outer[0] at key 0. */
#include "vmlinux.h"
#include <bpf_helpers.h>

struct inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 4);
	__type(key, __u32);
	__array(values, struct inner);
} outer SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} outer_fd SEC(".maps");

SEC("tc")
int bump_inner(struct __sk_buff *skb)
{
	__u32 k = 0;
	void *in = bpf_map_lookup_elem(&outer, &k);
	__u64 *v;

	if (!in)
		return 1;
	v = bpf_map_lookup_elem(in, &k);
	if (v)
		__sync_fetch_and_add(v, 1);
	return 0;
}

char _license[] SEC("license") = "GPL";

/* A map pinned by name (LIBBPF_PIN_BY_NAME, under the object's pin root) next to a private
 * one; the TC program counts runs in both. */
#include "vmlinux.h"
#include <bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pinned_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} private_counts SEC(".maps");

SEC("tc")
int count(struct __sk_buff *skb)
{
	__u32 k = 0;
	__u64 one = 1, *v;

	v = bpf_map_lookup_elem(&pinned_counts, &k);
	if (v)
		__sync_fetch_and_add(v, 1);
	v = bpf_map_lookup_elem(&private_counts, &k);
	if (v)
		__sync_fetch_and_add(v, 1);
	else
		bpf_map_update_elem(&private_counts, &k, &one, BPF_NOEXIST);
	return 0;
}

char _license[] SEC("license") = "GPL";

/* bad_deref fails verification on purpose (map value used without a NULL check); good is a
 * valid program, loadable once bad_deref's autoload is off. */
#include "vmlinux.h"
#include <bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH); /* an array lookup with a constant key is never NULL */
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} values SEC(".maps");

SEC("tc")
int bad_deref(struct __sk_buff *skb)
{
	__u32 k = 0;
	__u64 *v = bpf_map_lookup_elem(&values, &k);

	return (int)*v; /* R0 may be NULL here: the verifier refuses */
}

SEC("tc")
int good(struct __sk_buff *skb)
{
	return 1;
}

char _license[] SEC("license") = "GPL";

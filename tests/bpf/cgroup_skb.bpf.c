/* cgroup_skb egress/ingress counters; allows every packet (return 1), or drops egress while
 * the global `deny_egress` is non-zero. */
#include "vmlinux.h"
#include <bpf_helpers.h>

__u64 egress_packets;
__u64 ingress_packets;
__u32 deny_egress;

SEC("cgroup_skb/egress")
int count_egress(struct __sk_buff *skb)
{
	__sync_fetch_and_add(&egress_packets, 1);
	return deny_egress ? 0 : 1;
}

SEC("cgroup_skb/ingress")
int count_ingress(struct __sk_buff *skb)
{
	__sync_fetch_and_add(&ingress_packets, 1);
	return 1;
}

char _license[] SEC("license") = "GPL";

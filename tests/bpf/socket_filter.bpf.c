/* Socket filter counting packets and bytes seen on the socket; keeps every packet whole. */
#include "vmlinux.h"
#include <bpf_helpers.h>

__u64 packets;
__u64 bytes;

SEC("socket")
int count_socket(struct __sk_buff *skb)
{
	__sync_fetch_and_add(&packets, 1);
	__sync_fetch_and_add(&bytes, skb->len);
	return skb->len;
}

char _license[] SEC("license") = "GPL";

/* TC classifier counter: counts packets and bytes in globals and lets every packet through. */
#include "vmlinux.h"
#include <bpf_helpers.h>

#define TC_ACT_OK 0

__u64 packets;
__u64 bytes;

SEC("tc")
int tc_count(struct __sk_buff *skb)
{
	__sync_fetch_and_add(&packets, 1);
	__sync_fetch_and_add(&bytes, skb->len);
	return TC_ACT_OK;
}

char _license[] SEC("license") = "GPL";

/* XDP packet counter: counts packets in `packets` (a .bss global) and drops them all while the
 * global `drop` is non-zero, else passes them. */
#include "vmlinux.h"
#include <bpf_helpers.h>

__u64 packets;
__u32 drop;

SEC("xdp")
int xdp_count(struct xdp_md *ctx)
{
	__sync_fetch_and_add(&packets, 1);
	return drop ? XDP_DROP : XDP_PASS;
}

char _license[] SEC("license") = "GPL";

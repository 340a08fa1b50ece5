// SPDX-License-Identifier: BSD-2-Clause
/* XDP: ABORTED for truncated frames, DROP for UDP to port 9 (discard) or from a 10.0.0.0/8
 * source with TTL below 2, PASS otherwise. */
#include "common.h"

SEC("xdp")
int xdp_filter(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	struct udphdr *udp;

	if ((void *)(eth + 1) > end)
		return XDP_ABORTED;
	if (eth->h_proto != bswap16(ETH_P_IP))
		return XDP_PASS;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end)
		return XDP_ABORTED;
	if ((ip->saddr & 0xff) == 10 && ip->ttl < 2)
		return XDP_DROP;
	if (ip->protocol != 17 || ip->ihl != 5)
		return XDP_PASS;
	udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > end)
		return XDP_ABORTED;
	if (udp->dest == bswap16(9))
		return XDP_DROP;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";

// SPDX-License-Identifier: BSD-2-Clause
/* TC: decrement the IPv4 TTL (with an incremental checksum update), set skb->mark to the
 * sum of the first 8 payload bytes, and return TC_ACT_OK (0); TC_ACT_SHOT (2) when the TTL
 * is already 0 or the frame is not IPv4. */
#include "common.h"

SEC("tc")
int tc_rewrite(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	unsigned char *p;
	unsigned int sum = 0, csum;
	int i;

	if ((void *)(ip + 1) > end || eth->h_proto != bswap16(ETH_P_IP))
		return 2;
	if (ip->ttl == 0)
		return 2;
	ip->ttl--;
	csum = (unsigned short)~ip->check + (unsigned short)~bswap16(0x0100);
	csum = (csum & 0xffff) + (csum >> 16);
	ip->check = ~csum;
	p = (unsigned char *)(ip + 1);
	if ((void *)(p + 8) > end)
		return 0;
#pragma unroll
	for (i = 0; i < 8; i++)
		sum += p[i];
	skb->mark = sum;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";

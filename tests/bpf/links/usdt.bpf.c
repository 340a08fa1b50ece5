/* USDT probe counter for tests/kernel/test_links_usdt.py: counts hits of the probe it is
 * attached to and keeps the sum of its first argument (libbpf's usdt.bpf.h reads it). */
#include "../vmlinux.h"
#include <bpf_helpers.h>
#include <bpf_tracing.h>
#include <usdt.bpf.h>

__u64 hits;
__u64 arg_sum;

SEC("usdt")
int BPF_USDT(usdt_tick, int x)
{
	__sync_fetch_and_add(&hits, 1);
	__sync_fetch_and_add(&arg_sum, x);
	return 0;
}

char _license[] SEC("license") = "GPL";

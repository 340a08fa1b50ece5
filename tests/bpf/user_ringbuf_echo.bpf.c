/* User ring buffer echo for the event tests: `echo` (an XDP program, run with
 * BPF_PROG_TEST_RUN) drains `requests` and writes each sample's first u64 plus one into
 * `replies`; counts[0].drained adds up what bpf_user_ringbuf_drain reported.  The callback is
 * a BPF-to-BPF function, which needs the BTF func_info only a compiled object brings. */
#include "vmlinux.h"
#include <bpf_helpers.h>

struct counts {
	__u64 drained;
	__u64 failed;
};

struct {
	__uint(type, BPF_MAP_TYPE_USER_RINGBUF);
	__uint(max_entries, 4096);
} requests SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} replies SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct counts);
} counts SEC(".maps");

static long echo_one(struct bpf_dynptr *dynptr, void *ctx)
{
	__u64 v;

	if (bpf_dynptr_read(&v, sizeof(v), dynptr, 0, 0))
		return 0;
	v += 1;
	bpf_ringbuf_output(&replies, &v, sizeof(v), 0);
	return 0;
}

SEC("xdp")
int echo(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct counts *c = bpf_map_lookup_elem(&counts, &zero);
	long n;

	if (!c)
		return XDP_PASS;
	n = bpf_user_ringbuf_drain(&requests, echo_one, NULL, 0);
	if (n >= 0)
		__sync_fetch_and_add(&c->drained, n);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";

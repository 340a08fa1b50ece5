// SPDX-License-Identifier: BSD-2-Clause
/* Raw tracepoint: arithmetic on the first two u64 arguments through a BPF-to-BPF call,
 * signed comparisons, 64-bit constants, a division, and atomics (add, fetch-add, fetch-or
 * on 32 bits, xchg, cmpxchg) on the stack. */
#include "common.h"

static __attribute__((noinline)) long mix(long a, long b)
{
	long r = a * 3 - b;

	if (r < -100)
		r = (long)((unsigned long)-r / 7);
	else if (r > 0x123456789L)
		r ^= 0x5555aaaa5555aaaaL;
	return r;
}

SEC("raw_tp")
int raw_tp_calls(unsigned long long *ctx)
{
	long a = (long)ctx[0], b = (long)ctx[1];
	long acc = 0, old, other = 1;
	int bits = 0x10;

	__sync_fetch_and_add(&acc, mix(a, b));
	__sync_fetch_and_add(&acc, mix(b, a) >> 3);
	old = __sync_fetch_and_add(&acc, 5);
	old += __sync_lock_test_and_set(&other, old);
	__sync_val_compare_and_swap(&other, old - 1, 7);
	__sync_fetch_and_or(&bits, (int)a);
	return (int)(acc ^ (acc >> 32)) + (int)other + bits;
}

char LICENSE[] SEC("license") = "GPL";

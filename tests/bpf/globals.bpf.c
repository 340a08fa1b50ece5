/* Global variables of every data section (.data, .rodata, .bss, a custom .data.extra),
 * combined by a TC program under test_run: retval = data_int + ro_int. */
#include "vmlinux.h"
#include <bpf_helpers.h>

int data_int = 7;                       /* .data */
char data_str[8] = "hello";             /* .data */
const volatile int ro_int = 3;          /* .rodata: settable before load only */
const volatile long long ro_neg = -5;   /* .rodata */
__u64 bss_u64;                          /* .bss */
int bss_s32;                            /* .bss */
__u8 bss_u8;                            /* .bss */
__u16 bss_u16;                          /* .bss */
__u64 runs;                             /* .bss */
int extra_int SEC(".data.extra") = 11;  /* custom data section */

SEC("tc")
int rw_globals(struct __sk_buff *skb)
{
	runs++;
	bss_u64 = (__u64)data_int * 2 + ro_int;
	bss_s32 = -data_int;
	bss_u8 = (__u8)data_str[0];
	bss_u16 = (__u16)(ro_neg + 1000);
	extra_int += 1;
	return data_int + ro_int;
}

char _license[] SEC("license") = "GPL";

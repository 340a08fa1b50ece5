/* Shared by the asm round-trip programs: no libbpf headers, only the kernel's uapi. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>

#define SEC(name) __attribute__((section(name), used))
#define bswap16(x) __builtin_bswap16(x)

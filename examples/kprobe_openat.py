#!/usr/bin/env python3
"""Print the files processes open, from a kprobe on the kernel's do_sys_openat2.

    python examples/kprobe_openat.py [--duration SECONDS]

A program assembled with bpf.asm copies each opened path (first 128 bytes) with
bpf_probe_read_user_str and counts it in a hash map keyed by the path; Python polls the map
and prints paths as they appear.  On kernels built without kprobes (CONFIG_KPROBES=n) it uses
the syscalls:sys_enter_openat tracepoint instead.  tracefs is needed for the tracepoint.
"""

import argparse
import platform
import time

import bpf
from bpf import asm

# Where the user pointer to the file name is in the program's context.
KPROBE_ARG2 = {"x86_64": 104, "aarch64": 8}   # pt_regs->si / regs[1]
TRACEPOINT_FILENAME = 24                       # sys_enter_openat: filename after nr and dfd
NAME_LEN = 128


def program_text(names_fd: int, offset: int) -> str:
    zero = "\n".join(f"        *(u64 *)(r10 - {NAME_LEN - 8 * i}) = r1"
                     for i in range(NAME_LEN // 8))
    return f"""
        r6 = *(u64 *)(r1 + {offset})    ; const char __user *filename
        r1 = 0
{zero}
        r1 = r10
        r1 += -{NAME_LEN}
        r2 = {NAME_LEN}
        r3 = r6
        call 114                        ; bpf_probe_read_user_str
        if r0 s<= 0 goto out
        ; count the path: lookup, atomic += 1, or insert 1 (see asm.count_text)
{asm.count_text(names_fd, key=-NAME_LEN, scratch=-(NAME_LEN + 8))}
    out:
        r0 = 0
        exit
    """


def attach(names) -> tuple:
    """Load and attach on the kprobe, or on the tracepoint where there are no kprobes."""
    try:
        prog = bpf.Program.load(bpf.ProgType.KPROBE, asm.assemble(
            program_text(names.fd, KPROBE_ARG2[platform.machine()])), name="openat_kprobe")
        try:
            return prog, prog.attach_kprobe("do_sys_openat2"), "kprobe do_sys_openat2"
        except bpf.NotSupportedError:
            prog.close()
    except KeyError:
        pass  # an architecture without a pt_regs offset here
    prog = bpf.Program.load(bpf.ProgType.TRACEPOINT, asm.assemble(
        program_text(names.fd, TRACEPOINT_FILENAME)), name="openat_tp")
    return prog, prog.attach_tracepoint("syscalls", "sys_enter_openat"), \
        "tracepoint syscalls:sys_enter_openat"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=None, help="stop after SECONDS")
    args = ap.parse_args()

    with bpf.Map.create(bpf.MapType.HASH, key_size=NAME_LEN, value_size=8,
                        max_entries=8192, name="open_names") as names:
        prog, link, where = attach(names)
        with prog, link:
            print(f"attached to {where}; printing opened files (ctrl-c stops)", flush=True)
            seen: dict[bytes, int] = {}
            start = time.monotonic()
            try:
                while args.duration is None or time.monotonic() - start < args.duration:
                    time.sleep(0.1)
                    for key, value in names.items():
                        count = int.from_bytes(value, "little")
                        if seen.get(key) != count:
                            seen[key] = count
                            path = key.split(b"\0", 1)[0].decode(errors="replace")
                            print(f"{count:6}  {path}", flush=True)
            except KeyboardInterrupt:
                pass


if __name__ == "__main__":
    main()

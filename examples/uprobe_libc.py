#!/usr/bin/env python3
"""Count calls to a libc function per process, with a uprobe.

    python examples/uprobe_libc.py [FUNCTION] [--duration SECONDS] [--pid PID]

FUNCTION (default: getppid) is looked up in libc's symbol table; the program, assembled with
bpf.asm, counts calls per process id in a hash map, which Python prints every second.
"""

import argparse
import struct
import time

import bpf
from bpf import asm


def program_text(counts_fd: int) -> str:
    # asm.count_text() is the "lookup; atomic += 1, or insert 1" sequence for the key on the
    # stack at r10 - 4 (print it to see the instructions).
    return f"""
        call 14                         ; bpf_get_current_pid_tgid
        r0 >>= 32                       ; the process id (tgid)
        *(u32 *)(r10 - 4) = r0
{asm.count_text(counts_fd, key=-4, scratch=-16)}
        r0 = 0
        exit
    """


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("function", nargs="?", default="getppid")
    ap.add_argument("--duration", type=float, default=None, help="stop after SECONDS")
    ap.add_argument("--pid", type=int, default=-1, help="only this process")
    args = ap.parse_args()

    with bpf.Map.create(bpf.MapType.HASH, key_size=4, value_size=8, max_entries=4096,
                        name="calls") as counts, \
            bpf.Program.load(bpf.ProgType.KPROBE, asm.assemble(program_text(counts.fd)),
                             name="uprobe_count") as prog, \
            prog.attach_uprobe("libc", args.function, pid=args.pid) as link:
        print(f"counting calls to {args.function} in {link.info().file_name} (ctrl-c stops)",
              flush=True)
        start = time.monotonic()
        try:
            while args.duration is None or time.monotonic() - start < args.duration:
                time.sleep(min(1.0, args.duration or 1.0))
                rows = sorted(((struct.unpack("<I", k)[0], struct.unpack("<Q", v)[0])
                               for k, v in counts.items()), key=lambda r: -r[1])
                print(f"--- {time.monotonic() - start:5.1f}s", flush=True)
                for pid, n in rows[:10]:
                    print(f"{pid:>8} {n:>10}", flush=True)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()

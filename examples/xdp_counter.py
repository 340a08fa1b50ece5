#!/usr/bin/env python3
"""Count the packets and bytes arriving on a network interface with an XDP program.

    python examples/xdp_counter.py eth0 [--mode skb|drv] [--duration SECONDS] [--packets N]

The program is assembled with bpf.asm (no compiler needed): it adds one packet and the
packet's length to two slots of an array map and lets the packet pass.  Python reads the map
every second.  The program is detached when the script ends (the link is closed).
"""

import argparse
import time

import bpf
from bpf import asm


def program_text(counters_fd: int) -> str:
    return f"""
        r6 = r1
        r7 = *(u32 *)(r6 + 0)           ; ctx->data
        r8 = *(u32 *)(r6 + 4)           ; ctx->data_end
        r8 -= r7                        ; packet length
        r1 = 0
        *(u32 *)(r10 - 4) = r1          ; key 0: packets
        r2 = r10
        r2 += -4
        r1 = map[fd:{counters_fd}]
        call 1                          ; bpf_map_lookup_elem
        if r0 == 0 goto out
        r1 = 1
        lock *(u64 *)(r0 + 0) += r1
        r1 = 1
        *(u32 *)(r10 - 4) = r1          ; key 1: bytes
        r2 = r10
        r2 += -4
        r1 = map[fd:{counters_fd}]
        call 1
        if r0 == 0 goto out
        lock *(u64 *)(r0 + 0) += r8
    out:
        r0 = 2                          ; XDP_PASS
        exit
    """


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("interface")
    ap.add_argument("--mode", choices=["skb", "drv"], default=None)
    ap.add_argument("--duration", type=float, default=None, help="stop after SECONDS")
    ap.add_argument("--packets", type=int, default=None, help="stop after N packets")
    args = ap.parse_args()

    with bpf.Map.create(bpf.MapType.ARRAY, key_size=4, value_size=8, max_entries=2,
                        name="xdp_counts") as counters, \
            bpf.Program.load(bpf.ProgType.XDP, asm.assemble(program_text(counters.fd)),
                             name="xdp_counter") as prog, \
            prog.attach_xdp(args.interface, args.mode):
        print(f"counting packets on {args.interface} (ctrl-c stops)", flush=True)
        start = time.monotonic()
        try:
            while True:
                time.sleep(0.2)
                packets = int.from_bytes(counters.lookup((0).to_bytes(4, "little")), "little")
                nbytes = int.from_bytes(counters.lookup((1).to_bytes(4, "little")), "little")
                elapsed = time.monotonic() - start
                print(f"{elapsed:6.1f}s  {packets} packets  {nbytes} bytes", flush=True)
                if args.packets is not None and packets >= args.packets:
                    break
                if args.duration is not None and elapsed >= args.duration:
                    break
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()

"""Producers for the event tests and benchmarks, built with the library's own API.

Maps come from ``bpf.Map.create``, programs from ``bpf.asm`` builders and
``bpf.Program.load``; XDP producers run with ``prog.test_run(repeat=N)`` (N events, nothing
attached) and tracepoint producers attach with ``prog.attach_tracepoint``.  Every record
carries a sequence number taken from an atomic counter in an array map, and every producer
counts the records it failed to emit, so a test can check received + dropped == produced.

The user ring buffer echo drains with a BPF-to-BPF callback, which the kernel accepts only with
BTF func_info: ``Program.load(..., func_info="auto")`` builds it (see ``bpf.asm.func_info``).
"""

from __future__ import annotations

import struct
from typing import Any, Optional

import bpf
from bpf import asm
from bpf.asm import FP, R0, R1, R2, R3, R4, R5, R6, R7, R8, R9


def ring_map(size: int = 1 << 20) -> bpf.Map:
    return bpf.Map.create(bpf.MapType.RINGBUF, 0, 0, size)


def perf_map() -> bpf.Map:
    return bpf.Map.create(bpf.MapType.PERF_EVENT_ARRAY, 4, 4, bpf.possible_cpus())


def counter_map() -> bpf.Map:
    """One array slot of two u64: (produced, dropped)."""
    return bpf.Map.create(bpf.MapType.ARRAY, 4, 16, 1)


def counters(counter: bpf.Map) -> tuple[int, int]:
    """(produced, dropped) from a producer's counter map."""
    produced, dropped = struct.unpack("<QQ", counter.lookup(bytes(4)))
    return produced, dropped


def _prologue(counter: bpf.Map, pid: Optional[int]) -> list[Any]:
    """r6 = ctx; r9 = pid_tgid (tid in the low bits) or 0; r7 = &counter[0];
    r8 = seq (fetch-add 1 on produced)."""
    out: list[Any] = [asm.mov(R6, R1)]
    if pid is not None:
        out += [asm.call("get_current_pid_tgid"), asm.mov(R9, R0), asm.rsh(R0, 32),
                asm.jne(R0, pid, "out")]
    else:
        out += [asm.mov(R9, 0)]
    out += [asm.ld_map_value(R7, counter, 0), asm.mov(R8, 1),
            asm.atomic_add(8, R7, 0, R8, fetch=True)]
    return out


def _epilogue(ret: int) -> list[Any]:
    """The failure path counts a drop (counter[0].dropped += 1); both paths return ret."""
    return [asm.ja("out"),
            asm.label("drop"), asm.mov(R1, 1), asm.atomic_add(8, R7, 8, R1),
            asm.label("out"), asm.mov(R0, ret), asm.exit()]


def ringbuf_producer(ring: bpf.Map, counter: bpf.Map, size: int = 16,
                     pid: Optional[int] = None, ret: int = 2,
                     discard_odd: bool = False) -> list[Any]:
    """Reserve `size` bytes, write (seq, tid), submit (or discard odd sequence numbers);
    count failed reservations."""
    code = _prologue(counter, pid)
    code += [asm.ld_map_fd(R1, ring), asm.mov(R2, size), asm.mov(R3, 0),
             asm.call("ringbuf_reserve"), asm.jeq(R0, 0, "drop"),
             asm.stx(8, R0, 0, R8)]
    if size >= 16:
        code.append(asm.stx(8, R0, 8, R9))
    code += [asm.mov(R1, R0), asm.mov(R2, 0)]
    if discard_odd:
        code += [asm.mov(R3, R8), asm.and_(R3, 1), asm.jeq(R3, 0, "submit"),
                 asm.call("ringbuf_discard"), asm.ja("out"), asm.label("submit")]
    code.append(asm.call("ringbuf_submit"))
    return code + _epilogue(ret)


def perf_producer(perf: bpf.Map, counter: bpf.Map, size: int = 16,
                  pid: Optional[int] = None, ret: int = 2) -> list[Any]:
    """bpf_perf_event_output(ctx, perf, BPF_F_CURRENT_CPU, &(seq, tid, 0...), size); count
    failures."""
    code = _prologue(counter, pid)
    base = -8 - size
    code += [asm.st(8, FP, base + off, 0) for off in range(0, size, 8)]
    code.append(asm.stx(8, FP, base, R8))
    if size >= 16:
        code.append(asm.stx(8, FP, base + 8, R9))
    code += [asm.mov(R1, R6), asm.ld_map_fd(R2, perf),
             asm.mov32(R3, -1),  # BPF_F_CURRENT_CPU: 0xffffffff, zero-extended
             asm.mov(R4, FP), asm.add(R4, base), asm.mov(R5, size),
             asm.call("perf_event_output"), asm.jslt(R0, 0, "drop")]
    return code + _epilogue(ret)


def load_xdp(code: list[Any]) -> bpf.Program:
    return bpf.Program.load(bpf.ProgType.XDP, code)


def load_tracepoint(code: list[Any]) -> bpf.Program:
    return bpf.Program.load(bpf.ProgType.TRACEPOINT, code)


def run(prog: bpf.Program, repeat: int = 1) -> int:
    """Run an XDP producer `repeat` times on a 64-byte packet; return its verdict."""
    return prog.test_run(bytes(64), repeat=repeat).retval


def user_ringbuf_echo(urb: bpf.Map, out: bpf.Map, counter: bpf.Map) -> list[Any]:
    """Drain `urb` with bpf_user_ringbuf_drain; the callback writes each sample's first u64
    plus one into the ring buffer `out`; counter[0].produced adds up what the drain reported.
    The callback is a BPF-to-BPF function, so the load needs func_info="auto"."""
    return [
        asm.ld_map_fd(R1, urb), asm.ld_func(R2, "echo_one"), asm.mov(R3, 0), asm.mov(R4, 0),
        asm.call("user_ringbuf_drain"), asm.jslt(R0, 0, "out"),
        asm.ld_map_value(R7, counter, 0), asm.atomic_add(8, R7, 0, R0),
        asm.label("out"), asm.mov(R0, 2), asm.exit(),             # XDP_PASS
        # long echo_one(struct bpf_dynptr *sample, void *ctx)
        asm.label("echo_one"),
        asm.mov(R3, R1), asm.mov(R1, FP), asm.add(R1, -8), asm.mov(R2, 8), asm.mov(R4, 0),
        asm.mov(R5, 0), asm.call("dynptr_read"),                  # (&v, 8, sample, 0, 0)
        asm.jne(R0, 0, "next"),
        asm.ldx(8, R1, FP, -8), asm.add(R1, 1), asm.stx(8, FP, -8, R1),
        asm.ld_map_fd(R1, out), asm.mov(R2, FP), asm.add(R2, -8), asm.mov(R3, 8),
        asm.mov(R4, 0), asm.call("ringbuf_output"),               # (out, &v, 8, 0)
        asm.label("next"), asm.mov(R0, 0), asm.exit(),            # 0: go on draining
    ]


class UserRingEcho:
    """user ring buffer -> BPF program (drain, +1) -> ring buffer.

    counter[0].produced counts the messages drained (what bpf_user_ringbuf_drain reports).
    """

    def __init__(self, size: int = 4096) -> None:
        self.urb_map = bpf.Map.create(bpf.MapType.USER_RINGBUF, 0, 0, size)
        self.out = ring_map(1 << 16)
        self.counter = counter_map()
        try:
            self.prog = bpf.Program.load(
                bpf.ProgType.XDP, user_ringbuf_echo(self.urb_map, self.out, self.counter),
                name="echo", func_info="auto")
        except BaseException:
            self._close_maps()
            raise

    def drain(self) -> None:
        run(self.prog)

    def _close_maps(self) -> None:
        for m in (self.counter, self.out, self.urb_map):
            m.close()

    def close(self) -> None:
        self.prog.close()
        self._close_maps()

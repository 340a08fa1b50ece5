"""Programs built with bpf.asm behave like clang-built ones (same test_run results).

The clang objects live in tests/bpf/asm (sources, Makefile, committed .o).  Their program
sections have no map relocations, so the raw instructions load directly with
Program.load; BPF-to-BPF calls into .text are linked by tests/bpf/asm/elfobj.py.
"""

from __future__ import annotations

import pathlib
import socket
import struct
import sys

import pytest

import bpf
from bpf import asm
from bpf.asm import FP, R0, R1, R2, R3, R4, R5, R6, R7

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "bpf" / "asm"))
import elfobj  # noqa: E402

XDP_ABORTED, XDP_DROP, XDP_PASS = 0, 1, 2


def obj(name: str) -> pathlib.Path:
    return next(o for o in elfobj.OBJECTS if o.name == name)


def eth(proto: int, payload: bytes) -> bytes:
    return b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02" + struct.pack("!H", proto) + payload


def ipv4(src: str, proto: int, payload: bytes, ttl: int = 64, ihl: int = 5) -> bytes:
    opts = b"\x00" * (4 * (ihl - 5))
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 20 + len(opts) + len(payload), 1, 0, ttl,
                      proto, 0, socket.inet_aton(src), socket.inet_aton("192.0.2.1"))
    csum = _checksum(hdr + opts)
    return hdr[:10] + struct.pack("!H", csum) + hdr[12:] + opts + payload


def _checksum(b: bytes) -> int:
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def udp(dport: int, data: bytes = b"hello!!!") -> bytes:
    return struct.pack("!HHHH", 4000, dport, 8 + len(data), 0) + data


# (frame, expected verdict) for xdp_filter.bpf.c
XDP_CASES = [
    (eth(0x0800, b"\x45" + b"\x00" * 9), XDP_ABORTED),                  # truncated IPv4 header
    (eth(0x0806, b"\x00" * 28), XDP_PASS),                              # ARP
    (eth(0x0800, ipv4("192.168.1.1", 17, udp(9))), XDP_DROP),           # UDP to discard
    (eth(0x0800, ipv4("192.168.1.1", 17, udp(53))), XDP_PASS),
    (eth(0x0800, ipv4("192.168.1.1", 6, b"\x00" * 20)), XDP_PASS),      # TCP
    (eth(0x0800, ipv4("10.1.2.3", 17, udp(80), ttl=1)), XDP_DROP),      # 10/8 with TTL 1
    (eth(0x0800, ipv4("10.1.2.3", 17, udp(80), ttl=2)), XDP_PASS),
    (eth(0x0800, ipv4("11.1.2.3", 17, udp(80), ttl=1)), XDP_PASS),
    (eth(0x0800, ipv4("192.168.1.1", 17, udp(9), ihl=6)), XDP_PASS),    # options: not parsed
    (eth(0x0800, ipv4("192.168.1.1", 17, b"\x00\x01")), XDP_ABORTED),   # truncated UDP
]


def xdp_filter_asm() -> bytes:
    """xdp_filter.bpf.c written by hand with the builders."""
    return asm.assemble_insns([
        asm.ldxw(R2, R1, 0),                 # data
        asm.ldxw(R3, R1, 4),                 # data_end
        asm.mov(R0, XDP_ABORTED),
        asm.mov(R4, R2), asm.add(R4, 14), asm.jgt(R4, R3, "out"),
        asm.ldxh(R5, R2, 12), asm.mov(R0, XDP_PASS), asm.jne(R5, 0x0008, "out"),
        asm.mov(R4, R2), asm.add(R4, 34), asm.mov(R0, XDP_ABORTED), asm.jgt(R4, R3, "out"),
        asm.ldxb(R5, R2, 26), asm.jne(R5, 10, "proto"),     # first octet of the source
        asm.ldxb(R5, R2, 22), asm.mov(R0, XDP_DROP), asm.jlt(R5, 2, "out"),
        asm.label("proto"),
        asm.ldxb(R5, R2, 23), asm.mov(R0, XDP_PASS), asm.jne(R5, 17, "out"),
        asm.ldxb(R5, R2, 14), asm.and_(R5, 0x0F), asm.jne(R5, 5, "out"),
        asm.mov(R4, R2), asm.add(R4, 42), asm.mov(R0, XDP_ABORTED), asm.jgt(R4, R3, "out"),
        asm.ldxh(R5, R2, 36), asm.mov(R0, XDP_DROP), asm.jeq(R5, 0x0900, "out"),
        asm.mov(R0, XDP_PASS),
        asm.label("out"),
        asm.exit(),
    ])


def _xdp_variants() -> dict[str, bytes]:
    o = obj("xdp_filter.bpf.o")
    clang = elfobj.sections(o)["xdp"]
    listing = "\n".join(t for _, t in elfobj.listing(o)["xdp"])
    return {"clang": clang, "objdump-text": asm.assemble(listing),
            "disassembled": asm.assemble(asm.disassemble(clang)), "builders": xdp_filter_asm()}


def test_xdp_filter_clang_and_asm_agree():
    variants = _xdp_variants()
    progs = {k: bpf.Program.load(bpf.ProgType.XDP, v, name="xdp_" + k.replace("-", "_"))
             for k, v in variants.items()}
    try:
        for frame, verdict in XDP_CASES:
            results = {k: p.test_run(frame) for k, p in progs.items()}
            assert {k: r.retval for k, r in results.items()} == dict.fromkeys(progs, verdict), \
                frame.hex()
            assert all(r.data == frame for r in results.values())
        # Same instructions, same kernel tag; the hand-built program differs.
        assert progs["clang"].tag == progs["objdump-text"].tag == progs["disassembled"].tag
        assert progs["builders"].tag != progs["clang"].tag
        # xlated code of the clang build disassembles and reassembles exactly.
        x = progs["clang"].xlated()
        assert asm.assemble(asm.disassemble(x, xlated=True)) == x
    finally:
        for p in progs.values():
            p.close()


def test_tc_rewrite_clang_and_asm_agree():
    o = obj("tc_rewrite.bpf.o")
    clang = elfobj.sections(o)["tc"]
    text = asm.disassemble(clang)
    frame = eth(0x0800, ipv4("10.0.0.1", 17, udp(7, b"\x01\x02\x03\x04\x05\x06\x07\x08"),
                             ttl=9))
    with bpf.Program.load(bpf.ProgType.SCHED_CLS, clang, name="tc_clang") as pc, \
            bpf.Program.load(bpf.ProgType.SCHED_CLS, asm.assemble(text), name="tc_asm") as pa:
        assert pc.tag == pa.tag
        for p in (pc, pa):
            r = p.test_run(frame, ctx=bytes(192))
            assert r.retval == 0  # TC_ACT_OK
            out = r.data
            assert out is not None and len(out) == len(frame)
            ip = out[14:34]
            assert ip[8] == 8                      # TTL decremented
            assert _checksum(ip) == 0              # checksum still valid
            assert out[34:] == frame[34:]
            mark = struct.unpack_from("<I", r.ctx, 8)[0]
            assert mark == sum(frame[34:42])       # the first 8 bytes after the IP header
            assert p.test_run(eth(0x0800, ipv4("10.0.0.1", 17, udp(7), ttl=0))).retval == 2
            assert p.test_run(eth(0x86DD, b"\x60" + b"\x00" * 39)).retval == 2


M64 = (1 << 64) - 1


def s64(x: int) -> int:
    x &= M64
    return x - (1 << 64) if x >> 63 else x


def mix(a: int, b: int) -> int:
    r = s64(a * 3 - b)
    if r < -100:
        r = s64((-r & M64) // 7)
    elif r > 0x123456789:
        r = s64(r ^ 0x5555AAAA5555AAAA)
    return r


def raw_tp_model(a: int, b: int) -> int:
    """raw_tp_calls.bpf.c in Python."""
    acc = s64(mix(a, b))
    acc = s64(acc + (mix(b, a) >> 3))
    old = acc
    acc = s64(acc + 5)
    other = 1
    prev, other = other, old
    old = s64(old + prev)
    if other == s64(old - 1):
        other = 7
    bits = 0x10 | (a & 0xFFFFFFFF)
    return ((acc ^ (acc >> 32)) + other + bits) & 0xFFFFFFFF


def raw_tp_asm() -> bytes:
    """raw_tp_calls.bpf.c written with the builders: BPF-to-BPF call, atomics, ld_imm64."""
    return asm.assemble_insns([
        asm.ldxdw(R7, R1, 8), asm.ldxdw(R6, R1, 0),
        asm.stdw(FP, -8, 0), asm.stdw(FP, -16, 1), asm.stw(FP, -20, 0x10),
        asm.mov(R1, R6), asm.mov(R2, R7), asm.call_local("mix"),
        asm.atomic_add(8, FP, -8, R0),
        asm.mov(R1, R7), asm.mov(R2, R6), asm.call_local("mix"),
        asm.arsh(R0, 3),
        asm.atomic_add(8, FP, -8, R0),
        asm.mov(R0, 5), asm.atomic_add(8, FP, -8, R0, fetch=True),
        asm.mov(R1, R0), asm.atomic_xchg(8, FP, -16, R1),
        asm.add(R0, R1), asm.add(R0, -1),
        asm.mov(R1, 7), asm.atomic_cmpxchg(8, FP, -16, R1),
        asm.atomic_or(4, FP, -20, R6),
        asm.ldxdw(R1, FP, -16), asm.ldxw(R0, FP, -20), asm.add32(R0, R1),
        asm.ldxdw(R1, FP, -8), asm.mov(R2, R1), asm.rsh(R2, 32), asm.xor32(R2, R1),
        asm.add32(R0, R2),
        asm.exit(),
        asm.label("mix"),
        asm.mov(R0, R1), asm.mul(R0, 3), asm.sub(R0, R2),
        asm.jsgt(R0, -101, "big"),
        asm.neg(R0), asm.div(R0, 7), asm.ja("done"),
        asm.label("big"),
        asm.ld_imm64(R1, 0x12345678A), asm.jslt(R0, R1, "done"),
        asm.ld_imm64(R1, 0x5555AAAA5555AAAA), asm.xor(R0, R1),
        asm.label("done"),
        asm.exit(),
    ])


RAW_TP_ARGS = [(0, 0), (1, 2), (5, 1000), (-7, 3), (1 << 40, 3), (0x123456789, 0),
               (-(1 << 62), 1 << 62), (123456789012, -98765)]


def test_raw_tp_calls_clang_and_asm_agree():
    clang = elfobj.linked_program(obj("raw_tp_calls.bpf.o"), "raw_tp")
    variants = {"clang": clang, "disassembled": asm.assemble(asm.disassemble(clang)),
                "builders": raw_tp_asm()}
    progs = {k: bpf.Program.load(bpf.ProgType.RAW_TRACEPOINT, v, name="rtp_" + k)
             for k, v in variants.items()}
    try:
        for a, b in RAW_TP_ARGS:
            ctx = struct.pack("<qq", a, b)
            got = {k: p.test_run(ctx=ctx).retval for k, p in progs.items()}
            assert got == dict.fromkeys(progs, raw_tp_model(a, b)), (a, b)
        assert progs["clang"].tag == progs["disassembled"].tag
    finally:
        for p in progs.values():
            p.close()


def test_program_load_accepts_text_and_builder_lists():
    with bpf.Program.load(bpf.ProgType.XDP, "r0 = 2\nexit") as p:
        assert p.test_run(eth(0x0800, b"\x00" * 20)).retval == XDP_PASS
    with bpf.Program.load(bpf.ProgType.XDP, [asm.mov(R0, 1), asm.exit()]) as p:
        assert p.test_run(eth(0x0800, b"\x00" * 20)).retval == XDP_DROP
    with pytest.raises(asm.AsmError):
        bpf.Program.load(bpf.ProgType.XDP, "r0 = \nexit")


def test_verifier_error_points_at_asm_instruction():
    # Reading past data_end without a bounds check: the message names insn 2.
    code = asm.assemble_insns([asm.ldxw(R2, R1, 0), asm.mov(R0, 0), asm.ldxb(R0, R2, 20),
                               asm.exit()])
    with pytest.raises(bpf.VerifierError) as ei:
        bpf.Program.load(bpf.ProgType.XDP, code, name="oob")
    e = ei.value
    assert e.insn == 2
    assert "invalid access to packet" in e.reason and "outside of the packet" in e.reason
    assert "at insn 2: r0 = *(u8 *)(r2 +20)" in str(e)


def test_xlated_helper_calls_resolve_through_kallsyms():
    with bpf.Program.load(bpf.ProgType.XDP, "call bpf_ktime_get_ns\nr0 = 2\nexit") as p:
        x = p.xlated()
        text = asm.disassemble(x, xlated=True, helper_names=True)
        assert text.splitlines()[0].startswith("call bpf_ktime_get_ns#")
        assert asm.assemble(text) == x
        # Without xlated=True the kernel's address offset is not a helper id.
        assert asm.disassemble(x).splitlines()[0] == f"call {asm.decode(x)[0].imm}"


def test_map_references_with_bpf_map():
    # A per-verdict counter through bpf_map_lookup_elem (ld_map_fd) and a global-variable
    # style counter through a direct value reference (ld_map_value).
    with bpf.Map.create(bpf.MapType.ARRAY, key_size=4, value_size=8, max_entries=4) as m, \
            bpf.Map.create(bpf.MapType.ARRAY, key_size=4, value_size=8, max_entries=1) as g:
        code = asm.assemble_insns([
            asm.ld_map_value(R6, g, 0), asm.mov(R7, 1), asm.atomic_add(8, R6, 0, R7),
            asm.stw(FP, -4, XDP_PASS),
            asm.mov(R2, FP), asm.add(R2, -4), asm.ld_map_fd(R1, m),
            asm.call("map_lookup_elem"),
            asm.jeq(R0, 0, "out"),
            asm.mov(R1, 1), asm.atomic_add(8, R0, 0, R1),
            asm.label("out"),
            asm.mov(R0, XDP_PASS),
            asm.exit(),
        ])
        with bpf.Program.load(bpf.ProgType.XDP, code, name="count") as p:
            assert set(p.map_ids) == {m.id, g.id}
            p.test_run(eth(0x0800, b"\x00" * 20), repeat=7)
            x = p.xlated()
            text = asm.disassemble(x, xlated=True)
            assert f"r6 = map[id:{g.id}][0]+0" in text
            assert asm.assemble(text) == x
        assert struct.unpack("<Q", m.lookup(struct.pack("<I", XDP_PASS))) == (7,)
        assert struct.unpack("<Q", g.lookup(bytes(4))) == (7,)

"""bpf.asm without a kernel: encodings, labels, the text syntaxes, and round trips."""

from __future__ import annotations

import random
import struct

import pytest

from bpf import asm
from bpf.asm import FP, R0, R1, R2, R3, R5, R10, AsmError, Insn


def raw(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, dst | (src << 4), off, imm)


# Each builder against the encoding the kernel's own macros (include/linux/filter.h) give.
ENCODINGS = [
    (asm.mov(R0, 1), raw(0xB7, 0, 0, 0, 1), "r0 = 1"),
    (asm.mov(R1, R2), raw(0xBF, 1, 2), "r1 = r2"),
    (asm.mov32(R1, R2), raw(0xBC, 1, 2), "w1 = w2"),
    (asm.mov32(R0, 0xFFFFFFFF), raw(0xB4, 0, 0, 0, -1), "w0 = -1"),
    (asm.add(R1, -8), raw(0x07, 1, 0, 0, -8), "r1 += -8"),
    (asm.add32(R1, R2), raw(0x0C, 1, 2), "w1 += w2"),
    (asm.sub(R1, R2), raw(0x1F, 1, 2), "r1 -= r2"),
    (asm.mul(R1, 3), raw(0x27, 1, 0, 0, 3), "r1 *= 3"),
    (asm.div(R1, R2), raw(0x3F, 1, 2), "r1 /= r2"),
    (asm.sdiv(R1, R2), raw(0x3F, 1, 2, 1), "r1 s/= r2"),
    (asm.sdiv32(R1, 7), raw(0x34, 1, 0, 1, 7), "w1 s/= 7"),
    (asm.mod(R1, 10), raw(0x97, 1, 0, 0, 10), "r1 %= 10"),
    (asm.smod32(R1, R2), raw(0x9C, 1, 2, 1), "w1 s%= w2"),
    (asm.or_(R1, 4), raw(0x47, 1, 0, 0, 4), "r1 |= 4"),
    (asm.and_(R1, R2), raw(0x5F, 1, 2), "r1 &= r2"),
    (asm.lsh(R1, 3), raw(0x67, 1, 0, 0, 3), "r1 <<= 3"),
    (asm.rsh32(R1, 3), raw(0x74, 1, 0, 0, 3), "w1 >>= 3"),
    (asm.arsh(R1, R2), raw(0xCF, 1, 2), "r1 s>>= r2"),
    (asm.xor(R1, R1), raw(0xAF, 1, 1), "r1 ^= r1"),
    (asm.neg(R3), raw(0x87, 3), "r3 = -r3"),
    (asm.neg32(R3), raw(0x84, 3), "w3 = -w3"),
    (asm.movsx(R1, R2, 8), raw(0xBF, 1, 2, 8), "r1 = (s8)r2"),
    (asm.movsx32(R1, R2, 16), raw(0xBC, 1, 2, 16), "w1 = (s16)w2"),
    (asm.be(R1, 16), raw(0xDC, 1, 0, 0, 16), "r1 = be16 r1"),
    (asm.le(R1, 64), raw(0xD4, 1, 0, 0, 64), "r1 = le64 r1"),
    (asm.bswap(R1, 32), raw(0xD7, 1, 0, 0, 32), "r1 = bswap32 r1"),
    (asm.addr_space_cast(R1, R2, 0, 1), raw(0xBF, 1, 2, 1, 1), "r1 = addr_space_cast(r2, 0, 1)"),
    (asm.ja(3), raw(0x05, 0, 0, 3), "goto +3"),
    (asm.ja(-1), raw(0x05, 0, 0, -1), "goto -1"),
    (asm.gotol(100000), raw(0x06, 0, 0, 0, 100000), "gotol +100000"),
    (asm.may_goto(2), raw(0xE5, 0, 0, 2), "may_goto +2"),
    (asm.jeq(R1, 0, 2), raw(0x15, 1, 0, 2, 0), "if r1 == 0 goto +2"),
    (asm.jgt(R1, R2, -3), raw(0x2D, 1, 2, -3), "if r1 > r2 goto -3"),
    (asm.jge32(R1, 4, 1), raw(0x36, 1, 0, 1, 4), "if w1 >= 4 goto +1"),
    (asm.jset(R1, 4, 1), raw(0x45, 1, 0, 1, 4), "if r1 & 4 goto +1"),
    (asm.jne(R1, R2, 0), raw(0x5D, 1, 2, 0), "if r1 != r2 goto +0"),
    (asm.jsgt(R1, -1, 1), raw(0x65, 1, 0, 1, -1), "if r1 s> -1 goto +1"),
    (asm.jsge32(R1, R2, 1), raw(0x7E, 1, 2, 1), "if w1 s>= w2 goto +1"),
    (asm.jlt(R1, 9, 1), raw(0xA5, 1, 0, 1, 9), "if r1 < 9 goto +1"),
    (asm.jle(R1, R2, 1), raw(0xBD, 1, 2, 1), "if r1 <= r2 goto +1"),
    (asm.jslt32(R1, 0, 1), raw(0xC6, 1, 0, 1, 0), "if w1 s< 0 goto +1"),
    (asm.jsle(R1, R2, 1), raw(0xDD, 1, 2, 1), "if r1 s<= r2 goto +1"),
    (asm.call("map_lookup_elem"), raw(0x85, 0, 0, 0, 1), "call 1"),
    (asm.call(5), raw(0x85, 0, 0, 0, 5), "call 5"),
    (asm.call_local(4), raw(0x85, 0, 1, 0, 4), "call pc+4"),
    (asm.call_kfunc(1234), raw(0x85, 0, 2, 0, 1234), "call kfunc#1234"),
    (asm.callx(R2), raw(0x8D, 2), "callx r2"),
    (asm.exit(), raw(0x95), "exit"),
    (asm.ldxw(R2, R1, 4), raw(0x61, 2, 1, 4), "r2 = *(u32 *)(r1 + 4)"),
    (asm.ldxdw(R1, FP, -8), raw(0x79, 1, 10, -8), "r1 = *(u64 *)(r10 - 8)"),
    (asm.ldxh(R1, R2, 0), raw(0x69, 1, 2), "r1 = *(u16 *)(r2 + 0)"),
    (asm.ldxb(R1, R2, 1), raw(0x71, 1, 2, 1), "r1 = *(u8 *)(r2 + 1)"),
    (asm.ldxsw(R1, R2, 8), raw(0x81, 1, 2, 8), "r1 = *(s32 *)(r2 + 8)"),
    (asm.ldxsb(R1, R2, 0), raw(0x91, 1, 2), "r1 = *(s8 *)(r2 + 0)"),
    (asm.stw(FP, -4, 7), raw(0x62, 10, 0, -4, 7), "*(u32 *)(r10 - 4) = 7"),
    (asm.stdw(FP, -8, -1), raw(0x7A, 10, 0, -8, -1), "*(u64 *)(r10 - 8) = -1"),
    (asm.stxb(R1, 2, R3), raw(0x73, 1, 3, 2), "*(u8 *)(r1 + 2) = r3"),
    (asm.stxdw(FP, -16, R1), raw(0x7B, 10, 1, -16), "*(u64 *)(r10 - 16) = r1"),
    (asm.ld_abs(1, 12), raw(0x30, 0, 0, 0, 12), "r0 = *(u8 *)skb[12]"),
    (asm.ld_ind(2, R2), raw(0x48, 0, 2, 0, 0), "r0 = *(u16 *)skb[r2]"),
    (asm.ld_ind(4, R2, 6), raw(0x40, 0, 2, 0, 6), "r0 = *(u32 *)skb[r2 + 6]"),
    (asm.atomic_add(8, R1, 0, R2), raw(0xDB, 1, 2, 0, 0x00), "lock *(u64 *)(r1 + 0) += r2"),
    (asm.atomic_or(4, R1, 4, R2), raw(0xC3, 1, 2, 4, 0x40), "lock *(u32 *)(r1 + 4) |= w2"),
    (asm.atomic_and(8, R1, 0, R2, fetch=True), raw(0xDB, 1, 2, 0, 0x51),
     "r2 = atomic_fetch_and((u64 *)(r1 + 0), r2)"),
    (asm.atomic_xor(4, R1, 0, R2, fetch=True), raw(0xC3, 1, 2, 0, 0xA1),
     "w2 = atomic_fetch_xor((u32 *)(r1 + 0), w2)"),
    (asm.atomic_xchg(8, R1, 8, R2), raw(0xDB, 1, 2, 8, 0xE1), "r2 = xchg_64(r1 + 8, r2)"),
    (asm.atomic_cmpxchg(4, R1, 0, R2), raw(0xC3, 1, 2, 0, 0xF1),
     "w0 = cmpxchg32_32(r1 + 0, w0, w2)"),
    (asm.load_acquire(8, R0, R1, 0), raw(0xDB, 0, 1, 0, 0x100),
     "r0 = load_acquire((u64 *)(r1 + 0))"),
    (asm.store_release(1, R1, 0, R2), raw(0xD3, 1, 2, 0, 0x110),
     "store_release((u8 *)(r1 + 0), w2)"),
    (asm.ld_imm64(R1, 0x1234), raw(0x18, 1, 0, 0, 0x1234) + raw(0, 0, 0, 0, 0), "r1 = 4660 ll"),
    (asm.ld_imm64(R1, -1), raw(0x18, 1, 0, 0, -1) + raw(0, 0, 0, 0, -1), "r1 = -1 ll"),
    (asm.ld_imm64(R2, 1 << 63), raw(0x18, 2, 0, 0, 0) + raw(0, 0, 0, 0, -(1 << 31)),
     "r2 = -9223372036854775808 ll"),
    (asm.ld_map_fd(R1, 7), raw(0x18, 1, 1, 0, 7) + raw(0, 0, 0, 0, 0), "r1 = map[fd:7]"),
    (asm.ld_map_value(R1, 7, 16), raw(0x18, 1, 2, 0, 7) + raw(0, 0, 0, 0, 16),
     "r1 = map[fd:7][0]+16"),
    (asm.ld_map_idx(R1, 0), raw(0x18, 1, 5, 0, 0) + raw(0, 0, 0, 0, 0), "r1 = map[idx:0]"),
    (asm.ld_map_idx_value(R1, 1, 4), raw(0x18, 1, 6, 0, 1) + raw(0, 0, 0, 0, 4),
     "r1 = map[idx:1]+4"),
    (asm.ld_btf_id(R1, 99), raw(0x18, 1, 3, 0, 99) + raw(0, 0, 0, 0, 0), "ld_pseudo r1, 3, 99"),
    (asm.ld_func(R2, 5), raw(0x18, 2, 4, 0, 5) + raw(0, 0, 0, 0, 0), "r2 = subprog[+5]"),
]


@pytest.mark.parametrize("insn,encoding,text", ENCODINGS, ids=[e[2] for e in ENCODINGS])
def test_builder_encoding_and_text(insn, encoding, text):
    assert insn.encode() == encoding == bytes(insn)
    assert str(insn) == text
    assert asm.disassemble(encoding) == text + "\n"
    assert asm.assemble(text) == encoding


def test_registers():
    assert int(R10) == 10 and FP is R10 and repr(R5) == "r5"
    with pytest.raises(TypeError, match="register"):
        asm.mov(1, 2)  # a plain int is not a register
    with pytest.raises(TypeError):
        asm.ldxw(R1, 3, 0)


@pytest.mark.parametrize("bad", [
    lambda: asm.mov(R0, 1 << 32),
    lambda: asm.add(R0, -(1 << 31) - 1),
    lambda: asm.ja(1 << 15),
    lambda: asm.ldxw(R0, R1, 40000),
    lambda: asm.ldx(3, R0, R1),
    lambda: asm.ldxsx(8, R0, R1),
    lambda: asm.atomic_add(2, R0, 0, R1),
    lambda: asm.movsx(R0, R1, 64),
    lambda: asm.be(R0, 8),
    lambda: asm.ld_imm64(R0, 1 << 64),
    lambda: asm.call("no_such_helper"),
])
def test_builder_range_errors(bad):
    with pytest.raises(AsmError):
        bad()


def test_helpers_table():
    assert asm.HELPERS["map_lookup_elem"] == 1
    assert asm.helper_id("bpf_ktime_get_ns") == 5
    assert asm.helper_id("BPF_FUNC_trace_printk") == 6
    assert asm.helper_id("xdp_adjust_head") == 44
    assert asm.helper_id("loop") == 181
    assert asm.helper_id("cgrp_storage_delete") == 211
    assert asm.helper_id(17) == 17
    assert asm.helper_name(1) == "bpf_map_lookup_elem"
    assert asm.helper_name(0) is None and asm.helper_name(100000) is None
    assert len(asm.HELPERS) == 211


def test_labels_forward_and_backward():
    code = asm.assemble_insns([
        asm.mov(R0, 0),
        asm.label("loop"),
        asm.add(R0, 1),
        asm.jlt(R0, 10, "loop"),        # backward
        asm.jeq(R0, 10, "done"),        # forward over a wide instruction
        asm.ld_imm64(R1, 1 << 40),
        asm.label("done"),
        asm.exit(),
    ])
    insns = asm.decode(code)
    assert insns[2].off == -2
    assert insns[3].off == 2  # ld_imm64 takes two slots
    assert asm.disassemble(code).splitlines()[2:4] == ["if r0 < 10 goto -2",
                                                       "if r0 == 10 goto +2"]


def test_label_calls_and_ld_func():
    code = asm.assemble_insns([
        asm.call_local("f"),
        asm.ld_func(R2, "f"),
        asm.exit(),
        asm.label("f"),
        asm.mov(R0, 1),
        asm.exit(),
    ])
    insns = asm.decode(code)
    assert (insns[0].src, insns[0].imm) == (1, 3)
    assert (insns[1].src, insns[1].imm) == (4, 2)  # relative to the ld_imm64 + 1


def test_label_errors():
    with pytest.raises(AsmError, match="undefined label 'nowhere'"):
        asm.assemble_insns([asm.ja("nowhere"), asm.exit()])
    with pytest.raises(AsmError, match="defined twice"):
        asm.assemble_insns([asm.label("a"), asm.label("a"), asm.exit()])
    with pytest.raises(AsmError, match="does not fit"):
        asm.assemble_insns([asm.ja("far"), [asm.mov(R0, 0)] * 40000, asm.label("far"),
                            asm.exit()])
    with pytest.raises(AsmError, match="unresolved label"):
        asm.ja("x").encode()
    with pytest.raises(AsmError, match="bad label name"):
        asm.label("1abc")
    with pytest.raises(TypeError):
        asm.assemble_insns(["exit"])


def test_nested_lists_and_raw_bytes():
    prologue = [asm.mov(R0, 0)]
    code = asm.assemble_insns([prologue, (asm.mov(R1, 1),), raw(0x95)])
    assert code == raw(0xB7) + raw(0xB7, 1, 0, 0, 1) + raw(0x95)


def test_unresolved_insn_text():
    assert str(asm.jeq(R1, 0, "out")) == "if r1 == 0 goto out"
    assert str(asm.call_local("f")) == "call f"
    assert str(asm.ld_func(R1, "cb")) == "r1 = subprog[cb]"


HAND_WRITTEN = """
    ; count to ten
    r0 = 0
loop:
    r0 += 1            // increment
    if r0 < 10 goto loop
    call helper_fn
    call bpf_ktime_get_ns
    call get_prandom_u32
    exit
helper_fn:
    w0 = w1
    r1 = 0x1234 ll
    exit
"""


def test_assemble_hand_written():
    code = asm.assemble(HAND_WRITTEN)
    insns = asm.decode(code)
    assert [str(i) for i in insns] == [
        "r0 = 0", "r0 += 1", "if r0 < 10 goto -2", "call pc+3", "call 5", "call 7", "exit",
        "w0 = w1", "r1 = 4660 ll", "exit"]


OBJDUMP = """
prog.o:	file format elf64-bpf

Disassembly of section xdp:

0000000000000000 <xdp_prog>:
       0:	61 12 04 00 00 00 00 00	r2 = *(u32 *)(r1 + 4)
       1:	61 11 00 00 00 00 00 00	r1 = *(u32 *)(r1 + 0)
       2:	b7 00 00 00 01 00 00 00	r0 = 1
       3:	bf 13 00 00 00 00 00 00	r3 = r1
       4:	07 03 00 00 0e 00 00 00	r3 += 14
       5:	2d 23 03 00 00 00 00 00	if r3 > r2 goto +3 <LBB0_3>
       6:	18 01 00 00 78 56 34 12 00 00 00 00 00 00 00 00	r1 = 305419896 ll
       8:	b7 00 00 00 02 00 00 00	r0 = 2

0000000000000048 <LBB0_3>:
       9:	95 00 00 00 00 00 00 00	exit
"""


def test_assemble_objdump_output():
    code = asm.assemble(OBJDUMP)
    expected = b"".join(bytes.fromhex(ln.split("\t")[1].replace(" ", ""))
                        for ln in OBJDUMP.splitlines() if ln.startswith("   "))
    assert code == expected
    # ... and without the raw bytes (llvm-objdump --no-show-raw-insn)
    no_raw = "\n".join(ln.split("\t")[0] + "\t" + ln.split("\t")[-1] if ln.startswith("   ")
                       else ln for ln in OBJDUMP.splitlines())
    assert asm.assemble(no_raw) == expected


BPFTOOL = """
int xdp_prog(struct xdp_md * ctx):
; int xdp_prog(struct xdp_md *ctx)
   0: (61) r2 = *(u32 *)(r1 +4)
   1: (61) r1 = *(u32 *)(r1 +0)
   2: (b7) r0 = 1
   3: (18) r1 = map[id:12]
   5: (85) call bpf_map_lookup_elem#193472
   6: (15) if r0 == 0x0 goto pc+2
   7: (db) r1 = atomic64_fetch_add((u64 *)(r0 +0), r1)
   8: (c3) w1 = atomic_xchg((u32 *)(r0 -4), w1)
   9: (db) r0 = atomic64_cmpxchg((u64 *)(r0 +8), r0, r2)
  10: (18) r3 = map[id:12][0]+16
  12: (18) r4 = 0xffffffff
  14: (35) if r4 >= 0xfffffffb goto pc-3
  15: (85) call pc+1#bpf_prog_1234_F
  16: (95) exit
"""


def test_assemble_bpftool_xlated():
    insns = asm.decode(asm.assemble(BPFTOOL))
    assert [str(i) for i in insns] == [
        "r2 = *(u32 *)(r1 + 4)", "r1 = *(u32 *)(r1 + 0)", "r0 = 1", "r1 = map[fd:12]",
        "call 193472", "if r0 == 0 goto +2", "r1 = atomic_fetch_add((u64 *)(r0 + 0), r1)",
        "w1 = xchg32_32(r0 - 4, w1)", "r0 = cmpxchg_64(r0 + 8, r0, r2)",
        "r3 = map[fd:12][0]+16", "r4 = 4294967295 ll", "if r4 >= -5 goto -3", "call pc+1",
        "exit"]
    assert asm.disassemble(asm.assemble(BPFTOOL), xlated=True).splitlines()[3] == \
        "r1 = map[id:12]"


def test_disassemble_options():
    code = asm.assemble_insns([asm.ld_imm64(R1, 5), asm.call("map_lookup_elem"), asm.exit()])
    assert asm.disassemble(code, helper_names=True).splitlines()[1] == \
        "call bpf_map_lookup_elem#1"
    assert asm.disassemble(code, offsets=True).splitlines() == [
        "    0: r1 = 5 ll", "    2: call 1", "    3: exit"]
    assert asm.assemble(asm.disassemble(code, helper_names=True, offsets=True)) == code
    assert asm.disassemble(b"") == ""
    with pytest.raises(AsmError, match="multiple of 8"):
        asm.disassemble(b"\x00" * 9)


@pytest.mark.parametrize("text", [
    "r11 = 1", "r0 = 1 2", "if r1 >> 2 goto +1", "r0 = 4294967296", "frobnicate",
    "if r1 == w2 goto +1", "r1 = be16 r2", "goto +40000",
])
def test_assemble_errors_name_the_line(text):
    with pytest.raises(AsmError, match="line 2"):
        asm.assemble("exit\n" + text + "\nexit")


def test_non_canonical_encodings_survive_as_quad():
    weird = [
        raw(0xB7, 0, 0, 3, 1),       # mov with a non-zero offset
        raw(0xFF, 1, 2, 3, 4),       # no such opcode
        raw(0x95, 1),                # exit with a register
        raw(0x18, 1, 0, 0, 1),       # ld_imm64 missing its second slot (last insn)
        raw(0xBF, 11, 0),            # register 11
    ]
    for w in weird:
        text = asm.disassemble(w)
        assert text.startswith(".quad 0x")
        assert asm.assemble(text) == w


VALID_CODES = [
    0x07, 0x0F, 0x17, 0x1F, 0x27, 0x2F, 0x37, 0x3F, 0x47, 0x4F, 0x57, 0x5F, 0x67, 0x6F, 0x77,
    0x7F, 0x87, 0x97, 0x9F, 0xA7, 0xAF, 0xB7, 0xBF, 0xC7, 0xCF, 0xD7, 0x04, 0x0C, 0xB4, 0xBC,
    0x34, 0x3C, 0x94, 0x9C, 0xD4, 0xDC, 0x05, 0x06, 0x15, 0x1D, 0x16, 0x1E, 0x25, 0x2D, 0x45,
    0x4D, 0x55, 0x65, 0x75, 0xA5, 0xAD, 0xB5, 0xC5, 0xD5, 0xDE, 0x85, 0x8D, 0x95, 0xE5, 0x61,
    0x69, 0x71, 0x79, 0x81, 0x89, 0x91, 0x62, 0x6A, 0x72, 0x7A, 0x63, 0x6B, 0x73, 0x7B, 0xC3,
    0xDB, 0xD3, 0xCB, 0x20, 0x28, 0x30, 0x40, 0x48, 0x50, 0x18,
]


def test_random_round_trip():
    """assemble(disassemble(x)) == x for random bytes biased towards real instructions."""
    rnd = random.Random(20261202)
    n_text = 0
    for _ in range(3000):
        parts = []
        for _ in range(rnd.randrange(1, 5)):
            c = rnd.choice(VALID_CODES) if rnd.random() < 0.9 else rnd.randrange(256)
            d = rnd.choice([0, 1, 10, rnd.randrange(11), rnd.randrange(16)])
            s = rnd.choice([0, 0, 1, 2, 4, rnd.randrange(11), rnd.randrange(16)])
            off = rnd.choice([0, 0, 0, 1, 8, -8, rnd.randrange(-32768, 32768)])
            imm = rnd.choice([0, 0, 0, 1, 16, 32, 64, 0x100, 0x110, 0xE1, 0xF1, 0x41, -1,
                              1 << 16, rnd.randrange(-2**31, 2**31)])
            b = raw(c, d, s, off, imm)
            if c == 0x18 and rnd.random() < 0.8:
                b += raw(0, 0, 0, 0, rnd.randrange(-2**31, 2**31))
            parts.append(b)
        code = b"".join(parts)
        text = asm.disassemble(code)
        n_text += sum(1 for ln in text.splitlines() if not ln.startswith(".quad"))
        assert asm.assemble(text) == code, text
    assert n_text > 800  # many were real instructions, not .quad


def test_insn_properties():
    i = asm.ld_imm64(R1, 1)
    assert i.wide and i.slots == 2
    assert not asm.exit().wide and asm.exit().slots == 1
    assert isinstance(asm.decode(i.encode())[0], Insn)
    assert asm.decode(bytearray(asm.exit().encode()))[0] == asm.exit()
    assert R10 == 10


def test_assemble_objdump_relocations_and_unknown():
    # llvm-objdump -d -r adds relocation lines; LLVM 14 prints <unknown> for encodings it
    # cannot decode, whose raw bytes are then taken as they are.
    text = """
       0:	85 10 00 00 ff ff ff ff	call -1
		0000000000000000:  R_BPF_64_32	.text
       1:	c3 6a ec ff 40 00 00 00	<unknown>
       2:	95 00 00 00 00 00 00 00	exit
"""
    assert asm.assemble(text) == raw(0x85, 0, 0, 0, -1) + raw(0xC3, 10, 6, -20, 0x40) + \
        raw(0x95)
    with pytest.raises(AsmError, match="without the raw bytes"):
        asm.assemble("       1:\t<unknown>")


def test_assemble_bpftool_opcodes_output():
    text = """
   0: (18) r1 = 0x123456789
       18 01 00 00 89 67 45 23 00 00 00 00 01 00 00 00
   2: (85) call bpf_ktime_get_ns#279088
       85 00 00 00 30 42 04 00
   3: (95) exit
       95 00 00 00 00 00 00 00
"""
    assert asm.assemble(text) == bytes.fromhex(
        "1801000089674523000000000100000085000000304204009500000000000000")


def test_count_text():
    text = asm.count_text(5, key=-4, scratch=-16)
    # lookup, atomic add on a hit, BPF_NOEXIST insert of 1 on a miss; the map fd embedded
    assert asm.assemble(text + "exit") == asm.assemble_insns([
        asm.mov(R2, R10), asm.add(R2, -4), asm.ld_map_fd(R1, 5), asm.call(1),
        asm.jeq(R0, 0, "new"), asm.mov(R1, 1), asm.atomic_add(8, R0, 0, R1), asm.ja("done"),
        asm.label("new"), asm.mov(R1, 1), asm.stxdw(R10, -16, R1), asm.mov(R2, R10),
        asm.add(R2, -4), asm.mov(R3, R10), asm.add(R3, -16), asm.ld_map_fd(R1, 5),
        asm.mov(asm.R4, 1), asm.call(2), asm.label("done"), asm.exit()])
    # two counters in one program need different labels
    twice = text + asm.count_text(5, key=-8, scratch=-16, label="again") + "exit"
    assert len(asm.assemble(twice)) == 2 * len(asm.assemble(text)) + 8
    with pytest.raises(AsmError, match="defined twice"):
        asm.assemble(text + text + "exit")
    with pytest.raises(AsmError, match="negative stack offsets"):
        asm.count_text(5, key=4, scratch=-16)
    with pytest.raises(AsmError, match="negative stack offsets"):
        asm.count_text(5, key=-4, scratch=-4)
    with pytest.raises(TypeError, match="fileno"):
        asm.count_text("map", key=-4, scratch=-16)

"""Program.load with BTF func_info/line_info: bpf.asm programs with callbacks and subprograms.

The kernel accepts a callback (an ``ld_func`` function pointer, as bpf_loop takes) only when the
load carries BTF func_info, one FUNC record per subprogram.  These tests load such programs
with ``func_info="auto"``, with :func:`bpf.asm.func_info` plus ``btf=``, and with a hand-made
BTF and line_info; and check that malformed records are refused before the syscall.
"""

from __future__ import annotations

import os
import struct

import pytest

import bpf
from bpf import asm
from bpf.asm import FP, R0, R1, R2, R3, R4

XDP = bpf.ProgType.XDP
PKT = bytes(64)


def loop_sum(n: int = 10) -> list:
    """r0 = sum of 0..n-1, added up by a bpf_loop callback into a stack slot."""
    return [
        asm.stdw(FP, -8, 0),
        asm.mov(R1, n),
        asm.ld_func(R2, "add_index"),
        asm.mov(R3, FP),
        asm.add(R3, -8),
        asm.mov(R4, 0),
        asm.call("loop"),
        asm.ldxdw(R0, FP, -8),
        asm.exit(),
        asm.label("add_index"),       # long add_index(u64 index, void *ctx)
        asm.ldxdw(R3, R2, 0),
        asm.add(R3, R1),
        asm.stxdw(R2, 0, R3),
        asm.mov(R0, 0),               # 0: go on looping
        asm.exit(),
    ]


CALLBACK_AT = 10  # the ld_func above takes two slots


def func_names(prog: bpf.Program) -> dict[int, str]:
    """FUNC type names of the program's BTF, by type id."""
    with bpf.BTF.from_id(prog.info().btf_id) as b:
        return {t.id: t.name for t in b if t.kind == bpf.BTFKind.FUNC}


def test_subprograms_finds_callbacks_and_calls():
    assert asm.subprograms(loop_sum()) == [0, CALLBACK_AT]
    code = [asm.call_local("f"), asm.call_local("g"), asm.exit(),
            asm.label("g"), asm.mov(R0, 2), asm.exit(),
            asm.label("f"), asm.ld_func(R1, "g"), asm.mov(R0, 1), asm.exit()]
    assert asm.subprograms(code) == [0, 3, 5]
    # the same from bytes and from text
    assert asm.subprograms(asm.assemble_insns(code)) == [0, 3, 5]
    assert asm.subprograms("r0 = 0\nexit") == [0]
    with pytest.raises(asm.AsmError, match="outside the program"):
        asm.subprograms(asm.assemble_insns([asm.call_local(5), asm.exit()]))


def test_auto_func_info_loads_bpf_loop_callback():
    with pytest.raises(bpf.VerifierError, match="func_info"):
        bpf.Program.load(XDP, loop_sum())  # what the kernel says without it
    with bpf.Program.load(XDP, loop_sum(), name="loop_sum", func_info="auto") as p:
        assert p.test_run(PKT).retval == 45
        info = p.info()
        assert info.nr_func_info == 2 and info.btf_id > 0
        assert sorted(func_names(p).values()) == ["add_index", "loop_sum"]
    with bpf.Program.load(XDP, loop_sum(100), func_info="auto") as p:
        assert p.test_run(PKT).retval == 4950
        assert sorted(func_names(p).values()) == ["add_index", "main"]


def test_auto_func_info_from_bytes_and_text_names_subprograms_by_offset():
    code = asm.assemble_insns(loop_sum())
    with bpf.Program.load(XDP, code, func_info="auto") as p:
        assert p.test_run(PKT).retval == 45
        assert sorted(func_names(p).values()) == ["main", f"sub_{CALLBACK_AT}"]
    with bpf.Program.load(XDP, asm.disassemble(code), func_info="auto") as p:
        assert p.test_run(PKT).retval == 45


def test_auto_func_info_with_bpf_to_bpf_calls():
    code = [asm.mov(R1, 20), asm.call_local("double"), asm.add(R0, 2), asm.exit(),
            asm.label("double"), asm.mov(R0, R1), asm.add(R0, R1), asm.exit()]
    with bpf.Program.load(XDP, code, func_info="auto") as p:
        assert p.test_run(PKT).retval == 42
        assert p.info().nr_func_info == 2


def test_explicit_btf_and_func_info_btf_stays_callers():
    btf, records = asm.func_info(loop_sum(), main="summer")
    with btf:
        assert [off for off, _ in records] == [0, CALLBACK_AT]
        assert [btf.type(t).name for _, t in records] == ["summer", "add_index"]
        assert btf.fd == -1
        with bpf.Program.load(XDP, loop_sum(), btf=btf, func_info=records) as p:
            assert p.test_run(PKT).retval == 45
        assert btf.fd > 0  # load() loaded it into the kernel; still open
        # a BTF fd works too, and so do pre-packed struct bpf_func_info records
        packed = b"".join(struct.pack("<II", *r) for r in records)
        with bpf.Program.load(XDP, loop_sum(), btf=btf.fd, func_info=packed) as p:
            assert p.test_run(PKT).retval == 45
        os.fstat(btf.fd)
    assert btf.closed


def test_func_info_names_override_labels():
    btf, records = asm.func_info(loop_sum(), names={CALLBACK_AT: "cb", 0: "ignored"})
    with btf:
        # offset 0 is always *main*
        assert [btf.type(t).name for _, t in records] == ["main", "cb"]
    btf, records = asm.func_info(loop_sum(), main="not-an-identifier")
    with btf:
        assert btf.type(records[0][1]).name == "main"


def test_btf_func_builders():
    with bpf.BTF.new() as b:
        i = b.add("int", "int", 4, 1)
        proto = b.add("func_proto", i)
        assert b.add("func_param", "x", i) == 0
        f = b.add("func", "f", proto, 1)
        assert b.type_info(proto)[3] == [("x", i)]
        assert b.type(f).kind == bpf.BTFKind.FUNC and b.type(f).name == "f"
        off = b.add("str", "hello")
        assert off > 0 and b.add("str", "hello") == off  # deduplicated
        with pytest.raises(TypeError):
            b.add("func", "f", "proto")
        with pytest.raises(bpf.BPFError):
            b.add("func", "g", proto, 7)  # no such linkage


def test_line_info_reaches_the_verifier_log():
    code = [asm.mov(R0, 1), asm.call_local("f"), asm.exit(),
            asm.label("f"), asm.mov(R0, 7), asm.exit()]
    btf, records = asm.func_info(code)
    with btf:
        src = btf.add("str", "prog.s")
        l1 = btf.add("str", "r0 = 1 // in main")
        l2 = btf.add("str", "r0 = 7 // in f")
        lines = [(0, src, l1, 1 << 10 | 1), (3, src, l2, 4 << 10 | 1)]
        with bpf.Program.load(XDP, code, btf=btf, func_info=records, line_info=lines,
                              log_level=2) as p:
            assert p.test_run(PKT).retval == 7
            assert p.info().nr_line_info == 2
            log = "\n".join(p.verifier_log)
            assert "r0 = 7 // in f @ prog.s:4" in log


def test_kernel_rejects_func_info_that_does_not_match_subprograms():
    btf, records = asm.func_info(loop_sum())
    with btf:
        with pytest.raises(bpf.VerifierError):
            bpf.Program.load(XDP, loop_sum(), btf=btf, func_info=records[:1])
        with pytest.raises(bpf.VerifierError):
            bpf.Program.load(XDP, loop_sum(), btf=btf, func_info=[(0, records[0][1]),
                                                                  (CALLBACK_AT - 1,
                                                                   records[1][1])])
        not_a_func = btf.find("long").id
        with pytest.raises(bpf.BPFError) as ei:
            bpf.Program.load(XDP, loop_sum(), btf=btf,
                             func_info=[(0, not_a_func), (CALLBACK_AT, not_a_func)])
        assert ei.value.errno == 22


@pytest.mark.parametrize("func_info, exc, match", [
    ([(0, 4), (99, 5)], ValueError, "outside the program"),
    ([(0, 4), (CALLBACK_AT, 5), (CALLBACK_AT, 5)], ValueError, "increasing"),
    ([(CALLBACK_AT, 5)], ValueError, "main program"),
    ([(0, 0), (CALLBACK_AT, 5)], ValueError, "type id"),
    ([(0, 4, 1)], ValueError, "2 items"),
    ([(0, -1)], ValueError, "0..2"),
    ([(0, "4")], TypeError, "must be an int"),
    ([(0.0, 4)], TypeError, "must be an int"),
    ([4, 5], TypeError, "must be a tuple"),
    ([], ValueError, "empty"),
    (12, TypeError, "sequence"),
    ("manual", ValueError, "'auto'"),
    (b"\0" * 12, ValueError, "8 bytes each"),
], ids=["range", "order", "first", "type0", "arity", "negative", "str", "float", "flat",
        "empty", "int", "mode", "packed"])
def test_bad_func_info_is_refused(func_info, exc, match):
    btf, _ = asm.func_info(loop_sum())
    with btf:
        with pytest.raises(exc, match=match):
            bpf.Program.load(XDP, loop_sum(), btf=btf, func_info=func_info)
        assert btf.fd == -1  # refused before any syscall


def test_bad_btf_and_line_info_arguments():
    btf, records = asm.func_info(loop_sum())
    with btf:
        with pytest.raises(ValueError, match="needs btf"):
            bpf.Program.load(XDP, loop_sum(), func_info=records)
        with pytest.raises(ValueError, match="own BTF"):
            bpf.Program.load(XDP, loop_sum(), btf=btf, func_info="auto")
        with pytest.raises(TypeError, match="btf"):
            bpf.Program.load(XDP, loop_sum(), btf="btf", func_info=records)
        with pytest.raises(ValueError, match="needs func_info"):
            bpf.Program.load(XDP, loop_sum(), btf=btf, line_info=[(0, 0, 0, 0)])
        with pytest.raises(ValueError, match="4 items"):
            bpf.Program.load(XDP, loop_sum(), btf=btf, func_info=records, line_info=[(0, 0)])
        with pytest.raises(ValueError, match="outside the program"):
            bpf.Program.load(XDP, loop_sum(), btf=btf, func_info=records,
                             line_info=[(0, 0, 0, 0), (100, 0, 0, 0)])
        with pytest.raises(ValueError, match="16 bytes each"):
            bpf.Program.load(XDP, loop_sum(), btf=btf, func_info=records, line_info=bytes(8))
    with pytest.raises(ValueError, match="closed"):
        bpf.Program.load(XDP, loop_sum(), btf=btf, func_info=records)


def test_global_subprogram_with_hand_built_btf():
    """A global function is verified once, against its prototype: int double(int x)."""
    code = [asm.mov(R1, 20), asm.call_local("double"), asm.add(R0, 2), asm.exit(),
            asm.label("double"), asm.mov(R0, R1), asm.add(R0, R1), asm.exit()]
    with bpf.BTF.new() as btf:
        i = btf.add("int", "int", 4, 1)
        void_ptr = btf.add("ptr", 0)
        main_proto = btf.add("func_proto", i)
        btf.add("func_param", "ctx", void_ptr)
        main = btf.add("func", "prog", main_proto, 1)
        proto = btf.add("func_proto", i)
        btf.add("func_param", "x", i)
        double = btf.add("func", "double", proto, 1)
        with bpf.Program.load(XDP, code, btf=btf, func_info=[(0, main), (4, double)],
                              log_level=2) as p:
            assert p.test_run(PKT).retval == 42
            assert any("('double') is global" in ln for ln in p.verifier_log)
        # the generic prototype (five arguments) does not fit a global function called with one
        generic, records = asm.func_info(code)
        with generic:
            generic_proto = generic.type_info(records[1][1])[2]  # FUNC -> its FUNC_PROTO
            as_global = generic.add("func", "double", generic_proto, 1)
            with pytest.raises(bpf.VerifierError, match="invalid args"):
                bpf.Program.load(XDP, code, btf=generic, func_info=[records[0], (4, as_global)])

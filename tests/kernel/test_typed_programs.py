"""Typed maps with programs: per-CPU slots written by a BPF program, and program arrays.

The programs are built with ``bpf.asm`` (no ELF), loaded as socket filters and run with
``test_run``, which executes on the calling CPU: pinning the test to each CPU in turn makes
the program write every CPU's slot of a per-CPU map with a distinct value.
"""

from __future__ import annotations

import os

import pytest

import bpf
from bpf import asm
from bpf.asm import FP, R0, R1, R2, R6

NCPU = bpf.possible_cpus()


def percpu_writer(map, key, add):
    """value = map[key]; if (value) *(u64 *)value = bpf_get_smp_processor_id() + add"""
    return asm.assemble_insns([
        asm.st("w", FP, -4, key),             # *(u32 *)(r10 - 4) = key
        asm.ld_map_fd(R1, map),
        asm.mov(R2, FP),
        asm.add(R2, -4),
        asm.call("map_lookup_elem"),
        asm.jeq(R0, 0, "out"),
        asm.mov(R6, R0),
        asm.call("get_smp_processor_id"),
        asm.add(R0, add),
        asm.stx("dw", R6, 0, R0),             # *(u64 *)(r6 + 0) = r0
        asm.label("out"),
        asm.mov(R0, 0),
        asm.exit(),
    ])


RET0 = asm.assemble("r0 = 0\nexit")


@pytest.mark.parametrize("cls", [bpf.PerCPUArrayMap, bpf.PerCPUHashMap])
def test_percpu_values_written_by_a_program_on_each_cpu(cls):
    if cls is bpf.PerCPUArrayMap:
        t = cls.create(4, value=bpf.u64)
    else:
        t = cls.create(key=bpf.u32, value=bpf.u64, max_entries=4)
        t[2] = 0                                      # the program updates existing slots
    cpus = sorted(os.sched_getaffinity(0))
    old = os.sched_getaffinity(0)
    with t, bpf.Program.load(bpf.ProgType.SOCKET_FILTER, percpu_writer(t, 2, 100),
                             license="GPL") as prog:
        try:
            for cpu in cpus:                          # test runs execute on the calling CPU
                os.sched_setaffinity(0, {cpu})
                assert prog.test_run(bytes(64)).retval == 0
        finally:
            os.sched_setaffinity(0, old)
        expected = [100 + c if c in cpus else 0 for c in range(NCPU)]
        assert t[2] == expected                       # one distinct value per CPU
        assert t.sum(2) == sum(expected) and t.max(2) == 100 + cpus[-1]
        if cls is bpf.PerCPUArrayMap:
            assert t.values()[2] == expected and t.array()[2].tolist() == expected
        else:
            assert dict(t.items()) == {2: expected}
            assert t.arrays()[1].tolist() == [expected]


def test_prog_array_with_programs():
    with bpf.ProgArrayMap.create(4) as jumps, \
            bpf.Program.load(bpf.ProgType.SOCKET_FILTER, RET0, license="GPL") as p1, \
            bpf.Program.load(bpf.ProgType.SOCKET_FILTER, RET0, license="GPL") as p2:
        jumps[0] = p1                                 # a Program object
        jumps[3] = p2.fileno()                        # or its fd
        assert jumps[0] == p1.id and jumps[3] == p2.id
        assert sorted(jumps) == [0, 3] and dict(jumps.items()) == {0: p1.id, 3: p2.id}
        with jumps.get_program(3) as again:
            assert again.id == p2.id
        del jumps[0]
        assert 0 not in jumps and len(jumps) == 1
        with pytest.raises(bpf.BPFError):
            jumps[4] = p1                             # out of the array

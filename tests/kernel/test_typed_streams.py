"""Typed classes of the stream maps: RINGBUF, USER_RINGBUF, PERF_EVENT_ARRAY."""

from __future__ import annotations

import os
import struct

import pytest

import bpf
from bpf import asm


def test_ringbuf_map_reader_receives_records():
    with bpf.RingBufMap.create(4096 * 4) as rb:
        assert isinstance(rb.map.typed(), bpf.RingBufMap)
        assert rb.map.type == bpf.MapType.RINGBUF
        code = asm.assemble(f"""
            *(u64 *)(r10 - 8) = 7
            r1 = map[fd:{rb.map.fd}]
            r2 = r10
            r2 += -8
            r3 = 8
            r4 = 0
            call ringbuf_output
            r0 = 2
            exit
        """)
        got = []
        with bpf.Program.load(bpf.ProgType.XDP, code) as prog, \
                rb.reader(lambda r: got.append(bytes(r))) as reader:
            prog.test_run(bytes(14), repeat=3)
            assert reader.consume() == 3
        assert got == [struct.pack("<Q", 7)] * 3


def test_ringbuf_map_bad_size_and_wrong_type():
    with pytest.raises(ValueError, match="power of two"):
        bpf.RingBufMap.create(5000)
    with bpf.Map.create(bpf.MapType.HASH, 4, 4, 4) as h:
        with pytest.raises(TypeError, match="RINGBUF"):
            bpf.RingBufMap(h)
    with bpf.RingBufMap.create(os.sysconf("SC_PAGE_SIZE")) as rb:
        with pytest.raises(TypeError, match="codec"):
            bpf.RingBufMap(rb.map, value=bpf.u32)


def test_user_ringbuf_map_writer():
    with bpf.UserRingBufMap.create(4096 * 4) as urb:
        assert isinstance(urb.map.typed(), bpf.UserRingBufMap)
        with pytest.raises(TypeError, match="writer"):
            urb.reader()
        with urb.writer() as w:
            w.write(b"hello!!!")


def test_perf_event_array_map_slots_and_reader():
    with bpf.PerfEventArrayMap.create() as pa:
        assert len(pa) == bpf.possible_cpus()
        assert isinstance(pa.map.typed(), bpf.PerfEventArrayMap)
        with pa.reader(lambda cpu, rec: None) as reader:
            assert reader.fileno() >= 0
        with bpf.perf_event_open("bpf-output", cpu=0, pid=-1) as ev:
            pa[0] = ev
            del pa[0]
        with pytest.raises(KeyError):
            del pa[0]

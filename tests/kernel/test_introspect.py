"""bpf.programs() and bpf.maps(): walking the kernel's id tables."""

from __future__ import annotations

import ctypes
import os
import struct

import pytest

import bpf
from bpf import asm, introspect
from bpf.asm import FP, R0, R1, R2

_libc = ctypes.CDLL(None, use_errno=True)
_NR_BPF = {"x86_64": 321, "aarch64": 280}.get(os.uname().machine, 321)


def map_fd(key: int = 4, value: int = 8, entries: int = 4, name: bytes = b"") -> int:
    """An array map created with a bare bpf(BPF_MAP_CREATE), independent of bpf.Map."""
    attr = bytearray(128)
    struct.pack_into("<IIIII", attr, 0, 2, key, value, entries, 0)
    attr[28:28 + len(name)] = name  # map_name follows map_type ... inner_map_fd, numa_node
    buf = (ctypes.c_char * len(attr)).from_buffer(attr)
    fd = _libc.syscall(_NR_BPF, 0, buf, len(attr))
    if fd < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return fd


def test_programs_finds_loaded_program():
    with bpf.Program.load(bpf.ProgType.SOCKET_FILTER, asm.assemble("r0 = 0\nexit"),
                          name="find_me") as p:
        pid = p.id
        found = [i for i in bpf.programs() if i.id == p.id]
        assert len(found) == 1
        info = found[0]
        assert isinstance(info, bpf.ProgramInfo)
        assert info.name == "find_me" and info.type is bpf.ProgType.SOCKET_FILTER
        assert info.tag == p.tag and info == p.info()
        with info.open() as q:
            assert isinstance(q, bpf.Program) and q.id == p.id and q.fd != p.fd
    assert pid not in {i.id for i in bpf.programs()}  # closed: gone from the walk


def test_ids_are_increasing_and_unique():
    ids = [i.id for i in bpf.programs()]
    assert ids == sorted(set(ids))


def test_program_info_lists_its_maps():
    fd = map_fd()
    try:
        code = asm.assemble_insns([
            asm.stw(FP, -4, 0), asm.mov(R2, FP), asm.add(R2, -4), asm.ld_map_fd(R1, fd),
            asm.call("map_lookup_elem"), asm.mov(R0, 0), asm.exit()])
        with bpf.Program.load(bpf.ProgType.SOCKET_FILTER, code) as p:
            minfo = [m for m in bpf.maps() if m.id in p.map_ids]
            assert len(minfo) == 1 and len(p.map_ids) == 1
            prog_info = next(i for i in bpf.programs() if i.id == p.id)
            assert prog_info.map_ids == p.map_ids
    finally:
        os.close(fd)


def test_maps_finds_created_map():
    fd = map_fd(key=4, value=16, entries=7, name=b"walk_me")
    try:
        found = [m for m in bpf.maps() if m.name == "walk_me" and m.max_entries == 7]
        assert len(found) == 1
        m = found[0]
        assert isinstance(m, bpf.MapInfo)
        assert m.type is bpf.MapType.ARRAY and (m.key_size, m.value_size) == (4, 16)
        assert m.flags == 0
        if hasattr(bpf, "Map"):
            with m.open() as live:
                assert live.id == m.id
    finally:
        os.close(fd)
    assert m.id not in {x.id for x in bpf.maps()}


def test_walk_skips_ids_that_vanish(monkeypatch):
    with bpf.Program.load(bpf.ProgType.SOCKET_FILTER, asm.assemble("r0 = 0\nexit")) as a, \
            bpf.Program.load(bpf.ProgType.SOCKET_FILTER, asm.assemble("r0 = 1\nexit")) as b:
        gone = bpf.Program.load(bpf.ProgType.SOCKET_FILTER, asm.assemble("r0 = 2\nexit"))
        gone_id = gone.id
        gone.close()
        assert bpf._bpf._prog_info_by_id(gone_id) is None
        # The walk read gone_id just before the program was unloaded: it is skipped.
        monkeypatch.setattr(introspect, "_ids", lambda kind: iter([a.id, gone_id, b.id]))
        assert [i.id for i in bpf.programs()] == [a.id, b.id]


def test_dead_map_id_gives_none():
    fd = map_fd(name=b"short_lived")
    mid = next(m.id for m in bpf.maps() if m.name == "short_lived")
    os.close(fd)
    # Map freeing is deferred to a work queue: wait for the id to go away.
    import time

    deadline = time.monotonic() + 5
    while bpf._bpf._map_info_by_id(mid) is not None:
        assert time.monotonic() < deadline, "map id still present after close"
        time.sleep(0.01)


def test_next_id_argument_checks():
    with pytest.raises(ValueError):
        bpf._bpf._next_id(9, 0)
    with pytest.raises(ValueError):
        bpf._bpf._prog_info_by_id(1 << 40)


def test_fd_array_map_references():
    fd = map_fd(name=b"by_index")
    try:
        code = asm.assemble_insns([
            asm.stw(FP, -4, 0), asm.mov(R2, FP), asm.add(R2, -4), asm.ld_map_idx(R1, 0),
            asm.call("map_lookup_elem"), asm.mov(R0, 0), asm.exit()])
        mid = next(m.id for m in bpf.maps() if m.name == "by_index")

        class HasFileno:
            def fileno(self) -> int:
                return fd

        for arr in ([fd], [HasFileno()]):
            with bpf.Program.load(bpf.ProgType.SOCKET_FILTER, code, fd_array=arr) as p:
                assert p.map_ids == (mid,)
        with pytest.raises(TypeError, match="fd_array item"):
            bpf.Program.load(bpf.ProgType.SOCKET_FILTER, code, fd_array=["x"])
    finally:
        os.close(fd)

"""bpf.programs() and bpf.maps(): walking the kernel's id tables."""

from __future__ import annotations

import pytest

import bpf
from bpf import asm, introspect
from bpf.asm import FP, R0, R1, R2


def array_map(value: int = 8, entries: int = 4, name: str | None = None) -> bpf.Map:
    return bpf.Map.create(bpf.MapType.ARRAY, key_size=4, value_size=value, max_entries=entries,
                          name=name)


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
    with array_map() as m:
        code = asm.assemble_insns([
            asm.stw(FP, -4, 0), asm.mov(R2, FP), asm.add(R2, -4), asm.ld_map_fd(R1, m),
            asm.call("map_lookup_elem"), asm.mov(R0, 0), asm.exit()])
        with bpf.Program.load(bpf.ProgType.SOCKET_FILTER, code) as p:
            assert p.map_ids == (m.id,)
            minfo = [i for i in bpf.maps() if i.id in p.map_ids]
            assert len(minfo) == 1
            prog_info = next(i for i in bpf.programs() if i.id == p.id)
            assert prog_info.map_ids == p.map_ids


def test_maps_finds_created_map():
    with array_map(value=16, entries=7, name="walk_me") as created:
        found = [m for m in bpf.maps() if m.id == created.id]
        assert len(found) == 1
        m = found[0]
        assert isinstance(m, bpf.MapInfo)
        assert m.name == "walk_me" and m.max_entries == 7
        assert m.type is bpf.MapType.ARRAY and (m.key_size, m.value_size) == (4, 16)
        assert m.flags == 0
        with m.open() as live:
            assert isinstance(live, bpf.Map) and live.id == m.id and live.fd != created.fd
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
    m = array_map()
    mid = m.id
    m.close()
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
    import array

    with array_map() as m:
        code = asm.assemble_insns([
            asm.stw(FP, -4, 0), asm.mov(R2, FP), asm.add(R2, -4), asm.ld_map_idx(R1, 0),
            asm.call("map_lookup_elem"), asm.mov(R0, 0), asm.exit()])
        for arr in ([m], [m.fd], array.array("i", [m.fd])):
            with bpf.Program.load(bpf.ProgType.SOCKET_FILTER, code, fd_array=arr) as p:
                assert p.map_ids == (m.id,)
        with pytest.raises(TypeError, match="fd_array item"):
            bpf.Program.load(bpf.ProgType.SOCKET_FILTER, code, fd_array=["x"])

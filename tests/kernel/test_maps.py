"""Map: creation, adoption, raw element operations, errors, fd ownership (real kernel)."""

from __future__ import annotations

import array
import ctypes
import errno
import gc
import os
import struct

import numpy as np
import pytest

import bpf
from bpf import MapFlags, MapType, UpdateFlags


def u32(i: int) -> bytes:
    return struct.pack("I", i)


def u64(i: int) -> bytes:
    return struct.pack("Q", i)


@pytest.fixture
def hmap():
    m = bpf.Map.create(MapType.HASH, 4, 8, 64, name="t_hash")
    yield m
    m.close()


# ---- creation and attributes -------------------------------------------------------------------

def test_create_attributes(hmap):
    assert isinstance(hmap, bpf.Map) and isinstance(hmap, bpf._bpf.Map)
    assert hmap.type is MapType.HASH
    assert (hmap.key_size, hmap.value_size, hmap.max_entries) == (4, 8, 64)
    assert hmap.raw_value_size == 8
    assert hmap.name == "t_hash"
    assert hmap.id > 0 and hmap.flags == 0 and hmap.map_extra == 0
    info = hmap.info()
    assert isinstance(info, bpf.MapInfo)
    assert info.id == hmap.id and info.type is MapType.HASH
    assert info.max_entries == 64 and info.name == "t_hash" and info.frozen is False
    r = repr(hmap)
    assert "HASH" in r and "t_hash" in r and f"fd={hmap.fileno()}" in r


def test_create_flags_numa_and_extra():
    with bpf.Map.create(MapType.HASH, 4, 4, 8, MapFlags.NO_PREALLOC, numa_node=0) as m:
        assert m.flags & MapFlags.NO_PREALLOC
        assert m.flags & MapFlags.NUMA_NODE
    with bpf.Map.create(MapType.BLOOM_FILTER, 0, 4, 100, map_extra=5) as m:
        assert m.map_extra == 5


def test_create_bad_arguments():
    with pytest.raises(ValueError, match="longer than 15"):
        bpf.Map.create(MapType.HASH, 4, 4, 8, name="x" * 16)
    with pytest.raises(ValueError, match="letters"):
        bpf.Map.create(MapType.HASH, 4, 4, 8, name="a-b")
    with pytest.raises(bpf.BPFError) as ei:
        bpf.Map.create(MapType.ARRAY, 8, 4, 8)  # arrays need 4-byte keys
    assert ei.value.errno == errno.EINVAL
    assert "map create" in str(ei.value) and "key_size must be 4" in str(ei.value)
    with pytest.raises(bpf.BPFError, match="NO_PREALLOC"):
        bpf.Map.create(MapType.LPM_TRIE, 8, 4, 8)


def test_storage_maps_need_btf():
    for t in (MapType.SK_STORAGE, MapType.INODE_STORAGE, MapType.TASK_STORAGE,
              MapType.CGRP_STORAGE):
        with pytest.raises(ValueError, match="need BTF"):
            bpf.Map.create(t, 4, 8, 0)


def test_read_only_and_write_only_maps():
    with bpf.Map.create(MapType.ARRAY, 4, 4, 2, MapFlags.RDONLY) as m:
        assert m.lookup(u32(0)) == bytes(4)
        with pytest.raises(bpf.BPFPermissionError) as ei:
            m.update(u32(0), u32(1))
        assert isinstance(ei.value, PermissionError) and ei.value.errno == errno.EPERM
        assert "RDONLY" in str(ei.value) and "map update" in str(ei.value)
    with bpf.Map.create(MapType.ARRAY, 4, 4, 2, MapFlags.WRONLY) as m:
        m.update(u32(0), u32(1))
        with pytest.raises(PermissionError, match="map lookup"):
            m.lookup(u32(0))


def test_freeze():
    with bpf.Map.create(MapType.ARRAY, 4, 4, 2) as m:
        m[u32(1)] = u32(7)
        m.freeze()
        assert m.info().frozen is True
        assert m[u32(1)] == u32(7)
        with pytest.raises(bpf.BPFPermissionError, match="frozen"):
            m[u32(1)] = u32(8)


# ---- adoption ----------------------------------------------------------------------------------

def test_from_fd_dup_and_transfer(hmap):
    hmap[u32(1)] = u64(11)
    with bpf.Map.from_fd(hmap.fileno()) as d:
        assert d.fileno() != hmap.fileno() and d.id == hmap.id
        assert d[u32(1)] == u64(11) and d.type is MapType.HASH
    assert not hmap.closed  # the dup was closed, not ours
    fd = os.dup(hmap.fileno())
    t = bpf.Map.from_fd(fd, transfer=True)
    assert t.fileno() == fd
    t.close()
    with pytest.raises(OSError):
        os.fstat(fd)  # transferred: closing the Map closed it


def test_from_fd_never_keeps_fd0(hmap):
    saved = os.dup(0)
    try:
        os.dup2(hmap.fileno(), 0)
        m = bpf.Map.from_fd(0, transfer=True)
        assert m.fileno() != 0 and m.id == hmap.id
        m.close()
    finally:
        os.dup2(saved, 0)
        os.close(saved)


def test_from_fd_errors():
    with pytest.raises(ValueError):
        bpf.Map.from_fd(-1)
    r, w = os.pipe()
    try:
        with pytest.raises(bpf.BPFError, match="not refer to a BPF map"):
            bpf.Map.from_fd(r)
    finally:
        os.close(r)
        os.close(w)


def test_pin_from_pin_unpin(hmap, bpffs):
    path = os.path.join(bpffs, "m")
    hmap[u32(3)] = u64(33)
    hmap.pin(path)
    with pytest.raises(bpf.BPFError) as ei:
        hmap.pin(path)
    assert ei.value.errno == errno.EEXIST
    with bpf.Map.from_pin(path) as p:
        assert p.id == hmap.id and p[u32(3)] == u64(33)
    with bpf.Map.from_pin(path, MapFlags.RDONLY) as ro:
        assert ro[u32(3)] == u64(33)
        with pytest.raises(PermissionError):
            ro[u32(3)] = u64(1)
    with bpf.Map.from_pin(path, flags=MapFlags.WRONLY) as wo:
        wo[u32(4)] = u64(44)
        with pytest.raises(PermissionError):
            wo.lookup(u32(4))
    bpf.unpin(path)
    assert not os.path.exists(path)
    with pytest.raises(bpf.BPFError) as ei:
        bpf.Map.from_pin(path)
    assert ei.value.errno == errno.ENOENT
    with pytest.raises(bpf.BPFError):
        bpf.unpin(path)


def test_pin_outside_bpffs(hmap, tmp_path):
    with pytest.raises(bpf.BPFError, match="map pin"):
        hmap.pin(str(tmp_path / "x"))


def test_from_id(hmap):
    with bpf.Map.from_id(hmap.id) as m:
        assert m.id == hmap.id and m.key_size == 4
    with bpf.Map.from_id(hmap.id, MapFlags.RDONLY) as m:
        with pytest.raises(PermissionError):
            m[u32(0)] = u64(0)
    with pytest.raises(bpf.BPFError, match="no map has that id"):
        bpf.Map.from_id(0xFFFFFFF0)


def test_direct_instantiation_refused():
    with pytest.raises(TypeError, match="create"):
        bpf.Map()


# ---- element operations ------------------------------------------------------------------------

def test_lookup_update_delete(hmap):
    k = u32(5)
    assert hmap.lookup(k) is None
    assert hmap.get(k) is None and hmap.get(k, 7) == 7
    assert k not in hmap
    hmap.update(k, u64(50))
    assert hmap.lookup(k) == u64(50) and hmap[k] == u64(50) and k in hmap
    hmap[k] = u64(51)
    assert hmap.get(k, None) == u64(51)
    assert hmap.delete(k) is True
    assert hmap.delete(k) is False
    hmap[k] = u64(1)
    del hmap[k]
    with pytest.raises(bpf.KeyNotFoundError) as ei:
        del hmap[k]
    assert "map delete" in str(ei.value) and "t_hash" in str(ei.value)
    with pytest.raises(KeyError):
        hmap[k]


def test_update_flags(hmap):
    k = u32(1)
    with pytest.raises(bpf.KeyNotFoundError):
        hmap.update(k, u64(1), UpdateFlags.EXIST)
    hmap.update(k, u64(1), UpdateFlags.NOEXIST)
    with pytest.raises(bpf.KeyExistsError) as ei:
        hmap.update(k, u64(2), flags=UpdateFlags.NOEXIST)
    assert ei.value.errno == errno.EEXIST and "map update" in str(ei.value)
    hmap.update(k, u64(3), UpdateFlags.EXIST)
    assert hmap[k] == u64(3)


def test_full_map_is_explained():
    with bpf.Map.create(MapType.HASH, 4, 4, 2) as m:
        m[u32(1)] = u32(1)
        m[u32(2)] = u32(2)
        with pytest.raises(bpf.BPFError) as ei:
            m[u32(3)] = u32(3)
        assert ei.value.errno == errno.E2BIG and "full" in str(ei.value)
    with bpf.Map.create(MapType.ARRAY, 4, 4, 2) as a:
        with pytest.raises(bpf.BPFError, match="max_entries"):
            a[u32(2)] = u32(0)


def test_lookup_into(hmap):
    out = bytearray(8)
    assert hmap.lookup_into(u32(1), out) is False
    hmap[u32(1)] = u64(99)
    assert hmap.lookup_into(u32(1), out) is True and bytes(out) == u64(99)
    big = bytearray(16)
    assert hmap.lookup_into(u32(1), big) and big[:8] == u64(99)
    nbuf = np.zeros(1, dtype=np.uint64)
    assert hmap.lookup_into(u32(1), nbuf) and nbuf[0] == 99
    with pytest.raises(ValueError, match="at least 8 bytes, got 4"):
        hmap.lookup_into(u32(1), bytearray(4))
    with pytest.raises((TypeError, BufferError)):
        hmap.lookup_into(u32(1), b"readonly")


def test_next_key(hmap):
    assert hmap.next_key() is None
    keys = {u32(i) for i in range(10)}
    for k in keys:
        hmap[k] = u64(0)
    seen, k = set(), hmap.next_key()
    while k is not None:
        seen.add(k)
        k = hmap.next_key(k)
    assert seen == keys


def test_lookup_and_delete(hmap):
    hmap[u32(1)] = u64(10)
    assert hmap.lookup_and_delete(u32(1)) == u64(10)
    assert hmap.lookup_and_delete(u32(1)) is None
    assert u32(1) not in hmap


@pytest.mark.parametrize("make", [
    bytes, bytearray, memoryview,
    lambda b: array.array("I", struct.unpack("I", b)),
    lambda b: ctypes.c_uint32(struct.unpack("I", b)[0]),
    lambda b: np.frombuffer(b, dtype=np.uint32).copy(),
    lambda b: memoryview(b"xx" + b)[2:],
], ids=["bytes", "bytearray", "memoryview", "array", "ctypes", "numpy", "sliced"])
def test_buffer_protocol_keys_values(hmap, make):
    hmap.update(make(u32(9)), np.array([1234], dtype=np.uint64))
    assert hmap.lookup(make(u32(9))) == u64(1234)
    assert make(u32(9)) in hmap
    assert hmap.delete(make(u32(9)))


def test_wrong_sizes_and_types(hmap):
    with pytest.raises(ValueError, match="key must be 4 bytes, got 3"):
        hmap.lookup(b"abc")
    with pytest.raises(ValueError, match="key must be 4 bytes, got 8"):
        hmap[bytearray(8)] = u64(0)
    with pytest.raises(ValueError, match="value must be 8 bytes, got 4"):
        hmap.update(u32(0), u32(0))
    with pytest.raises(TypeError, match="bytes-like"):
        hmap.lookup(5)
    with pytest.raises(TypeError, match="bytes-like"):
        hmap.update(u32(0), "string")
    with pytest.raises(TypeError):
        hmap.lookup(None)
    with pytest.raises(TypeError):
        5 in hmap
    with pytest.raises(TypeError):
        hmap.lookup()
    with pytest.raises(OverflowError):
        hmap.update(u32(0), u64(0), -1)


def test_percpu_sizes():
    ncpu = bpf.possible_cpus()
    for t in (MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_PERCPU_HASH):
        with bpf.Map.create(t, 4, 4, 4) as m:
            assert m.raw_value_size == 8 * ncpu  # round_up(4, 8) per CPU
            val = b"".join(struct.pack("<II", c + 1, 0) for c in range(ncpu))
            m.update(u32(1), val)
            assert m.lookup(u32(1)) == val
            out = bytearray(m.raw_value_size)
            assert m.lookup_into(u32(1), out) and bytes(out) == val
            with pytest.raises(ValueError, match="per-CPU"):
                m.lookup_into(u32(1), bytearray(4))
            with pytest.raises(ValueError, match=f"must be {8 * ncpu} bytes, got 4"):
                m.update(u32(1), u32(0))
            assert dict(m.items())[u32(1)] == val
    with bpf.Map.create(MapType.PERCPU_HASH, 4, 12, 4) as m:
        assert m.raw_value_size == 16 * ncpu


def test_closed_map_raises_valueerror(hmap):
    hmap.close()
    hmap.close()  # idempotent
    assert hmap.closed
    assert "closed" in repr(hmap)
    for call in (lambda: hmap.lookup(u32(0)), lambda: hmap.update(u32(0), u64(0)),
                 lambda: hmap.delete(u32(0)), lambda: hmap.next_key(),
                 lambda: hmap[u32(0)], lambda: u32(0) in hmap, hmap.fileno, hmap.info,
                 lambda: hmap.lookup_batch(bytearray(4), bytearray(8)), lambda: len(hmap),
                 lambda: list(hmap.items()), hmap.freeze, hmap.dup):
        with pytest.raises(ValueError, match="closed map"):
            call()


# ---- fd ownership ------------------------------------------------------------------------------

def test_detach_dup_context():
    m = bpf.Map.create(MapType.ARRAY, 4, 4, 1)
    d = m.dup()
    assert type(d) is bpf.Map and d.id == m.id and d.fileno() != m.fileno()
    fd = m.detach()
    assert m.closed
    os.fstat(fd)  # still open: it is ours now
    os.close(fd)
    with d as same:
        assert same is d
    assert d.closed


def test_subclass_is_built():
    class Mine(bpf.Map):
        pass

    with Mine.create(MapType.ARRAY, 4, 4, 1) as m:
        assert type(m) is Mine
        with Mine.from_fd(m.fileno()) as d:
            assert type(d) is Mine
        with m.dup() as d:
            assert type(d) is Mine


def test_resource_warning_for_unclosed_map():
    m = bpf.Map.create(MapType.ARRAY, 4, 4, 1)
    fd = m.fileno()
    with pytest.warns(ResourceWarning, match="unclosed map"):
        del m
        gc.collect()
    with pytest.raises(OSError):
        os.fstat(fd)  # closed anyway


def test_no_warning_after_detach():
    m = bpf.Map.create(MapType.ARRAY, 4, 4, 1)
    os.close(m.detach())
    del m
    gc.collect()  # filterwarnings=error would fail the test on a warning


def _nfds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.slow
def test_create_close_cycles_leak_no_fd():
    before = _nfds()
    for _ in range(100_000):
        bpf.Map.create(MapType.ARRAY, 4, 4, 1).close()
    for _ in range(1000):
        with bpf.Map.create(MapType.HASH, 4, 4, 1) as m:
            m.dup().close()
    assert _nfds() == before

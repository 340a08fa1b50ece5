"""Every map type user space can create, created and exercised as far as user space can.

Objects the map types hold (programs, perf events, BTF) are made here with raw bpf() and
perf_event_open() calls through ctypes, so that these tests depend on nothing but bpf.Map.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import socket
import struct
import tempfile

import pytest

import bpf
from bpf import MapFlags, MapType, UpdateFlags

from conftest import mount, umount

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_NR = {"x86_64": (321, 298), "aarch64": (280, 241)}.get(platform.machine())


def u32(i: int) -> bytes:
    return struct.pack("I", i)


def u64(i: int) -> bytes:
    return struct.pack("Q", i)


def _bpf_syscall(cmd: int, attr: ctypes.Array) -> int:
    if _NR is None:
        pytest.fail(f"syscall numbers unknown for {platform.machine()}")
    r = _libc.syscall(ctypes.c_long(_NR[0]), ctypes.c_int(cmd), attr,
                      ctypes.c_uint(len(attr)))
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"bpf({cmd}): {os.strerror(e)}")
    return r


def load_btf_int() -> int:
    """Load a BTF blob whose type 1 is a 32-bit signed int; return its fd."""
    types = struct.pack("<III", 1, 1 << 24, 4) + struct.pack("<I", (1 << 24) | 32)
    strs = b"\0int\0"
    hdr = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strs))
    blob = ctypes.create_string_buffer(hdr + types + strs)
    attr = ctypes.create_string_buffer(128)
    struct.pack_into("<QQII", attr, 0, ctypes.addressof(blob), 0, len(blob) - 1, 0)
    return _bpf_syscall(18, attr)  # BPF_BTF_LOAD


def load_socket_filter() -> int:
    """Load `r0 = 0; exit` as a SOCKET_FILTER program; return its fd."""
    insns = ctypes.create_string_buffer(struct.pack("<BBhi", 0xB7, 0, 0, 0) +
                                        struct.pack("<BBhi", 0x95, 0, 0, 0))
    lic = ctypes.create_string_buffer(b"GPL")
    attr = ctypes.create_string_buffer(144)
    struct.pack_into("<IIQQ", attr, 0, 1, 2, ctypes.addressof(insns), ctypes.addressof(lic))
    return _bpf_syscall(5, attr)  # BPF_PROG_LOAD


def open_bpf_output_event(cpu: int = 0) -> int:
    """perf_event_open(PERF_TYPE_SOFTWARE, PERF_COUNT_SW_BPF_OUTPUT) on cpu; return the fd."""
    attr = ctypes.create_string_buffer(128)
    struct.pack_into("<IIQQQ", attr, 0, 1, 128, 10, 1, 1 << 10)  # sample_type RAW
    r = _libc.syscall(ctypes.c_long(_NR[1]), attr, ctypes.c_int(-1), ctypes.c_int(cpu),
                      ctypes.c_int(-1), ctypes.c_ulong(8))
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r


@pytest.fixture
def cgroup_fd():
    d = tempfile.mkdtemp(prefix="cg2-")
    mount("cgroup2", d)
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield fd
    finally:
        os.close(fd)
        umount(d)
        os.rmdir(d)


@pytest.fixture
def udp_socket():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    yield s
    s.close()


# ---- plain key/value types ---------------------------------------------------------------------

@pytest.mark.parametrize("t", [MapType.HASH, MapType.LRU_HASH, MapType.PERCPU_HASH,
                               MapType.LRU_PERCPU_HASH])
def test_hash_family(t):
    with bpf.Map.create(t, 4, 8, 32) as m:
        assert m.type is t
        v = bytes(range(m.raw_value_size))
        m[u32(1)] = v
        assert m[u32(1)] == v and m.next_key() == u32(1)
        assert m.lookup_and_delete(u32(1)) == v and len(m) == 0


def test_lru_hash_evicts_instead_of_failing():
    with bpf.Map.create(MapType.LRU_HASH, 4, 4, 64) as m:
        for i in range(1000):
            m[u32(i)] = u32(i)
        assert 0 < len(m) <= 64
        assert u32(999) in m


@pytest.mark.parametrize("t", [MapType.ARRAY, MapType.PERCPU_ARRAY])
def test_array_types(t):
    with bpf.Map.create(t, 4, 4, 8) as a:
        assert len(a) == 8 and a[u32(7)] == bytes(a.raw_value_size)
        a[u32(7)] = b"\x01" * a.raw_value_size
        assert a[u32(7)] == b"\x01" * a.raw_value_size
        with pytest.raises(bpf.BPFError) as ei:
            del a[u32(1)]  # array elements cannot be deleted
        assert ei.value.errno == errno.EINVAL and "map delete" in str(ei.value)
        assert a.next_key(u32(7)) is None
        assert sorted(a.keys()) == sorted(u32(i) for i in range(8))


def test_array_mmapable_and_numa():
    with bpf.Map.create(MapType.ARRAY, 4, 8, 4, MapFlags.MMAPABLE, numa_node=0) as a:
        assert a.flags & MapFlags.MMAPABLE


def test_lpm_trie_longest_prefix():
    with bpf.Map.create(MapType.LPM_TRIE, 8, 4, 16, MapFlags.NO_PREALLOC) as t:
        def key(plen: int, ip: str) -> bytes:
            return struct.pack("I", plen) + socket.inet_aton(ip)

        t[key(8, "10.0.0.0")] = u32(8)
        t[key(24, "10.1.2.0")] = u32(24)
        assert t[key(32, "10.1.2.3")] == u32(24)
        assert t[key(32, "10.9.9.9")] == u32(8)
        assert t.get(key(32, "11.0.0.0")) is None
        assert len(t) == 2 and len(list(t.items())) == 2
        assert t.delete(key(24, "10.1.2.0")) and t[key(32, "10.1.2.3")] == u32(8)


def test_queue_and_stack():
    with bpf.Map.create(MapType.QUEUE, 0, 4, 3) as q:
        assert q.lookup(None) is None and q.lookup_and_delete() is None
        for i in (1, 2, 3):
            q.update(None, u32(i))
        with pytest.raises(bpf.BPFError) as ei:
            q.update(None, u32(4))
        assert ei.value.errno == errno.E2BIG and "full" in str(ei.value)
        q.update(None, u32(4), UpdateFlags.EXIST)  # overwrite the oldest
        assert q.lookup(None) == u32(2)  # peek
        assert q.lookup(b"") == u32(2)  # an empty key is the same as None
        assert [q.lookup_and_delete(None) for _ in range(4)] == [u32(2), u32(3), u32(4), None]
        with pytest.raises(ValueError, match="key must be 0 bytes"):
            q.lookup(b"x")
    with bpf.Map.create(MapType.STACK, 0, 4, 3) as s:
        for i in (1, 2, 3):
            s.update(None, u32(i))
        assert s.lookup(None) == u32(3)
        assert [s.lookup_and_delete() for _ in range(4)] == [u32(3), u32(2), u32(1), None]


def test_bloom_filter():
    with bpf.Map.create(MapType.BLOOM_FILTER, 0, 8, 100, map_extra=3) as b:
        assert b.map_extra == 3
        assert u64(42) not in b
        b.update(None, u64(42))
        assert u64(42) in b
        with pytest.raises(ValueError, match="value must be 8 bytes"):
            u32(1) in b
        with pytest.raises(bpf.BPFError):
            b.delete(None)


def test_stack_trace():
    with bpf.Map.create(MapType.STACK_TRACE, 4, 8 * 127, 16) as m:
        assert m.lookup(u32(0)) is None and m.next_key() is None
        assert m.delete(u32(0)) is False
        assert list(m.items()) == [] and len(m) == 0
        with pytest.raises(bpf.BPFError):
            m[u32(0)] = bytes(8 * 127)  # only the kernel fills stack traces


@pytest.mark.parametrize("t", [MapType.RINGBUF, MapType.USER_RINGBUF])
def test_ring_buffers(t):
    size = 4 * os.sysconf("SC_PAGE_SIZE")
    with bpf.Map.create(t, 0, 0, size) as r:
        assert r.max_entries == size and r.key_size == 0 and r.raw_value_size == 0
        with pytest.raises(bpf.BPFError):
            r.lookup(None)
    with pytest.raises(bpf.BPFError) as ei:
        bpf.Map.create(t, 0, 0, 12345)
    assert "power-of-2" in str(ei.value)


def test_arena():
    with bpf.Map.create(MapType.ARENA, 0, 0, 16, MapFlags.MMAPABLE) as a:
        assert a.type is MapType.ARENA and a.max_entries == 16
        assert a.flags & MapFlags.MMAPABLE
    with pytest.raises(bpf.BPFError, match="MMAPABLE"):
        bpf.Map.create(MapType.ARENA, 0, 0, 16)


# ---- maps of fds ---------------------------------------------------------------------------------

def test_prog_array():
    pfd = load_socket_filter()
    try:
        with bpf.Map.create(MapType.PROG_ARRAY, 4, 4, 4) as m:
            assert m.lookup(u32(0)) is None
            m[u32(2)] = u32(pfd)
            prog_id = struct.unpack("I", m[u32(2)])[0]  # user space reads the program id
            assert prog_id > 0
            assert len(m) == 1 and dict(m.items()) == {u32(2): u32(prog_id)}
            assert m.delete(u32(2)) and len(m) == 0
            with pytest.raises(bpf.BPFError):
                m[u32(1)] = u32(0)  # fd 0 is no program
    finally:
        os.close(pfd)


def test_perf_event_array():
    with bpf.Map.create(MapType.PERF_EVENT_ARRAY, 4, 4, bpf.possible_cpus()) as m:
        efd = open_bpf_output_event(0)
        try:
            m[u32(0)] = u32(efd)
            with pytest.raises(bpf.NotSupportedError, match="map lookup"):
                m.lookup(u32(0))
            assert m.delete(u32(0)) is True and m.delete(u32(0)) is False
        finally:
            os.close(efd)
        assert m.next_key() == u32(0)
        with pytest.raises(bpf.NotSupportedError):
            len(m)  # counting needs lookups, which this type does not have


def test_cgroup_array_and_cgroup_storage(cgroup_fd):
    with bpf.Map.create(MapType.CGROUP_ARRAY, 4, 4, 2) as m:
        m[u32(1)] = u32(cgroup_fd)
        with pytest.raises(bpf.NotSupportedError):
            m[u32(1)]
        assert m.delete(u32(1))
    btf = load_btf_int()
    try:
        with bpf.Map.create(MapType.CGRP_STORAGE, 4, 4, 0, btf=btf, btf_key_type_id=1,
                            btf_value_type_id=1) as s:
            assert s.flags & MapFlags.NO_PREALLOC and s.info().btf_value_type_id == 1
            s[u32(cgroup_fd)] = u32(77)
            assert s[u32(cgroup_fd)] == u32(77)
            assert s.delete(u32(cgroup_fd))
    finally:
        os.close(btf)


def test_map_in_map_types():
    with bpf.Map.create(MapType.ARRAY, 4, 4, 1) as inner, \
            bpf.Map.create(MapType.ARRAY, 4, 4, 1) as other:
        with bpf.Map.create(MapType.ARRAY_OF_MAPS, 4, 4, 4, inner_map=inner) as aom:
            aom[u32(1)] = u32(other.fileno())
            assert aom[u32(1)] == u32(other.id)  # user space reads the inner map id
            assert aom.lookup(u32(0)) is None and len(aom) == 1
            assert aom.delete(u32(1))
        spec = {"map_type": MapType.HASH, "key_size": 4, "value_size": 8, "max_entries": 8}
        with bpf.Map.create(MapType.HASH_OF_MAPS, 8, 4, 4, inner_map=spec) as hom, \
                bpf.Map.create(**spec) as h:
            hom[u64(5)] = u32(h.fileno())
            assert hom[u64(5)] == u32(h.id) and dict(hom.items()) == {u64(5): u32(h.id)}
            with pytest.raises(bpf.BPFError):
                hom[u64(6)] = u32(inner.fileno())  # not compatible with the template
        with pytest.raises(bpf.BPFError, match="inner_map is required"):
            bpf.Map.create(MapType.ARRAY_OF_MAPS, 4, 4, 4)


def test_devmap_types():
    with bpf.Map.create(MapType.DEVMAP, 4, 4, 4) as d:
        d[u32(0)] = u32(1)  # lo
        assert d[u32(0)] == u32(1) and d.get(u32(1)) is None
        assert len(d) == 1 and d.delete(u32(0))
    with bpf.Map.create(MapType.DEVMAP_HASH, 4, 4, 4) as d:
        d[u32(77)] = u32(1)
        assert d[u32(77)] == u32(1) and list(d.keys()) == [u32(77)]
        for k in d.keys():
            del d[k]
        assert len(d) == 0
        with pytest.raises(bpf.BPFError):
            d[u32(1)] = u32(0x7FFFFFF0)  # no such interface


def test_cpumap():
    with bpf.Map.create(MapType.CPUMAP, 4, 4, 1) as c:
        c[u32(0)] = u32(192)  # queue size
        assert c[u32(0)] == u32(192)
        assert c.delete(u32(0))


def test_sockmap_and_sockhash(udp_socket):
    fd = udp_socket.fileno()
    with bpf.Map.create(MapType.SOCKMAP, 4, 8, 2) as sm:
        sm[u32(0)] = u64(fd)
        cookie = sm[u32(0)]  # user space reads the socket cookie
        assert struct.unpack("Q", cookie)[0] > 0
        assert sm.delete(u32(0)) and sm.get(u32(0)) is None
    with bpf.Map.create(MapType.SOCKHASH, 4, 8, 2) as sh:
        sh[u32(1234)] = u64(fd)
        assert len(sh) == 1
        assert sh.delete(u32(1234))


def test_xskmap(udp_socket):
    with bpf.Map.create(MapType.XSKMAP, 4, 4, 2) as x:
        with pytest.raises(bpf.NotSupportedError):
            x.lookup(u32(0))
        with pytest.raises(bpf.BPFError):
            x[u32(0)] = u32(udp_socket.fileno())  # only AF_XDP sockets go in


# ---- storage maps (need BTF) ---------------------------------------------------------------------

def test_storage_maps_with_btf(udp_socket):
    btf = load_btf_int()
    try:
        kw = {"btf": btf, "btf_key_type_id": 1, "btf_value_type_id": 1}
        with bpf.Map.create(MapType.SK_STORAGE, 4, 4, 0, **kw) as s:
            k = u32(udp_socket.fileno())
            assert s.get(k) is None
            s[k] = u32(5)
            assert s[k] == u32(5)
            assert s.delete(k)
        pidfd = os.pidfd_open(os.getpid())
        try:
            with bpf.Map.create(MapType.TASK_STORAGE, 4, 4, 0, **kw) as s:
                s[u32(pidfd)] = u32(9)
                assert s[u32(pidfd)] == u32(9)
        finally:
            os.close(pidfd)
        with bpf.Map.create(MapType.INODE_STORAGE, 4, 4, 0, **kw) as s:
            assert s.type is MapType.INODE_STORAGE and s.info().btf_id > 0
    finally:
        os.close(btf)


def test_storage_map_with_btf_object(udp_socket):
    # bpf.BTF (src/pybtf.c) is not built on the fd base: it is passed by its fd.
    btf, kid, vid = bpf.BTF.for_map(4, 16)
    try:
        m = bpf.Map.create(MapType.SK_STORAGE, 4, 16, 0, btf=btf, btf_key_type_id=kid,
                           btf_value_type_id=vid)
    finally:
        btf.close()  # the map keeps its own reference to the BTF in the kernel
    with m:
        k = u32(udp_socket.fileno())
        m[k] = bytes(range(16))
        assert m[k] == bytes(range(16)) and m.info().btf_value_type_id == vid
    with pytest.raises(TypeError, match="fileno"):
        bpf.Map.create(MapType.SK_STORAGE, 4, 16, 0, btf=object(), btf_key_type_id=1,
                       btf_value_type_id=1)

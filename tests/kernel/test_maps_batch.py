"""Map batch calls and iteration, including iteration while the map changes (real kernel)."""

from __future__ import annotations

import errno
import struct
import threading

import numpy as np
import pytest

import bpf
from bpf import MapFlags, MapType, UpdateFlags


def u32(i: int) -> bytes:
    return struct.pack("I", i)


def packed(keys) -> bytes:
    return b"".join(u32(k) for k in keys)


def fill(m: bpf.Map, n: int, start: int = 0) -> None:
    ks = np.arange(start, start + n, dtype=np.uint32)
    vs = (ks.astype(np.uint64) * 10)
    assert m.update_batch(ks, vs) == n


@pytest.fixture
def hmap():
    m = bpf.Map.create(MapType.HASH, 4, 8, 4096)
    yield m
    m.close()


# ---- batch calls -------------------------------------------------------------------------------

def test_empty_map(hmap):
    kb, vb = bytearray(4 * 16), bytearray(8 * 16)
    assert hmap.lookup_batch(kb, vb) == (0, None)
    assert hmap.lookup_and_delete_batch(kb, vb) == (0, None)
    assert hmap.update_batch(b"", b"") == 0
    assert hmap.delete_batch(b"") == 0
    assert list(hmap.iter_batches()) == [] and list(hmap.items()) == []
    assert len(hmap) == 0


def test_update_then_lookup_batch_into_buffers(hmap):
    fill(hmap, 1000)
    keys = np.zeros(1000, dtype=np.uint32)
    vals = np.zeros(1000, dtype=np.uint64)
    n, cursor = hmap.lookup_batch(keys, vals)
    assert n == 1000
    assert sorted(keys.tolist()) == list(range(1000))
    assert (vals == keys.astype(np.uint64) * 10).all()
    # The buffers were exactly full: the next call from the cursor finds nothing more.
    if cursor is not None:
        assert hmap.lookup_batch(keys, vals, cursor)[0] == 0


def test_lookup_batch_in_pieces_with_cursor(hmap):
    fill(hmap, 500)
    got, cursor = [], None
    while True:
        kb, vb = bytearray(4 * 64), bytearray(8 * 64)
        try:
            n, cursor = hmap.lookup_batch(kb, vb, cursor)
        except bpf.BPFError as e:  # a bucket larger than 64 is near impossible here
            pytest.fail(f"unexpected {e}")
        got += np.frombuffer(kb, dtype=np.uint32)[:n].tolist()
        if cursor is None:
            break
    assert sorted(got) == list(range(500))


def test_batch_of_one_and_enospc():
    # A 4-bucket hash with 4 keys has a bucket holding two of them with probability 0.9;
    # try fresh maps until one does (the hash seed is random per map).
    for _ in range(50):
        with bpf.Map.create(MapType.HASH, 4, 4, 4) as m:
            fill4 = np.arange(4, dtype=np.uint32)
            m.update_batch(fill4, fill4)
            got, cursor, hit = [], None, False
            while True:
                kb, vb = bytearray(4), bytearray(4)
                try:
                    n, cursor = m.lookup_batch(kb, vb, cursor)
                except bpf.BPFError as e:
                    assert e.errno == errno.ENOSPC and "hash bucket" in str(e)
                    hit = True
                    kb, vb = bytearray(16), bytearray(16)
                    n, cursor = m.lookup_batch(kb, vb, cursor)
                    assert n >= 2
                got += np.frombuffer(kb, dtype=np.uint32)[:n].tolist()
                if cursor is None:
                    break
            assert sorted(got) == [0, 1, 2, 3]
            # iter_batches grows its chunk on ENOSPC by itself
            assert sorted(k for kb, _, n in m.iter_batches(chunk=1)
                          for k in np.frombuffer(kb, dtype=np.uint32)) == [0, 1, 2, 3]
            if hit:
                return
    pytest.fail("no hash bucket with two keys in 50 maps")


def test_batch_of_one_single_entry(hmap):
    hmap[u32(7)] = struct.pack("Q", 70)
    kb, vb = bytearray(4), bytearray(8)
    n, cursor = hmap.lookup_batch(kb, vb)
    assert n == 1 and bytes(kb) == u32(7)
    if cursor is not None:
        assert hmap.lookup_batch(kb, vb, cursor) == (0, None)


def test_count_argument_and_bad_buffers(hmap):
    fill(hmap, 100)
    kb, vb = bytearray(4 * 100), bytearray(8 * 100)
    n, _ = hmap.lookup_batch(kb, vb, None, 10)
    assert n <= 10
    with pytest.raises(ValueError, match="at least one element"):
        hmap.lookup_batch(bytearray(3), vb)
    with pytest.raises(ValueError, match="cursor must be 4 bytes"):
        hmap.lookup_batch(kb, vb, b"12345678")
    with pytest.raises((TypeError, BufferError)):
        hmap.lookup_batch(b"ro" * 20, vb)  # keys must be writable
    with pytest.raises(ValueError, match="multiple of key_size"):
        hmap.update_batch(b"12345", b"")
    with pytest.raises(ValueError, match="values must be 16 bytes, got 8"):
        hmap.update_batch(packed([1, 2]), bytes(8))


def test_update_batch_full_map_reports_count():
    with bpf.Map.create(MapType.HASH, 4, 4, 8) as m:
        with pytest.raises(bpf.BPFError) as ei:
            m.update_batch(packed(range(10)), bytes(40))
        e = ei.value
        assert e.errno == errno.E2BIG and "full" in str(e)
        assert e.count == 8 and "8 of 10" in str(e) and "update_batch" in str(e)
        assert len(m) == 8


def test_partial_failures_report_count(hmap):
    hmap.update_batch(packed([1, 2, 3, 10, 11]), bytes(40))
    with pytest.raises(bpf.BPFError, match="only LOCK") as ei:
        hmap.update_batch(packed([12]), bytes(8), UpdateFlags.NOEXIST)  # the kernel's rule
    assert ei.value.errno == errno.EINVAL
    with bpf.Map.create(MapType.ARRAY, 4, 4, 4) as a:
        with pytest.raises(bpf.BPFError) as ei:
            a.update_batch(packed([0, 1, 9, 2]), bytes(16))  # index 9 is out of range
        assert ei.value.errno == errno.E2BIG and ei.value.count == 2 and "2 of 4" in str(ei.value)
        assert a[u32(2)] == bytes(4)
    with pytest.raises(bpf.KeyNotFoundError) as ei:
        hmap.delete_batch(packed([1, 2, 99, 3]))
    assert ei.value.count == 2 and isinstance(ei.value, KeyError)
    assert u32(1) not in hmap and u32(2) not in hmap and u32(3) in hmap
    assert hmap.delete_batch(packed([3, 10, 11])) == 3
    assert len(hmap) == 0


def test_lookup_and_delete_batch_drains(hmap):
    fill(hmap, 300)
    got, cursor = [], None
    while True:
        kb, vb = bytearray(4 * 128), bytearray(8 * 128)
        n, cursor = hmap.lookup_and_delete_batch(kb, vb, cursor)
        got += np.frombuffer(kb, dtype=np.uint32)[:n].tolist()
        if cursor is None:
            break
    assert sorted(got) == list(range(300))
    assert len(hmap) == 0


def test_array_batches_use_key_cursor():
    with bpf.Map.create(MapType.ARRAY, 4, 4, 100) as a:
        idx = np.arange(100, dtype=np.uint32)
        assert a.update_batch(idx, idx * 2) == 100
        kb, vb = bytearray(4 * 30), bytearray(4 * 30)
        n, cursor = a.lookup_batch(kb, vb)
        assert n == 30 and cursor is not None and len(cursor) == 4
        assert np.frombuffer(kb, dtype=np.uint32).tolist() == list(range(30))
        n, cursor = a.lookup_batch(kb, vb, cursor)
        assert np.frombuffer(kb, dtype=np.uint32)[0] == 30
        assert len(a) == 100
        assert dict(a.items())[u32(99)] == u32(198)
        with pytest.raises(bpf.NotSupportedError, match="lookup_and_delete_batch"):
            a.lookup_and_delete_batch(kb, vb)


def test_percpu_batches():
    ncpu = bpf.possible_cpus()
    with bpf.Map.create(MapType.PERCPU_HASH, 4, 4, 64) as m:
        rvs = m.raw_value_size
        vals = b"".join(b"".join(struct.pack("<Q", 100 * k + c) for c in range(ncpu))
                        for k in range(10))
        assert m.update_batch(packed(range(10)), vals) == 10
        kb, vb = bytearray(4 * 10), bytearray(rvs * 10)
        n, _ = m.lookup_batch(kb, vb)
        assert n == 10
        got = dict(zip(np.frombuffer(kb, dtype=np.uint32).tolist(),
                       [bytes(vb[i * rvs:(i + 1) * rvs]) for i in range(10)]))
        assert got[3] == b"".join(struct.pack("<Q", 300 + c) for c in range(ncpu))


# ---- iteration ---------------------------------------------------------------------------------

def test_items_keys_values_len(hmap):
    fill(hmap, 1000)
    d = dict(hmap.items())
    assert len(d) == 1000 == len(hmap)
    assert d[u32(7)] == struct.pack("Q", 70)
    assert sorted(hmap.keys()) == sorted(d)
    assert sorted(hmap.values()) == sorted(d.values())
    assert set(hmap) == set(d)


def test_iter_batches_shapes(hmap):
    fill(hmap, 4000)
    total = 0
    for kb, vb, n in hmap.iter_batches(chunk=256):
        assert 0 < n <= 512  # a chunk may have grown for a big bucket, never much
        assert len(kb) == 4 * n and len(vb) == 8 * n
        total += n
    assert total == 4000
    with pytest.raises(ValueError):
        list(hmap.iter_batches(chunk=0))


@pytest.mark.parametrize("chunk", [1, 7, None])
def test_delete_every_key_while_iterating_hash(hmap, chunk):
    fill(hmap, 2000)
    seen = []
    for kb, _, n in hmap.iter_batches(chunk=chunk):
        for i in range(n):
            k = bytes(kb[4 * i:4 * i + 4])
            seen.append(k)
            del hmap[k]
    assert len(seen) == len(set(seen)) == 2000
    assert len(hmap) == 0
    fill(hmap, 500)
    for k in hmap.keys():  # the dict-style spelling
        hmap.delete(k)
    assert len(hmap) == 0


def test_delete_every_key_while_iterating_trie():
    with bpf.Map.create(MapType.LPM_TRIE, 8, 4, 512, MapFlags.NO_PREALLOC) as t:
        keys = [struct.pack("I4s", 32, struct.pack(">I", i)) for i in range(300)]
        for k in keys:
            t[k] = u32(1)
        seen = []
        for k in t.keys():
            seen.append(k)
            del t[k]
        assert sorted(seen) == sorted(keys) and len(t) == 0


def test_delete_some_keys_while_iterating_trie_yields_each_once():
    with bpf.Map.create(MapType.LPM_TRIE, 8, 4, 512, MapFlags.NO_PREALLOC) as t:
        keys = [struct.pack("I4s", 32, struct.pack(">I", i)) for i in range(200)]
        for k in keys:
            t[k] = u32(1)
        seen = []
        for kb, _, n in t.iter_batches(chunk=16):
            for i in range(n):
                k = bytes(kb[8 * i:8 * i + 8])
                seen.append(k)
            del t[bytes(kb[8 * (n - 1):8 * n])]  # the cursor key: the kernel starts over
        assert len(seen) == len(set(seen)) == 200


def test_concurrent_deletion_during_iteration(hmap):
    fill(hmap, 4000)
    stop = threading.Event()

    def deleter():
        i = 0
        while not stop.is_set() and i < 4000:
            hmap.delete(u32(i))
            i += 3

    t = threading.Thread(target=deleter)
    t.start()
    try:
        seen = [k for k, v in hmap.items()]
    finally:
        stop.set()
        t.join()
    assert len(seen) == len(set(seen))
    assert set(seen) <= {u32(i) for i in range(4000)}
    # every key not deleted by the thread was reported
    assert {u32(i) for i in range(4000) if i % 3} <= set(seen)


def test_insertion_during_iteration_ends(hmap):
    fill(hmap, 100)
    n = 0
    for k in hmap.keys():
        n += 1
        hmap[u32(10000 + n)] = bytes(8)  # grows until the map is full (4096), then stops
        if n > 100000:
            pytest.fail("iteration does not end")
        if len(k) != 4:
            pytest.fail("bad key")
        if n + 100 >= 4096:
            break
    assert n >= 100


def test_keyless_maps_do_not_iterate():
    with bpf.Map.create(MapType.QUEUE, 0, 4, 4) as q:
        with pytest.raises(TypeError, match="no keys"):
            list(q.items())
        with pytest.raises(TypeError, match="len"):
            len(q)


def test_clear(hmap):
    fill(hmap, 777)
    hmap.clear()
    assert len(hmap) == 0

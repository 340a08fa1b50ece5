"""Maps under threads: the GIL is released around syscalls, and close() races are safe."""

from __future__ import annotations

import os
import struct
import threading

import bpf
from bpf import MapType


def _nfds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_close_while_eight_threads_look_up():
    before = _nfds()
    for rnd in range(30):
        m = bpf.Map.create(MapType.HASH, 4, 8, 16)
        m[struct.pack("I", 1)] = struct.pack("Q", rnd)
        fd = m.fileno()
        start = threading.Barrier(9)
        errors: list[BaseException] = []
        results = [0] * 8

        def worker(i: int) -> None:
            key = struct.pack("I", 1)
            out = bytearray(8)
            start.wait()
            while True:
                try:
                    assert m.lookup(key) == struct.pack("Q", rnd)
                    assert m.lookup_into(key, out)
                    assert key in m
                    m.update(key, struct.pack("Q", rnd))
                    results[i] += 1
                except ValueError as e:
                    if "closed map" not in str(e):
                        errors.append(e)
                    return
                except BaseException as e:  # anything else is a bug (EBADF, wrong data)
                    errors.append(e)
                    return

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        start.wait()
        while sum(results) < 50:
            pass
        m.close()
        assert m.closed
        for t in threads:
            t.join()
        assert not errors, errors
        # Once the last call left, the fd was really closed (not leaked, not closed twice).
        assert fd not in _open_fds()
    assert _nfds() == before


def _open_fds() -> set[int]:
    out = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            if "anon_inode:bpf-map" in os.readlink(f"/proc/self/fd/{name}"):
                out.add(int(name))
        except OSError:
            pass
    return out


def test_concurrent_updates_from_threads_are_all_applied():
    with bpf.Map.create(MapType.HASH, 4, 4, 4096) as m:
        def writer(base: int) -> None:
            for i in range(500):
                m[struct.pack("I", base + i)] = struct.pack("I", base)

        threads = [threading.Thread(target=writer, args=(1000 * t,)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(m) == 2000

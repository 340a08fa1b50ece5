"""Map operations: `bpf` against C on the same maps, in the same run.

Builds benchmarks/c/maps_floor.c against the vendored libbpf (the very archives the extension
links), creates the maps in Python, and hands their fds to the C program, so that both sides
run the same syscalls on the same kernel objects.  Every figure is the best of several short
rounds, C and Python interleaved, and is printed with its ratio to C (bpf / C; lower is
better).

    python benchmarks/bench_maps.py [--quick] [--reps N]

Run from the repository root after `python setup.py build_ext --inplace` (needs root).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "vendor"))

import numpy as np  # noqa: E402

import bpf  # noqa: E402
from bpf import MapType, _bpf  # noqa: E402

CHUNK = 4096


def build_floor() -> str:
    """Compile maps_floor.c against the vendored libbpf; return the binary's path."""
    import build as vendor_build  # vendor/build.py
    import fetch as vendor_fetch  # vendor/fetch.py

    srcs = vendor_fetch.ensure(log=lambda m: print(m, file=sys.stderr))
    vb = vendor_build.VendorBuild(srcs, os.path.join(ROOT, "build"), log=lambda m: None)
    libs = vb.build()
    out = os.path.join(ROOT, "build", "maps_floor")
    src = os.path.join(HERE, "c", "maps_floor.c")
    cc = vendor_build._tool("CC", "cc")
    subprocess.run(cc + ["-O2", "-std=gnu11", "-I" + vb.include, src, "-o", out] + libs,
                   check=True)
    return out


def perm_keys(n: int, count: int) -> np.ndarray:
    i = np.arange(count, dtype=np.uint64)
    return (((i * 2654435761) & 0xFFFFFFFF) % n).astype(np.uint32)


class Bench:
    def __init__(self, floor: str, reps: int) -> None:
        self.floor = floor
        self.reps = reps
        self.rows: list[tuple[str, float, float, str]] = []

    def c(self, op: str, m: bpf.Map, n: int, count: int, iters: int = 1,
          prep=None) -> float:
        if prep:
            prep()
        fd = m.fileno()
        r = subprocess.run([self.floor, op, str(fd), str(n), str(count), str(iters),
                            str(CHUNK)], pass_fds=(fd,), capture_output=True, text=True,
                           check=True)
        return float(r.stdout.split()[1])

    def compare(self, label: str, c_fn, py_fn, unit: str = "ns/op") -> None:
        cs, ps = [], []
        for _ in range(self.reps):
            cs.append(c_fn())
            ps.append(py_fn())
        c, p = min(cs), min(ps)
        self.rows.append((label, c, p, unit))
        print(f"{label:<44} C {c:9.1f}  bpf {p:9.1f} {unit:<10} ratio {p / c:5.3f}",
              flush=True)

    def only(self, label: str, fn, unit: str) -> float:
        v = min(fn() for _ in range(self.reps))
        print(f"{label:<44} bpf {v:9.2f} {unit}", flush=True)
        return v


def py_time(fn, count: int, prep=None) -> float:
    if prep:
        prep()
    t0 = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - t0) / count


def fill(m: bpf.Map, n: int) -> None:
    ks = np.arange(n, dtype=np.uint32)
    m.update_batch(ks, ks.astype(np.uint64))


def single_ops(b: Bench, m: bpf.Map, n: int, count: int, label: str) -> None:
    keys = _bpf._split(perm_keys(n, count), 4, count)
    val = bytes(8)

    def lookup():
        f = m.lookup
        for k in keys:
            f(k)

    def update():
        f = m.update
        for k in keys:
            f(k, val)

    def delete():
        f = m.delete
        for k in keys:
            f(k)

    def next_key():
        f = m.next_key
        k = f()
        for _ in range(count - 1):
            k = f(k)

    refill = (lambda: m.update_batch(perm_keys(n, count), bytes(8 * count)))
    b.compare(f"lookup  {label}", lambda: b.c("lookup", m, n, count),
              lambda: py_time(lookup, count))
    b.compare(f"update  {label}", lambda: b.c("update", m, n, count),
              lambda: py_time(update, count))
    if m.type is not MapType.ARRAY:
        # delete a fresh set of `count` keys each time, refilled outside the timing
        b.compare(f"delete  {label}", lambda: b.c("delete", m, n, count, prep=refill),
                  lambda: py_time(delete, count, prep=refill))
        refill()
    b.compare(f"next_key {label}", lambda: b.c("next_key", m, n, count),
              lambda: py_time(next_key, count))


def dumps(b: Bench, m: bpf.Map, n: int) -> None:
    kb, vb = bytearray(4 * n), bytearray(8 * n)
    kv, vv = memoryview(kb), memoryview(vb)

    def into_buffer() -> int:
        total, cursor = 0, None
        while True:
            got, cursor = m.lookup_batch(kv[4 * total:], vv[8 * total:], cursor, CHUNK)
            total += got
            if cursor is None or total == n:
                return total

    def timed_buffer() -> float:
        t0 = time.perf_counter_ns()
        got = into_buffer()
        assert got == n, got
        return (time.perf_counter_ns() - t0) / n

    b.compare("dump 1M HASH: lookup_batch into buffers", lambda: b.c("dump_batch", m, n, n),
              timed_buffer, "ns/entry")

    def buffer_to_dict() -> float:
        t0 = time.perf_counter_ns()
        got = into_buffer()
        d = dict(zip(_bpf._split(kv, 4, got), _bpf._split(vv, 8, got)))
        assert len(d) == n
        return (time.perf_counter_ns() - t0) / n

    b.compare("dump 1M HASH: lookup_batch into dict(bytes)",
              lambda: b.c("dump_batch", m, n, n), buffer_to_dict, "ns/entry")

    def items_bytes() -> float:
        t0 = time.perf_counter_ns()
        c = 0
        for _k, _v in m.items():
            c += 1
        assert c == n
        return (time.perf_counter_ns() - t0) / n

    b.compare("dump 1M HASH: items() as bytes", lambda: b.c("dump_batch", m, n, n),
              items_bytes, "ns/entry")

    def int_items():
        # What a typed u32 -> u64 view's items() does: batch buffers cast to ints, zipped.
        for kbuf, vbuf, _ in m.iter_batches():
            yield from zip(kbuf.cast("I").tolist(), vbuf.cast("Q").tolist())

    def items_ints() -> float:
        t0 = time.perf_counter_ns()
        c = 0
        for _k, _v in int_items():
            c += 1
        assert c == n
        return (time.perf_counter_ns() - t0) / n

    def items_ints_dict() -> float:
        t0 = time.perf_counter_ns()
        d = dict(int_items())
        assert len(d) == n
        return (time.perf_counter_ns() - t0) / n

    c_dump = min(b.c("dump_batch", m, n, n) for _ in range(b.reps))
    print(f"{'kernel floor: C lookup_batch, 4096/call':<44} C {c_dump:9.1f} ns/entry "
          f"= {1e3 / c_dump:.2f} M entries/s", flush=True)
    v = b.only("items() as (int, int) pairs (u32 -> u64)", items_ints, "ns/entry")
    print(f"{'':<44} = {1e3 / v:.2f} M entries/s (target >= 2.0; ratio to C "
          f"{v / c_dump:.3f})", flush=True)
    b.rows.append(("items() into Python ints, M entries/s", 1e3 / c_dump, 1e3 / v, "M/s"))
    v = b.only("dict(items()) of ints (1M-entry dict built)", items_ints_dict, "ns/entry")
    print(f"{'':<44} = {1e3 / v:.2f} M entries/s", flush=True)
    try:
        t = m.typed(key=bpf.u32, value=bpf.u64)  # type: ignore[attr-defined]
    except Exception:
        t = None
    if t is not None:
        def typed_items() -> float:
            t0 = time.perf_counter_ns()
            d = dict(t.items())
            assert len(d) == n
            return (time.perf_counter_ns() - t0) / n
        v = b.only("typed(u32, u64).items() into a dict", typed_items, "ns/entry")
        print(f"{'':<44} = {1e3 / v:.2f} M entries/s", flush=True)


def fill_batch(b: Bench, n: int) -> None:
    ks = np.arange(n, dtype=np.uint32)
    vs = np.zeros(n, dtype=np.uint64)
    m = bpf.Map.create(MapType.HASH, 4, 8, n)
    try:
        def clear():
            m.clear()

        def py() -> float:
            clear()
            t0 = time.perf_counter_ns()
            m.update_batch(ks, vs)
            return (time.perf_counter_ns() - t0) / n

        b.compare("fill 1M HASH: update_batch", lambda: b.c("fill_batch", m, n, n, prep=clear),
                  py, "ns/entry")
    finally:
        m.close()


def threads(b: Bench, m: bpf.Map, n: int, count: int) -> None:
    keys = _bpf._split(perm_keys(n, count), 4, count)

    def work():
        f = m.lookup
        for k in keys:
            f(k)

    def one() -> float:
        t0 = time.perf_counter()
        work()
        return count / (time.perf_counter() - t0)

    def two() -> float:
        ts = [threading.Thread(target=work) for _ in range(2)]
        t0 = time.perf_counter()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return 2 * count / (time.perf_counter() - t0)

    # The same with C: one process, then two processes at once, on the same map.
    cmd = [b.floor, "lookup", str(m.fileno()), str(n), str(count), "1"]

    def c_one() -> float:
        t0 = time.perf_counter()
        subprocess.run(cmd, pass_fds=(m.fileno(),), capture_output=True, check=True)
        return count / (time.perf_counter() - t0)

    def c_two() -> float:
        t0 = time.perf_counter()
        ps = [subprocess.Popen(cmd, pass_fds=(m.fileno(),), stdout=subprocess.DEVNULL)
              for _ in range(2)]
        for p in ps:
            p.wait()
        return 2 * count / (time.perf_counter() - t0)

    r1 = max(one() for _ in range(b.reps))
    r2 = max(two() for _ in range(b.reps))
    c1 = max(c_one() for _ in range(b.reps))
    c2 = max(c_two() for _ in range(b.reps))
    print(f"{'lookups, 1 vs 2 threads (1M HASH)':<44} bpf 1T {r1 / 1e6:.2f} M/s  "
          f"2T {r2 / 1e6:.2f} M/s  scaling {r2 / r1:.2f}x (target >= 1.5)", flush=True)
    print(f"{'  same with C, 1 vs 2 processes':<44} C   1P {c1 / 1e6:.2f} M/s  "
          f"2P {c2 / 1e6:.2f} M/s  scaling {c2 / c1:.2f}x", flush=True)
    b.rows.append(("2 threads / 1 thread lookups", c2 / c1, r2 / r1, "x"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=15,
                    help="rounds per single-operation figure (best of)")
    ap.add_argument("--dump-reps", type=int, default=5, help="rounds per dump/fill figure")
    ap.add_argument("--quick", action="store_true", help="fewer operations per figure")
    ap.add_argument("--count", type=int, default=None, help="single operations per figure")
    a = ap.parse_args()
    # Short rounds, many of them, C and bpf interleaved: on a shared machine the best round
    # of each side is the one least disturbed by other load.
    count = a.count or (5_000 if a.quick else 20_000)
    floor = build_floor()
    b = Bench(floor, a.reps)
    print(f"bpf {bpf.__version__}, libbpf {bpf.libbpf_version()}, kernel "
          f"{bpf.kernel_release()}, {os.cpu_count()} CPUs; single ops: best of {a.reps} "
          f"rounds of {count}; dumps: best of {a.dump_reps}", flush=True)
    # The interpreter's share on this machine: the same loop calling a trivial C function.
    keys = _bpf._split(perm_keys(1000, count), 4, count)

    def loop_floor() -> float:
        f = len
        t0 = time.perf_counter_ns()
        for k in keys:
            f(k)
        return (time.perf_counter_ns() - t0) / count

    b.only("Python loop + a trivial C call (len)", loop_floor, "ns/op")
    for mtype, n, label in ((MapType.HASH, 100_000, "HASH 100k"),
                            (MapType.HASH, 1_000_000, "HASH 1M"),
                            (MapType.ARRAY, 1_000_000, "ARRAY 1M")):
        with bpf.Map.create(mtype, 4, 8, n) as m:
            fill(m, n)
            single_ops(b, m, n, min(count, n), label)
            if mtype is MapType.HASH and n == 1_000_000:
                reps, b.reps = b.reps, a.dump_reps
                dumps(b, m, n)
                b.reps = reps
                threads(b, m, n, min(count * 5, n))
    b.reps = a.dump_reps
    fill_batch(b, 1_000_000)


if __name__ == "__main__":
    main()

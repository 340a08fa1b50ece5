"""Events/s from a BPF producer to Python, against a C consumer using libbpf, in one run.

    python benchmarks/bench_events.py [--records N] [--reps N] [--quick]

For ring buffer and perf buffer, 16-byte and 256-byte records: an XDP producer program (one
record per run, the sequence number first) fills the buffer with BPF_PROG_TEST_RUN
(repeat=N), then the time to hand all N records to the consumer is measured.  Filling first
and draining after measures the consumer alone: the quantity Python can change.  The C floor
(benchmarks/c/events_floor.c, built here against the vendored libbpf archives) receives the
same map and program fds and does the same work per record (count, sum of sizes).

Python consumers: "callback" (a Python function per record, bytes), "zero-copy" (a
RingRecord buffer per record), "batch" (a Python function per batch with a list of bytes),
"batch+np" (per batch, records copied back to back and decoded by one np.frombuffer),
"zc-batch+np" (ring buffers: per batch, a numpy view of the records in the ring, no copy),
"records()" (the iterator).  Prints the best rate of the repetitions (the machine is shared, so the best
run is the least disturbed one) and the ratio to C.  A second table streams: a producer
thread runs the program in a loop while the consumer polls (rates, ratio to C, drops).
BCC (python3-bpfcc) rows appear when it is importable.
"""

from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests", "kernel"))

import bpf  # noqa: E402
from events_producers import (counter_map, counters, load_xdp, perf_map,  # noqa: E402
                              perf_producer, ring_map, ringbuf_producer, run)


STREAM_RING = 8 << 20   # ring buffer bytes in the streaming runs
STREAM_PAGES = 512      # perf pages per CPU in the streaming runs (2 MiB)
STREAM_CHUNK = 20_000   # records per BPF_PROG_TEST_RUN call of the producer thread


def build_floor() -> str:
    vendor = sorted(glob.glob(os.path.join(ROOT, "build", "vendor-*")))
    if not vendor:
        sys.exit("build the extension first (python setup.py build_ext --inplace)")
    v = vendor[-1]
    out = os.path.join(tempfile.mkdtemp(prefix="events-floor-"), "events_floor")
    cc = os.environ.get("CC", "cc")
    subprocess.run([cc, "-O2", "-o", out, os.path.join(ROOT, "benchmarks", "c", "events_floor.c"),
                    f"-I{v}/include", f"{v}/lib/libbpf.a", f"{v}/lib/libelf.a",
                    f"{v}/lib/libz.a"], check=True)
    return out


class Setup:
    def __init__(self, kind: str, size: int, records: int, stream: bool = False) -> None:
        self.kind, self.size, self.records = kind, size, records
        if stream and kind == "ring":
            self.map = ring_map(STREAM_RING)
            self.pages = 0
            gen = ringbuf_producer
        elif stream:
            self.map = perf_map()
            self.pages = STREAM_PAGES
            gen = perf_producer
        elif kind == "ring":
            per = (size + 8 + 7) // 8 * 8
            ring = 1 << max(12, (per * records * 5 // 4 - 1).bit_length())
            self.map = ring_map(ring)
            self.pages = 0
            gen = ringbuf_producer
        else:
            per = (size + 4 + 7) // 8 * 8 + 8
            self.pages = 1 << max(0, (per * records * 5 // 4 // 4096 - 1).bit_length())
            self.map = perf_map()
            gen = perf_producer
        self.counter = counter_map()
        self.prog = load_xdp(gen(self.map, self.counter, size))

    def fill(self) -> None:
        before = counters(self.counter)[1]
        run(self.prog, repeat=self.records)
        if counters(self.counter)[1] != before:
            raise RuntimeError("producer dropped records: buffer too small")

    def close(self) -> None:
        for f in (self.prog, self.counter, self.map):
            f.close()


def c_floor(floor: str, s: Setup, reps: int) -> list[float]:
    r = subprocess.run([floor, s.kind, str(s.map.fileno()), str(s.prog.fileno()), str(s.records),
                        str(reps), str(s.pages or 1)], pass_fds=(s.map.fileno(), s.prog.fileno()),
                       capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"events_floor failed: {r.stderr}")
    rates = []
    for line in r.stdout.strip().splitlines():
        n, secs = line.split()
        rates.append(int(n) / float(secs))
    return rates


def c_stream(floor: str, s: Setup, seconds: float) -> tuple[float, float]:
    """(delivered events/s, dropped fraction) with the C consumer."""
    p0, d0 = counters(s.counter)
    r = subprocess.run([floor, "stream-" + s.kind, str(s.map.fileno()), str(s.prog.fileno()),
                        str(STREAM_CHUNK), str(seconds), str(s.pages or 1)],
                       pass_fds=(s.map.fileno(), s.prog.fileno()), capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"events_floor failed: {r.stderr}")
    n, secs = r.stdout.split()
    p1, d1 = counters(s.counter)
    return int(n) / float(secs), (d1 - d0) / max(1, p1 - p0)


def py_stream(s: Setup, mode: str, seconds: float) -> tuple[float, float]:
    """(delivered events/s, dropped fraction) with a Python consumer; the producer runs in a
    thread (the test_run syscall releases the GIL)."""
    import threading

    p0, d0 = counters(s.counter)
    stop = threading.Event()

    def produce():
        while not stop.is_set():
            run(s.prog, repeat=STREAM_CHUNK)

    n = 0
    with make_reader(s, mode) as reader:
        th = threading.Thread(target=produce)
        t0 = time.perf_counter()
        th.start()
        if mode == "records()":
            total = 0
            it = reader.records(timeout=0.05)
            for rec in it:
                total += len(rec)
                n += 1
                if n % 4096 == 0 and time.perf_counter() - t0 >= seconds and not stop.is_set():
                    stop.set()
            # records() ends after 50 ms without records
        else:
            while time.perf_counter() - t0 < seconds:
                n += reader.poll(0.1)
            stop.set()
            th.join()
            while True:
                k = reader.poll(0.05)
                if not k:
                    break
                n += k
        stop.set()
        th.join()
        elapsed = time.perf_counter() - t0
    p1, d1 = counters(s.counter)
    return n / elapsed, (d1 - d0) / max(1, p1 - p0)


def load_bcc():
    """BCC's Python module, if installed (Debian's python3-bpfcc lives outside venvs)."""
    try:
        import bcc  # noqa: F401
    except ImportError:
        sys.path.append("/usr/lib/python3/dist-packages")
        try:
            import bcc  # noqa: F401,F811
        except Exception:
            return None
    return sys.modules["bcc"]


class BCCRing:
    """BCC's own ring buffer path on our map fd: RingBuf.open_ring_buffer's ctypes callback
    wrapper and BPF.ring_buffer_poll (libbcc's bpf_poll_ringbuf), called as BCC's unbound
    methods on a stand-in object because BCC cannot compile programs on this machine (it
    needs kernel headers; the producer comes from our assembler instead)."""

    def __init__(self, bcc, map_fd: int, callback) -> None:
        self.bcc = bcc
        self._ringbuf_manager = None
        self.bpf = self
        self.map_fd = map_fd
        self._cbs: dict = {}
        bcc.table.RingBuf.open_ring_buffer(self, callback)

    def _open_ring_buffer(self, map_fd, fn, ctx=None):
        self.bcc.BPF._open_ring_buffer(self, map_fd, fn, ctx)

    def poll(self, timeout_ms: int) -> None:
        self.bcc.BPF.ring_buffer_poll(self, timeout_ms)

    def close(self) -> None:
        if self._ringbuf_manager:
            self.bcc.libbcc.lib.bpf_free_ringbuf(self._ringbuf_manager)
            self._ringbuf_manager = None


def bcc_rates(bcc, s: Setup, reps: int) -> list[float]:
    state = {"n": 0, "bytes": 0}

    def cb(ctx, data, size):  # the usual BCC callback signature
        state["n"] += 1
        state["bytes"] += size

    reader = BCCRing(bcc, s.map.fileno(), cb)
    rates = []
    try:
        for _ in range(reps):
            s.fill()
            state["n"] = 0
            t0 = time.perf_counter()
            while state["n"] < s.records:
                reader.poll(1000)
            rates.append(state["n"] / (time.perf_counter() - t0))
    finally:
        reader.close()
    return rates


def make_reader(s: Setup, mode: str):
    state = {"n": 0, "bytes": 0}

    def cb(rec):
        state["bytes"] += len(rec)

    def cb_perf(cpu, rec):
        state["bytes"] += len(rec)

    def cb_batch(batch):
        state["bytes"] += len(batch)

    import numpy as np

    fields = [("seq", "<u8"), ("tid", "<u8")]
    if s.size > 16:
        fields.append(("payload", f"V{s.size - 16}"))
    dt = np.dtype(fields)

    if s.kind == "ring":
        if mode == "callback":
            return bpf.RingBuffer(s.map, cb)
        if mode == "zero-copy":
            return bpf.RingBuffer(s.map, cb, zero_copy=True)
        if mode == "batch":
            return bpf.RingBuffer(s.map, cb_batch, batch=True)
        if mode == "batch+np":
            return bpf.RingBuffer(s.map, cb_batch, batch=True, codec=dt)
        if mode == "zc-batch+np":
            return bpf.RingBuffer(s.map, cb_batch, batch=True, zero_copy=True, codec=dt)
        return bpf.RingBuffer(s.map)
    kw = {"pages": s.pages}
    if mode == "callback":
        return bpf.PerfBuffer(s.map, cb_perf, **kw)
    if mode == "zero-copy":
        return bpf.PerfBuffer(s.map, cb_perf, zero_copy=True, **kw)
    if mode == "batch":
        return bpf.PerfBuffer(s.map, cb_batch, batch=True, **kw)
    if mode == "batch+np":
        return bpf.PerfBuffer(s.map, cb_batch, batch=True, codec=dt, **kw)
    return bpf.PerfBuffer(s.map, **kw)


def py_rates(s: Setup, mode: str, reps: int) -> list[float]:
    rates = []
    with make_reader(s, mode) as reader:
        for _ in range(reps):
            s.fill()
            n = 0
            t0 = time.perf_counter()
            if mode == "records()":
                total = 0
                for rec in reader.records(timeout=1.0):
                    total += len(rec)
                    n += 1
                    if n == s.records:
                        break
            else:
                while n < s.records:
                    k = reader.poll(1.0)
                    if k == 0:
                        raise RuntimeError(f"timeout with {n} of {s.records}")
                    n += k
            rates.append(n / (time.perf_counter() - t0))
    return rates


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=1.0, help="length of each streaming run")
    ap.add_argument("--quick", action="store_true", help="20k records, 3 repetitions, 0.5 s")
    args = ap.parse_args()
    if args.quick:
        args.records, args.reps, args.seconds = 20_000, 3, 0.5
    floor = build_floor()
    print(f"bpf {bpf.__version__}, libbpf {bpf.libbpf_version()}, kernel "
          f"{bpf.kernel_release()}, {os.cpu_count()} CPUs, {args.records} records x "
          f"{args.reps} reps")
    modes = ("callback", "zero-copy", "batch", "batch+np", "zc-batch+np", "records()")
    bcc = load_bcc()
    print("BCC:", f"python3-bpfcc {getattr(bcc, '__version__', '?')} (ring buffer rows)" if bcc
          else "not importable here: no BCC rows")
    print("\n== drain: buffer filled first, then consumed (consumer cost alone; best of reps)")
    print(f"{'buffer':6} {'size':>5} {'consumer':10} {'Mevents/s':>10} {'x C':>6}")
    for kind in ("ring", "perf"):
        for size in (16, 256):
            s = Setup(kind, size, args.records)
            try:
                c = max(c_floor(floor, s, args.reps))
                print(f"{kind:6} {size:5} {'C libbpf':10} {c / 1e6:10.2f} {1.0:6.2f}", flush=True)
                if bcc is not None and kind == "ring":
                    r = max(bcc_rates(bcc, s, args.reps))
                    print(f"{kind:6} {size:5} {'BCC':10} {r / 1e6:10.2f} {r / c:6.2f}",
                          flush=True)
                for mode in modes:
                    if mode == "zc-batch+np" and kind == "perf":
                        continue  # ring buffers only
                    r = max(py_rates(s, mode, args.reps))
                    print(f"{kind:6} {size:5} {mode:10} {r / 1e6:10.2f} {r / c:6.2f}",
                          flush=True)
            finally:
                s.close()
    print(f"\n== stream: producer thread and consumer concurrently for {args.seconds} s "
          f"(ring {STREAM_RING >> 20} MiB, perf {STREAM_PAGES} pages/CPU)")
    print(f"{'buffer':6} {'size':>5} {'consumer':10} {'Mevents/s':>10} {'x C':>6} {'dropped':>8}")
    for kind in ("ring", "perf"):
        for size in (16, 256):
            s = Setup(kind, size, 0, stream=True)
            try:
                c, cd = c_stream(floor, s, args.seconds)
                print(f"{kind:6} {size:5} {'C libbpf':10} {c / 1e6:10.2f} {1.0:6.2f} "
                      f"{cd:8.1%}", flush=True)
                for mode in modes:
                    if mode == "zc-batch+np" and kind == "perf":
                        continue
                    r, d = py_stream(s, mode, args.seconds)
                    print(f"{kind:6} {size:5} {mode:10} {r / 1e6:10.2f} {r / c:6.2f} {d:8.1%}",
                          flush=True)
            finally:
                s.close()


if __name__ == "__main__":
    main()

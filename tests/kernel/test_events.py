"""Ring buffers, perf buffers and user ring buffers against the real kernel.

Producers are XDP programs run with BPF_PROG_TEST_RUN (repeat=N gives N events with no
attachment) and tracepoint programs triggered by a syscall loop.  Every record carries a
sequence number from an atomic counter, and every producer counts what it failed to emit, so
the tests check exactly-once delivery and received + dropped == produced.  The producers are
built with the library itself (bpf.Map.create, bpf.asm, bpf.Program.load, test_run,
attach_tracepoint): see events_producers.py.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import os
import selectors
import signal
import struct
import threading
import time

import pytest

import bpf
from events_producers import (UserRingEcho, counter_map, counters, load_tracepoint, load_xdp,
                              perf_map, perf_producer, ring_map, ringbuf_producer, run)


class Producer:
    """A ring/perf map, a counter map and an XDP producer program; closes all three."""

    def __init__(self, kind: str = "ring", size: int = 16, ring_bytes: int = 1 << 20,
                 pages: int | None = None) -> None:
        self.map = ring_map(ring_bytes) if kind == "ring" else perf_map()
        self.counter = counter_map()
        gen = ringbuf_producer if kind == "ring" else perf_producer
        self.prog = load_xdp(gen(self.map, self.counter, size))

    def run(self, n: int) -> None:
        assert run(self.prog, repeat=n) == 2  # XDP_PASS

    @property
    def produced(self) -> int:
        return counters(self.counter)[0]

    @property
    def dropped(self) -> int:
        return counters(self.counter)[1]

    def close(self) -> None:
        for f in (self.prog, self.counter, self.map):
            f.close()


@pytest.fixture
def ring():
    p = Producer("ring")
    yield p
    p.close()


@pytest.fixture
def perf():
    p = Producer("perf")
    yield p
    p.close()


def on_every_cpu(fn) -> int:
    """Call fn once pinned to each CPU this thread may use; return how many calls."""
    allowed = os.sched_getaffinity(0)
    try:
        for cpu in sorted(allowed):
            os.sched_setaffinity(0, {cpu})
            fn()
    finally:
        os.sched_setaffinity(0, allowed)
    return len(allowed)


def seq(rec) -> int:
    return struct.unpack_from("<Q", rec)[0]


# ---- ring buffer: delivery ------------------------------------------------------------------


def test_ringbuf_every_record_once_in_order(ring):
    got: list[int] = []
    with bpf.RingBuffer(ring.map, lambda r: got.append(seq(r))) as rb:
        assert rb.poll(0) == 0
        ring.run(5000)
        n = 0
        while n < 5000:
            k = rb.poll(1.0)
            assert k > 0
            n += k
        assert rb.consume() == 0
    assert got == list(range(5000))
    assert ring.dropped == 0


def test_ringbuf_records_are_bytes_of_record_size(ring):
    got = []
    with bpf.RingBuffer(ring.map, got.append) as rb:
        ring.run(3)
        assert rb.poll(1) == 3
    assert all(type(r) is bytes and len(r) == 16 for r in got)


def test_ringbuf_overflow_received_plus_dropped_equals_produced():
    p = Producer("ring", ring_bytes=4096)
    try:
        got: list[int] = []
        with bpf.RingBuffer(p.map, lambda r: got.append(seq(r))) as rb:
            p.run(1000)  # the reader is stalled: most reservations fail
            while rb.poll(0.2):
                pass
        assert p.produced == 1000
        assert p.dropped > 0
        assert len(got) + p.dropped == p.produced
        assert got == sorted(got) and len(set(got)) == len(got)
    finally:
        p.close()


def test_ringbuf_several_maps_one_epoll_set():
    a, b = Producer("ring"), Producer("ring")
    try:
        got_a: list[int] = []
        got_b: list[int] = []
        with bpf.RingBuffer(a.map, lambda r: got_a.append(seq(r))) as rb:
            rb.add(b.map, lambda r: got_b.append(seq(r)))
            assert rb.rings == 2
            b.run(7)
            assert rb.poll(1) == 7
            a.run(3)
            b.run(2)
            assert rb.poll(1) == 5
        assert got_a == [0, 1, 2] and got_b == list(range(9))
    finally:
        a.close()
        b.close()


def test_ringbuf_negative_return_stops_poll_without_loss(ring):
    got: list[int] = []

    def cb(r):
        got.append(seq(r))
        return -1 if len(got) == 3 else None

    with bpf.RingBuffer(ring.map, cb) as rb:
        ring.run(10)
        assert rb.poll(1) == 3
        assert got == [0, 1, 2]
        got.append(-99)  # from here on no stop
        assert rb.poll(1) == 7
    assert got[4:] == list(range(3, 10))


def test_ringbuf_callback_exception_propagates_unchanged(ring):
    class Boom(Exception):
        pass

    err = Boom("x")
    seen: list[int] = []

    def cb(r):
        seen.append(seq(r))
        if len(seen) == 2:
            raise err

    with bpf.RingBuffer(ring.map, cb) as rb:
        ring.run(5)
        with pytest.raises(Boom) as ei:
            rb.poll(1)
        assert ei.value is err
        assert rb.poll(1) == 3  # the rest is still there
    assert seen == [0, 1, 2, 3, 4]


def test_ringbuf_batch_mode(ring):
    batches: list[list[bytes]] = []
    with bpf.RingBuffer(ring.map, batches.append, batch=True) as rb:
        ring.run(100)
        assert rb.poll(1) == 100
        ring.run(10000)  # delivered in bounded batches
        assert rb.poll(1) == 10000
    assert len(batches[0]) == 100 and [seq(r) for r in batches[0]] == list(range(100))
    assert max(len(b) for b in batches) <= 4096
    assert [seq(r) for b in batches for r in b] == list(range(10100))


def test_ringbuf_batch_with_codecs_decodes_whole_batches(ring):
    np = pytest.importorskip("numpy")

    class Rec(ctypes.Structure):
        _fields_ = [("seq", ctypes.c_uint64), ("tid", ctypes.c_uint64)]

    out: dict[str, list] = {"np": [], "struct": [], "ctypes": [], "one": []}
    dt = np.dtype([("seq", "<u8"), ("tid", "<u8")])
    with bpf.RingBuffer(ring.map, out["np"].append, batch=True, codec=dt) as rb:
        ring.run(50)
        assert rb.poll(1) == 50
    assert isinstance(out["np"][0], np.ndarray) and out["np"][0]["seq"].tolist() == list(range(50))
    with bpf.RingBuffer(ring.map, out["struct"].append, batch=True, codec="<QQ") as rb:
        ring.run(3)
        assert rb.poll(1) == 3
    assert [t[0] for t in out["struct"][0]] == [50, 51, 52]
    with bpf.RingBuffer(ring.map, out["one"].append, batch=True, codec="<Q") as rb:
        ring.run(2)
        assert rb.poll(1) == 2
    assert out["one"] == [[53, 54]]  # cut to the codec's 8 bytes
    with bpf.RingBuffer(ring.map, out["ctypes"].append, batch=True, codec=Rec) as rb:
        ring.run(2)
        assert rb.poll(1) == 2
    assert [r.seq for r in out["ctypes"][0]] == [55, 56]


def test_ringbuf_zero_copy_record_is_invalidated(ring):
    kept = []
    values = []

    def cb(rec):
        assert isinstance(rec, bpf.RingRecord) and rec.valid and len(rec) == 16
        with memoryview(rec) as mv:
            assert mv.readonly and mv.nbytes == 16
        values.append(seq(rec))  # struct.unpack_from takes and releases the buffer
        assert rec[:8] == struct.pack("<Q", values[-1])
        kept.append(rec)

    with bpf.RingBuffer(ring.map, cb, zero_copy=True) as rb:
        ring.run(3)
        assert rb.poll(1) == 3
    assert values == [0, 1, 2]
    for r in kept:
        assert not r.valid
        with pytest.raises(ValueError, match="after its callback"):
            memoryview(r)
        with pytest.raises(ValueError):
            bytes(r)


def test_ringbuf_zero_copy_reuses_record_object(ring):
    ids = set()
    with bpf.RingBuffer(ring.map, lambda r: ids.add(id(r)), zero_copy=True) as rb:
        ring.run(100)
        assert rb.poll(1) == 100
    assert len(ids) == 1


def test_ringbuf_zero_copy_kept_view_raises(ring):
    kept = []
    with bpf.RingBuffer(ring.map, lambda r: kept.append(memoryview(r)), zero_copy=True) as rb:
        ring.run(2)
        with pytest.raises(BufferError, match="outlived its callback"):
            rb.poll(1)
    kept.clear()


def test_ringbuf_zero_copy_numpy_batches(ring):
    np = pytest.importorskip("numpy")
    dt = np.dtype([("seq", "<u8"), ("tid", "<u8")])
    got: list[int] = []
    sizes: list[int] = []

    def cb(arr):
        assert arr.dtype.names == ("seq", "tid") and not arr.flags.writeable
        sizes.append(len(arr))
        got.extend(arr["seq"].tolist())

    with bpf.RingBuffer(ring.map, cb, batch=True, zero_copy=True, codec=dt) as rb:
        ring.run(10000)
        n = 0
        while n < 10000:
            n += rb.poll(1)
        info = rb.ring_info(0)
        assert info["consumer_pos"] == info["producer_pos"] == 10000 * 24
        assert rb.consume() == 0
    assert got == list(range(10000))
    assert max(sizes) <= 4096
    # a plain dtype: the array views that field of every record
    plain: list[list[int]] = []
    with bpf.RingBuffer(ring.map, lambda a: plain.append(a.tolist()), batch=True,
                        zero_copy=True, codec=np.dtype("V16")) as rb:
        ring.run(2)
        assert rb.poll(1) == 2
    assert [struct.unpack("<Q", bytes(v)[:8])[0] for v in plain[0]] == [10000, 10001]


@pytest.mark.parametrize("mode", ["callback", "zero-copy batch"])
def test_ringbuf_discarded_records_are_skipped(mode):
    np = pytest.importorskip("numpy")
    ring = ring_map(1 << 16)
    counter = counter_map()
    prog = load_xdp(ringbuf_producer(ring, counter, 16, discard_odd=True))
    try:
        got: list[int] = []
        if mode == "callback":
            rb = bpf.RingBuffer(ring, lambda r: got.append(seq(r)))
        else:
            rb = bpf.RingBuffer(ring, lambda a: got.extend(a["f0"].tolist()), batch=True,
                                zero_copy=True, codec=np.dtype("<u8,<u8"))
        with rb:
            assert run(prog, repeat=101) == 2
            n = 0
            while n < 51:
                n += rb.poll(1)
            assert rb.poll(0.05) == 0
            assert rb.ring_info(0)["avail"] == 0
        assert got == list(range(0, 101, 2))
    finally:
        for f in (prog, counter, ring):
            f.close()


def test_ringbuf_zero_copy_numpy_batch_rules(ring):
    np = pytest.importorskip("numpy")
    kept = []
    with bpf.RingBuffer(ring.map, kept.append, batch=True, zero_copy=True,
                        codec=np.dtype("<u8,<u8")) as rb:
        ring.run(3)
        with pytest.raises(BufferError, match="outlived its callback"):
            rb.poll(1)
    kept.clear()
    # records of another size than the dtype are copied (cut or padded), not viewed
    got: list[int] = []
    with bpf.RingBuffer(ring.map, lambda a: got.extend(a.tolist()), batch=True,
                        zero_copy=True, codec="<Q") as rb:
        ring.run(3)
        assert rb.poll(1) == 3
    assert got == [3, 4, 5]
    with pytest.raises(TypeError, match="numpy dtype"):
        bpf.RingBuffer(ring.map, print, batch=True, zero_copy=True, codec=object())


def test_ringbuf_records_iterator_with_codecs(ring):
    class Rec(ctypes.Structure):
        _fields_ = [("seq", ctypes.c_uint64), ("tid", ctypes.c_uint64)]

    np = pytest.importorskip("numpy")
    ring.run(4)
    with bpf.RingBuffer(ring.map, codec="<QQ") as rb:
        assert [r[0] for r in rb.records(timeout=0.05)] == [0, 1, 2, 3]
    ring.run(2)
    with bpf.RingBuffer(ring.map, codec=Rec) as rb:
        assert [r.seq for r in rb.records(timeout=0.05)] == [4, 5]
    ring.run(2)
    dt = np.dtype([("seq", "<u8"), ("tid", "<u8")])
    with bpf.RingBuffer(ring.map, codec=dt) as rb:
        assert [int(r["seq"]) for r in rb.records(timeout=0.05)] == [6, 7]
    ring.run(1)
    with bpf.RingBuffer(ring.map, lambda v: got.append(v), codec="<Q") as rb:
        got: list[int] = []
        rb.poll(1)
        assert got == [8]


def test_ringbuf_fileno_works_with_selectors(ring):
    with bpf.RingBuffer(ring.map) as rb, selectors.DefaultSelector() as sel:
        sel.register(rb.fileno(), selectors.EVENT_READ)
        assert sel.select(0) == []
        ring.run(1)
        assert len(sel.select(1.0)) == 1
        assert rb.consume() == 1
        assert sel.select(0) == []


# ---- ring buffer: blocking, signals, close ----------------------------------------------------


def test_ringbuf_poll_timeout(ring):
    with bpf.RingBuffer(ring.map, lambda r: None) as rb:
        t = time.monotonic()
        assert rb.poll(0.15) == 0
        assert 0.14 <= time.monotonic() - t < 1.0


def test_ringbuf_poll_releases_gil(ring):
    got = []
    with bpf.RingBuffer(ring.map, got.append) as rb:
        th = threading.Thread(target=lambda: (time.sleep(0.1), ring.run(5)))
        th.start()
        assert rb.poll(5) >= 1  # the producer thread ran while poll blocked
        th.join()
        while len(got) < 5:
            assert rb.poll(1) > 0


def test_ringbuf_deadline_honoured_across_eintr(ring):
    ticks = []
    old = signal.signal(signal.SIGALRM, lambda *a: ticks.append(1))
    signal.setitimer(signal.ITIMER_REAL, 0.02, 0.02)
    try:
        with bpf.RingBuffer(ring.map, lambda r: None) as rb:
            t = time.monotonic()
            assert rb.poll(0.3) == 0
            elapsed = time.monotonic() - t
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        signal.signal(signal.SIGALRM, old)
    assert len(ticks) >= 3  # EINTR happened, the poll went on
    assert 0.29 <= elapsed < 1.5


def test_ringbuf_ctrl_c_interrupts_poll(ring):
    th = threading.Timer(0.2, lambda: os.kill(os.getpid(), signal.SIGINT))
    with bpf.RingBuffer(ring.map, lambda r: None) as rb:
        th.start()
        t = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            rb.poll(None)
        assert time.monotonic() - t < 2.0
        th.join()


def test_ringbuf_close_from_another_thread_wakes_poll(ring):
    rb = bpf.RingBuffer(ring.map, lambda r: None)
    result = []
    th = threading.Thread(target=lambda: result.append(rb.poll(None)))
    th.start()
    time.sleep(0.2)
    assert th.is_alive()
    t = time.monotonic()
    rb.close()
    th.join(2.0)
    assert not th.is_alive() and result == [0]
    assert time.monotonic() - t < 1.0
    assert rb.closed
    with pytest.raises(ValueError, match="closed"):
        rb.poll(0)
    with pytest.raises(ValueError):
        rb.fileno()
    rb.close()  # idempotent


def test_ringbuf_poll_from_own_callback_is_refused(ring):
    def cb(r):
        rb.poll(0)

    with bpf.RingBuffer(ring.map, cb) as rb:
        ring.run(2)
        with pytest.raises(RuntimeError, match="already being consumed"):
            rb.poll(1)
        with pytest.raises(RuntimeError):  # the first record raised; the second is there
            rb.poll(1)

    def cb_add(r):
        rb2.add(ring.map, lambda r: None)

    with bpf.RingBuffer(ring.map, cb_add) as rb2:
        ring.run(1)
        with pytest.raises(RuntimeError, match="already being consumed"):
            rb2.poll(1)
        assert rb2.rings == 1


def test_ringbuf_two_threads_polling_deliver_each_record_once(ring):
    got: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def cb(r):
        with lock:
            got.append(seq(r))

    with bpf.RingBuffer(ring.map, cb) as rb:
        def reader():
            while len(got) < 20000:
                try:
                    rb.poll(0.05)
                except RuntimeError:
                    time.sleep(0)  # the other thread is consuming
                except BaseException as e:  # pragma: no cover
                    errors.append(e)
                    return

        threads = [threading.Thread(target=reader) for _ in range(2)]
        for t in threads:
            t.start()
        for _ in range(4):
            ring.run(5000)
        for t in threads:
            t.join(10)
    assert not errors
    assert sorted(got) == list(range(20000))


def test_ringbuf_close_inside_callback(ring):
    rb = bpf.RingBuffer(ring.map, lambda r: rb.close())
    ring.run(3)
    assert rb.poll(1) == 1
    assert rb.closed


def test_records_iterator_ends_on_close_from_thread(ring):
    rb = bpf.RingBuffer(ring.map)
    ring.run(2)
    threading.Timer(0.2, rb.close).start()
    assert [seq(r) for r in rb.records()] == [0, 1]
    assert rb.closed


def test_ringbuf_unclosed_warns(ring):
    rb = bpf.RingBuffer(ring.map, lambda r: None)
    with pytest.warns(ResourceWarning):
        del rb
        gc.collect()


def test_ringbuf_wrong_map_type_raises():
    with bpf.Map.create(bpf.MapType.ARRAY, 4, 8, 1) as m:
        with pytest.raises(bpf.BPFError) as ei:
            bpf.RingBuffer(m, lambda r: None)
        assert ei.value.errno == 22 and "RINGBUF" in str(ei.value)
    with pytest.raises(TypeError):
        bpf.RingBuffer(object(), lambda r: None)  # type: ignore[arg-type]


# ---- asyncio ------------------------------------------------------------------------------


def test_ringbuf_asyncio_while_loop_serves_other_tasks(ring):
    async def main():
        ticks = 0
        stop = asyncio.Event()

        async def ticker():
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.005)

        async def producer():
            loop = asyncio.get_running_loop()
            for _ in range(5):
                await asyncio.sleep(0.03)
                await loop.run_in_executor(None, ring.run, 200)

        got = []
        with bpf.RingBuffer(ring.map, codec="<Q8x") as rb:
            t1 = asyncio.create_task(ticker())
            t2 = asyncio.create_task(producer())
            async for s in rb:
                got.append(s)
                if len(got) == 1000:
                    break
            stop.set()
            await t1
            await t2
            assert await rb.poll_async(0.05) == 0
        return got, ticks

    got, ticks = asyncio.run(main())
    assert got == list(range(1000))
    assert ticks >= 10


def test_poll_async_timeout_and_callbacks(ring):
    got: list[int] = []

    async def main():
        with bpf.RingBuffer(ring.map, lambda r: got.append(seq(r))) as rb:
            t = time.monotonic()
            assert await rb.poll_async(0.1) == 0
            waited = time.monotonic() - t
            loop = asyncio.get_running_loop()
            loop.call_later(0.05, ring.run, 3)
            n = 0
            while n < 3:
                n += await rb.poll_async(2.0)
            return waited

    assert 0.09 <= asyncio.run(main()) < 1.0
    assert got == [0, 1, 2]


def test_ctrl_c_interrupts_records_and_user_ringbuf_wait(ring, echo):
    with bpf.RingBuffer(ring.map) as rb:
        th = threading.Timer(0.1, lambda: os.kill(os.getpid(), signal.SIGINT))
        th.start()
        with pytest.raises(KeyboardInterrupt):
            for _ in rb.records():
                pass
        th.join()
    with bpf.UserRingBuffer(echo.urb_map) as urb:
        with pytest.raises(bpf.BPFError):
            while True:
                urb.write(bytes(504), timeout=0)
        th = threading.Timer(0.1, lambda: os.kill(os.getpid(), signal.SIGINT))
        th.start()
        t = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            urb.write(bytes(504), timeout=None)
        assert time.monotonic() - t < 2.0
        th.join()


def test_poll_async_returns_when_closed(ring):
    async def main():
        rb = bpf.RingBuffer(ring.map)
        asyncio.get_running_loop().call_later(0.1, rb.close)
        t = time.monotonic()
        assert await rb.poll_async(None) == 0
        return time.monotonic() - t

    assert asyncio.run(main()) < 1.0


# ---- tracepoint producers ------------------------------------------------------------------


def test_tracepoint_producers_every_number_once_in_order_per_producer(tracefs):
    ring = ring_map(1 << 20)
    counter = counter_map()
    prog = load_tracepoint(ringbuf_producer(ring, counter, 16, pid=os.getpid(), ret=0))
    link = prog.attach_tracepoint("syscalls", "sys_enter_getppid")
    try:
        records: list[tuple[int, int]] = []
        n_threads, per_thread = 3, 2000
        with bpf.RingBuffer(ring, lambda r: records.append(struct.unpack("<QQ", r))) as rb:
            def work():
                for _ in range(per_thread):
                    os.getppid()

            threads = [threading.Thread(target=work) for _ in range(n_threads)]
            for t in threads:
                t.start()
            while any(t.is_alive() for t in threads):
                rb.poll(0.05)
            for t in threads:
                t.join()
            produced, dropped = counters(counter)
            while len(records) + dropped < produced and rb.poll(0.5):
                pass
        assert produced >= n_threads * per_thread
        assert dropped == 0
        seqs = [s for s, _ in records]
        assert sorted(seqs) == list(range(produced))  # every number exactly once
        by_tid: dict[int, list[int]] = {}
        for s, tid in records:
            by_tid.setdefault(tid & 0xFFFFFFFF, []).append(s)
        assert len(by_tid) >= n_threads
        for s in by_tid.values():
            assert s == sorted(s)  # in order per producer
    finally:
        for f in (link, prog, counter, ring):
            f.close()


def test_tracepoint_perf_producer_with_lost_callback(tracefs):
    perf = perf_map()
    counter = counter_map()
    prog = load_tracepoint(perf_producer(perf, counter, 16, pid=os.getpid(), ret=0))
    link = prog.attach_tracepoint("syscalls", "sys_enter_getppid")
    try:
        got: list[int] = []
        lost: list[tuple[int, int]] = []
        with bpf.PerfBuffer(perf, lambda cpu, r: got.append(seq(r)),
                            lost_callback=lambda cpu, n: lost.append((cpu, n)), pages=1) as pb:
            for _ in range(3000):  # reader stalled: the 4 KiB per-CPU buffers overflow
                os.getppid()
            while pb.poll(0.1):
                pass
            # The kernel reports a loss with the next sample that fits: emit one per CPU.
            on_every_cpu(os.getppid)
            while pb.poll(0.1):
                pass
            produced, dropped = counters(counter)
            assert dropped > 0
            assert sum(n for _, n in lost) == dropped == pb.lost_total
            assert len(got) + pb.lost_total == produced
            assert sorted(got) == [s for s in range(produced) if s in set(got)]
            assert len(set(got)) == len(got)
    finally:
        for f in (link, prog, counter, perf):
            f.close()


# ---- perf buffer ------------------------------------------------------------------------------


def test_perfbuf_every_record_once(perf):
    got: list[tuple[int, int]] = []
    with bpf.PerfBuffer(perf.map, lambda cpu, r: got.append((cpu, seq(r))), pages=64) as pb:
        assert pb.buffers == bpf.possible_cpus()
        perf.run(2000)
        n = 0
        while n < 2000:
            k = pb.poll(1.0)
            assert k > 0
            n += k
        assert pb.lost == (0,) * bpf.possible_cpus()
    assert perf.dropped == 0
    assert sorted(s for _, s in got) == list(range(2000))
    for cpu in {c for c, _ in got}:  # in order per CPU buffer
        s = [x for c, x in got if c == cpu]
        assert s == sorted(s)


def test_perfbuf_record_padding_and_queue(perf):
    with bpf.PerfBuffer(perf.map, pages=1) as pb:
        perf.run(3)  # (before the reader exists the array is empty: output fails)
        recs = list(pb.records(timeout=0.05))
    assert [seq(r) for r in recs] == [0, 1, 2]
    assert all(len(r) == 20 for r in recs)  # perf pads 16 bytes to 20


def test_perfbuf_overflow_lost_callback_counts(perf):
    got: list[int] = []
    lost: list[int] = []
    with bpf.PerfBuffer(perf.map, lambda cpu, r: got.append(seq(r)),
                        lambda cpu, n: lost.append(n), pages=1) as pb:
        perf.run(1000)
        while pb.poll(0.1):
            pass
        # The kernel writes a CPU's PERF_RECORD_LOST with its next sample that fits, and the
        # 1000 runs may have migrated between CPUs: emit one sample on every CPU.
        flushes = on_every_cpu(lambda: perf.run(1))
        while pb.poll(0.1):
            pass
        assert perf.dropped > 0
        assert sum(lost) == pb.lost_total == perf.dropped
        assert len(got) + pb.lost_total == perf.produced == 1000 + flushes
        # lost is reported per CPU by the CPU the samples were lost on
        assert len(pb.lost) == bpf.possible_cpus()


def test_perfbuf_exception_keeps_remaining_records(perf):
    seen: list[int] = []

    def cb(cpu, r):
        seen.append(seq(r))
        if len(seen) == 2:
            raise KeyError("stop")

    with bpf.PerfBuffer(perf.map, cb, pages=64) as pb:
        perf.run(6)
        with pytest.raises(KeyError):
            pb.poll(1)
        assert pb.poll(1) == 4
    assert sorted(seen) == list(range(6))


def test_perfbuf_zero_copy_and_batch(perf):
    vals: list[int] = []
    with bpf.PerfBuffer(perf.map, lambda cpu, v: vals.append(seq(v)), zero_copy=True) as pb:
        perf.run(3)
        assert pb.poll(1) == 3
    batches: list[list] = []
    with bpf.PerfBuffer(perf.map, batches.append, batch=True, codec="<Q") as pb:
        perf.run(4)
        assert pb.poll(1) == 4
    raw: list[list] = []
    with bpf.PerfBuffer(perf.map, raw.append, batch=True) as pb:
        perf.run(2)
        assert pb.poll(1) == 2
    assert vals == [0, 1, 2]
    assert sorted(x for b in batches for x in b) == [3, 4, 5, 6]
    assert sorted(seq(r) for b in raw for r in b) == [7, 8]


def test_perfbuf_close_wakes_poll_and_validation(perf):
    pb = bpf.PerfBuffer(perf.map, lambda cpu, r: None)
    res = []
    th = threading.Thread(target=lambda: res.append(pb.poll()))
    th.start()
    time.sleep(0.1)
    pb.close()
    th.join(2)
    assert res == [0] and pb.closed
    with pytest.raises(ValueError):
        pb.consume()
    with pytest.raises(ValueError, match="power of two"):
        bpf.PerfBuffer(perf.map, lambda c, r: None, pages=3)
    with ring_map(4096) as m, pytest.raises(bpf.BPFError):
        bpf.PerfBuffer(m, lambda c, r: None)


# ---- user ring buffer -------------------------------------------------------------------------


@pytest.fixture
def echo():
    e = UserRingEcho()
    yield e
    e.close()


def test_user_ringbuf_round_trip(echo):
    with bpf.UserRingBuffer(echo.urb_map) as urb, bpf.RingBuffer(echo.out, codec="<Q") as rb:
        for i in range(10):
            urb.write(struct.pack("<Q", i * 100))
        s = urb.reserve(8)
        struct.pack_into("<Q", s, 0, 7)
        urb.submit(s)
        d = urb.reserve(16)
        urb.discard(d)
        with pytest.raises(ValueError):
            urb.submit(d)
        with pytest.raises(ValueError):
            memoryview(s)
        echo.drain()
        assert counters(echo.counter)[0] == 11
        assert list(rb.records(timeout=0.1)) == [i * 100 + 1 for i in range(10)] + [8]


def test_user_ringbuf_full_and_waiting_for_space(echo):
    with bpf.UserRingBuffer(echo.urb_map) as urb:
        n = 0
        with pytest.raises(bpf.BPFError) as ei:
            while True:
                urb.write(bytes(248), timeout=0)  # 256 bytes with the header
                n += 1
        assert ei.value.errno == 28 and n == 4096 // 256
        t = time.monotonic()
        with pytest.raises(bpf.BPFError):
            urb.write(bytes(248), timeout=0.1)
        assert time.monotonic() - t >= 0.09
        threading.Timer(0.15, echo.drain).start()
        t = time.monotonic()
        urb.write(bytes(248), timeout=5)  # blocks until the BPF side drained
        assert 0.1 < time.monotonic() - t < 4
        with pytest.raises(BufferError):
            s = urb.reserve(8)
            mv = memoryview(s)
            urb.submit(s)
        mv.release()
        urb.discard(s)


def test_user_ringbuf_close_wakes_waiting_writer(echo):
    urb = bpf.UserRingBuffer(echo.urb_map)
    while True:
        try:
            urb.write(bytes(504), timeout=0)
        except bpf.BPFError:
            break
    errs = []

    def writer():
        try:
            urb.write(bytes(504), timeout=None)
        except ValueError as e:
            errs.append(e)

    th = threading.Thread(target=writer)
    th.start()
    time.sleep(0.1)
    urb.close()
    th.join(2)
    assert not th.is_alive() and len(errs) == 1
    with pytest.raises(ValueError):
        urb.write(b"x")


def test_unclosed_perf_and_user_ringbuf_warn(perf, echo):
    pb = bpf.PerfBuffer(perf.map, lambda c, r: None)
    with pytest.warns(ResourceWarning):
        del pb
        gc.collect()
    urb = bpf.UserRingBuffer(echo.urb_map)
    with pytest.warns(ResourceWarning):
        del urb
        gc.collect()


def test_reader_reprs_and_context_managers(ring, echo):
    rb = bpf.RingBuffer(ring.map)
    assert "rings=1" in repr(rb)
    with rb:
        pass
    assert rb.closed and "closed" in repr(rb)
    with pytest.raises(ValueError):
        with rb:
            pass
    with bpf.UserRingBuffer(echo.urb_map) as urb:
        assert "fd=" in repr(urb)
        with pytest.raises(ValueError, match="> 0"):
            urb.reserve(0)
        with pytest.raises(bpf.BPFError) as ei:
            urb.reserve(1 << 20)
        assert ei.value.errno == 7  # E2BIG: larger than the ring
        with pytest.raises(TypeError):
            urb.submit(b"not a sample")
    assert urb.closed


def test_readers_leak_no_fds(ring, perf, echo):
    def nfds():
        return len(os.listdir("/proc/self/fd"))

    other = ring_map(4096)
    before = nfds()
    for _ in range(30):
        bpf.RingBuffer([ring.map, other], lambda r: None).close()
        with pytest.raises(bpf.BPFError, match="already in this RingBuffer"):
            bpf.RingBuffer([ring.map, ring.map], lambda r: None)
        bpf.PerfBuffer(perf.map, lambda c, r: None, pages=1).close()
        bpf.UserRingBuffer(echo.urb_map).close()
        with pytest.raises(bpf.BPFError):
            bpf.RingBuffer(perf.map, lambda r: None)
    assert nfds() == before
    other.close()


def test_readers_take_bpf_map_objects(ring):
    """bpf.Map (or anything with fileno()) works wherever a map fd does."""
    with bpf.Map.create(bpf.MapType.RINGBUF, 0, 0, 4096) as m, \
            bpf.Map.create(bpf.MapType.USER_RINGBUF, 0, 0, 4096) as u, \
            bpf.Map.create(bpf.MapType.PERF_EVENT_ARRAY, 4, 4, bpf.possible_cpus()) as p:
        with bpf.RingBuffer([m, ring.map], lambda r: None) as rb:
            assert rb.rings == 2 and rb.ring_info(0)["size"] == 4096
        with bpf.UserRingBuffer(u) as urb:
            urb.write(b"12345678")
        with bpf.PerfBuffer(p, lambda c, r: None, pages=1) as pb:
            assert pb.consume() == 0


def test_user_ringbuf_wrong_map_type():
    with ring_map(4096) as m, pytest.raises(bpf.BPFError):
        bpf.UserRingBuffer(m)

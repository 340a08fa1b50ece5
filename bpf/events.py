"""Event streams from BPF programs: ring buffers, perf buffers and user ring buffers.

The readers wrap libbpf's ``ring_buffer``, ``perf_buffer`` and ``user_ring_buffer`` (C types in
``bpf._bpf``); this module adds the policy: timeouts in seconds, codecs, iterators and asyncio.
See docs/events.md for when to pick which and for the lifetime rules of zero-copy records.
"""

from __future__ import annotations

import asyncio
import collections
import math
import struct
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Iterable, Iterator, Protocol, Union

from . import _bpf

__all__ = ["RingBuffer", "PerfBuffer", "UserRingBuffer", "RingRecord"]

#: The zero-copy record / user ring buffer sample type (supports the buffer protocol).
RingRecord = _bpf._RingRecord

# Delivery modes of the C readers.
_BYTES, _VIEW, _BATCH, _PACKED, _VIEWBATCH = 0, 1, 2, 3, 4


class _HasFileno(Protocol):
    def fileno(self) -> int: ...


MapLike = Union[int, _HasFileno]


def _map_fd(m: MapLike) -> int:
    if isinstance(m, int):
        return m
    fileno = getattr(m, "fileno", None)
    if fileno is None:
        raise TypeError(f"expected a bpf.Map or a map fd, not {type(m).__name__}")
    return int(fileno())


def _ms(timeout: float | None) -> int:
    """Seconds (None: forever) to the C layer's milliseconds (-1: forever)."""
    if timeout is None:
        return -1
    if timeout < 0:
        raise ValueError(f"timeout must be >= 0 or None, got {timeout!r}")
    return min(int(math.ceil(timeout * 1000.0)), 2**31 - 1)


# ---- codecs -----------------------------------------------------------------------------------


class _Codec:
    """Decode one record (bytes or a buffer) into a Python value, or a packed batch (records
    cut/padded to ``size`` bytes, back to back) into a sequence of values in one call.
    Records may be longer than the codec (perf pads samples), never shorter."""

    def __init__(self, size: int, parse: Callable[[Any], Any], name: str,
                 batch: Callable[[bytes], Any] | None = None) -> None:
        self.size = size
        self.parse = parse
        self.name = name
        self.batch = batch or self._batch_slices

    def __call__(self, raw: Any) -> Any:
        if len(raw) < self.size:
            raise ValueError(f"record of {len(raw)} bytes is shorter than codec {self.name} "
                             f"({self.size} bytes)")
        return self.parse(raw)

    def _batch_slices(self, blob: bytes) -> list[Any]:
        mv = memoryview(blob)
        n = self.size
        return [self.parse(mv[i:i + n]) for i in range(0, len(blob), n)]


def _resolve_codec(codec: Any) -> _Codec | None:
    """Accept a struct format, a struct.Struct, a ctypes type, a numpy dtype, or an object
    with ``size`` and ``parse(buffer)`` (the map codec protocol).

    When the typed-maps codecs (``bpf.codecs.as_codec``) are available they resolve the spec,
    so records accept exactly what maps accept (bpf.u32, bpf.cstr(n), ...); batches with a
    numpy dtype are still decoded into one array.
    """
    if codec is None:
        return None
    as_codec = getattr(_codecs_module(), "as_codec", None)
    if as_codec is not None and not isinstance(codec, struct.Struct):
        c = as_codec(codec)
        dt = None
        if type(c).__name__ == "NumpyCodec":  # batches of a dtype stay one numpy array
            try:
                dt = c.dtype
            except Exception:
                dt = None
        if dt is not None:
            import numpy as np

            batch: Callable[[bytes], Any] = lambda blob: np.frombuffer(blob, dt)  # noqa: E731
        else:
            batch = lambda blob: c.decode_array(blob, len(blob) // c.size)  # noqa: E731
        return _Codec(c.size, c.decode, getattr(c, "name", repr(codec)), batch)
    if hasattr(codec, "size") and hasattr(codec, "parse") and not isinstance(codec, struct.Struct):
        return _Codec(int(codec.size), codec.parse, repr(codec))
    if isinstance(codec, (str, bytes)):
        codec = struct.Struct(codec)
    if isinstance(codec, struct.Struct):
        st = codec
        unpack = st.unpack_from
        if len(st.unpack(bytes(st.size))) == 1:
            return _Codec(st.size, lambda b: unpack(b)[0], repr(st.format),
                          lambda blob: [v for (v,) in st.iter_unpack(blob)])
        return _Codec(st.size, unpack, repr(st.format), lambda blob: list(st.iter_unpack(blob)))
    if isinstance(codec, type) and hasattr(codec, "from_buffer_copy"):  # ctypes
        import ctypes

        size = ctypes.sizeof(codec)
        ctype: Any = codec
        return _Codec(size, lambda b: ctype.from_buffer_copy(bytes(b[:size])), ctype.__name__,
                      lambda blob: list((ctype * (len(blob) // size)).from_buffer_copy(blob)))
    try:  # a numpy dtype, or something numpy turns into one (np.uint64, a field list, ...)
        import numpy as np

        dt = np.dtype(codec)
    except Exception:
        raise TypeError(f"cannot use {codec!r} as a record codec: expected a struct format, "
                        "a ctypes type, a numpy dtype or an object with size and parse()") from None
    return _Codec(dt.itemsize, lambda b: np.frombuffer(b, dt, count=1)[0], str(dt),
                  lambda blob: np.frombuffer(blob, dt))


def _codecs_module() -> Any:
    from . import codecs

    return codecs


def _wrap_callback(callback: Callable[..., Any], codec: _Codec | None, batch: bool,
                   with_cpu: bool) -> tuple[Callable[..., Any], int, int]:
    """(C callback, delivery mode, item size) for a user callback and options."""
    if codec is None:
        return callback, (_BATCH if batch else _BYTES), 0
    if batch:
        decode = codec.batch
        return (lambda blob: callback(decode(blob))), _PACKED, codec.size
    if with_cpu:
        return (lambda cpu, r: callback(cpu, codec(r))), _BYTES, 0
    return (lambda r: callback(codec(r))), _BYTES, 0


def _view_batch(callback: Callable[..., Any], codec: Any) -> tuple[Callable[..., Any], int]:
    """(C callback, record size) for zero-copy batches: the C layer passes a buffer over a run
    of records in the ring, each behind its 8-byte header (stride round_up(size + 8, 8));
    the callback gets a read-only numpy array viewing them in place."""
    try:
        import numpy as np

        dt = np.dtype(codec)
    except Exception:
        raise TypeError("zero_copy with batch=True needs a numpy dtype codec (the records are "
                        "handed over as a numpy view of the ring)") from None
    stride = (dt.itemsize + 8 + 7) // 8 * 8
    if dt.names is None:
        padded = np.dtype({"names": ["v"], "formats": [dt], "offsets": [8], "itemsize": stride})

        def view_plain(buf: Any) -> Any:
            return callback(np.frombuffer(buf, padded)["v"])

        return view_plain, dt.itemsize
    fields = dt.fields or {}
    padded = np.dtype({"names": list(dt.names),
                       "formats": [fields[n][0] for n in dt.names],
                       "offsets": [fields[n][1] + 8 for n in dt.names],
                       "itemsize": stride})

    def view_struct(buf: Any) -> Any:
        return callback(np.frombuffer(buf, padded))

    return view_struct, dt.itemsize


def _queue_sink(pending: collections.deque[Any], codec: _Codec | None
                ) -> tuple[Callable[..., Any], int, int]:
    """(C callback, mode, item size) that queues records (decoded in batches) for iteration."""
    if codec is None:
        return pending.extend, _BATCH, 0
    decode = codec.batch
    return (lambda blob: pending.extend(decode(blob))), _PACKED, codec.size


# ---- shared reader behaviour --------------------------------------------------------------------


class _Reader:
    """poll/records/async surface shared by RingBuffer and PerfBuffer (mixed into C types)."""

    _pending: collections.deque[Any]
    _queued: bool
    _waiters: set[asyncio.Future[None]]

    if TYPE_CHECKING:  # provided by the C base
        def fileno(self) -> int: ...
        @property
        def closed(self) -> bool: ...

    def _c_poll(self, timeout_ms: int) -> int:
        raise NotImplementedError

    def _c_consume(self) -> int:
        raise NotImplementedError

    def _c_poll_some(self, timeout_ms: int) -> int:
        return self._c_poll(timeout_ms)

    def _c_close(self) -> None:
        raise NotImplementedError

    def _init_reader(self) -> None:
        self._pending = collections.deque()
        self._queued = False
        self._waiters = set()

    def poll(self, timeout: float | None = None) -> int:
        """Handle the records that are there, or wait for some; return how many were handled.

        Blocks (GIL released) until records arrive, ``timeout`` seconds pass (None: forever)
        or ``close()`` is called from another thread (then returns 0).  Ctrl-C raises
        KeyboardInterrupt promptly; other signals do not shorten the deadline.  A callback
        that raises stops the poll and the exception propagates; one that returns a negative
        number stops it quietly.  ValueError once closed.
        """
        return self._c_poll(_ms(timeout))

    def consume(self) -> int:
        """Handle the records that are there without waiting; return how many."""
        return self._c_consume()

    def close(self) -> None:
        """Free the buffers (idempotent).  Wakes a ``poll`` blocked in another thread and any
        ``poll_async`` awaiting; records not yet read are dropped."""
        for fut in list(self._waiters):
            if not fut.done():
                fut.get_loop().call_soon_threadsafe(_resolve, fut)
        self._c_close()

    def _check_queued(self, what: str) -> None:
        if not self._queued:
            raise TypeError(f"{what} needs a reader created without a callback (records are "
                            "then queued for iteration)")

    def records(self, timeout: float | None = None) -> Iterator[Any]:
        """Yield records (decoded when a codec was given, else bytes) as they arrive.

        Ends when no record arrived for ``timeout`` seconds (None: never) or when the reader
        is closed (also from another thread).  Only for readers created without a callback.
        """
        if self.closed:
            raise ValueError("operation on closed reader")
        self._check_queued("records()")
        pending = self._pending
        pop = pending.popleft
        while True:
            while pending:  # records stay queued if the caller stops iterating
                yield pop()
            if self.closed:
                return
            # a bounded round keeps the queue (and the bytes in it) cache-sized
            if self._c_poll_some(_ms(timeout)) == 0 and not pending:
                return

    async def poll_async(self, timeout: float | None = None) -> int:
        """Like poll(), without blocking the event loop: waits through the loop's reader on
        ``fileno()``.  Returns 0 on timeout or when the reader is closed meanwhile."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            n = self._c_consume()
            if n:
                return n
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return 0
            fut: asyncio.Future[None] = loop.create_future()
            fd = self.fileno()
            self._waiters.add(fut)
            loop.add_reader(fd, _resolve, fut)
            try:
                if remaining is None:
                    await fut
                else:
                    try:
                        await asyncio.wait_for(fut, remaining)
                    except asyncio.TimeoutError:
                        return 0
            finally:
                self._waiters.discard(fut)
                loop.remove_reader(fd)
            if self.closed:
                return 0

    def __aiter__(self) -> AsyncIterator[Any]:
        if self.closed:
            raise ValueError("operation on closed reader")
        self._check_queued("async for")
        return self._aiter()

    async def _aiter(self) -> AsyncIterator[Any]:
        pending = self._pending
        pop = pending.popleft
        while True:
            while pending:
                yield pop()
            if self.closed:
                return
            await self.poll_async()

    def __enter__(self) -> Any:
        if self.closed:
            raise ValueError("operation on closed reader")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


# ---- RingBuffer ---------------------------------------------------------------------------------


class RingBuffer(_Reader, _bpf.RingBuffer):  # type: ignore[misc]
    """Read records from one or more BPF_MAP_TYPE_RINGBUF maps through one epoll set.

    ``callback(record)`` is called for each record (``bytes``); without a callback records
    are queued and read with ``records()`` or ``async for``.  ``codec`` (struct format, ctypes
    type, numpy dtype, or an object with size/parse) decodes each record.  ``zero_copy=True``
    passes a read-only :data:`RingRecord` over the ring memory, valid only during the callback
    (later access raises ValueError; a memoryview of it still held when the callback returns
    raises BufferError).  ``batch=True`` calls ``callback(records)`` once per round of up to
    4096 records instead, which is much faster at high rates; with a codec the whole batch is
    decoded at once (a numpy array for a dtype).  ``batch=True, zero_copy=True`` with a numpy
    dtype passes a read-only numpy array viewing the records in the ring (no copy; valid only
    during the callback).  A callback that raises or returns a negative number stops the poll;
    the remaining records stay for the next one.

    The reader is a context manager; ``close()`` frees the rings and wakes a blocked poll.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> RingBuffer:
        return super().__new__(cls)

    def __init__(self, map_or_maps: MapLike | Iterable[MapLike], callback: Callable[..., Any]
                 | None = None, *, codec: Any = None, zero_copy: bool = False,
                 batch: bool = False) -> None:
        self._init_reader()
        try:
            maps: list[MapLike]
            if isinstance(map_or_maps, int) or hasattr(map_or_maps, "fileno"):
                maps = [map_or_maps]  # type: ignore[list-item]
            else:
                try:
                    maps = list(map_or_maps)  # type: ignore[arg-type]
                except TypeError:
                    raise TypeError("expected a bpf.Map, a map fd or an iterable of them, not "
                                    f"{type(map_or_maps).__name__}") from None
            if not maps:
                raise ValueError("RingBuffer needs at least one map")
            for m in maps:
                self.add(m, callback, codec=codec, zero_copy=zero_copy, batch=batch)
        except BaseException:
            _bpf.RingBuffer.close(self)
            raise

    def add(  # type: ignore[override]
            self, map: MapLike, callback: Callable[..., Any] | None = None, *,
            codec: Any = None, zero_copy: bool = False, batch: bool = False) -> None:
        """Add a ring buffer map to the epoll set with its own callback (or to the queue).

        Raises BPFError(EINVAL) if the map is not a ring buffer, ValueError if closed.
        """
        if self.closed:  # before the argument checks: closed wins
            raise ValueError("operation on closed reader")
        dec = _resolve_codec(codec)
        if callback is None:
            if zero_copy:
                raise ValueError("zero_copy needs a callback: a view is only valid during it")
            if self.rings and not self._queued:
                raise ValueError("cannot mix queued maps with callback maps in one RingBuffer")
            self._queued = True
            super().add(_map_fd(map), *_queue_sink(self._pending, dec))
            return
        if self._queued:
            raise ValueError("cannot mix queued maps with callback maps in one RingBuffer")
        if zero_copy and batch:
            cb, item = _view_batch(callback, codec)
            super().add(_map_fd(map), cb, _VIEWBATCH, item)
            return
        if zero_copy:
            if dec is not None:
                raise ValueError("zero_copy records are raw buffers: decode them in the "
                                 "callback, or use batch=True with a numpy dtype")
            super().add(_map_fd(map), callback, _VIEW, 0)
            return
        super().add(_map_fd(map), *_wrap_callback(callback, dec, batch, False))

    def _c_poll(self, timeout_ms: int) -> int:
        return _bpf.RingBuffer.poll(self, timeout_ms)

    def _c_poll_some(self, timeout_ms: int) -> int:
        return _bpf.RingBuffer.poll(self, timeout_ms, 4096)

    def _c_consume(self) -> int:
        return _bpf.RingBuffer.consume(self)

    def _c_close(self) -> None:
        _bpf.RingBuffer.close(self)


# ---- PerfBuffer ---------------------------------------------------------------------------------


class PerfBuffer(_Reader, _bpf.PerfBuffer):  # type: ignore[misc]
    """Read samples from a BPF_MAP_TYPE_PERF_EVENT_ARRAY, one perf buffer per possible CPU.

    ``callback(cpu, record)`` per sample (``callback(list_of_records)`` with ``batch=True``);
    without a callback samples are queued for ``records()`` / ``async for``.
    ``lost_callback(cpu, count)`` is told when the kernel dropped samples because a CPU's
    buffer was full; ``lost`` holds the running totals per CPU.  ``pages`` (a power of two)
    sizes each CPU's buffer; ``wakeup_events`` is how many samples the kernel collects before
    waking the reader.  Perf pads samples to 8 bytes minus 4: a 16-byte record arrives as 20.
    """

    _lost_user: Callable[[int, int], Any] | None

    def __new__(cls, map: MapLike, callback: Callable[..., Any] | None = None,
                lost_callback: Callable[[int, int], Any] | None = None, pages: int = 8,
                wakeup_events: int = 1, *, codec: Any = None, zero_copy: bool = False,
                batch: bool = False) -> PerfBuffer:
        dec = _resolve_codec(codec)
        if callback is None:
            if zero_copy:
                raise ValueError("zero_copy needs a callback: a view is only valid during it")
            pending: collections.deque[Any] = collections.deque()
            cb, mode, item = _queue_sink(pending, dec)
            self = super().__new__(cls, _map_fd(map), cb, lost_callback, pages, wakeup_events,
                                   mode, item)
            self._init_reader()
            self._pending = pending
            self._queued = True
            return self
        if zero_copy:
            if batch or dec is not None:
                raise ValueError("zero_copy records are raw buffers: no batch, no codec")
            cb, mode, item = callback, _VIEW, 0
        else:
            cb, mode, item = _wrap_callback(callback, dec, batch, True)
        self = super().__new__(cls, _map_fd(map), cb, lost_callback, pages, wakeup_events, mode,
                               item)
        self._init_reader()
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    @property
    def lost_total(self) -> int:
        """Samples the kernel dropped on all CPUs so far."""
        return sum(self.lost)

    def _c_poll(self, timeout_ms: int) -> int:
        return _bpf.PerfBuffer.poll(self, timeout_ms)

    def _c_consume(self) -> int:
        return _bpf.PerfBuffer.consume(self)

    def _c_close(self) -> None:
        _bpf.PerfBuffer.close(self)


# ---- UserRingBuffer -----------------------------------------------------------------------------


class UserRingBuffer(_bpf.UserRingBuffer):
    """Write messages to a BPF_MAP_TYPE_USER_RINGBUF map for a BPF program to drain
    (``bpf_user_ringbuf_drain``).

    ``reserve(size)`` returns a writable sample (buffer protocol: ``struct.pack_into``,
    ``memoryview(sample)[:] = ...``; release such views before ``submit``/``discard``).
    ``write(data)`` reserves, copies and submits.  Both wait up to ``timeout`` seconds for
    space (None: forever, 0: raise at once) and raise BPFError(ENOSPC) when it does not come.
    One writer at a time: libbpf's user ring buffer is single-producer (the GIL serialises
    calls of one process; do not share the map with another writer process).
    """

    def __new__(cls, map: MapLike) -> UserRingBuffer:
        return super().__new__(cls, _map_fd(map))

    def reserve(self, size: int, timeout: float | None = 0) -> _bpf._RingRecord:  # type: ignore[override]
        """Reserve ``size`` bytes; the sample must be submitted or discarded."""
        return super().reserve(size, _ms(timeout))

    def write(self, data: Any, timeout: float | None = None) -> None:  # type: ignore[override]
        """Reserve, copy ``data`` (any bytes-like object) and submit."""
        super().write(data, _ms(timeout))

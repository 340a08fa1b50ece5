"""Typed maps: Python values in and out of a raw :class:`bpf.Map`, one class per map family.

A typed map wraps a raw map (``t.map``) and a key and a value codec (:mod:`bpf.codecs`).  It
adds conversion and nothing else: every call is the raw call on encoded bytes, and bulk reads
(iteration, ``items()``, ``values()``, :meth:`HashMap.arrays`) go through the raw map's
batches, decoding each batch in one step.

``m.typed(key=..., value=...)`` (or :func:`typed_view`) returns the class that fits the map's
type; each class also wraps an existing map (``bpf.ArrayMap(m, value=bpf.f64)``) and creates
one (``bpf.HashMap.create(key=bpf.u32, value=bpf.u64, max_entries=1024)``).

Closing a typed map closes its raw map (a view made with ``m.typed()`` shares ``m``).
"""

from __future__ import annotations

import errno as _errno
import os as _os
import struct as _struct
import ipaddress
import itertools
from collections.abc import MutableMapping, Sequence
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from . import _bpf
from .codecs import _EMPTY, Codec, as_codec, u32
from .enums import MapFlags, MapType, UpdateFlags

__all__ = [
    "TypedMap", "HashMap", "LRUHashMap", "ArrayMap", "PerCPUHashMap", "LRUPerCPUHashMap",
    "PerCPUArrayMap", "LPMTrieMap", "QueueMap", "StackMap", "BloomFilterMap", "ArrayOfMaps",
    "HashOfMaps", "ProgArrayMap", "RingBufMap", "UserRingBufMap", "PerfEventArrayMap",
    "typed_view",
]

_MISSING: Any = object()
# errors of a batch (or lookup-and-delete) call that mean "this map type or kernel cannot
# do it": fall back to element-by-element calls, which raise the real error if there is one.
_NO_BATCH = {_errno.EINVAL, _errno.ENOTSUP, _errno.EOPNOTSUPP, 524, _errno.ENOSYS}


def _Map() -> Any:
    from .maps import Map  # late: bpf.maps imports this module for Map.typed()

    return Map


def _no_batch(e: BaseException) -> bool:
    return isinstance(e, (NotImplementedError, AttributeError)) or (
        isinstance(e, OSError) and e.errno in _NO_BATCH)


def _round8(n: int) -> int:
    return (n + 7) & ~7


# ---- per-CPU values -------------------------------------------------------------------

class PerCPUCodec(Codec):
    """A list of one value per possible CPU, each in a slot rounded up to 8 bytes.

    Encoding takes a list (or a 1-D numpy array) of exactly ``ncpus`` values, or one value
    copied to every CPU.
    """

    def __init__(self, codec: Codec, ncpus: int) -> None:
        self.codec = codec
        self.ncpus = ncpus
        self.stride = _round8(codec.size)
        self.size = self.stride * ncpus
        self.name = f"per-CPU {codec.name}"
        self._pad = bytes(self.stride - codec.size)

    def encode(self, value: Any) -> bytes:
        c = self.codec
        if isinstance(value, list) or (isinstance(value, tuple) and
                                       getattr(c, "scalar", False)) or self._per_cpu_array(value):
            if len(value) != self.ncpus:
                raise ValueError(f"a per-CPU value takes {self.ncpus} values (one per "
                                 f"possible CPU), got {len(value)}")
            return c.encode_array(value, self.stride)
        return (c.encode(value) + self._pad) * self.ncpus

    def _per_cpu_array(self, value: Any) -> bool:
        # a numpy array with one more dimension than one element has
        ndim = getattr(value, "ndim", None)
        if ndim is None or not hasattr(value, "__array__"):
            return False
        dt = self.codec.dtype
        return bool(ndim == 1 + (len(dt.shape) if dt is not None else 0))

    def decode(self, buf: Any) -> list[Any]:
        return self.codec.decode_array(buf, self.ncpus, self.stride)

    def decode_array(self, buf: Any, n: int, stride: int | None = None) -> list[Any]:
        c = self.ncpus
        flat = self.codec.decode_array(buf, n * c, self.stride)
        return [flat[i:i + c] for i in range(0, n * c, c)]

    def encode_array(self, values: Iterable[Any], stride: int | None = None) -> bytes:
        if getattr(values, "ndim", 0) == 2 + len(getattr(self.codec.dtype, "shape", ())) \
                and hasattr(values, "reshape"):
            arr: Any = values
            if arr.shape[1] != self.ncpus:
                raise ValueError(f"per-CPU values need {self.ncpus} columns (one per "
                                 f"possible CPU), got shape {arr.shape}")
            return self.codec.encode_array(arr.reshape((-1,) + arr.shape[2:]), self.stride)
        return b"".join([self.encode(v) for v in values])

    def view(self, buf: Any, n: int) -> Any:
        """Return an array of shape (n, ncpus) over *buf* (numpy dtypes only)."""
        import numpy as np

        dt = self.codec.dtype
        if dt is None:
            raise TypeError(f"codec {self.codec.name} has no numpy dtype")
        return np.ndarray((n, self.ncpus), dt, buffer=memoryview(buf).cast("B"),
                          strides=(self.size, self.stride))


# ---- the fd-in, id-out values of maps of maps and program arrays ------------------------

class _FdCodec(Codec):
    """Encodes an object with ``fileno()`` (a Map, a Program) or an fd int; decodes the id
    the kernel returns on lookup."""

    size = 4

    def __init__(self, what: str) -> None:
        self.name = f"{what} fd"
        self.what = what

    def encode(self, value: Any) -> bytes:
        if isinstance(value, TypedMap):
            value = value.map
        fileno = getattr(value, "fileno", None)
        if callable(fileno):
            fd = fileno()
        elif isinstance(value, int) and not isinstance(value, bool):
            fd = value
        else:
            raise TypeError(f"a {self.what} slot takes a {self.what} object (with fileno()) "
                            f"or an fd int, not {type(value).__name__}")
        if not 0 <= fd < 1 << 31:
            raise ValueError(f"{fd} is not a valid file descriptor")
        return u32.encode(fd)

    def decode(self, buf: Any) -> int:
        return int(u32.decode(buf))

    def decode_array(self, buf: Any, n: int, stride: int | None = None) -> list[Any]:
        return u32.decode_array(buf, n, stride)


# ---- base -------------------------------------------------------------------------------

class TypedMap:
    """Base of typed maps: a raw map (``.map``) plus ``key_codec`` and ``value_codec``."""

    #: map types this class wraps
    map_types: tuple[int, ...] = ()
    _default_key: Any = None
    _default_value: Any = None
    _percpu = False
    _create_type: int = 0

    def __init__(self, map: Any, key: Any = None, value: Any = None) -> None:
        if isinstance(map, TypedMap):
            map = map.map
        map.fileno()  # ValueError for a closed map: a view of it could do nothing
        self.map: Any = map
        mtype = map.type
        if self.map_types and mtype not in self.map_types:
            names = ", ".join(MapType(t).name for t in self.map_types)
            cls = _CLASSES.get(mtype)
            hint = f"; use bpf.{cls.__name__} or m.typed()" if cls else ""
            raise TypeError(f"{type(self).__name__} wraps {names} maps, not "
                            f"{_type_name(mtype)}{hint}")
        if key is None:
            key = self._default_key_for(map)
        if value is None:
            value = self._default_value
        self.key_codec: Codec = as_codec(key, map.key_size, "key")
        self.value_codec: Codec = as_codec(value, map.value_size, "value")
        vh: Codec = self.value_codec
        if self._percpu:
            stride = _round8(map.value_size)
            raw = map.raw_value_size
            if raw % stride:
                raise ValueError(f"raw per-CPU value size {raw} is not a multiple of {stride}")
            vh = PerCPUCodec(self.value_codec, raw // stride)
        self._vh = vh
        # the hot path: bound C callables where the codec has them
        self._kpack = self.key_codec._pack
        self._kunpack = self.key_codec._unpack
        self._vpack = vh._pack
        self._vunpack = vh._unpack
        self._vget = vh._unpack1
        self._lookup = map.lookup
        self._update = map.update
        self._delete = map.delete

    def _default_key_for(self, map: Any) -> Any:
        return self._default_key

    # -- encoding with clear errors ------------------------------------------------------
    def _ek(self, key: Any) -> bytes:
        try:
            return self._kpack(key)
        except Exception:
            return self.key_codec.encode(key)  # raises the clear error

    def _ev(self, value: Any) -> bytes:
        try:
            return self._vpack(value)
        except Exception:
            return self._vh.encode(value)

    # -- lifecycle -----------------------------------------------------------------------
    def close(self) -> None:
        """Close the raw map (the kernel map lives on while other fds or pins hold it)."""
        self.map.close()

    @property
    def closed(self) -> bool:
        return bool(self.map.closed)

    def fileno(self) -> int:
        return int(self.map.fileno())

    def __enter__(self) -> Any:
        self.map.fileno()  # ValueError once closed, as the raw map's __enter__
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        try:
            state = "closed" if self.map.closed else \
                f"id={self.map.id} max_entries={self.map.max_entries}"
        except Exception:
            state = "?"
        return (f"<bpf.{type(self).__name__} {state} key={self.key_codec.name} "
                f"value={self._vh.name}>")

    @property
    def ncpus(self) -> int:
        """Values per element: possible CPUs for a per-CPU map, else 1."""
        # Stream maps (RingBufMap, ...) have no value codec: one value per element.
        vh = getattr(self, "_vh", None)
        return vh.ncpus if isinstance(vh, PerCPUCodec) else 1

    # -- batches -------------------------------------------------------------------------
    def _batches(self, chunk: int | None = None) -> Iterator[tuple[Any, Any, int]]:
        """Yield (packed keys, packed raw values, n): the raw map's ``iter_batches``, which
        uses batch calls where the kernel has them and next_key/lookup elsewhere, and
        guarantees what docs/maps.md says about maps changing during the walk."""
        return self.map.iter_batches(chunk)  # type: ignore[no-any-return]


def _type_name(t: int) -> str:
    try:
        return MapType(t).name
    except ValueError:
        return f"map type {t}"


class _DictMap(TypedMap, MutableMapping):  # type: ignore[type-arg]
    """Dict semantics over a map: ``t[k]``, ``t[k] = v``, ``del t[k]``, ``in``, iteration,
    ``len``, and batch-backed ``keys()``/``values()``/``items()``.

    Iterating while the map changes (other threads, BPF programs) is safe: no key comes
    twice, a key deleted before its batch is read is skipped, a key added meanwhile may or
    may not be seen (the raw map's ``iter_batches`` rules, docs/maps.md).
    """

    def __getitem__(self, key: Any) -> Any:
        raw = self._lookup(self._ek(key))
        if raw is None:
            raise KeyError(key)
        return self._vget(raw)[0]

    def get(self, key: Any, default: Any = None) -> Any:
        raw = self._lookup(self._ek(key))
        return default if raw is None else self._vget(raw)[0]

    def __setitem__(self, key: Any, value: Any) -> None:
        self._update(self._ek(key), self._ev(value), 0)

    def __delitem__(self, key: Any) -> None:
        if not self._delete(self._ek(key)):
            raise KeyError(key)

    def __contains__(self, key: Any) -> bool:
        return self._lookup(self._ek(key)) is not None

    def __len__(self) -> int:
        """Count the elements (a walk over the map: the kernel keeps no count)."""
        try:
            return len(self.map)
        except TypeError:
            return sum(n for _, _, n in self._batches())

    def __iter__(self) -> Iterator[Any]:
        kd, ks = self.key_codec.decode_array, self.map.key_size
        for kb, _, n in self._batches():
            yield from kd(kb, n, ks)

    def keys(self) -> Any:
        """Return a re-iterable view of the keys (no ``len()``: see :class:`_View`)."""
        return _View(self, "keys")

    def values(self) -> Any:
        """Return a re-iterable view of the values, read in batches."""
        return _View(self, "values")

    def items(self) -> Any:
        """Return a re-iterable view of ``(key, value)`` pairs, read in batches."""
        return _View(self, "items")

    def _iter_values(self) -> Iterator[Any]:
        vd = self._vh.decode_array
        for _, vb, n in self._batches():
            yield from vd(vb, n)

    def _iter_items(self) -> Iterator[tuple[Any, Any]]:
        kd, vd, ks = self.key_codec.decode_array, self._vh.decode_array, self.map.key_size
        for kb, vb, n in self._batches():
            yield from zip(kd(kb, n, ks), vd(vb, n))

    def update(self, *args: Any, flags: int = UpdateFlags.ANY, **kwargs: Any) -> None:
        """``update(key, value, flags=0)`` writes one element; ``update(mapping_or_pairs)``
        writes many through one batch call (element by element where the map has none).

        flags: ``bpf.UpdateFlags.NOEXIST`` (KeyExistsError if present), ``EXIST``
        (KeyNotFoundError if absent), ``ANY``.
        """
        if len(args) in (2, 3):
            if kwargs:
                raise TypeError("update(key, value, flags) takes no other keywords")
            if len(args) == 3:
                flags = args[2]
            self._update(self._ek(args[0]), self._ev(args[1]), flags)
            return
        if len(args) > 3:
            raise TypeError(f"update() takes at most 3 positional arguments ({len(args)} "
                            "given)")
        pairs: list[tuple[Any, Any]] = []
        if args:
            other = args[0]
            if hasattr(other, "keys"):
                pairs.extend((k, other[k]) for k in other.keys())
            else:
                pairs.extend(other)
        pairs.extend(kwargs.items())
        self.update_many(pairs, flags=flags)

    def update_many(self, pairs: Iterable[tuple[Any, Any]], flags: int = 0) -> None:
        """Write many (key, value) pairs: both sides encoded at once, one batch call."""
        pairs = list(pairs)
        if not pairs:
            return
        keys = self.key_codec.encode_array([p[0] for p in pairs])
        values = self._vh.encode_array([p[1] for p in pairs])
        _update_batch(self.map, keys, values, len(pairs), flags)

    def update_arrays(self, keys: Any, values: Any, flags: int = 0) -> None:
        """Write numpy arrays of keys and values (per-CPU values: shape ``(n, ncpus)``)
        with one batch call and no Python object per element.

        Integer arrays of another dtype are converted after a range check (OverflowError);
        floats are refused for integer codecs (TypeError).
        """
        kb = self.key_codec.encode_array(keys)
        vb = self._vh.encode_array(values)
        n = len(kb) // self.key_codec.size if self.key_codec.size else 0
        if len(vb) != n * self._vh.size:
            raise ValueError(f"{n} keys but {len(vb) // self._vh.size} values")
        if n:
            _update_batch(self.map, kb, vb, n, flags)

    def clear(self) -> None:
        """Delete every element (batch deletes where the map has them)."""
        self.map.clear()

    def pop(self, key: Any, default: Any = _MISSING) -> Any:
        """Remove *key* and return its value (one lookup-and-delete call where the kernel
        has it); *default*, or KeyError, when absent."""
        kb = self._ek(key)
        try:
            raw = self.map.lookup_and_delete(kb)
        except Exception as e:
            if not _no_batch(e):
                raise
            raw = self._lookup(kb)
            if raw is not None and not self._delete(kb):
                raw = None
        if raw is None:
            if default is _MISSING:
                raise KeyError(key)
            return default
        return self._vunpack(raw)

    def arrays(self) -> tuple[Any, Any]:
        """Return ``(keys, values)`` as numpy arrays, with no Python object per element.

        Per-CPU values have shape ``(n, ncpus)``.  Needs codecs with a numpy dtype (numpy
        dtypes, ``bpf.u32`` ..., scalar struct formats, ctypes structures, ``bpf.cstr``, raw
        bytes); TypeError otherwise.
        """
        import numpy as np

        kdt = self.key_codec.dtype
        vdt = self.value_codec.dtype
        if kdt is None or vdt is None:
            raise TypeError(f"arrays() needs codecs with a numpy dtype; key "
                            f"{self.key_codec.name} or value {self.value_codec.name} has none")
        # The raw map yields a fresh buffer per batch: keep them and copy once, into the
        # result, by np.concatenate.
        kparts, vparts = [], []
        total = 0
        for kb, vb, n in self._batches():
            kparts.append(np.frombuffer(kb, kdt, count=n))
            vparts.append((kb, vb, n))
            total += n
        keys = np.concatenate(kparts) if kparts else np.zeros(0, kdt)
        vh = self._vh
        if isinstance(vh, PerCPUCodec):
            vs = [vh.view(vb, n) for _, vb, n in vparts]
            values = np.concatenate(vs) if vs else np.zeros((0, vh.ncpus), vdt)
        else:
            vl = [np.frombuffer(vb, vdt, count=n) for _, vb, n in vparts]
            values = np.concatenate(vl) if vl else np.zeros(0, vdt)
        return keys, values


class _View:
    """A re-iterable view of a typed map's keys, values or items, read in batches.

    It has no ``len()`` on purpose: the kernel keeps no count, so ``len`` would cost a whole
    extra walk of the map -- and ``list(view)`` would pay it before walking again.  Use
    ``len(t)`` when you want the count.
    """

    __slots__ = ("_mapping", "_kind")

    def __init__(self, mapping: Any, kind: str) -> None:
        mapping.map.fileno()  # ValueError now for a closed map, not at the first next()
        self._mapping = mapping
        self._kind = kind

    def __iter__(self) -> Iterator[Any]:
        m = self._mapping
        if self._kind == "keys":
            return iter(m)  # type: ignore[no-any-return]
        if self._kind == "values":
            return m._iter_values()  # type: ignore[no-any-return]
        return m._iter_items()  # type: ignore[no-any-return]

    def __contains__(self, x: Any) -> bool:
        m = self._mapping
        if self._kind == "keys":
            return x in m
        if self._kind == "items":
            try:
                k, v = x
            except (TypeError, ValueError):
                return False
            try:
                return bool(m[k] == v)
            except (KeyError, TypeError, ValueError, OverflowError):
                return False
        return any(v == x for v in self)

    def __repr__(self) -> str:
        return f"<{self._kind} of {self._mapping!r}>"


def _update_batch(m: Any, keys: bytes, values: bytes, n: int, flags: int) -> None:
    """One batch update; element by element where the map type refuses batches, starting
    after the elements the kernel reports done (``.count`` of the error)."""
    try:
        if flags:
            m.update_batch(keys, values, flags=flags)
        else:
            m.update_batch(keys, values)
        return
    except Exception as e:
        if not _no_batch(e):
            raise
        start = getattr(e, "count", 0) or 0
    ks, vs = len(keys) // n, len(values) // n
    for i in range(start, n):
        m.update(keys[i * ks:(i + 1) * ks], values[i * vs:(i + 1) * vs], flags)


def _sized(spec: Any, what: str) -> Codec:
    if spec is None or spec is bytes:
        raise TypeError(f"create() needs a {what} codec with a size (bpf.u32, \"I\", "
                        f"bpf.raw(n) ...), not {spec!r}")
    return as_codec(spec)


def _create(cls: Any, map_type: int, key_size: int, value_size: int, max_entries: int,
            key: Any, value: Any, **kwargs: Any) -> Any:
    m = _Map().create(map_type, key_size=key_size, value_size=value_size,
                      max_entries=max_entries, **kwargs)
    try:
        return cls(m, key=key, value=value)
    except BaseException:
        m.close()
        raise


class HashMap(_DictMap):
    """A HASH map as a mutable mapping: ``t[k] = v``, ``t[k]``, ``del t[k]``, iteration."""

    map_types = (MapType.HASH,)
    _create_type = MapType.HASH

    @classmethod
    def create(cls, key: Any, value: Any, max_entries: int, *, flags: int = 0,
               name: str | None = None, **kwargs: Any) -> Any:
        """Create a map of this class's type sized by the *key* and *value* codecs."""
        kc, vc = _sized(key, "key"), _sized(value, "value")
        return _create(cls, cls._create_type, kc.size, vc.size, max_entries, kc, vc,
                       flags=flags, name=name, **kwargs)


class LRUHashMap(HashMap):
    """An LRU_HASH map: a hash map whose least recently used elements make room."""

    map_types = (MapType.LRU_HASH,)
    _create_type = MapType.LRU_HASH


class _Reductions:
    """sum/min/max over the per-CPU values of one element."""

    if TYPE_CHECKING:
        def __getitem__(self, key: Any) -> Any: ...

    def sum(self, key: Any) -> Any:
        """Return the sum of *key*'s per-CPU values."""
        return sum(self[key])

    def max(self, key: Any) -> Any:
        """Return the largest of *key*'s per-CPU values."""
        return max(self[key])

    def min(self, key: Any) -> Any:
        """Return the smallest of *key*'s per-CPU values."""
        return min(self[key])

    def reduce(self, key: Any, function: Callable[[Any, Any], Any],
               initial: Any = _MISSING) -> Any:
        """Fold *key*'s per-CPU values with *function* (as functools.reduce)."""
        import functools

        vals = self[key]
        if initial is _MISSING:
            return functools.reduce(function, vals)
        return functools.reduce(function, vals, initial)


class PerCPUHashMap(_Reductions, HashMap):
    """A PERCPU_HASH map: each value is a list with one entry per possible CPU; updates take
    such a list or one value copied to every CPU."""

    map_types = (MapType.PERCPU_HASH,)
    _create_type = MapType.PERCPU_HASH
    _percpu = True

    def sums(self) -> dict[Any, Any]:
        """Return ``{key: sum of its per-CPU values}`` for every element (one walk)."""
        return {k: sum(v) for k, v in self._iter_items()}


class LRUPerCPUHashMap(PerCPUHashMap):
    """An LRU_PERCPU_HASH map."""

    map_types = (MapType.LRU_PERCPU_HASH,)
    _create_type = MapType.LRU_PERCPU_HASH


# ---- arrays ------------------------------------------------------------------------------

class _ValueSized(TypedMap):
    """Maps whose create() takes only a value codec: arrays (u32 keys) and keyless maps."""

    _create_key_size = 0

    @classmethod
    def create(cls, max_entries: int, value: Any, *, flags: int = 0,
               name: str | None = None, **kwargs: Any) -> Any:
        """Create a map of *max_entries* values sized by the *value* codec."""
        vc = _sized(value, "value")
        return _create(cls, cls._create_type, cls._create_key_size, vc.size, max_entries,
                       None, vc, flags=flags, name=name, **kwargs)


class ArrayMap(_ValueSized, Sequence):  # type: ignore[type-arg]
    """An ARRAY map as a fixed-length sequence: ``a[i]``, negative indexes, slices,
    ``a[i] = v``, ``len(a)`` (``max_entries``), iteration in index order.

    Elements cannot be deleted (an array always holds ``max_entries`` values, zero at
    creation).  ``values()`` and ``set_all()`` use one batch walk or call.
    """

    map_types = (MapType.ARRAY,)
    _create_type = MapType.ARRAY
    _create_key_size = 4
    _default_key = u32

    def _index(self, i: Any) -> int:
        n = self.map.max_entries
        try:
            j = i.__index__()
        except AttributeError:
            raise TypeError(f"{type(self).__name__} indices must be integers or slices, not "
                            f"{type(i).__name__}") from None
        if j < 0:
            j += n
        if not 0 <= j < n:
            raise IndexError(f"index {i} out of range for {n} elements")
        return j

    def __len__(self) -> int:
        self.map.fileno()  # ValueError once closed (max_entries is cached)
        return int(self.map.max_entries)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            n = self.map.max_entries
            idx = range(*i.indices(n))
            if len(idx) * 8 > n:  # a good part of the array: one batch walk is cheaper
                return self.values()[i]
            lookup, kpack, unpack = self._lookup, self._kpack, self._vunpack
            return [unpack(lookup(kpack(j))) for j in idx]
        raw = self._lookup(self._kpack(self._index(i)))
        if raw is None:  # pragma: no cover - arrays always hold every index
            raise IndexError(i)
        return self._vunpack(raw)

    def __setitem__(self, i: Any, value: Any) -> None:
        if isinstance(i, slice):
            idx = range(*i.indices(self.map.max_entries))
            vals = list(value)
            if len(vals) != len(idx):
                raise ValueError(f"cannot assign {len(vals)} values to a slice of "
                                 f"{len(idx)} elements of a fixed-size array map")
            if vals:
                _update_batch(self.map, self.key_codec.encode_array(idx),
                              self._vh.encode_array(vals), len(vals), 0)
            return
        try:
            vb = self._vpack(value)
        except Exception:
            vb = self._vh.encode(value)
        self._update(self._kpack(self._index(i)), vb, 0)

    def update(self, index: Any, value: Any, flags: int = UpdateFlags.ANY) -> None:
        """Write one element with update *flags* (``EXIST`` and ``ANY`` make sense here)."""
        self._update(self._kpack(self._index(index)), self._ev(value), flags)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.values())

    def values(self) -> list[Any]:
        """Return every value, in index order, from one batch walk."""
        vd = self._vh.decode_array
        out: list[Any] = []
        for _, vb, n in self._batches():
            out.extend(vd(vb, n))
        return out

    def set_all(self, values: Iterable[Any]) -> None:
        """Write all ``len(self)`` values at once (one batch call); a numpy array with the
        codec's dtype is written without per-element conversion."""
        n = self.map.max_entries
        try:
            count = len(values)  # type: ignore[arg-type]
        except TypeError:
            values = list(values)
            count = len(values)
        if count != n:
            raise ValueError(f"set_all() takes exactly {n} values, got {count}")
        _update_batch(self.map, self.key_codec.encode_array(range(n)),
                      self._vh.encode_array(values), n, 0)

    def array(self) -> Any:
        """Return every value as one numpy array (shape ``(n, ncpus)`` for per-CPU)."""
        import numpy as np

        vdt = self.value_codec.dtype
        if vdt is None:
            raise TypeError(f"array() needs a value codec with a numpy dtype; "
                            f"{self.value_codec.name} has none")
        vh = self._vh
        if isinstance(vh, PerCPUCodec):
            parts = [vh.view(vb, n) for _, vb, n in self._batches()]
            return np.concatenate(parts) if parts else np.zeros((0, vh.ncpus), vdt)
        parts = [np.frombuffer(vb, vdt, count=n) for _, vb, n in self._batches()]
        return np.concatenate(parts) if parts else np.zeros(0, vdt)

    def freeze(self) -> None:
        """Make the map read-only for user space (BPF programs may still write)."""
        self.map.freeze()



class PerCPUArrayMap(_Reductions, ArrayMap):
    """A PERCPU_ARRAY map: a sequence whose elements are lists of one value per possible CPU."""

    map_types = (MapType.PERCPU_ARRAY,)
    _create_type = MapType.PERCPU_ARRAY
    _percpu = True


# ---- LPM trie ----------------------------------------------------------------------------

class LPMKeyCodec(Codec):
    """``struct bpf_lpm_trie_key``: a u32 prefix length then ``data_size`` address bytes.

    Encodes ``(prefix_len, address)`` with address as bytes, ``ipaddress.IPv4Address`` /
    ``IPv6Address`` or a string; an ``IPv4Network``/``IPv6Network``; or a plain address
    (full-length prefix).  Decodes to ``(prefix_len, address)``, the address as an
    ``IPv4Address``/``IPv6Address`` for 4/16-byte data, else bytes.
    """

    def __init__(self, data_size: int) -> None:
        self.data_size = data_size
        self.size = 4 + data_size
        self.bits = data_size * 8
        self.name = f"lpm({data_size})"
        self._addr: Any = {4: ipaddress.IPv4Address, 16: ipaddress.IPv6Address}.get(data_size)

    def _address(self, a: Any) -> bytes:
        if isinstance(a, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
            b = a.packed
        elif isinstance(a, str):
            try:
                b = ipaddress.ip_address(a).packed
            except ValueError as e:
                raise ValueError(f"LPM key address: {e}") from None
        elif isinstance(a, (bytes, bytearray, memoryview)):
            b = bytes(a)
        else:
            raise TypeError(f"an LPM key address is bytes, an ipaddress address or a str, "
                            f"not {type(a).__name__}")
        if len(b) != self.data_size:
            raise ValueError(f"LPM key address {a!r} is {len(b)} bytes, the trie's are "
                             f"{self.data_size}")
        return b

    def encode(self, value: Any) -> bytes:
        if isinstance(value, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
            plen, data = value.prefixlen, self._address(value.network_address)
        elif isinstance(value, tuple):
            if len(value) != 2:
                raise ValueError(f"an LPM key is (prefix_len, address), not {value!r}")
            plen, data = value[0], self._address(value[1])
            if not isinstance(plen, int) or isinstance(plen, bool):
                raise TypeError(f"LPM prefix length must be int, not {type(plen).__name__}")
        else:
            plen, data = self.bits, self._address(value)
        if not 0 <= plen <= self.bits:
            raise ValueError(f"LPM prefix length {plen} is outside 0..{self.bits}")
        return u32.encode(plen) + data

    def decode(self, buf: Any) -> tuple[int, Any]:
        b = bytes(memoryview(buf).cast("B")[: self.size])
        data = b[4:]
        return u32.decode(b), (self._addr(data) if self._addr else data)

    def decode_array(self, buf: Any, n: int, stride: int | None = None) -> list[Any]:
        stride = stride or self.size
        b = bytes(memoryview(buf).cast("B")[: n * stride])
        plens = u32.decode_array(b, n, stride)
        size, a = self.size, self._addr
        datas = [b[i + 4:i + size] for i in range(0, n * stride, stride)]
        if a is not None:
            datas = list(map(a, datas))
        return list(zip(plens, datas))


class LPMTrieMap(_DictMap):
    """An LPM_TRIE map keyed by ``(prefix_len, address)`` or ``ipaddress`` networks.

    ``t[(16, "10.1.0.0")] = v`` stores a prefix; :meth:`lookup` finds the longest prefix
    holding a plain address.  Item access uses the kernel's lookup, which is itself a
    longest-prefix match among the stored prefixes no longer than the key's (so is ``in``);
    ``del`` removes exactly the given prefix.  Keys come back as ``(prefix_len, address)``.
    """

    map_types = (MapType.LPM_TRIE,)

    def _default_key_for(self, map: Any) -> Any:
        if map.key_size <= 4:
            raise ValueError(f"LPM trie key_size {map.key_size} leaves no address bytes")
        return LPMKeyCodec(map.key_size - 4)

    def lookup(self, address: Any, default: Any = None) -> Any:
        """Return the value of the longest stored prefix containing *address* (bytes,
        ipaddress address or str), or *default*."""
        kc = self.key_codec
        if isinstance(kc, LPMKeyCodec) and not isinstance(address, tuple):
            kb = u32.encode(kc.bits) + kc._address(address)
        else:
            kb = self._ek(address)
        raw = self._lookup(kb)
        return default if raw is None else self._vunpack(raw)

    @classmethod
    def create(cls, max_entries: int, value: Any, *, data_size: int = 4, key: Any = None,
               flags: int = MapFlags.NO_PREALLOC, name: str | None = None,
               **kwargs: Any) -> Any:
        """Create a trie of ``data_size``-byte addresses (4: IPv4, 16: IPv6).  The kernel
        requires ``BPF_F_NO_PREALLOC``, the default *flags*."""
        vc = _sized(value, "value")
        kc = as_codec(key) if key is not None else LPMKeyCodec(data_size)
        return _create(cls, MapType.LPM_TRIE, kc.size, vc.size, max_entries, kc, vc,
                       flags=flags, name=name, **kwargs)


# ---- queue, stack, bloom filter -----------------------------------------------------------

class _KeylessMap(_ValueSized):
    _default_key = _EMPTY

    def __init__(self, map: Any, key: Any = None, value: Any = None) -> None:
        if key not in (None, _EMPTY):
            raise TypeError(f"{type(self).__name__} has no keys; give only value=")
        super().__init__(map, None, value)

    _create_type = MapType.QUEUE


class QueueMap(_KeylessMap):
    """A QUEUE map (FIFO): ``push(v)``, ``pop()``, ``peek()``; iterating pops until empty.

    ``len()`` is unavailable: the kernel does not report how many values a queue holds.
    """

    map_types = (MapType.QUEUE,)
    _create_type = MapType.QUEUE
    _what = "queue"

    def push(self, value: Any, flags: int = UpdateFlags.ANY) -> None:
        """Add *value*; with ``flags=bpf.UpdateFlags.EXIST`` a full map drops its oldest
        value to make room, otherwise a full map raises BPFError (E2BIG)."""
        self._update(None, self._ev(value), flags)

    def pop(self, default: Any = _MISSING) -> Any:
        """Remove and return the next value; *default*, or IndexError, when empty."""
        raw = self.map.lookup_and_delete(None)
        if raw is None:
            if default is _MISSING:
                raise IndexError(f"pop from an empty {self._what} map")
            return default
        return self._vunpack(raw)

    def peek(self, default: Any = _MISSING) -> Any:
        """Return the next value without removing it; *default*, or IndexError, when empty."""
        raw = self._lookup(None)
        if raw is None:
            if default is _MISSING:
                raise IndexError(f"peek into an empty {self._what} map")
            return default
        return self._vunpack(raw)

    def __iter__(self) -> Iterator[Any]:
        """Pop values until the map is empty (this drains it)."""
        pop = self.map.lookup_and_delete
        unpack = self._vunpack
        while True:
            raw = pop(None)
            if raw is None:
                return
            yield unpack(raw)

    def __len__(self) -> int:
        raise TypeError(f"len() is unavailable for a {self._what} map: the kernel does not "
                        "report how many values it holds (use peek() to test for emptiness)")

    def __bool__(self) -> bool:
        """True when a value is waiting (a peek; another consumer may take it meanwhile)."""
        return self._lookup(None) is not None


class StackMap(QueueMap):
    """A STACK map (LIFO): ``push(v)``, ``pop()``, ``peek()``; iterating pops until empty."""

    map_types = (MapType.STACK,)
    _create_type = MapType.STACK
    _what = "stack"


class BloomFilterMap(_KeylessMap):
    """A BLOOM_FILTER map: ``add(v)`` and ``v in b`` (false positives possible, false
    negatives not); values cannot be listed or removed."""

    map_types = (MapType.BLOOM_FILTER,)
    _create_type = MapType.BLOOM_FILTER

    def add(self, value: Any) -> None:
        """Add *value* to the filter."""
        self._update(None, self._ev(value), 0)

    def __contains__(self, value: Any) -> bool:
        # The kernel reads the value to test from the lookup's value buffer.
        buf = bytearray(self._ev(value))
        return bool(self.map.lookup_into(None, buf))

    @classmethod
    def create(cls, max_entries: int, value: Any, *, hashes: int | None = None,
               flags: int = 0, name: str | None = None, **kwargs: Any) -> Any:
        """Create a filter for about *max_entries* values; *hashes* (1-15, kernel default
        5) is the number of hash functions (``map_extra``)."""
        if hashes is not None:
            if not 1 <= hashes <= 15:
                raise ValueError(f"hashes must be in 1..15, not {hashes}")
            kwargs["map_extra"] = hashes
        return super().create(max_entries, value, flags=flags, name=name, **kwargs)


# ---- maps of maps, program arrays ----------------------------------------------------------

class _FdMap(_DictMap):
    """Slots set with an fd-owning object (or an fd int) that read back as kernel ids."""

    _what = "map"

    def __init__(self, map: Any, key: Any = None, value: Any = None) -> None:
        if value is not None:
            raise TypeError(f"{type(self).__name__} values are {self._what}s; no value codec")
        super().__init__(map, key, _FdCodec(self._what))

    def arrays(self) -> tuple[Any, Any]:
        """Return ``(keys, ids)`` as numpy arrays."""
        return super().arrays()


class _MapsOfMaps(_FdMap):
    def get_map(self, key: Any) -> Any:
        """Open the inner map at *key* as a new :class:`bpf.Map` (the caller closes it);
        KeyError when the slot is empty."""
        return _Map().from_id(self[key])

    @classmethod
    def create(cls, max_entries: int, inner_map: Any, *, key: Any = None, flags: int = 0,
               name: str | None = None, **kwargs: Any) -> Any:
        """Create a map of maps shaped like *inner_map* (a Map, or the keyword arguments
        of ``Map.create`` for a template)."""
        if isinstance(inner_map, TypedMap):
            inner_map = inner_map.map
        kc = _sized(key if key is not None else cls._default_key or u32, "key")
        m = _Map().create(cls._create_type, key_size=kc.size, value_size=4,
                          max_entries=max_entries, flags=flags, name=name,
                          inner_map=inner_map, **kwargs)
        try:
            return cls(m, key=kc)
        except BaseException:
            m.close()
            raise


class ArrayOfMaps(_MapsOfMaps):
    """An ARRAY_OF_MAPS map: ``a[i] = inner`` (a Map or an fd), ``a[i]`` is the inner map's
    id, ``a.get_map(i)`` opens it; ``del a[i]`` empties the slot.  Iteration lists the
    filled slots."""

    map_types = (MapType.ARRAY_OF_MAPS,)
    _create_type = MapType.ARRAY_OF_MAPS
    _default_key = u32


class HashOfMaps(_MapsOfMaps):
    """A HASH_OF_MAPS map: keys through the key codec, values set with a Map or an fd and
    read back as inner map ids."""

    map_types = (MapType.HASH_OF_MAPS,)
    _create_type = MapType.HASH_OF_MAPS

    @classmethod
    def create(cls, max_entries: int, inner_map: Any, *, key: Any = u32, flags: int = 0,
               name: str | None = None, **kwargs: Any) -> Any:
        return super().create(max_entries, inner_map, key=key, flags=flags, name=name,
                              **kwargs)


class ProgArrayMap(_FdMap):
    """A PROG_ARRAY map for tail calls: ``p[i] = prog`` (a Program or an fd), ``p[i]`` is
    the program's id, ``del p[i]`` empties the slot."""

    map_types = (MapType.PROG_ARRAY,)
    _default_key = u32
    _what = "program"

    def get_program(self, key: Any) -> Any:
        """Open the program at *key* as a new :class:`bpf.Program` (the caller closes it)."""
        from .programs import Program  # the module; bpf.programs is the listing function

        return Program.from_id(self[key])

    @classmethod
    def create(cls, max_entries: int, *, flags: int = 0, name: str | None = None,
               **kwargs: Any) -> Any:
        """Create a program array of *max_entries* slots."""
        m = _Map().create(MapType.PROG_ARRAY, key_size=4, value_size=4,
                          max_entries=max_entries, flags=flags, name=name, **kwargs)
        try:
            return cls(m)
        except BaseException:
            m.close()
            raise


class _StreamMap(TypedMap):
    """A map user space does not read element by element: it is the channel of a reader
    (bpf.RingBuffer, bpf.PerfBuffer) or writer (bpf.UserRingBuffer)."""

    def __init__(self, map: Any, key: Any = None, value: Any = None) -> None:
        if isinstance(map, TypedMap):
            map = map.map
        map.fileno()  # ValueError for a closed map
        if map.type not in self.map_types:
            names = ", ".join(MapType(t).name for t in self.map_types)
            raise TypeError(f"{type(self).__name__} wraps {names} maps, not "
                            f"{_type_name(map.type)}")
        if key is not None or value is not None:
            raise TypeError(f"{type(self).__name__} has no key or value codec; give the "
                            "record codec to its reader")
        self.map = map

    def __repr__(self) -> str:
        state = "closed" if self.map.closed else \
            f"id={self.map.id} max_entries={self.map.max_entries}"
        return f"<bpf.{type(self).__name__} {state}>"


def _ring_size(size: int) -> int:
    page = _os.sysconf("SC_PAGE_SIZE")
    if size < page or size & (size - 1):
        raise ValueError(f"a ring buffer's size must be a power of two and at least a page "
                         f"({page} bytes), got {size}")
    return size


class RingBufMap(_StreamMap):
    """A RINGBUF map (BPF → user space).  ``create(size)``; ``reader(callback)`` opens a
    :class:`bpf.RingBuffer` on it."""

    map_types = (MapType.RINGBUF,)

    @classmethod
    def create(cls, size: int, *, name: str | None = None, **kwargs: Any) -> Any:
        """Create a ring buffer of *size* bytes (a power of two, at least a page)."""
        m = _Map().create(cls.map_types[0], max_entries=_ring_size(size), name=name, **kwargs)
        return cls(m)

    def reader(self, callback: Any = None, **kwargs: Any) -> Any:
        """Return a :class:`bpf.RingBuffer` reading this map (keyword arguments as there)."""
        from .events import RingBuffer

        return RingBuffer(self.map, callback, **kwargs)


class UserRingBufMap(RingBufMap):
    """A USER_RINGBUF map (user space → BPF); ``writer()`` opens a
    :class:`bpf.UserRingBuffer` on it."""

    map_types = (MapType.USER_RINGBUF,)

    def reader(self, callback: Any = None, **kwargs: Any) -> Any:
        raise TypeError("a USER_RINGBUF map is written from user space: use writer()")

    def writer(self) -> Any:
        """Return a :class:`bpf.UserRingBuffer` writing into this map."""
        from .events import UserRingBuffer

        return UserRingBuffer(self.map)


class PerfEventArrayMap(_StreamMap):
    """A PERF_EVENT_ARRAY map: one slot per CPU for perf event fds.  ``reader(callback)``
    opens a :class:`bpf.PerfBuffer`, which fills the slots itself; ``p[i] = event`` (a
    perf event object or fd) and ``del p[i]`` set slots by hand."""

    map_types = (MapType.PERF_EVENT_ARRAY,)

    @classmethod
    def create(cls, max_entries: int | None = None, *, name: str | None = None,
               **kwargs: Any) -> Any:
        """Create one with a slot per possible CPU (or *max_entries* slots)."""
        n = _bpf.possible_cpus() if max_entries is None else max_entries
        m = _Map().create(cls.map_types[0], key_size=4, value_size=4, max_entries=n,
                          name=name, **kwargs)
        return cls(m)

    def __len__(self) -> int:
        self.map.fileno()  # ValueError once closed (max_entries is cached)
        return int(self.map.max_entries)

    def __setitem__(self, index: int, event: Any) -> None:
        fd = event if isinstance(event, int) else event.fileno()
        self.map.update(_struct.pack("<I", index), _struct.pack("<i", fd))

    def __delitem__(self, index: int) -> None:
        if not self.map.delete(_struct.pack("<I", index)):
            raise KeyError(index)

    def reader(self, callback: Any = None, lost_callback: Any = None, **kwargs: Any) -> Any:
        """Return a :class:`bpf.PerfBuffer` reading this map (keyword arguments as there)."""
        from .events import PerfBuffer

        return PerfBuffer(self.map, callback, lost_callback, **kwargs)


_CLASSES: dict[int, Any] = {
    MapType.HASH: HashMap,
    MapType.LRU_HASH: LRUHashMap,
    MapType.ARRAY: ArrayMap,
    MapType.PERCPU_HASH: PerCPUHashMap,
    MapType.LRU_PERCPU_HASH: LRUPerCPUHashMap,
    MapType.PERCPU_ARRAY: PerCPUArrayMap,
    MapType.LPM_TRIE: LPMTrieMap,
    MapType.QUEUE: QueueMap,
    MapType.STACK: StackMap,
    MapType.BLOOM_FILTER: BloomFilterMap,
    MapType.ARRAY_OF_MAPS: ArrayOfMaps,
    MapType.HASH_OF_MAPS: HashOfMaps,
    MapType.PROG_ARRAY: ProgArrayMap,
    MapType.RINGBUF: RingBufMap,
    MapType.USER_RINGBUF: UserRingBufMap,
    MapType.PERF_EVENT_ARRAY: PerfEventArrayMap,
}


def typed_view(map: Any, key: Any = None, value: Any = None) -> TypedMap:
    """Return the typed class fitting ``map.type`` wrapped around *map* (shared, not dup'ed).

    Raises TypeError for a map type without a typed class and ValueError when a codec's size
    differs from the map's.
    """
    cls = _CLASSES.get(map.type)
    if cls is None:
        raise TypeError(f"no typed view for {_type_name(map.type)} maps; use the raw "
                        "bytes API of bpf.Map")
    return cls(map, key=key, value=value)  # type: ignore[no-any-return]

"""BPF maps: :class:`Map`, the fd-owning map with the kernel's raw operations on bytes.

The element operations (``lookup``, ``lookup_into``, ``update``, ``delete``, ``next_key``,
``lookup_and_delete``, the batch calls, ``m[k]``, ``k in m``, ``m.get``) are C methods of
``bpf._bpf.Map``: calling them runs no Python code.  This module adds what needs no speed:
enum-typed attributes, creation policy (storage maps need BTF, ``inner_map`` given as
parameters), iteration, ``len()``, and the typed views.
"""

from __future__ import annotations

import errno
import re
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from . import _bpf
from .enums import MapFlags, MapType
from .introspect import MapInfo

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["Map", "unpin"]

unpin = _bpf.unpin

_ENOTSUPP = 524

# Types whose batch cursor is a hash bucket (the htab family): deleting or adding keys during
# a dump never makes the kernel start over.
_HASH_FAMILY = frozenset({MapType.HASH, MapType.PERCPU_HASH, MapType.LRU_HASH,
                          MapType.LRU_PERCPU_HASH, MapType.HASH_OF_MAPS})
# Types whose keys are indexes: next_key(i) is i + 1 whatever happens to the map.
_INDEXED = frozenset({MapType.ARRAY, MapType.PERCPU_ARRAY, MapType.PROG_ARRAY,
                      MapType.PERF_EVENT_ARRAY, MapType.CGROUP_ARRAY, MapType.ARRAY_OF_MAPS,
                      MapType.DEVMAP, MapType.CPUMAP, MapType.XSKMAP, MapType.SOCKMAP,
                      MapType.REUSEPORT_SOCKARRAY})
# Every index of these exists from creation on, so len() is max_entries.
_ALWAYS_FULL = frozenset({MapType.ARRAY, MapType.PERCPU_ARRAY})
_STORAGE = frozenset({MapType.SK_STORAGE, MapType.INODE_STORAGE, MapType.TASK_STORAGE,
                      MapType.CGRP_STORAGE})
_NAME_OK = re.compile(r"^[A-Za-z0-9_.]*$")

# What the kernel asks of each type, added to EINVAL from create().
_CREATE_RULES: dict[int, str] = {
    MapType.ARRAY: "key_size must be 4",
    MapType.PERCPU_ARRAY: "key_size must be 4",
    MapType.PROG_ARRAY: "key_size and value_size must be 4",
    MapType.PERF_EVENT_ARRAY: "key_size and value_size must be 4",
    MapType.CGROUP_ARRAY: "key_size and value_size must be 4",
    MapType.ARRAY_OF_MAPS: "key_size and value_size must be 4, and inner_map is required",
    MapType.HASH_OF_MAPS: "value_size must be 4, and inner_map is required",
    MapType.LPM_TRIE: "flags must include MapFlags.NO_PREALLOC, key_size = 4 + prefix bytes",
    MapType.STACK_TRACE: "key_size must be 4, value_size a multiple of 8",
    MapType.QUEUE: "key_size must be 0",
    MapType.STACK: "key_size must be 0",
    MapType.BLOOM_FILTER: "key_size must be 0, map_extra (hash count) at most 15",
    MapType.RINGBUF: "key_size and value_size 0, max_entries a power-of-2 multiple of the "
                     "page size",
    MapType.USER_RINGBUF: "key_size and value_size 0, max_entries a power-of-2 multiple of "
                          "the page size",
    MapType.ARENA: "key_size and value_size 0, flags must include MapFlags.MMAPABLE, "
                   "max_entries = pages",
    MapType.CPUMAP: "key_size 4, value_size 4 or 8, max_entries at most possible CPUs",
    MapType.DEVMAP: "key_size 4, value_size 4 or 8",
    MapType.DEVMAP_HASH: "key_size 4, value_size 4 or 8",
    MapType.SOCKMAP: "key_size 4, value_size 4 or 8",
    MapType.SOCKHASH: "value_size 4 or 8",
    MapType.XSKMAP: "key_size and value_size must be 4",
}


def _default_chunk(entry_bytes: int) -> int:
    # 256..4096 entries, capped at ~4 MiB of buffer for big per-CPU values.
    return max(256, min(4096, (4 << 20) // max(1, entry_bytes)))


class Map(_bpf.Map):
    """A BPF map, owning its fd; raw bytes in and out, dict protocol over bytes.

    Make one with :meth:`create`, :meth:`from_fd`, :meth:`from_pin` or :meth:`from_id`.
    Closing the object closes its fd; the kernel map lives on while other fds, pins or
    programs hold it.  Element operations raise :class:`bpf.KeyNotFoundError` (also a
    ``KeyError``) for a missing key where the call cannot say "absent" otherwise,
    ``ValueError`` for a key or value of the wrong size or on a closed map, ``TypeError``
    for an object that is not bytes-like.
    """

    @classmethod
    def create(  # type: ignore[override]
        cls,
        map_type: int,
        key_size: int = 0,
        value_size: int = 0,
        max_entries: int = 0,
        flags: int = 0,
        name: str | None = None,
        *,
        inner_map: _bpf.Map | Mapping[str, Any] | int | None = None,
        numa_node: int = -1,
        map_extra: int = 0,
        btf: Any = None,
        btf_key_type_id: int = 0,
        btf_value_type_id: int = 0,
        btf_vmlinux_value_type_id: int = 0,
        value_type_btf_obj: Any = None,
        ifindex: int = 0,
        token: Any = None,
    ) -> Self:
        """Create a kernel map of *map_type* and return it, owning the fd.

        *flags* are :class:`MapFlags` (``RDONLY``/``WRONLY`` restrict what user space may
        do through any fd; ``NO_PREALLOC``, ``MMAPABLE``...).  *inner_map* (map-in-map types)
        is a :class:`Map`, an fd, or a dict of ``create()`` arguments for a template map made
        and closed here.  *numa_node* >= 0 places the map on that node.  Storage maps
        (SK/INODE/TASK/CGRP_STORAGE) need *btf* with *btf_key_type_id* (an int) and
        *btf_value_type_id*; ``key_size`` defaults to 4 and ``NO_PREALLOC`` is added for them.
        Raises ``ValueError`` for a bad name or missing BTF, :class:`bpf.BPFError` (EINVAL
        with what the type requires) when the kernel refuses the attributes.
        """
        map_type = int(map_type)
        if name is not None and not _NAME_OK.match(name):
            raise ValueError(f"map name {name!r} may only hold letters, digits, '_' and '.'")
        if map_type in _STORAGE:
            if btf is None or not btf_key_type_id or not btf_value_type_id:
                raise ValueError(
                    f"{MapType(map_type).name} maps need BTF for their values: pass btf= "
                    "(a BTF object or fd), btf_key_type_id= (an int type) and "
                    "btf_value_type_id=, e.g. from bpf.BTF.for_map(key_size, value_size)")
            flags |= MapFlags.NO_PREALLOC
            key_size = key_size or 4
        btf, value_type_btf_obj, token = (_fd_of(btf), _fd_of(value_type_btf_obj),
                                          _fd_of(token))
        tmp = None
        if isinstance(inner_map, Mapping):
            tmp = Map.create(**inner_map)
            inner_map = tmp
        try:
            return super().create(
                map_type, key_size, value_size, max_entries, int(flags), name,
                inner_map=inner_map, numa_node=numa_node, map_extra=map_extra, btf=btf,
                btf_key_type_id=btf_key_type_id, btf_value_type_id=btf_value_type_id,
                btf_vmlinux_value_type_id=btf_vmlinux_value_type_id,
                value_type_btf_obj=value_type_btf_obj, ifindex=ifindex, token=token)
        except _bpf.BPFError as e:
            rule = _CREATE_RULES.get(map_type)
            if e.errno == errno.EINVAL and rule and type(e) is _bpf.BPFError:
                err = _bpf.BPFError(e.errno, f"{e.strerror} [{MapType(map_type).name}: {rule}]")
                err.operation = e.operation
                raise err from None
            raise
        finally:
            if tmp is not None:
                tmp.close()

    # -- attributes ---------------------------------------------------------------------------
    @property  # type: ignore[override]
    def type(self) -> MapType | int:
        """The map type, a :class:`MapType` (an int for types newer than this module)."""
        t = _bpf.Map.type.__get__(self)  # type: ignore[attr-defined]
        try:
            return MapType(t)
        except ValueError:
            return t

    @property  # type: ignore[override]
    def flags(self) -> MapFlags:
        """The ``map_flags`` the map was created with, as :class:`MapFlags`."""
        return MapFlags(_bpf.Map.flags.__get__(self))  # type: ignore[attr-defined]

    def info(self) -> MapInfo:  # type: ignore[override]
        """Read the kernel's current information about this map: a :class:`bpf.MapInfo`, the
        record :func:`bpf.maps` yields, with ``frozen`` (from the fd's fdinfo) filled in."""
        d = super().info()
        d["frozen"] = self._fdinfo().get("frozen") == "1"
        return MapInfo._from_dict(d)

    def _fdinfo(self) -> dict[str, str]:
        out = {}
        with open(f"/proc/self/fdinfo/{self.fileno()}") as f:
            for line in f:
                k, _, v = line.partition(":")
                out[k.strip()] = v.strip()
        return out

    # -- iteration ------------------------------------------------------------------------------
    def iter_batches(self, chunk: int | None = None
                     ) -> Iterator[tuple[memoryview, memoryview, int]]:
        """Yield the map's elements as ``(keys, values, n)`` chunks of packed raw bytes.

        *keys* holds ``n * key_size`` bytes and *values* ``n * raw_value_size`` bytes; each
        chunk is a fresh buffer, safe to keep.  Uses batch lookups (*chunk* elements per
        call, 256..4096 by default, grown when a hash bucket does not fit) where the kernel
        has them for the type, else next_key + lookup.  A key is yielded at most once; see
        docs/maps.md for what concurrent changes do.
        """
        ks, vs = self.key_size, self.raw_value_size
        if ks == 0:
            raise TypeError(f"{self.type.name if isinstance(self.type, MapType) else self.type}"
                            " maps have no keys to iterate")
        if chunk is None:
            chunk = _default_chunk(ks + vs)
        elif chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {chunk}")
        t = self.type
        dedupe = t not in _HASH_FAMILY and t not in _INDEXED
        seen: set[bytes] | None = set() if dedupe else None
        cursor: bytes | None = None
        first = True
        while True:
            kb = bytearray(chunk * ks)
            vb = bytearray(chunk * vs or 1)
            try:
                n, cursor = self.lookup_batch(kb, vb, cursor)
            except _bpf.BPFError as e:
                if e.errno == errno.ENOSPC:
                    chunk *= 2  # a hash bucket holds more than chunk elements
                    continue
                if first and e.errno in (_ENOTSUPP, errno.EOPNOTSUPP):
                    yield from self._iter_next_key(chunk, seen)
                    return
                raise
            first = False
            kv, vv = memoryview(kb), memoryview(vb)
            if seen is not None and n:
                kv, vv, n = _drop_seen(kv, vv, n, ks, vs, seen)
            if n:
                yield kv[: n * ks], vv[: n * vs], n
            if cursor is None:
                return

    def _iter_next_key(self, chunk: int, seen: set[bytes] | None
                       ) -> Iterator[tuple[memoryview, memoryview, int]]:
        # Walk next_key a chunk ahead, then look the chunk up: deleting what was yielded
        # cannot disturb the walk, which is already past it.  Types whose next_key starts
        # over at a missing key (tries, DEVMAP_HASH, SOCKHASH, STACK_TRACE) are deduplicated.
        lookup, next_key = self.lookup, self.next_key
        key = None
        while True:
            keys = []
            for _ in range(chunk):
                key = next_key(key)
                if key is None:
                    break
                if seen is not None:
                    if key in seen:
                        continue
                    seen.add(key)
                keys.append(key)
            ks_out, vs_out = [], []
            for k in keys:
                v = lookup(k)
                if v is not None:  # deleted since the walk saw it
                    ks_out.append(k)
                    vs_out.append(v)
            if ks_out:
                yield (memoryview(b"".join(ks_out)), memoryview(b"".join(vs_out)),
                       len(ks_out))
            if key is None:
                return

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """Yield ``(key, raw_value)`` bytes pairs, in batches (see :meth:`iter_batches`)."""
        split, ks, vs = _bpf._split, self.key_size, self.raw_value_size
        for kb, vb, n in self.iter_batches():
            yield from zip(split(kb, ks, n), split(vb, vs, n))

    def keys(self) -> Iterator[bytes]:
        """Yield the keys as bytes, in batches (see :meth:`iter_batches`)."""
        split, ks = _bpf._split, self.key_size
        for kb, _, n in self.iter_batches():
            yield from split(kb, ks, n)

    def values(self) -> Iterator[bytes]:
        """Yield the raw values as bytes, in batches (see :meth:`iter_batches`)."""
        split, vs = _bpf._split, self.raw_value_size
        for _, vb, n in self.iter_batches():
            yield from split(vb, vs, n)

    __iter__ = keys

    def __len__(self) -> int:
        """Count the entries (ARRAY/PERCPU_ARRAY: max_entries; others: batch lookups)."""
        if self.type in _ALWAYS_FULL:
            if self.closed:
                raise ValueError("operation on closed map")
            return self.max_entries
        if self.key_size == 0:
            raise TypeError(f"len() is not defined for {self.type!r} maps (they have no keys)")
        return sum(n for _, _, n in self.iter_batches())

    def __bool__(self) -> bool:
        # A map object is true even when empty (len() would cost a full dump).
        return True

    def clear(self) -> None:
        """Delete every entry (maps with deletable keys; not ARRAY/PERCPU_ARRAY)."""
        ks = self.key_size
        for kb, _, n in self.iter_batches():
            try:
                self.delete_batch(kb)
                continue
            except _bpf.KeyNotFoundError as e:
                start = getattr(e, "count", 0) + 1  # that one was deleted concurrently
            except _bpf.NotSupportedError:
                start = 0
            for i in range(start, n):
                self.delete(kb[i * ks:(i + 1) * ks])

    # -- typed views ------------------------------------------------------------------------------
    def typed(self, key: Any = None, value: Any = None) -> Any:
        """Return a typed view of this map (codecs for key and value; see bpf.typed)."""
        from .typed import typed_view  # type: ignore[attr-defined]

        return typed_view(self, key=key, value=value)


def _fd_of(obj: Any) -> Any:
    # bpf.BTF (and similar objects) expose .fd rather than fileno(); C takes either form.
    if obj is None or isinstance(obj, int) or hasattr(obj, "fileno"):
        return obj
    fd = getattr(obj, "fd", None)
    return fd if isinstance(fd, int) else obj


def _drop_seen(kv: memoryview, vv: memoryview, n: int, ks: int, vs: int, seen: set[bytes]
               ) -> tuple[memoryview, memoryview, int]:
    keys = _bpf._split(kv, ks, n)
    keep = []
    for i, k in enumerate(keys):
        if k not in seen:
            seen.add(k)
            keep.append(i)
    if len(keep) == n:
        return kv, vv, n
    kout = b"".join(keys[i] for i in keep)
    vout = b"".join(vv[i * vs:(i + 1) * vs] for i in keep)
    return memoryview(kout), memoryview(vout), len(keep)

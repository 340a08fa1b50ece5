"""BTF: the kernel's (and objects') type information.

``bpf.BTF.vmlinux()`` reads the running kernel's types, ``BTF.from_file(path)`` an ELF
object's ``.BTF`` section or a raw BTF file, ``BTF.from_id(id)`` BTF loaded in the kernel.
``btf.find(name)`` describes a type; ``BTF.for_map(key_size, value_size)`` builds and loads
the small BTF that storage maps need for their values.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

from . import _bpf

__all__ = ["BTF", "BTFKind", "BTFType", "BTFMember"]


class BTFKind(enum.IntEnum):
    """``BTF_KIND_*``."""

    UNKN = 0
    INT = 1
    PTR = 2
    ARRAY = 3
    STRUCT = 4
    UNION = 5
    ENUM = 6
    FWD = 7
    TYPEDEF = 8
    VOLATILE = 9
    CONST = 10
    RESTRICT = 11
    FUNC = 12
    FUNC_PROTO = 13
    VAR = 14
    DATASEC = 15
    FLOAT = 16
    DECL_TAG = 17
    TYPE_TAG = 18
    ENUM64 = 19


@dataclasses.dataclass(frozen=True)
class BTFMember:
    """A member of a struct or union; offsets in bits, ``bitfield_size`` 0 for plain fields."""

    name: str
    type_id: int
    bit_offset: int
    bitfield_size: int


@dataclasses.dataclass(frozen=True)
class BTFType:
    """One BTF type.  ``size`` is the byte size where the kind has one (INT, STRUCT, UNION,
    ENUM, DATASEC, FLOAT), ``type_id`` the referenced type for PTR, TYPEDEF, CONST, FUNC,
    VAR...; ``details`` holds the kind-specific rest (members, enumerators, array shape)."""

    id: int
    kind: BTFKind
    name: str
    size: int | None
    type_id: int | None
    details: Any

    @property
    def members(self) -> list[BTFMember]:
        """Struct/union members (empty for other kinds)."""
        if self.kind in (BTFKind.STRUCT, BTFKind.UNION):
            return [BTFMember(*m) for m in self.details]
        return []


_SIZED = {BTFKind.INT, BTFKind.STRUCT, BTFKind.UNION, BTFKind.ENUM, BTFKind.ENUM64,
          BTFKind.DATASEC, BTFKind.FLOAT}


class BTF(_bpf.BTF):
    """BTF parsed by libbpf.  A context manager; ``close()`` frees it (and its kernel fd)."""

    def type(self, type_id: int) -> BTFType:
        """Describe the type with id *type_id* (KeyError if there is none)."""
        kind, name, st, details = self.type_info(type_id)
        k = BTFKind(kind)
        if k in _SIZED:
            return BTFType(type_id, k, name, st, None, details)
        return BTFType(type_id, k, name, None, st if type_id else None, details)

    def find(self, name: str, kind: BTFKind | int | None = None) -> BTFType:
        """Describe the type called *name* (of *kind* if given); KeyError if absent."""
        tid = self.find_id(name) if kind is None else self.find_id(name, int(kind))
        return self.type(tid)

    def size_of(self, type_or_id: BTFType | int) -> int:
        """Return the byte size of a type, following typedefs and modifiers."""
        tid = type_or_id.id if isinstance(type_or_id, BTFType) else type_or_id
        return self.resolve_size(tid)

    def __iter__(self):
        for i in range(1, len(self)):
            yield self.type(i)

    def __repr__(self) -> str:
        if self.closed:
            return "<bpf.BTF closed>"
        return f"<bpf.BTF types={len(self) - 1} fd={self.fd}>"

    @classmethod
    def for_map(cls, key_size: int, value_size: int) -> tuple["BTF", int, int]:
        """Build and load BTF describing an integer key and an opaque value.

        Returns ``(btf, key_type_id, value_type_id)`` for map creation; storage maps
        (SK/INODE/TASK/CGRP_STORAGE) refuse to be created without value BTF.  The caller
        closes *btf* once the map exists (the map keeps its own reference in the kernel).
        """
        if key_size not in (1, 2, 4, 8) or value_size <= 0:
            raise ValueError(f"for_map: key_size must be 1, 2, 4 or 8 and value_size > 0, "
                             f"got {key_size} and {value_size}")
        b = cls.new()
        try:
            key = b.add("int", "int" if key_size == 4 else f"__u{key_size * 8}", key_size, 1)
            byte = b.add("int", "char", 1, 0)
            idx = b.add("int", "__u32", 4, 0)
            arr = b.add("array", byte, idx, value_size)
            val = b.add("struct", "value", value_size)
            b.add("field", "data", arr, 0)
            assert val > 0
            b.load()
        except BaseException:
            b.close()
            raise
        return b, key, val

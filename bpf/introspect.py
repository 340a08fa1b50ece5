"""Iterate what is loaded in the kernel: every BPF program and map, by id.

``bpf.programs()`` and ``bpf.maps()`` walk the kernel's id tables (BPF_PROG_GET_NEXT_ID,
BPF_MAP_GET_NEXT_ID) and yield an info record per object.  Each record is a snapshot: it holds
no file descriptor, so nothing needs closing; ``record.open()`` returns a live object (which
does).  Objects that disappear between reading their id and opening them are skipped, so a
walk never fails because another process unloaded something.  Needs CAP_SYS_ADMIN.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator, Union

from . import _bpf
from .enums import MapFlags, MapType
from .programs import ProgramInfo, _enum, _record

__all__ = ["programs", "maps", "MapInfo"]

_PROG, _MAP = 0, 1


def _ids(kind: int) -> Iterator[int]:
    cur = 0
    while True:
        nxt = _bpf._next_id(kind, cur)
        if nxt is None:
            return
        yield nxt
        cur = nxt


def programs() -> Iterator[ProgramInfo]:
    """Yield a :class:`bpf.ProgramInfo` for every program loaded in the kernel, by id.

    Programs unloaded during the walk are skipped.  ``info.open()`` gives a
    :class:`bpf.Program` (to close).  Raises ``BPFPermissionError`` without CAP_SYS_ADMIN.
    """
    for pid in _ids(_PROG):
        d = _bpf._prog_info_by_id(pid)
        if d is not None:
            yield ProgramInfo._from_dict(d)


@dataclasses.dataclass(frozen=True)
class MapInfo:
    """What the kernel reports about a map (``struct bpf_map_info``), without an fd.

    :func:`bpf.maps` yields these, and :meth:`bpf.Map.info` returns one.  ``frozen`` (from
    the fd's fdinfo: the map was made read-only for user space) is only known through an fd:
    it is always False in the records of ``bpf.maps()``.  ``open()`` returns a
    :class:`bpf.Map` holding a new fd (``BPFError`` ENOENT if the map is gone).
    """

    id: int
    name: str
    type: Union[MapType, int]
    key_size: int
    value_size: int
    max_entries: int
    flags: Union[MapFlags, int]
    map_extra: int
    btf_id: int
    btf_key_type_id: int
    btf_value_type_id: int
    btf_vmlinux_value_type_id: int
    btf_vmlinux_id: int
    ifindex: int
    netns_dev: int
    netns_ino: int
    frozen: bool = False

    @classmethod
    def _from_dict(cls, d: dict[str, Any]) -> "MapInfo":
        """From the info dict of _bpf._map_info_by_id (``map_flags``) or of _bpf.Map.info
        (``flags``, plus ``frozen`` added by bpf.Map.info)."""
        d = dict(d)
        d["type"] = _enum(MapType, d["type"])
        d["flags"] = MapFlags(d.pop("map_flags") if "map_flags" in d else d["flags"])
        return _record(cls, d)

    def open(self) -> Any:
        """Open the map by id: a new :class:`bpf.Map` the caller must close."""
        import importlib

        # bpf.maps is this module's maps() function: take the submodule from sys.modules.
        cls = getattr(importlib.import_module(".maps", __package__), "Map", None)
        if cls is None:  # pragma: no cover - only before bpf.Map exists
            raise NotImplementedError("bpf.Map is not available in this build")
        return cls.from_id(self.id)


def maps() -> Iterator[MapInfo]:
    """Yield a :class:`MapInfo` for every map in the kernel, by id.

    Maps freed during the walk are skipped.  ``info.open()`` gives a :class:`bpf.Map`.
    Raises ``BPFPermissionError`` without CAP_SYS_ADMIN.
    """
    for mid in _ids(_MAP):
        d = _bpf._map_info_by_id(mid)
        if d is not None:
            yield MapInfo._from_dict(d)

"""Feature probes: what the running kernel supports, asked of the kernel itself."""

from __future__ import annotations

from . import _bpf
from .enums import MapType, ProgType

__all__ = ["has_map_type", "has_prog_type", "has_helper"]


def has_map_type(map_type: MapType | int) -> bool:
    """Return whether maps of *map_type* can be created here.

    Raises BPFPermissionError when this process may not use bpf() at all.
    """
    return _bpf.probe_map_type(int(map_type))


def has_prog_type(prog_type: ProgType | int) -> bool:
    """Return whether programs of *prog_type* can be loaded here."""
    return _bpf.probe_prog_type(int(prog_type))


def has_helper(prog_type: ProgType | int, helper: int) -> bool:
    """Return whether programs of *prog_type* may call helper number *helper*."""
    return _bpf.probe_helper(int(prog_type), int(helper))

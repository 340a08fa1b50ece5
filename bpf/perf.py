"""perf events: ``bpf.perf_event_open`` and the tracefs lookups that probes need.

A :class:`PerfEvent` owns one perf event fd.  BPF programs of type ``PERF_EVENT`` attach to it
with ``prog.attach_perf_event(ev)``; kprobe/uprobe/tracepoint attachments use the same calls
under the hood (see bpf/links.py).
"""

from __future__ import annotations

import errno
import os
import struct
import warnings
from typing import Any

from . import _bpf

__all__ = ["PerfEvent", "perf_event_open", "tracefs_path"]

# enum perf_type_id
TYPE_HARDWARE = 0
TYPE_SOFTWARE = 1
TYPE_TRACEPOINT = 2
TYPE_HW_CACHE = 3
TYPE_RAW = 4
TYPE_BREAKPOINT = 5

SOFTWARE_EVENTS = {
    "cpu-clock": 0, "task-clock": 1, "page-faults": 2, "context-switches": 3,
    "cpu-migrations": 4, "minor-faults": 5, "major-faults": 6, "alignment-faults": 7,
    "emulation-faults": 8, "dummy": 9, "bpf-output": 10, "cgroup-switches": 11,
}
HARDWARE_EVENTS = {
    "cycles": 0, "instructions": 1, "cache-references": 2, "cache-misses": 3,
    "branches": 4, "branch-misses": 5, "bus-cycles": 6, "stalled-cycles-frontend": 7,
    "stalled-cycles-backend": 8, "ref-cycles": 9,
}

# _IO('$', n) ioctls of linux/perf_event.h
IOC_ENABLE = 0x2400
IOC_DISABLE = 0x2401
IOC_RESET = 0x2403
IOC_SET_BPF = 0x40042408  # _IOW('$', 8, __u32)

# bits of the perf_event_attr flags word
_FLAG_BITS = {"disabled": 0, "inherit": 1, "pinned": 2, "exclusive": 3, "exclude_user": 4,
              "exclude_kernel": 5, "exclude_hv": 6, "exclude_idle": 7, "freq": 10}

# struct perf_event_attr up to PERF_ATTR_SIZE_VER5 (112 bytes)
_ATTR = struct.Struct("<IIQQQQQIIQQQQIiQIHH")


def pack_attr(type: int, config: int = 0, *, sample_period: int = 0, sample_freq: int = 0,
              config1: int = 0, config2: int = 0, wakeup_events: int = 1,
              flags: int = 0) -> bytes:
    """Return a packed ``struct perf_event_attr`` (PERF_ATTR_SIZE_VER5)."""
    period = sample_period
    if sample_freq:
        period = sample_freq
        flags |= 1 << _FLAG_BITS["freq"]
    return _ATTR.pack(type, _ATTR.size, config, period, 0, 0, flags, wakeup_events, 0, config1,
                      config2, 0, 0, 0, 0, 0, 0, 0, 0)


def tracefs_path(required: bool = True) -> str | None:
    """Return where tracefs is mounted (``/sys/kernel/tracing`` or the debugfs copy).

    With *required*, a missing mount raises FileNotFoundError saying how to mount it.
    """
    for p in ("/sys/kernel/tracing", "/sys/kernel/debug/tracing"):
        if os.path.exists(os.path.join(p, "events")):
            return p
    if required:
        raise FileNotFoundError(
            errno.ENOENT, "tracefs is not mounted: run `mount -t tracefs tracefs "
            "/sys/kernel/tracing` (or mount debugfs at /sys/kernel/debug)")
    return None


def tracepoint_id(category: str, name: str) -> int:
    """Return the perf id of tracepoint *category*:*name* (read from tracefs)."""
    base = tracefs_path()
    assert base is not None
    path = os.path.join(base, "events", category, name, "id")
    try:
        with open(path) as f:
            return int(f.read())
    except FileNotFoundError:
        raise FileNotFoundError(
            errno.ENOENT, f"no tracepoint {category}:{name} (the list is in "
            f"{base}/available_events)") from None


def pmu_type(name: str) -> int | None:
    """Return the dynamic PMU type of *name* ("kprobe", "uprobe"), or None if absent."""
    try:
        with open(f"/sys/bus/event_source/devices/{name}/type") as f:
            return int(f.read())
    except OSError:
        return None


def pmu_retprobe_bit(name: str) -> int:
    """Return the config bit that makes a kprobe/uprobe PMU event a return probe."""
    try:
        with open(f"/sys/bus/event_source/devices/{name}/format/retprobe") as f:
            spec = f.read().strip()  # "config:0"
        return int(spec.split(":")[1])
    except (OSError, IndexError, ValueError):
        return 0


class PerfEvent:
    """An open perf event (owns its fd). Close it, or use it as a context manager.

    ``read()`` returns the counter value; ``enable()``/``disable()``/``reset()`` control it.
    Closing it ends the event (and detaches BPF programs attached only through it).
    """

    def __init__(self, fd: int, description: str = "") -> None:
        self._fd = fd
        self.description = description

    @property
    def fd(self) -> int:
        return self.fileno()

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def fileno(self) -> int:
        if self._fd < 0:
            raise ValueError("operation on closed perf event")
        return self._fd

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def detach(self) -> int:
        """Give up ownership and return the fd (the caller must close it)."""
        fd = self.fileno()
        self._fd = -1
        return fd

    def enable(self) -> None:
        _bpf.perf_event_ioctl(self.fileno(), IOC_ENABLE, 0)

    def disable(self) -> None:
        _bpf.perf_event_ioctl(self.fileno(), IOC_DISABLE, 0)

    def reset(self) -> None:
        _bpf.perf_event_ioctl(self.fileno(), IOC_RESET, 0)

    def read(self) -> int:
        """Return the event's count (8 bytes read from the fd)."""
        return int.from_bytes(os.read(self.fileno(), 8), "little")

    def __enter__(self) -> PerfEvent:
        self.fileno()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._fd < 0 else f"fd={self._fd}"
        return f"<bpf.PerfEvent {self.description} {state}>"

    def __del__(self) -> None:
        if getattr(self, "_fd", -1) >= 0:
            warnings.warn(f"unclosed perf event {self!r}", ResourceWarning, stacklevel=2,
                          source=self)
            self.close()


def _open(attr: bytes, pid: int, cpu: int, description: str, group_fd: int = -1) -> PerfEvent:
    try:
        fd = _bpf.perf_event_open(attr, pid, cpu, group_fd, 0)
    except _bpf.BPFError as e:
        if e.errno in (errno.ENOENT, errno.EOPNOTSUPP, errno.ENODEV):
            raise _bpf.NotSupportedError(
                e.errno, f"perf_event_open {description}: this machine has no such event "
                "(virtual machines often expose no hardware counters)") from None
        raise
    return PerfEvent(fd, description)


def perf_event_open(event: str = "cpu-clock", *, pid: int = -1, cpu: int = 0,
                    sample_period: int = 0, sample_freq: int = 0,
                    type: int | None = None, config: int = 0, disabled: bool = False,
                    exclude_kernel: bool = False, exclude_user: bool = False,
                    inherit: bool = False, **extra: Any) -> PerfEvent:
    """Open a perf event and return a :class:`PerfEvent`.

    *event* names a software event (``"cpu-clock"``, ``"task-clock"``, ``"page-faults"``,
    ``"context-switches"``, ...), a hardware counter (``"cycles"``, ``"instructions"``, ...;
    ``NotSupportedError`` where the machine has none) or a tracepoint as
    ``"tracepoint:category:name"`` (tracefs must be mounted).  Or give ``type``/``config``
    directly.  ``sample_period`` or ``sample_freq`` (Hz) make a sampling event, which is what a
    ``PERF_EVENT`` program attaches to.  ``pid=-1, cpu=N`` counts on one CPU for every process;
    ``pid=P, cpu=-1`` follows one process on every CPU.
    """
    if type is None:
        if event in SOFTWARE_EVENTS:
            type, config = TYPE_SOFTWARE, SOFTWARE_EVENTS[event]
        elif event in HARDWARE_EVENTS:
            type, config = TYPE_HARDWARE, HARDWARE_EVENTS[event]
        elif event.startswith("tracepoint:") and event.count(":") == 2:
            _, cat, name = event.split(":")
            type, config = TYPE_TRACEPOINT, tracepoint_id(cat, name)
            if not sample_period and not sample_freq:
                sample_period = 1
        else:
            raise ValueError(f"unknown perf event {event!r}: use one of "
                             f"{sorted(SOFTWARE_EVENTS) + sorted(HARDWARE_EVENTS)}, "
                             "'tracepoint:cat:name', or type=/config=")
    else:
        event = f"type={type} config={config}"
    if pid == -1 and cpu == -1:
        raise ValueError("pid=-1 and cpu=-1 together are not allowed by perf_event_open")
    flags = 0
    for name, on in (("disabled", disabled), ("exclude_kernel", exclude_kernel),
                     ("exclude_user", exclude_user), ("inherit", inherit)):
        if on:
            flags |= 1 << _FLAG_BITS[name]
    attr = pack_attr(type, config, sample_period=sample_period, sample_freq=sample_freq,
                     flags=flags, **extra)
    return _open(attr, pid, cpu, event)

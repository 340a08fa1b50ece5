"""Links: attach programs to hooks, and the objects that keep them attached.

Every ``attach_*`` method returns a :class:`Link`.  For kernel links (bpf_link: XDP and tcx
links, perf-event links for kprobes/uprobes/tracepoints, tracing, cgroup, netns, netfilter,
iterators, sockmap) the Link owns the link fd: closing the last fd detaches, unless the link is
pinned on bpffs.  Attachments the kernel does not model as links (netlink XDP, clsact TC
filters, tracefs probes attached with the perf ioctl, socket filters, ``BPF_PROG_ATTACH``
attachments) are Link objects too, with the same ``close()``/``detach()`` behaviour; they hold
a duplicate of the program fd and undo the attachment themselves when closed.  Those cannot be
pinned (``NotSupportedError``).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fnmatch
import functools
import io
import itertools
import os
import re
import shutil
import socket
import struct
import subprocess
import threading
from typing import Any, Callable, Iterator, Sequence, Union

from . import _bpf
from ._bpf import BPFError, NotSupportedError
from .enums import AttachType, LinkType, ProgType
from . import perf as _perf
from .perf import PerfEvent, perf_event_open

__all__ = [
    "Link", "LinkInfo", "IterLink", "ProgramAttachMixin", "links", "xdp_query", "tc_query",
    "XDPState", "TCAttachment", "PerfEvent", "perf_event_open",
]

# ---- constants (linux/if_link.h, linux/bpf.h, libbpf.h) ------------------------------------

XDP_FLAGS_UPDATE_IF_NOEXIST = 1 << 0
XDP_FLAGS_SKB_MODE = 1 << 1
XDP_FLAGS_DRV_MODE = 1 << 2
XDP_FLAGS_HW_MODE = 1 << 3
XDP_FLAGS_REPLACE = 1 << 4
_XDP_MODES = {None: 0, "skb": XDP_FLAGS_SKB_MODE, "generic": XDP_FLAGS_SKB_MODE,
              "drv": XDP_FLAGS_DRV_MODE, "native": XDP_FLAGS_DRV_MODE, "hw": XDP_FLAGS_HW_MODE}
_XDP_ATTACHED = {0: None, 1: "drv", 2: "skb", 3: "hw", 4: "multi"}

BPF_F_ALLOW_OVERRIDE = 1 << 0
BPF_F_ALLOW_MULTI = 1 << 1
BPF_F_REPLACE = 1 << 2
BPF_F_BEFORE = 1 << 3
BPF_F_AFTER = 1 << 4
BPF_F_ID = 1 << 5
BPF_F_LINK = 1 << 13

BPF_TC_INGRESS = 1 << 0
BPF_TC_EGRESS = 1 << 1
_TC_POINTS = {"ingress": BPF_TC_INGRESS, "egress": BPF_TC_EGRESS}
_TCX_TYPES = {"ingress": AttachType.TCX_INGRESS, "egress": AttachType.TCX_EGRESS}

SOL_SOCKET = 1
SO_ATTACH_BPF = 50
SO_DETACH_BPF = 27

NFPROTO = {"ipv4": 2, "inet": 1, "ipv6": 10}
NF_HOOKS = {"prerouting": 0, "pre_routing": 0, "local_in": 1, "input": 1, "forward": 2,
            "local_out": 3, "output": 3, "postrouting": 4, "post_routing": 4}


def _kernel_at_least(major: int, minor: int) -> bool:
    m = re.match(r"(\d+)\.(\d+)", _bpf.kernel_release())
    if m is None:
        return True
    return (int(m.group(1)), int(m.group(2))) >= (major, minor)


def _error(cls: type, err: int, op: str, msg: str) -> BPFError:
    e = cls(err, f"{op}: {msg}")
    e.operation = op
    return e


@contextlib.contextmanager
def _unsupported(op: str, msg: str) -> Iterator[None]:
    """Re-raise the kernel's "not supported" (EOPNOTSUPP, or ENOTSUPP 524 from inside the
    kernel) as NotSupportedError saying what is missing; other errors pass unchanged."""
    try:
        yield
    except BPFError as e:
        if e.errno in (errno.EOPNOTSUPP, 524):
            raise _error(NotSupportedError, e.errno, op, msg) from None
        raise


# ---- the Link type -------------------------------------------------------------------------


class LinkInfo:
    """What a link is attached to: ``type`` (LinkType, None for non-kernel attachments),
    ``kind`` (a short name: "xdp", "tcx", "perf_event", ...), ``id``, ``prog_id``, and the
    per-type fields in ``details`` (also readable as attributes: ``info.ifindex``,
    ``info.attach_type``, ``info.cgroup_id``, ``info.func_name``, ``info.tp_name``, ...)."""

    def __init__(self, raw: dict[str, Any], kind: str | None = None,
                 kernel: bool = True) -> None:
        raw = dict(raw)
        t = raw.pop("type", None)
        self.type: LinkType | None = None
        if t is not None:
            try:
                self.type = LinkType(t)
            except ValueError:
                self.type = None
        self.kind: str = kind or (self.type.name.lower() if self.type else "unknown")
        self.id: int = raw.pop("id", 0)
        self.prog_id: int = raw.pop("prog_id", 0)
        self.kernel = kernel
        at = raw.get("attach_type")
        if isinstance(at, int):
            try:
                raw["attach_type"] = AttachType(at)
            except ValueError:
                pass
        self.details: dict[str, Any] = raw

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["details"][name]
        except KeyError:
            raise AttributeError(name) from None

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, LinkInfo) and (self.type, self.kind, self.id, self.prog_id,
                                                  self.details) ==
                (other.type, other.kind, other.id, other.prog_id, other.details))

    def __repr__(self) -> str:
        extra = "".join(f" {k}={v!r}" for k, v in self.details.items())
        ident = f" id={self.id}" if self.kernel else ""
        return f"<LinkInfo {self.kind}{ident} prog_id={self.prog_id}{extra}>"


class Link(_bpf.Link):
    """An attachment of a program (fd-owning; a context manager).

    ``close()`` ends the attachment unless the link is pinned (or another fd to it exists);
    ``detach()`` ends the attachment but keeps this object open; ``update(prog)`` swaps the
    program atomically where the kernel allows it; ``pin(path)``/``Link.from_pin(path)`` keep a
    link beyond the process; ``info()`` says what it is attached to.  ``release_fd()`` gives up
    the fd without detaching (the caller then owns it).
    """

    def close(self) -> None:
        cb = self._take_on_close()
        try:
            if cb is not None:
                cb()
        finally:
            super().close()

    def detach(self) -> None:  # type: ignore[override]
        """End the attachment; the object stays open (``info()`` then reports a defunct link).

        Raises NotSupportedError for kernel link types that cannot be detached while open.
        """
        _bpf.Link._link_detach(self)

    def release_fd(self) -> int:
        """Give up ownership of the fd and return it without detaching anything."""
        return _bpf.Link.detach(self)

    def update(self, prog: Any, *, old: Any = None) -> None:
        """Replace the attached program by *prog* atomically (no moment without a program).

        With *old*, only if *old* is the program attached now.  The new program must have the
        same type (and attach type).  Raises NotSupportedError for links the kernel cannot
        update (perf-event links: detach and attach instead).
        """
        if self.closed:  # before reading prog.fd: ValueError, not AttributeError on None
            raise ValueError("operation on closed link")
        self._update(prog.fd, -1 if old is None else old.fd)

    def info(self) -> LinkInfo:
        """Return a :class:`LinkInfo` read from the kernel."""
        return LinkInfo(self._info())

    @property
    def id(self) -> int:
        return self.info().id

    @property
    def prog_id(self) -> int:
        return self.info().prog_id

    def unpin(self, path: str) -> None:
        """Remove a pin of this link (the link itself stays while this object is open)."""
        if self.closed:
            raise ValueError("operation on closed link")
        os.unlink(path)

    def __repr__(self) -> str:
        name = "Link" if type(self).__name__.startswith("_") else type(self).__name__
        if self.closed:
            return f"<bpf.{name} closed>"
        try:
            i = self.info()
            desc = f" {i.kind}" + (f" id={i.id}" if i.kernel else "") + f" prog_id={i.prog_id}"
        except Exception:
            desc = ""
        return f"<bpf.{name}{desc} fd={self.fileno()}>"

    # non-kernel attachments -------------------------------------------------------------

    @classmethod
    def _attachment(cls, prog: Any, kind: str, details: dict[str, Any],
                    undo: Callable[[], None],
                    update: Callable[[Any], None] | None = None) -> _Attachment:
        """Build a Link for an attachment without a kernel link object."""
        link = _Attachment._wrap_fd(prog.fd)
        link._kind = kind
        link._details = details
        link._prog_id = _prog_id(prog)
        link._update_fn = update
        state = {"done": False}

        def once() -> None:
            if not state["done"]:
                state["done"] = True
                undo()

        link._set_on_close(once)
        link._undo = once
        return link


class _Attachment(Link):
    """A Link for an attachment the kernel does not model as a link."""

    _kind: str
    _details: dict[str, Any]
    _prog_id: int
    _update_fn: Callable[[Any], None] | None
    _undo: Callable[[], None]

    def detach(self) -> None:  # type: ignore[override]
        if self.closed:
            raise ValueError("operation on closed link")
        self._undo()

    def update(self, prog: Any, *, old: Any = None) -> None:
        if self.closed:
            raise ValueError("operation on closed link")
        if self._update_fn is None:
            raise _error(NotSupportedError, errno.EOPNOTSUPP, "link update",
                         f"a {self._kind} attachment cannot be replaced in place; close it "
                         "and attach the new program")
        self._update_fn(prog)
        self._prog_id = _prog_id(prog)

    def dup(self) -> Any:
        if self.closed:
            raise ValueError("operation on closed link")
        raise _error(NotSupportedError, errno.EOPNOTSUPP, "link dup",
                     f"a {self._kind} attachment is not a kernel link: there is no link fd "
                     "to duplicate")

    def pin(self, path: str | bytes | os.PathLike[str]) -> None:
        if self.closed:
            raise ValueError("operation on closed link")
        raise _error(NotSupportedError, errno.EOPNOTSUPP, "link pin",
                     f"a {self._kind} attachment is not a kernel link and cannot be pinned "
                     "(it is undone when this object is closed)")

    def info(self) -> LinkInfo:
        if self.closed:
            raise ValueError("operation on closed link")
        return LinkInfo({"prog_id": self._prog_id, **self._details}, kind=self._kind,
                        kernel=False)


class IterLink(Link):
    """A link of a BPF iterator: ``read()`` runs the iterator once and returns its output;
    ``open()`` returns a binary file object to stream it (close it when done)."""

    def open(self) -> io.FileIO:
        return io.FileIO(self._iter_create(), "r", closefd=True)

    def read(self) -> bytes:
        with self.open() as f:
            chunks = []
            while True:
                b = f.read(65536)
                if not b:
                    break
                chunks.append(b)
            return b"".join(chunks)


class _LibbpfAttachment(_Attachment):
    """A libbpf-made attachment without a kernel link fd (USDT: a set of uprobes).  Its fd is
    a dup of the program's; closing it runs libbpf's detach."""

    def detach(self) -> None:  # type: ignore[override]
        raise _error(NotSupportedError, errno.EOPNOTSUPP, "link detach",
                     f"a {self._kind} attachment made by libbpf ends when it is closed")


def _fd_is_link(fd: int) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:bpf_link"
    except OSError:
        return True


def _prog_id(prog: Any) -> int:
    pid = getattr(prog, "id", None)
    if isinstance(pid, int):
        return pid
    return 0


def links() -> Iterator[LinkInfo]:
    """Iterate over every BPF link in the system (by id), yielding :class:`LinkInfo`.

    Links that vanish while iterating are skipped; ``Link.from_id(info.id)`` opens one.
    """
    cur = 0
    while True:
        nxt = _bpf.link_next_id(cur)
        if nxt is None:
            return
        cur = nxt
        try:
            with Link.from_id(nxt) as link:
                yield link.info()
        except BPFError as e:
            if e.errno != errno.ENOENT:
                raise


# ---- interfaces ----------------------------------------------------------------------------


def _ifindex(iface: str | int) -> tuple[int, str]:
    if isinstance(iface, bool) or not isinstance(iface, (int, str)):
        raise TypeError(f"interface must be a name or an index, not {type(iface).__name__}")
    if isinstance(iface, int):
        try:
            return iface, socket.if_indextoname(iface)
        except OSError:
            raise _error(BPFError, errno.ENODEV, "interface lookup",
                         f"no interface with index {iface} in this network namespace "
                         "(`ip link` lists them)") from None
    try:
        return socket.if_nametoindex(iface), iface
    except OSError:
        raise _error(BPFError, errno.ENODEV, "interface lookup",
                     f"no interface named {iface!r} in this network namespace "
                     "(`ip link` lists them)") from None


class XDPState:
    """What is attached to an interface's XDP hook: ``prog_id`` (0 if none), ``mode``
    ("drv", "skb", "hw", "multi" or None) and the per-mode ids."""

    def __init__(self, d: dict[str, int]) -> None:
        self.prog_id = d["prog_id"]
        self.mode = _XDP_ATTACHED.get(d["attach_mode"])
        self.drv_prog_id = d["drv_prog_id"]
        self.skb_prog_id = d["skb_prog_id"]
        self.hw_prog_id = d["hw_prog_id"]
        self.feature_flags = d["feature_flags"]

    def __repr__(self) -> str:
        return f"<XDPState prog_id={self.prog_id} mode={self.mode}>"


def xdp_query(iface: str | int) -> XDPState:
    """Return what XDP program is attached to *iface* (name or index) and in which mode."""
    ifindex, _ = _ifindex(iface)
    return XDPState(_bpf.xdp_query(ifindex, 0))


class TCAttachment:
    """One program on a TC hook: ``kind`` "tcx" (``link_id`` set when it is held by a link) or
    "clsact" (``priority``, ``handle``, ``name``)."""

    def __init__(self, kind: str, prog_id: int, link_id: int = 0, priority: int = 0,
                 handle: int = 0, name: str = "") -> None:
        self.kind, self.prog_id, self.link_id = kind, prog_id, link_id
        self.priority, self.handle, self.name = priority, handle, name

    def __repr__(self) -> str:
        if self.kind == "tcx":
            return f"<TCAttachment tcx prog_id={self.prog_id} link_id={self.link_id}>"
        return (f"<TCAttachment clsact prog_id={self.prog_id} priority={self.priority} "
                f"handle={self.handle:#x} name={self.name!r}>")


def tc_query(iface: str | int, direction: str = "ingress") -> list[TCAttachment]:
    """List the programs on *iface*'s TC hook for *direction*: tcx ones first (in run order),
    then clsact direct-action filters (by priority)."""
    ifindex, _ = _ifindex(iface)
    if direction not in _TC_POINTS:
        raise ValueError(f"direction must be 'ingress' or 'egress', not {direction!r}")
    out: list[TCAttachment] = []
    try:
        q = _bpf.prog_query(ifindex, int(_TCX_TYPES[direction]))
        for pid, lid in zip(q["prog_ids"], q["link_ids"]):
            out.append(TCAttachment("tcx", pid, link_id=lid))
    except BPFError as e:
        if e.errno not in (errno.EINVAL, errno.EOPNOTSUPP, 524):
            raise
    for f in _clsact_filters(ifindex, direction):
        out.append(TCAttachment("clsact", f["prog_id"], priority=f["priority"],
                                handle=f["handle"], name=f["name"]))
    return out


# A minimal rtnetlink RTM_GETTFILTER dump: libbpf's tc API can only query one known
# handle/priority, but to list a direction's filters (and to know whether a clsact qdisc we
# created is empty before removing it) we need them all.
_RTM_NEWTFILTER, _RTM_GETTFILTER = 44, 46
_NLM_F_REQUEST, _NLM_F_DUMP = 0x1, 0x300
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_TC_H_CLSACT = 0xFFFFFFF1
_TC_PARENT = {"ingress": 0xFFFFFFF2, "egress": 0xFFFFFFF3}
_TCA_KIND, _TCA_OPTIONS = 1, 2
_TCA_BPF_NAME, _TCA_BPF_ID = 7, 11


def _rtattrs(buf: bytes) -> Iterator[tuple[int, bytes]]:
    off = 0
    while off + 4 <= len(buf):
        ln, typ = struct.unpack_from("<HH", buf, off)
        if ln < 4:
            return
        yield typ & 0x3FFF, buf[off + 4:off + ln]
        off += (ln + 3) & ~3


def _clsact_filters(ifindex: int, direction: str) -> list[dict[str, Any]]:
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    try:
        tcm = struct.pack("<BxxxiIII", socket.AF_UNSPEC, ifindex, 0, _TC_PARENT[direction], 0)
        hdr = struct.pack("<IHHII", 16 + len(tcm), _RTM_GETTFILTER,
                          _NLM_F_REQUEST | _NLM_F_DUMP, 1, 0)
        s.send(hdr + tcm)
        out: list[dict[str, Any]] = []
        while True:
            data = s.recv(65536)
            off = 0
            while off + 16 <= len(data):
                ln, typ, _flags, _seq, _pid = struct.unpack_from("<IHHII", data, off)
                body = data[off + 16:off + ln]
                off += (ln + 3) & ~3
                if typ == _NLMSG_DONE:
                    return out
                if typ == _NLMSG_ERROR:
                    err = -struct.unpack_from("<i", body)[0]
                    if err in (0, errno.EINVAL, errno.ENOENT, errno.ENODEV):
                        return out
                    raise _error(BPFError, err, "tc filter dump", os.strerror(err))
                if typ != _RTM_NEWTFILTER or len(body) < 20:
                    continue
                _fam, _ifi, handle, _parent, info = struct.unpack_from("<BxxxiIII", body)
                kind, prog_id, name = "", 0, ""
                for at, val in _rtattrs(body[20:]):
                    if at == _TCA_KIND:
                        kind = val.rstrip(b"\0").decode()
                    elif at == _TCA_OPTIONS:
                        for bt, bval in _rtattrs(val):
                            if bt == _TCA_BPF_ID:
                                prog_id = struct.unpack("<I", bval[:4])[0]
                            elif bt == _TCA_BPF_NAME:
                                name = bval.rstrip(b"\0").decode(errors="replace")
                if handle:  # entries without handle are the per-priority chain heads
                    out.append({"kind": kind, "prog_id": prog_id, "name": name,
                                "handle": handle, "priority": info >> 16})
            if not data:
                return out
    finally:
        s.close()


# clsact qdiscs this process created, by ifindex: the number of our filters on each.  When the
# last of our filters goes and the qdisc holds no other filter, we remove the qdisc again.
_clsact_lock = threading.Lock()
_clsact_owned: dict[int, int] = {}


def _clsact_release(ifindex: int) -> None:
    with _clsact_lock:
        n = _clsact_owned.get(ifindex)
        if n is None:
            return
        if n > 1:
            _clsact_owned[ifindex] = n - 1
            return
        del _clsact_owned[ifindex]
    try:
        if _clsact_filters(ifindex, "ingress") or _clsact_filters(ifindex, "egress"):
            return  # someone else uses the qdisc now: leave it
        _bpf.tc_hook_destroy(ifindex, BPF_TC_INGRESS | BPF_TC_EGRESS)
    except BPFError as e:
        if e.errno not in (errno.ENODEV, errno.ENOENT, errno.EINVAL):
            raise


# ---- tracefs probes --------------------------------------------------------------------------

_probe_counter = itertools.count()


def _write_tracefs(path: str, text: str) -> None:
    # os.open, not open(path, "a"): Python's append mode seeks to the end, which tracefs
    # control files refuse (EINVAL).
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _tracefs_probe(kind: str, spec: str, retprobe: bool) -> tuple[int, Callable[[], None]]:
    """Create a kprobe/uprobe through tracefs; return (tracepoint id, remove)."""
    base = _perf.tracefs_path()
    assert base is not None
    events = os.path.join(base, f"{kind}_events")
    if not os.path.exists(events):
        raise _error(NotSupportedError, errno.EOPNOTSUPP, f"{kind} create",
                     f"this kernel has no {kind}s ({events} is missing: CONFIG_"
                     f"{kind.upper()}S / CONFIG_{kind.upper()}_EVENTS)")
    group = f"pybpf_{kind}s"
    name = f"p{os.getpid()}_{next(_probe_counter)}"
    line = f"{'r' if retprobe else 'p'}:{group}/{name} {spec}\n"
    try:
        _write_tracefs(events, line)
    except OSError as e:
        hint = ("unknown function or symbol, or not traceable" if e.errno in
                (errno.ENOENT, errno.EINVAL) else os.strerror(e.errno or 0))
        raise _error(BPFError, e.errno or errno.EINVAL, f"{kind} create",
                     f"{spec!r}: {hint}") from None

    def remove() -> None:
        for _ in range(50):
            try:
                _write_tracefs(events, f"-:{group}/{name}\n")
                return
            except OSError as e:
                if e.errno == errno.ENOENT:
                    return
                if e.errno != errno.EBUSY:
                    raise
                # the perf event's final release can lag the close by a moment
                threading.Event().wait(0.01)

    try:
        with open(os.path.join(base, "events", group, name, "id")) as f:
            return int(f.read()), remove
    except BaseException:
        remove()
        raise


# ---- ELF symbols for uprobes -------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _ldconfig_cache() -> list[tuple[str, str]]:
    exe = shutil.which("ldconfig") or ("/sbin/ldconfig" if os.path.exists("/sbin/ldconfig")
                                       else None)
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "-p"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return []
    res = []
    for line in out.splitlines():
        m = re.match(r"\s+(\S+) \(([^)]*)\) => (\S+)", line)
        if m:
            res.append((m.group(1), m.group(3)))
    return res


def resolve_binary(binary: str) -> str:
    """Return the path of *binary*: a path, an executable on $PATH, or a library name
    (``"libc.so.6"``, ``"libc"``, ``"c"``) found on the dynamic linker's search path."""
    if "/" in binary:
        if not os.path.exists(binary):
            raise FileNotFoundError(errno.ENOENT, f"no such binary: {binary}")
        return os.path.realpath(binary)
    if not binary.startswith("lib") or ".so" not in binary:
        exe = shutil.which(binary)
        if exe:
            return os.path.realpath(exe)
    stem = binary if binary.startswith("lib") else f"lib{binary}"
    candidates = [binary, stem] if ".so" in binary else [f"{stem}.so"]
    dirs = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d]
    for soname, path in _ldconfig_cache():
        if any(soname == c or soname.startswith(c + ".") for c in candidates):
            return os.path.realpath(path)
    dirs += ["/lib64", "/usr/lib64", "/lib", "/usr/lib", "/usr/local/lib",
             "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
             "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu"]
    for d in dirs:
        try:
            names = sorted(os.listdir(d))
        except OSError:
            continue
        for n in names:
            if any(n == c or n.startswith(c + ".") for c in candidates):
                return os.path.realpath(os.path.join(d, n))
    raise FileNotFoundError(errno.ENOENT, f"cannot find {binary!r}: not a path, not on $PATH, "
                            "not a library known to ldconfig; pass the full path")


def symbol_offsets(path: str, pattern: str | Sequence[str]) -> dict[str, int]:
    """Return {symbol: file offset} of the functions of ELF file *path* matching *pattern*
    (a glob) or named in a list.  Offsets are what uprobes take.

    Named lookups go through the dynamic symbol hash table first (a few lookups instead of a
    walk over every symbol: libc's table takes ~0.2 s to walk with pyelftools); results are
    cached per file version.
    """
    st = os.stat(path)
    key = pattern if isinstance(pattern, str) else tuple(pattern)
    return dict(_symbol_offsets(path, st.st_mtime_ns, st.st_size, key))


@functools.lru_cache(maxsize=64)
def _symbol_offsets(path: str, _mtime: int, _size: int,
                    pattern: str | tuple[str, ...]) -> dict[str, int]:
    from elftools.elf.elffile import ELFFile

    names = None if isinstance(pattern, str) else {s.partition("@")[0] for s in pattern}
    glob = pattern.partition("@")[0] if isinstance(pattern, str) else None
    found: dict[str, int] = {}
    ifuncs: set[str] = set()

    def consider(sym: Any, loads: list[Any]) -> None:
        name = sym.name.partition("@")[0]
        if not name or name in found:
            return
        if names is not None and name not in names:
            return
        if glob is not None and not fnmatch.fnmatchcase(name, glob):
            return
        st = sym["st_info"]["type"]
        if st == "STT_GNU_IFUNC" or st == "STT_LOOS":
            ifuncs.add(name)
            return
        if st != "STT_FUNC" or sym["st_shndx"] == "SHN_UNDEF" or not sym["st_value"]:
            return
        addr = sym["st_value"]
        off = addr
        for seg in loads:
            if seg["p_vaddr"] <= addr < seg["p_vaddr"] + seg["p_memsz"]:
                off = addr - seg["p_vaddr"] + seg["p_offset"]
                break
        found[name] = off

    with open(path, "rb") as f:
        elf = ELFFile(f)
        loads = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
        if names is not None:
            for hname in (".gnu.hash", ".hash"):
                hsec = elf.get_section_by_name(hname)
                if hsec is None or not hasattr(hsec, "get_symbol"):
                    continue
                for n in names:
                    try:
                        sym = hsec.get_symbol(n)
                    except Exception:  # a malformed table: fall back to the walk below
                        sym = None
                    if sym is not None:
                        consider(sym, loads)
                break
        if names is None or set(found) != names:
            for secname in (".symtab", ".dynsym"):
                sec = elf.get_section_by_name(secname)
                if sec is None or not hasattr(sec, "iter_symbols"):
                    continue
                for sym in sec.iter_symbols():
                    consider(sym, loads)
    missing = (names or set()) - set(found)
    if names is not None and missing:
        what = ", ".join(sorted(missing))
        if missing & ifuncs:
            raise LookupError(f"{what} in {path} is an IFUNC (a resolver picks the "
                              "implementation at load time): probe the implementation it picks "
                              f"instead, e.g. __{sorted(missing & ifuncs)[0]}_avx2")
        raise LookupError(f"no function {what} in {path} (`nm -D {path}` lists the symbols)")
    if glob is not None and not found:
        raise LookupError(f"no function matching {glob!r} in {path}")
    return found


def _kernel_functions(pattern: str) -> list[str]:
    """Kernel functions matching a glob, from tracefs's available_filter_functions (the ones
    kprobes can use), or /proc/kallsyms when that is not readable."""
    base = _perf.tracefs_path(required=False)
    names: list[str] = []
    seen: set[str] = set()
    lines: list[str] = []
    if base:
        try:
            with open(os.path.join(base, "available_filter_functions")) as f:
                lines = [ln.split()[0] for ln in f if ln.strip()]
        except OSError:
            lines = []
    if not lines:
        with open("/proc/kallsyms") as f:
            lines = [p[2] for p in (ln.split() for ln in f) if len(p) >= 3 and
                     p[1] in "tT" and len(p) == 3]
    for n in lines:
        if n not in seen and fnmatch.fnmatchcase(n, pattern) and not n.startswith("__pfx_"):
            seen.add(n)
            names.append(n)
    return names


# Attach types implied by section names (libbpf's conventions) for the hooks whose attach
# type the program itself does not tell a Program opened from an fd.
_SECTION_ATTACH_TYPES = {
    "cgroup_skb/ingress": AttachType.CGROUP_INET_INGRESS,
    "cgroup_skb/egress": AttachType.CGROUP_INET_EGRESS,
    "cgroup/sock": AttachType.CGROUP_INET_SOCK_CREATE,
    "cgroup/sock_create": AttachType.CGROUP_INET_SOCK_CREATE,
    "cgroup/sock_release": AttachType.CGROUP_INET_SOCK_RELEASE,
    "cgroup/post_bind4": AttachType.CGROUP_INET4_POST_BIND,
    "cgroup/post_bind6": AttachType.CGROUP_INET6_POST_BIND,
    "cgroup/bind4": AttachType.CGROUP_INET4_BIND,
    "cgroup/bind6": AttachType.CGROUP_INET6_BIND,
    "cgroup/connect4": AttachType.CGROUP_INET4_CONNECT,
    "cgroup/connect6": AttachType.CGROUP_INET6_CONNECT,
    "cgroup/connect_unix": AttachType.CGROUP_UNIX_CONNECT,
    "cgroup/sendmsg4": AttachType.CGROUP_UDP4_SENDMSG,
    "cgroup/sendmsg6": AttachType.CGROUP_UDP6_SENDMSG,
    "cgroup/sendmsg_unix": AttachType.CGROUP_UNIX_SENDMSG,
    "cgroup/recvmsg4": AttachType.CGROUP_UDP4_RECVMSG,
    "cgroup/recvmsg6": AttachType.CGROUP_UDP6_RECVMSG,
    "cgroup/recvmsg_unix": AttachType.CGROUP_UNIX_RECVMSG,
    "cgroup/getpeername4": AttachType.CGROUP_INET4_GETPEERNAME,
    "cgroup/getpeername6": AttachType.CGROUP_INET6_GETPEERNAME,
    "cgroup/getpeername_unix": AttachType.CGROUP_UNIX_GETPEERNAME,
    "cgroup/getsockname4": AttachType.CGROUP_INET4_GETSOCKNAME,
    "cgroup/getsockname6": AttachType.CGROUP_INET6_GETSOCKNAME,
    "cgroup/getsockname_unix": AttachType.CGROUP_UNIX_GETSOCKNAME,
    "cgroup/sysctl": AttachType.CGROUP_SYSCTL,
    "cgroup/getsockopt": AttachType.CGROUP_GETSOCKOPT,
    "cgroup/setsockopt": AttachType.CGROUP_SETSOCKOPT,
    "cgroup/dev": AttachType.CGROUP_DEVICE,
    "sockops": AttachType.CGROUP_SOCK_OPS,
    "sk_msg": AttachType.SK_MSG_VERDICT,
    "sk_skb/stream_parser": AttachType.SK_SKB_STREAM_PARSER,
    "sk_skb/stream_verdict": AttachType.SK_SKB_STREAM_VERDICT,
    "sk_skb/verdict": AttachType.SK_SKB_VERDICT,
    "tcx/ingress": AttachType.TCX_INGRESS,
    "tcx/egress": AttachType.TCX_EGRESS,
    "tc/ingress": AttachType.TCX_INGRESS,
    "tc/egress": AttachType.TCX_EGRESS,
}


@functools.lru_cache(maxsize=1)
def _kprobes_in_kernel() -> bool:
    """Whether the kernel was built with kprobes (its register_kprobe symbol exists)."""
    if _perf.pmu_type("kprobe") is not None:
        return True
    try:
        with open("/proc/kallsyms") as f:
            return any(line.endswith(" register_kprobe\n") for line in f)
    except OSError:
        return True  # cannot tell: let the attempt say what is wrong


# ---- the attach mixin ------------------------------------------------------------------------

_Target = Union[int, str]


def _perf_link(prog: Any, pfd: int, cookie: int, kind: str, details: dict[str, Any],
               cleanup: Callable[[], None] | None = None, force_ioctl: bool = False) -> Link:
    """Attach *prog* to the perf event *pfd* (which this call consumes).

    A kernel perf-event link when possible (the link holds the event; pinnable); otherwise
    (kernel < 5.15, or a tracefs probe that must be removed after the event) the perf ioctl,
    as a non-kernel attachment that closes the event and runs *cleanup* when closed.
    """
    if not force_ioctl and cleanup is None:
        try:
            link = Link._create(prog.fd, pfd, int(AttachType.PERF_EVENT), cookie=cookie)
        except BPFError as e:
            if e.errno not in (errno.EINVAL, errno.EOPNOTSUPP, 524):
                os.close(pfd)
                raise
        else:
            os.close(pfd)  # the link holds its own reference to the event
            return link
    try:
        _bpf.perf_event_ioctl(pfd, _perf.IOC_SET_BPF, prog.fd)
        _bpf.perf_event_ioctl(pfd, _perf.IOC_ENABLE, 0)
    except BaseException:
        os.close(pfd)
        if cleanup:
            cleanup()
        raise
    state = {"fd": pfd}

    def undo() -> None:
        fd, state["fd"] = state["fd"], -1
        if fd >= 0:
            try:
                _bpf.perf_event_ioctl(fd, _perf.IOC_DISABLE, 0)
            finally:
                os.close(fd)
        if cleanup:
            cleanup()

    return Link._attachment(prog, kind, details, undo)


class ProgramAttachMixin:
    """The ``attach_*`` methods of :class:`bpf.Program`.

    Expects ``self.fd``, ``self.type`` (ProgType) and, where the hook needs it,
    ``self.expected_attach_type``; object programs also carry ``section_name``.
    """

    fd: int

    # -- helpers --
    def _ptype(self) -> ProgType | None:
        t = getattr(self, "type", None)
        try:
            return ProgType(t) if t is not None else None
        except ValueError:
            return None

    def _section(self) -> str | None:
        sec = getattr(self, "section_name", None) or getattr(self, "section", None)
        return sec if isinstance(sec, str) else None

    def _eat(self) -> AttachType | None:
        t = getattr(self, "expected_attach_type", None)
        if t is None or t == 0:
            sec = self._section()
            return _SECTION_ATTACH_TYPES.get(sec) if sec else None
        try:
            return AttachType(t)
        except ValueError:
            return None

    def _libbpf_attach(self, kind: str, **kw: Any) -> Link | None:
        """Attach with libbpf's bpf_program__attach* when this program comes from a
        bpf.Object (None otherwise).  The Link keeps the Object alive, and the Object
        closes the Link first when it is closed: libbpf's detach needs the Object's state."""
        obj = getattr(self, "_object", None)
        name = getattr(self, "_object_name", None)
        fn = getattr(Link, "_libbpf_attach", None)
        if obj is None or name is None or fn is None:
            return None
        link: Link = fn(obj, name, kind, **kw)
        registry = getattr(obj, "_libbpf_links", None)
        if registry is not None:
            registry.add(link)
        if not _fd_is_link(link.fileno()):
            link.__class__ = _LibbpfAttachment
            assert isinstance(link, _LibbpfAttachment)
            link._kind = kind if kind != "auto" else str(getattr(self, "section", "libbpf"))
            link._details = {k: v for k, v in kw.items() if v is not None}
            link._prog_id = _prog_id(self)
            link._update_fn = None
        return link

    # -- from the section name --
    def attach(self) -> Link:
        """Attach as the program's section name says (``kprobe/do_sys_openat2``,
        ``tracepoint/syscalls/sys_enter_openat``, ``fentry/...``, ``uprobe/path:sym``, ...).

        Hooks that need a target the section cannot name (XDP, TC, cgroups, sockets, perf
        events) raise ValueError naming the method to call instead.
        """
        sec = getattr(self, "section_name", None) or getattr(self, "section", None)
        if not sec:
            pt = self._ptype()
            if pt in (ProgType.TRACING, ProgType.LSM, ProgType.EXT):
                return self.attach_trace()
            raise ValueError("this program has no section name to attach by: use one of the "
                             "attach_* methods")
        kind, _, rest = sec.partition("/")
        base = kind.split(".")[0]
        if kind in ("kprobe", "kretprobe") and rest:
            func, _, off = rest.partition("+")
            return self.attach_kprobe(func, retprobe=kind == "kretprobe",
                                      offset=int(off, 0) if off else 0)
        if kind in ("kprobe.multi", "kretprobe.multi") and rest:
            return self.attach_kprobe_multi(rest, retprobe=kind.startswith("kret"))
        if kind in ("uprobe", "uretprobe") and ":" in rest:
            binary, _, sym = rest.rpartition(":")
            return self.attach_uprobe(binary, sym, retprobe=kind == "uretprobe")
        if kind in ("uprobe.multi", "uretprobe.multi") and ":" in rest:
            binary, _, sym = rest.rpartition(":")
            return self.attach_uprobe_multi(binary, sym, retprobe=kind.startswith("uret"))
        if kind in ("tracepoint", "tp") and rest.count("/") == 1:
            cat, name = rest.split("/")
            return self.attach_tracepoint(cat, name)
        if kind in ("raw_tracepoint", "raw_tp", "raw_tracepoint.w", "raw_tp.w") and rest:
            return self.attach_raw_tracepoint(rest)
        if base in ("fentry", "fexit", "fmod_ret", "tp_btf", "freplace"):
            return self.attach_trace()
        if base == "lsm":
            return self.attach_lsm()
        if base == "iter":
            return self.attach_iter()
        if kind in ("sk_lookup", "flow_dissector"):
            return self.attach_netns()
        hint = {"xdp": "attach_xdp(iface)", "tcx": "attach_tc(iface, direction)",
                "tc": "attach_tc(iface, direction)", "classifier": "attach_tc(iface, ...)",
                "cgroup": "attach_cgroup(path)", "cgroup_skb": "attach_cgroup(path)",
                "sockops": "attach_cgroup(path)", "perf_event": "attach_perf_event(event)",
                "socket": "attach_socket(sock)", "sk_msg": "attach_sockmap(map)",
                "sk_skb": "attach_sockmap(map)", "netfilter": "attach_netfilter(...)",
                "uprobe": "attach_uprobe(binary, symbol)",
                "uretprobe": "attach_uprobe(binary, symbol, retprobe=True)",
                "kprobe": "attach_kprobe(function)", "kretprobe": "attach_kprobe(function, "
                "retprobe=True)", "tracepoint": "attach_tracepoint(category, name)",
                "usdt": "attach_usdt(binary, provider, name)"}
        meth = hint.get(kind) or hint.get(base)
        if meth and (base not in ("kprobe", "kretprobe", "uprobe", "uretprobe", "tracepoint",
                                  "usdt") or not rest):
            raise ValueError(f"section {sec!r} does not say where to attach: call "
                             f"prog.{meth}")
        link = self._libbpf_attach("auto")
        if link is not None:
            return link
        raise ValueError(f"cannot attach from section {sec!r}: use an attach_* method")

    # -- XDP --
    def attach_xdp(self, iface: _Target, mode: str | None = None, *, replace: bool = False,
                   link: bool | None = None) -> Link:
        """Attach an XDP program to *iface* (name or index).

        *mode*: None (driver if it can, else generic), "skb" (generic), "drv" (native) or
        "hw" (offloaded).  Through a bpf_link where the kernel has them (5.9+) — it then
        belongs to this process and goes away with it unless pinned — or through netlink
        (``link=False``, or ``replace=True`` which replaces a program already there).  A
        program already attached raises BPFError(EBUSY) naming it, unless *replace*.
        """
        if mode not in _XDP_MODES:
            raise ValueError(f"mode must be None, 'skb', 'drv' or 'hw', not {mode!r}")
        ifindex, name = _ifindex(iface)
        flags = _XDP_MODES[mode]
        use_link = link if link is not None else (not replace and _kernel_at_least(5, 9))
        if use_link and replace:
            raise ValueError("replace=True works through netlink only: pass link=False")
        details = {"ifindex": ifindex, "ifname": name, "mode": mode}
        try:
            if use_link:
                return Link._create(self.fd, ifindex, int(AttachType.XDP), flags=flags)
            _bpf.xdp_attach(ifindex, self.fd, flags | (0 if replace else
                                                       XDP_FLAGS_UPDATE_IF_NOEXIST))
        except BPFError as e:
            raise self._xdp_error(e, ifindex, name, mode) from None
        state = {"fd": os.dup(self.fd), "flags": flags}

        def undo() -> None:
            fd, state["fd"] = state["fd"], -1
            try:
                # Only detach if our program is still the one attached (REPLACE semantics).
                _bpf.xdp_detach(ifindex, state["flags"] | XDP_FLAGS_REPLACE, fd)
            except BPFError as e:
                if e.errno not in (errno.ENODEV, errno.EEXIST, errno.ENOENT):
                    raise
            finally:
                os.close(fd)

        def update(new: Any) -> None:
            _bpf.xdp_attach(ifindex, new.fd, state["flags"] | XDP_FLAGS_REPLACE, state["fd"])
            old, state["fd"] = state["fd"], os.dup(new.fd)
            os.close(old)

        return Link._attachment(self, "xdp", details, undo, update)

    def _xdp_error(self, e: BPFError, ifindex: int, name: str, mode: str | None) -> BPFError:
        err = e.errno
        op = "xdp attach"
        if mode == "hw" and err in (errno.EINVAL, errno.EOPNOTSUPP, 524):
            return _error(NotSupportedError, err, op,
                          f"{name} cannot offload XDP (mode='hw' needs a NIC with XDP "
                          "offload and a program loaded for that device): use mode='drv' or "
                          "'skb'")
        if err in (errno.EBUSY, errno.EEXIST):
            try:
                st = xdp_query(ifindex)
                what = f"program id {st.prog_id} in {st.mode} mode"
            except BPFError:
                what = "a program"
            return _error(BPFError, err, op,
                          f"{name} already has an XDP {what} attached: close its link, pass "
                          f"replace=True (netlink attachments only), or remove it with `ip "
                          f"link set dev {name} xdp off`")
        if err in (errno.EOPNOTSUPP, 524) and mode == "drv":
            return _error(NotSupportedError, err, op,
                          f"the driver of {name} has no native XDP: use mode='skb'")
        return e

    # -- TC --
    def attach_tc(self, iface: _Target, direction: str = "ingress", *,
                  priority: int = 0, handle: int = 0, before: Any = None, after: Any = None,
                  tcx: bool | None = None, replace: bool = False) -> Link:
        """Attach a SCHED_CLS program to *iface*'s ingress or egress.

        With tcx (kernel 6.6+; ``tcx=None`` picks it when available) the result is a tcx
        link; *before*/*after* place it relative to another Link or Program (or a program id),
        or first/last with ``True``.  Otherwise (``tcx=False``) a direct-action filter on a
        clsact qdisc: created if missing and removed again when our last filter goes and it
        is empty; *priority* and *handle* choose the filter slot (0: the kernel picks) and
        *replace* replaces a filter in that slot.
        """
        if direction not in _TC_POINTS:
            raise ValueError(f"direction must be 'ingress' or 'egress', not {direction!r}")
        ifindex, name = _ifindex(iface)
        if tcx is not False:
            try:
                return self._attach_tcx(ifindex, direction, before, after)
            except BPFError as e:
                if tcx or e.errno not in (errno.EINVAL, errno.EOPNOTSUPP, 524):
                    raise
        if before is not None or after is not None:
            raise ValueError("before/after need tcx; clsact filters are ordered by priority")
        point = _TC_POINTS[direction]
        created = _bpf.tc_hook_create(ifindex, point)
        with _clsact_lock:
            if created:
                _clsact_owned[ifindex] = 0
            owned = ifindex in _clsact_owned
            if owned:
                _clsact_owned[ifindex] += 1
        try:
            handle, priority, prog_id = _bpf.tc_attach(ifindex, point, self.fd, handle,
                                                       priority, replace)
        except BaseException:
            if owned:
                _clsact_release(ifindex)
            raise
        slot = {"handle": handle, "priority": priority}

        def undo() -> None:
            try:
                _bpf.tc_detach(ifindex, point, slot["handle"], slot["priority"])
            except BPFError as e:
                if e.errno not in (errno.ENOENT, errno.ENODEV, errno.EINVAL):
                    raise
            finally:
                if owned:
                    _clsact_release(ifindex)

        def update(new: Any) -> None:
            _bpf.tc_attach(ifindex, point, new.fd, slot["handle"], slot["priority"], True)

        details = {"ifindex": ifindex, "ifname": name, "direction": direction,
                   "handle": handle, "priority": priority}
        return Link._attachment(self, "tc", details, undo, update)

    def _attach_tcx(self, ifindex: int, direction: str, before: Any, after: Any) -> Link:
        flags, rel_fd, rel_id = 0, 0, 0
        if before is not None and after is not None:
            raise ValueError("give before or after, not both")
        rel = before if before is not None else after
        if rel is not None:
            flags |= BPF_F_BEFORE if before is not None else BPF_F_AFTER
            if rel is True:
                pass
            elif isinstance(rel, Link):
                flags |= BPF_F_LINK
                rel_fd = rel.fd
            elif isinstance(rel, int) and not isinstance(rel, bool):
                rel_id = rel
            elif hasattr(rel, "fd"):
                rel_fd = rel.fd
            else:
                raise TypeError("before/after must be a Link, a Program, a program id or True")
        return Link._create(self.fd, ifindex, int(_TCX_TYPES[direction]), flags=flags,
                            relative_fd=rel_fd, relative_id=rel_id)

    # -- kprobes --
    def attach_kprobe(self, func: str, retprobe: bool = False, offset: int = 0, *,
                      cookie: int = 0, legacy: bool = False) -> Link:
        """Attach a KPROBE program to kernel function *func* (+*offset*) entry, or its
        return with *retprobe*.

        Uses the kprobe PMU and a perf-event link; ``legacy=True`` (or a kernel without the
        PMU) creates the probe through tracefs's kprobe_events (tracefs must be mounted) and
        removes it when the link closes.
        """
        pmu = _perf.pmu_type("kprobe")
        desc = {"func_name": func, "offset": offset, "retprobe": retprobe}
        if pmu is not None and not legacy:
            name = ctypes.create_string_buffer(func.encode())
            config = (1 << _perf.pmu_retprobe_bit("kprobe")) if retprobe else 0
            attr = _perf.pack_attr(pmu, config, sample_period=1,
                                   config1=ctypes.addressof(name), config2=offset)
            try:
                pfd = _bpf.perf_event_open(attr, -1, 0, -1, 0)
            except BPFError as e:
                if e.errno in (errno.ENOENT, errno.EINVAL):
                    raise _error(BPFError, e.errno, "kprobe create",
                                 f"no kernel function {func!r} can be probed (it may not exist"
                                 ", be inlined or be notrace: see /proc/kallsyms)") from None
                raise
            return _perf_link(self, pfd, cookie, "kprobe", desc)
        if not _kprobes_in_kernel():
            raise _error(NotSupportedError, errno.EOPNOTSUPP, "kprobe create",
                         "this kernel has no kprobes (CONFIG_KPROBES is off): fentry/fexit "
                         "(attach_trace) or tracepoints may do instead")
        tid, remove = _tracefs_probe("kprobe", f"{func}+{offset}" if offset else func,
                                     retprobe)
        attr = _perf.pack_attr(_perf.TYPE_TRACEPOINT, tid, sample_period=1)
        try:
            pfd = _bpf.perf_event_open(attr, -1, 0, -1, 0)
        except BaseException:
            remove()
            raise
        return _perf_link(self, pfd, cookie, "kprobe (tracefs)", desc, cleanup=remove)

    def attach_kprobe_multi(self, pattern: str | None = None, *,
                            functions: Sequence[str] | None = None,
                            addresses: Sequence[int] | None = None, retprobe: bool = False,
                            cookies: Sequence[int] | None = None) -> Link:
        """Attach one KPROBE program (loaded for ``TRACE_KPROBE_MULTI``) to many functions:
        a glob *pattern* (matched against the traceable functions), a list of *functions*, or
        *addresses*."""
        if sum(x is not None for x in (pattern, functions, addresses)) != 1:
            raise ValueError("give exactly one of pattern, functions, addresses")
        syms: list[str] | None = list(functions) if functions is not None else None
        if pattern is not None:
            syms = _kernel_functions(pattern)
            if not syms:
                raise LookupError(f"no kernel function matches {pattern!r}")
        try:
            return Link._create(self.fd, 0, int(AttachType.TRACE_KPROBE_MULTI),
                                flags=1 if retprobe else 0, syms=syms,
                                addrs=list(addresses) if addresses is not None else None,
                                cookies=list(cookies) if cookies is not None else None)
        except BPFError as e:
            if e.errno in (errno.EOPNOTSUPP, 524, errno.ENOSYS):
                raise _error(NotSupportedError, e.errno, "kprobe_multi attach",
                             "this kernel has no multi-kprobes (CONFIG_FPROBE, 5.18+)") from None
            if e.errno == errno.ESRCH or e.errno == errno.ENOENT:
                raise _error(BPFError, e.errno, "kprobe_multi attach",
                             "a function in the list does not exist or is not traceable")
            raise

    # -- uprobes --
    def attach_uprobe(self, binary: str, symbol: str | int, retprobe: bool = False,
                      pid: int = -1, *, offset: int = 0, cookie: int = 0,
                      ref_ctr_offset: int = 0, legacy: bool = False) -> Link:
        """Attach a KPROBE-type program to a function of a user binary or library.

        *binary*: a path, an executable on $PATH, or a library name (``"libc"``, ``"c"``,
        ``"libc.so.6"``).  *symbol*: a function name (looked up in the ELF symbol tables) or
        a file offset (int); *offset* is added.  *pid* -1 probes every process.
        """
        path = resolve_binary(binary)
        if isinstance(symbol, int):
            off = symbol + offset
        else:
            off = symbol_offsets(path, [symbol])[symbol.partition("@")[0]] + offset
        desc = {"file_name": path, "offset": off, "retprobe": retprobe, "pid": pid}
        if isinstance(symbol, str):
            desc["symbol"] = symbol
        pmu = _perf.pmu_type("uprobe")
        cpu = 0 if pid == -1 else -1
        if pmu is not None and not legacy:
            cpath = ctypes.create_string_buffer(path.encode())
            config = (1 << _perf.pmu_retprobe_bit("uprobe")) if retprobe else 0
            config |= ref_ctr_offset << 32
            attr = _perf.pack_attr(pmu, config, sample_period=1,
                                   config1=ctypes.addressof(cpath), config2=off)
            pfd = _bpf.perf_event_open(attr, pid, cpu, -1, 0)
            return _perf_link(self, pfd, cookie, "uprobe", desc)
        tid, remove = _tracefs_probe("uprobe", f"{path}:{off:#x}", retprobe)
        attr = _perf.pack_attr(_perf.TYPE_TRACEPOINT, tid, sample_period=1)
        try:
            pfd = _bpf.perf_event_open(attr, pid, cpu, -1, 0)
        except BaseException:
            remove()
            raise
        return _perf_link(self, pfd, cookie, "uprobe (tracefs)", desc, cleanup=remove)

    def attach_uprobe_multi(self, binary: str, symbols: str | Sequence[str] | None = None, *,
                            offsets: Sequence[int] | None = None, retprobe: bool = False,
                            pid: int = -1, cookies: Sequence[int] | None = None,
                            ref_ctr_offsets: Sequence[int] | None = None) -> Link:
        """Attach one program (loaded for ``TRACE_UPROBE_MULTI``) to many functions of a
        binary: a glob pattern, a list of names, or file *offsets*."""
        path = resolve_binary(binary)
        if (symbols is None) == (offsets is None):
            raise ValueError("give symbols (a pattern or a list) or offsets")
        if symbols is not None:
            found = symbol_offsets(path, symbols)
            if isinstance(symbols, str):
                offs = [found[k] for k in sorted(found)]
            else:
                offs = [found[s.partition("@")[0]] for s in symbols]
        else:
            offs = list(offsets or [])
        with _unsupported("uprobe_multi attach", "this kernel has no multi-uprobes (6.6+)"):
            return Link._create(self.fd, 0, int(AttachType.TRACE_UPROBE_MULTI),
                                flags=1 if retprobe else 0, path=path, offsets=offs,
                                ref_ctr_offsets=ref_ctr_offsets, cookies=cookies,
                                pid=max(pid, 0))

    def attach_usdt(self, binary: str, provider: str, name: str, pid: int = -1,
                    cookie: int = 0) -> Link:
        """Attach to a USDT probe.  Needs a program from :class:`bpf.Object` (libbpf's USDT
        support pairs the attach with BPF-side helpers and maps in the object)."""
        link = self._libbpf_attach("usdt", binary=resolve_binary(binary), provider=provider,
                                   usdt=name, pid=pid, cookie=cookie)
        if link is None:
            raise _error(NotSupportedError, errno.EOPNOTSUPP, "usdt attach",
                         "USDT probes need a program loaded from a bpf.Object built with "
                         "libbpf's usdt.bpf.h; raw programs can use attach_uprobe on the "
                         "probe's address")
        return link

    # -- tracepoints --
    def attach_tracepoint(self, category: str, name: str, *, cookie: int = 0) -> Link:
        """Attach a TRACEPOINT program to tracepoint *category*:*name* (needs tracefs
        mounted, for the tracepoint's id)."""
        tid = _perf.tracepoint_id(category, name)
        attr = _perf.pack_attr(_perf.TYPE_TRACEPOINT, tid, sample_period=1)
        pfd = _bpf.perf_event_open(attr, -1, 0, -1, 0)
        return _perf_link(self, pfd, cookie, "tracepoint", {"tp_name": f"{category}:{name}"})

    def attach_raw_tracepoint(self, name: str, *, cookie: int = 0) -> Link:
        """Attach a RAW_TRACEPOINT program to tracepoint *name* (``"sys_enter"``)."""
        try:
            return Link._raw_tracepoint_open(self.fd, name, cookie)
        except BPFError as e:
            if e.errno == errno.ENOENT:
                raise _error(BPFError, e.errno, "raw tracepoint open",
                             f"no tracepoint named {name!r} (names are the part after the "
                             "category, e.g. 'sys_enter')") from None
            raise

    def attach_trace(self, *, cookie: int = 0) -> Link:
        """Attach a TRACING (fentry/fexit/fmod_ret/tp_btf), LSM or EXT program to the target
        it was loaded for."""
        eat = self._eat()
        pt = self._ptype()
        if pt == ProgType.EXT or eat is None or eat == AttachType.TRACE_RAW_TP:
            return Link._raw_tracepoint_open(self.fd, None, cookie)
        try:
            return Link._create(self.fd, 0, int(eat), cookie=cookie)
        except BPFError as e:
            if e.errno != errno.EINVAL or cookie:
                raise
            return Link._raw_tracepoint_open(self.fd, None, 0)

    def attach_lsm(self, *, cookie: int = 0) -> Link:
        """Attach an LSM program to its hook (needs ``bpf`` in the kernel's lsm= list)."""
        with _unsupported("lsm attach",
                          "BPF LSM is not active: add 'bpf' to the lsm= boot parameter"):
            return self.attach_trace(cookie=cookie)

    def attach_iter(self, *, map: Any = None, cgroup: Any = None, order: int = 0,
                    task: int | None = None, pid_fd: int | None = None) -> IterLink:
        """Create an iterator link (``iter/...`` programs).  *map* parametrises map iterators,
        *cgroup* (path or fd) and *order* cgroup iterators, *task* (tid) task iterators.
        Read the output with ``link.read()`` or ``link.open()``."""
        info: bytes | None = None
        cg_fd = -1
        try:
            if map is not None:
                info = struct.pack("<I12x", map if isinstance(map, int) else map.fd)
            elif cgroup is not None:
                if isinstance(cgroup, int):
                    cg_fd = os.dup(cgroup)
                else:
                    cg_fd = os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                info = struct.pack("<IIQ", order, cg_fd, 0)
            elif task is not None:
                info = struct.pack("<III4x", task, 0, 0)
            elif pid_fd is not None:
                info = struct.pack("<III4x", 0, 0, pid_fd)
            link = IterLink._create(self.fd, 0, int(AttachType.TRACE_ITER), iter_info=info)
        finally:
            if cg_fd >= 0:
                os.close(cg_fd)
        assert isinstance(link, IterLink)
        return link

    # -- cgroups --
    _CGROUP_DEFAULTS = {
        ProgType.CGROUP_SOCK: AttachType.CGROUP_INET_SOCK_CREATE,
        ProgType.SOCK_OPS: AttachType.CGROUP_SOCK_OPS,
        ProgType.CGROUP_DEVICE: AttachType.CGROUP_DEVICE,
        ProgType.CGROUP_SYSCTL: AttachType.CGROUP_SYSCTL,
    }
    _CGROUP_NAMES = {"ingress": AttachType.CGROUP_INET_INGRESS,
                     "egress": AttachType.CGROUP_INET_EGRESS}

    def attach_cgroup(self, cgroup: str | int, attach_type: AttachType | str | int | None = None,
                      *, link: bool = True, multi: bool = True, before: Any = None,
                      after: Any = None) -> Link:
        """Attach a cgroup program to *cgroup* (a cgroup v2 directory or an fd to one).

        *attach_type* is any ``AttachType.CGROUP_*`` (or "ingress"/"egress" for CGROUP_SKB);
        by default the program's expected attach type or the usual one for its type.  A
        cgroup link by default; ``link=False`` uses BPF_PROG_ATTACH (``multi`` for
        BPF_F_ALLOW_MULTI), undone by BPF_PROG_DETACH when the Link closes.
        """
        at: AttachType | None
        if isinstance(attach_type, str):
            if attach_type in self._CGROUP_NAMES:
                at = self._CGROUP_NAMES[attach_type]
            else:
                try:
                    at = AttachType[attach_type.upper()]
                except KeyError:
                    raise ValueError(f"unknown attach type {attach_type!r}") from None
        elif attach_type is not None:
            at = AttachType(attach_type)
        else:
            at = self._eat()
            pt = self._ptype()
            if at is None and pt is not None:
                at = self._CGROUP_DEFAULTS.get(pt)
            if at is None:
                raise ValueError("give attach_type (e.g. 'ingress' or 'egress' for CGROUP_SKB, "
                                 "AttachType.CGROUP_INET4_CONNECT for CGROUP_SOCK_ADDR)")
        if isinstance(cgroup, int):
            fd = os.dup(cgroup)
        else:
            try:
                fd = os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except FileNotFoundError:
                raise FileNotFoundError(errno.ENOENT, f"no cgroup directory {cgroup!r} (cgroup "
                                        "v2 is usually mounted at /sys/fs/cgroup)") from None
        try:
            if link:
                flags, rel_fd, rel_id = 0, 0, 0
                rel = before if before is not None else after
                if rel is not None:
                    flags |= BPF_F_BEFORE if before is not None else BPF_F_AFTER
                    if isinstance(rel, Link):
                        flags |= BPF_F_LINK
                        rel_fd = rel.fd
                    elif rel is not True:
                        rel_fd = rel.fd
                return Link._create(self.fd, fd, int(at), flags=flags, relative_fd=rel_fd,
                                    relative_id=rel_id)
            _bpf.prog_attach(self.fd, fd, int(at), BPF_F_ALLOW_MULTI if multi else 0)
            cg_fd = os.dup(fd)
            prog_fd = os.dup(self.fd)
        finally:
            os.close(fd)
        state = {"done": False}

        def undo() -> None:
            if state["done"]:
                return
            state["done"] = True
            try:
                _bpf.prog_detach(prog_fd, cg_fd, int(at))
            except BPFError as e:
                if e.errno != errno.ENOENT:
                    raise
            finally:
                os.close(prog_fd)
                os.close(cg_fd)

        return Link._attachment(self, "cgroup (prog_attach)",
                                {"cgroup": cgroup, "attach_type": at}, undo)

    # -- sockets, sockmaps, netns, netfilter --
    def attach_socket(self, sock: socket.socket | int) -> Link:
        """Attach a SOCKET_FILTER program to *sock* (a socket object or an fd) with
        SO_ATTACH_BPF; closing the Link detaches it (SO_DETACH_BPF)."""
        fd = sock if isinstance(sock, int) else sock.fileno()
        s = socket.socket(fileno=os.dup(fd))
        try:
            s.setsockopt(SOL_SOCKET, SO_ATTACH_BPF, self.fd)
        except OSError as e:
            s.close()
            raise _error(BPFError, e.errno or errno.EINVAL, "socket attach",
                         os.strerror(e.errno or errno.EINVAL)) from None

        def undo() -> None:
            try:
                s.setsockopt(SOL_SOCKET, SO_DETACH_BPF, 0)
            except OSError as e:
                if e.errno not in (errno.ENOENT, errno.EBADF, errno.ENOTSOCK):
                    raise
            finally:
                s.close()

        return Link._attachment(self, "socket filter", {"socket_fd": fd}, undo)

    def attach_sockmap(self, map: Any, attach_type: AttachType | str | None = None) -> Link:
        """Attach an SK_MSG or SK_SKB program to a SOCKMAP/SOCKHASH *map*.

        *attach_type*: ``"verdict"`` (default, stream verdict for SK_SKB), ``"parser"``,
        ``"skb_verdict"`` or an AttachType.  A sockmap link where the kernel has them (6.10+),
        BPF_PROG_ATTACH otherwise.
        """
        pt = self._ptype()
        names = {"verdict": AttachType.SK_MSG_VERDICT if pt == ProgType.SK_MSG
                 else AttachType.SK_SKB_STREAM_VERDICT,
                 "parser": AttachType.SK_SKB_STREAM_PARSER,
                 "skb_verdict": AttachType.SK_SKB_VERDICT}
        if attach_type is None:
            at = self._eat() or names["verdict"]
        elif isinstance(attach_type, str):
            at = names[attach_type]
        else:
            at = AttachType(attach_type)
        map_fd = map if isinstance(map, int) else map.fd
        try:
            return Link._create(self.fd, map_fd, int(at))
        except BPFError as e:
            if e.errno not in (errno.EINVAL, errno.EOPNOTSUPP, 524):
                raise
        _bpf.prog_attach(self.fd, map_fd, int(at))
        fds = {"map": os.dup(map_fd), "prog": os.dup(self.fd)}

        def undo() -> None:
            try:
                _bpf.prog_detach(fds["prog"], fds["map"], int(at))
            finally:
                os.close(fds["prog"])
                os.close(fds["map"])

        return Link._attachment(self, "sockmap (prog_attach)", {"attach_type": at}, undo)

    def attach_netns(self, netns: str | int | None = None) -> Link:
        """Attach an SK_LOOKUP or FLOW_DISSECTOR program to a network namespace (a path like
        ``/run/netns/NAME`` or ``/proc/PID/ns/net``, an fd, or this process's namespace)."""
        pt = self._ptype()
        at = {ProgType.SK_LOOKUP: AttachType.SK_LOOKUP,
              ProgType.FLOW_DISSECTOR: AttachType.FLOW_DISSECTOR}.get(pt)  # type: ignore
        if at is None:
            raise ValueError("attach_netns is for SK_LOOKUP and FLOW_DISSECTOR programs")
        if isinstance(netns, int):
            fd = os.dup(netns)
        else:
            fd = os.open(netns or "/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            return Link._create(self.fd, fd, int(at))
        finally:
            os.close(fd)

    def attach_netfilter(self, pf: str | int = "ipv4", hook: str | int = "local_in",
                         priority: int = 0, *, defrag: bool = False) -> Link:
        """Attach a NETFILTER program to hook *hook* ("prerouting", "local_in", "forward",
        "local_out", "postrouting") of family *pf* ("ipv4", "ipv6") at *priority*."""
        pfn = NFPROTO[pf] if isinstance(pf, str) else pf
        hk = NF_HOOKS[hook] if isinstance(hook, str) else hook
        with _unsupported("netfilter attach", "no BPF netfilter hooks in this kernel (6.4+, "
                          "CONFIG_NETFILTER_BPF_LINK)"):
            return Link._create(self.fd, 0, int(AttachType.NETFILTER), flags=1 if defrag else 0,
                                netfilter=(pfn, hk, priority))

    def attach_perf_event(self, event: PerfEvent | int, *, cookie: int = 0) -> Link:
        """Attach a PERF_EVENT (or tracing-kind) program to an open perf event (a
        :class:`PerfEvent` from :func:`bpf.perf_event_open` or an fd).  The link holds its own
        reference to the event, so closing *event* afterwards is fine."""
        fd = event if isinstance(event, int) else event.fileno()
        return _perf_link(self, os.dup(fd), cookie, "perf_event", {})


def _check_open_first(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap an attach_* method so a closed program raises ValueError before anything else:
    the methods resolve their targets (sockets, tracefs, symbols, kprobe support) first, which
    would otherwise answer a closed program with OSError, LookupError or NotSupportedError."""
    @functools.wraps(fn)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(self, "closed", False):
            raise ValueError("operation on closed program")
        return fn(self, *args, **kwargs)
    return wrapper


for _name, _fn in list(vars(ProgramAttachMixin).items()):
    if _name.startswith("attach") and callable(_fn):
        setattr(ProgramAttachMixin, _name, _check_open_first(_fn))
del _name, _fn

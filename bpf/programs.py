"""Loaded BPF programs: raw loading, adoption, kernel info, test runs and the verifier's error.

A :class:`Program` owns one file descriptor.  The kernel keeps a program alive while any fd,
pin (``pin(path)``) or link holds it; ``close()`` drops only this object's fd.
"""

from __future__ import annotations

import dataclasses
import errno as _errno
import importlib as _importlib
import os
import re
from typing import Any, Iterable, Optional, Union

from . import _bpf
from ._bpf import BPFError, VerifierError
from .enums import AttachType, ProgType

# The attach_* methods live in bpf.links (ProgramAttachMixin); bpf.Program mixes them in.
_AttachMixin: Any = getattr(_importlib.import_module(".links", __package__), "ProgramAttachMixin",
                             object)

__all__ = ["Program", "ProgramInfo", "RunResult", "StatsEnabled", "enable_stats"]

# Kernel limits on the verifier log buffer (kernels < 6.4 accept at most UINT32_MAX >> 8).
_LOG_START = 1 << 18
_LOG_MAX = 1 << 30
_NAME_RE = re.compile(r"^[A-Za-z0-9_.]*$")

# Program types whose BPF_PROG_TEST_RUN copies the (possibly modified) context back out.
_CTX_OUT_TYPES = frozenset({
    ProgType.SOCKET_FILTER, ProgType.SCHED_CLS, ProgType.SCHED_ACT, ProgType.CGROUP_SKB,
    ProgType.LWT_IN, ProgType.LWT_OUT, ProgType.LWT_XMIT, ProgType.LWT_SEG6LOCAL,
    ProgType.XDP, ProgType.SK_LOOKUP,
})
# Extra room in the default output buffer, for programs that grow the packet
# (bpf_xdp_adjust_tail, bpf_skb_change_tail, encapsulation).
_DATA_OUT_SLACK = 4096


def _enum(cls: Any, value: int) -> Any:
    try:
        return cls(value)
    except ValueError:
        return value


def _record(cls: Any, d: dict[str, Any]) -> Any:
    """Build the info dataclass *cls* from a C info dict, leaving out keys it has no field
    for (the C layer may report more than the record shows)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in names})


@dataclasses.dataclass(frozen=True)
class ProgramInfo:
    """What the kernel reports about a loaded program (``struct bpf_prog_info``).

    ``run_cnt`` and ``run_time_ns`` only count while statistics are enabled (see
    :func:`enable_stats`).  ``load_time`` is in nanoseconds since boot.  ``open()`` returns a
    :class:`Program` holding a new fd (``BPFError`` ENOENT if the program is gone).
    """

    id: int
    name: str
    type: Union[ProgType, int]
    tag: str
    map_ids: tuple[int, ...]
    load_time: int
    created_by_uid: int
    gpl_compatible: bool
    xlated_prog_len: int
    jited_prog_len: int
    verified_insns: int
    run_cnt: int
    run_time_ns: int
    recursion_misses: int
    btf_id: int
    ifindex: int
    netns_dev: int
    netns_ino: int
    nr_jited_ksyms: int
    nr_func_info: int
    nr_line_info: int
    attach_btf_obj_id: int
    attach_btf_id: int

    @classmethod
    def _from_dict(cls, d: dict[str, Any]) -> "ProgramInfo":
        d = dict(d)
        d["type"] = _enum(ProgType, d["type"])
        d["tag"] = d["tag"].hex()
        d["map_ids"] = tuple(d["map_ids"])
        return _record(cls, d)

    def open(self) -> "Program":
        """Open the program by id: a new :class:`Program` the caller must close."""
        return Program.from_id(self.id)


class RunResult(tuple):
    """The result of :meth:`Program.test_run`.

    A 3-tuple ``(retval, data, duration)`` so that ``retval, data, duration =
    prog.test_run(...)`` works, with the output context as the extra attribute ``ctx``:

    - ``retval``: the program's return value (u32; an XDP verdict, a TC action, ...)
    - ``data``: the packet after the run (``bytes``), or ``None`` when no data went in
    - ``duration``: average run time per repetition in nanoseconds, as measured by the kernel
    - ``ctx``: the context after the run (``bytes``), or ``None`` when the program type
      copies no context out
    """

    # No __slots__: tuple subclasses cannot have non-empty ones, and the per-instance
    # __dict__ is what carries ctx next to the three tuple items.
    ctx: Optional[bytes]

    def __new__(cls, retval: int, data: Optional[bytes], duration: int,
                ctx: Optional[bytes] = None) -> "RunResult":
        self = super().__new__(cls, (retval, data, duration))
        self.ctx = ctx
        return self

    def __getnewargs__(self) -> tuple[Any, ...]:  # type: ignore[override]
        return (self[0], self[1], self[2], self.ctx)

    @property
    def retval(self) -> int:
        return self[0]  # type: ignore[no-any-return]

    @property
    def data(self) -> Optional[bytes]:
        return self[1]  # type: ignore[no-any-return]

    @property
    def duration(self) -> int:
        return self[2]  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return (f"RunResult(retval={self.retval}, data={self.data!r}, "
                f"duration={self.duration}, ctx={self.ctx!r})")


def _decode_log(buf: bytearray) -> list[str]:
    end = buf.find(0)
    text = bytes(buf if end < 0 else buf[:end]).decode("utf-8", "replace")
    return text.splitlines()


_INSN_LINE = re.compile(r"^(\d+): \(([0-9a-f]{2})\) (.*?)(?:\s+;.*)?$")
_STATS_LINE = re.compile(r"^(processed \d+ insns|verification time|stack depth|"
                         r"func#\d+ @\d+|Live regs before insn|mark_precise:|last_idx)")


def _summarize(lines: list[str]) -> tuple[str, Optional[int], Optional[str], list[str]]:
    """Find the verifier's reason, the failing instruction and the lines worth showing.

    The log ends with the last instruction the verifier looked at, the line(s) saying why it
    stopped there, and statistics; the reason is those lines (at most three, joined)."""
    body = [ln.rstrip() for ln in lines]
    while body and (not body[-1].strip() or _STATS_LINE.match(body[-1])):
        body.pop()
    if not body:
        return "no log", None, None, []
    idx = insn = None
    reason_lines = body[-1:]
    for k in range(len(body) - 2, -1, -1):
        m = _INSN_LINE.match(body[k])
        if m:
            idx, insn = int(m.group(1)), m.group(3).strip()
            after = [ln.strip() for ln in body[k + 1:] if ln.strip()]
            reason_lines = after[:3] if after else reason_lines
            break
    return "; ".join(reason_lines), idx, insn, body[-12:]


def _verifier_error(err: int, lines: list[str], what: str) -> VerifierError:
    reason, idx, insn, tail = _summarize(lines)
    msg = f"verifier rejected {what}: {reason}"
    if idx is not None:
        msg += f"\n  at insn {idx}: {insn}"
    if tail:
        msg += "\n  log tail:\n" + "\n".join("    | " + ln for ln in tail)
    msg += f"\n  (full log in .log, {len(lines)} lines)"
    exc = VerifierError(err, msg)
    exc.log = lines
    exc.operation = "program load"
    exc.reason = reason  # type: ignore[attr-defined]
    exc.insn = idx  # type: ignore[attr-defined]
    return exc


def _insns_bytes(insns: Any) -> Any:
    if isinstance(insns, str):
        from .asm import assemble

        return assemble(insns)
    try:
        memoryview(insns)
        return insns
    except TypeError:
        pass
    if isinstance(insns, Iterable):
        from .asm import Insn, assemble_insns

        return assemble_insns([insns] if isinstance(insns, Insn) else list(insns))
    raise TypeError(f"insns must be bytes-like, assembler text or a list of bpf.asm "
                    f"instructions, not {type(insns).__name__}")


def _pack_records(records: Any, what: str, fields: tuple[str, ...], n_insns: int,
                  first_zero: bool) -> bytes:
    """Pack (insn_offset, ...) tuples of u32 as struct bpf_func_info / bpf_line_info
    records, checking what the kernel would only answer with EINVAL."""
    import struct

    if isinstance(records, (str, bytes, bytearray, memoryview)) or \
            not isinstance(records, Iterable):
        raise TypeError(f"{what} must be a sequence of {len(fields)}-tuples "
                        f"({', '.join(fields)}), not {type(records).__name__}")
    out = bytearray()
    prev = -1
    for k, rec in enumerate(records):
        if isinstance(rec, (str, bytes)) or not isinstance(rec, Iterable):
            raise TypeError(f"{what}[{k}] must be a tuple ({', '.join(fields)}), not "
                            f"{type(rec).__name__}")
        rec = tuple(rec)
        if len(rec) != len(fields):
            raise ValueError(f"{what}[{k}] must have {len(fields)} items "
                             f"({', '.join(fields)}), got {len(rec)}")
        for f, v in zip(fields, rec):
            if not isinstance(v, int) or isinstance(v, bool):
                raise TypeError(f"{what}[{k}] {f} must be an int, not {type(v).__name__}")
            if not 0 <= v <= 0xFFFFFFFF:
                raise ValueError(f"{what}[{k}] {f} must be in 0..2**32-1, got {v}")
        off = rec[0]
        if off >= n_insns:
            raise ValueError(f"{what}[{k}] insn_offset {off} is outside the program "
                             f"(0..{n_insns - 1})")
        if off <= prev if first_zero else off < prev:
            raise ValueError(f"{what} insn_offsets must be increasing: {what}[{k}] is {off} "
                             f"after {prev}")
        if first_zero and k == 0 and off != 0:
            raise ValueError(f"{what}[0] must describe the main program (insn_offset 0), "
                             f"got {off}")
        if first_zero and rec[1] == 0:
            raise ValueError(f"{what}[{k}] type id must be a BTF FUNC id (> 0), got 0")
        prev = off
        out += struct.pack(f"<{len(fields)}I", *rec)
    if not out:
        raise ValueError(f"{what} must not be empty")
    return bytes(out)


_FUNC_FIELDS = ("insn_offset", "type_id")
_LINE_FIELDS = ("insn_offset", "file_name_off", "line_off", "line_col")


def _fd_of(obj: Any, what: str) -> int:
    if obj is None:
        return 0
    if isinstance(obj, int):
        return obj
    fileno = getattr(obj, "fileno", None)
    if callable(fileno):
        return int(fileno())
    raise TypeError(f"{what} must be an int fd or an object with fileno(), not "
                    f"{type(obj).__name__}")


class Program(_bpf.Program, _AttachMixin):
    """A BPF program loaded in the kernel, owning one file descriptor.

    Build one with :meth:`load` (raw instructions), :meth:`from_fd`, :meth:`from_pin` or
    :meth:`from_id`; ``bpf.Object`` gives the programs of an ELF object.  The program lives in
    the kernel while an fd, a pin or a link holds it.  ``close()`` (or leaving a ``with``
    block) releases this object's fd; an fd never closed triggers a ResourceWarning.
    The ``attach_*`` methods come from :class:`bpf.links.ProgramAttachMixin`.
    """

    # What load() was told; the kernel's info does not report it, so programs adopted by
    # fd, pin or id have None (bpf.Object's programs know it from libbpf).
    expected_attach_type: Optional[Union[AttachType, int]] = None

    @classmethod
    def load(cls, prog_type: Union[ProgType, int], insns: Any, license: str = "GPL",
             name: Optional[str] = None, *,
             expected_attach_type: Union[AttachType, int] = 0,
             attach_btf_id: int = 0, attach_prog: Any = None, attach_btf_obj: Any = None,
             prog_flags: int = 0, ifindex: int = 0, kern_version: int = 0,
             log_level: int = 0, log_size: Optional[int] = None,
             fd_array: Any = None, btf: Any = None, func_info: Any = None,
             line_info: Any = None) -> "Program":
        """Load raw instructions as a program of *prog_type* and return it.

        *insns* is bytes-like (a multiple of 8 bytes, ``struct bpf_insn``), assembler text
        (see :mod:`bpf.asm`) or a list of :mod:`bpf.asm` instructions.  *license* must be
        GPL-compatible for GPL-only helpers.  *name* is kept by the kernel (truncated to 15
        characters, letters, digits, ``_`` and ``.`` only).  *attach_prog* /
        *attach_btf_obj* (an fd or an object with ``fileno()``) name the target of
        freplace/fentry-style programs; *fd_array* lists the maps (fds or objects with
        ``fileno()``, or an ``array('i')``) that ``BPF_PSEUDO_MAP_IDX`` references index.

        The load first runs without a verifier log; when it fails it runs again with
        ``log_level=1`` to collect the log, whose buffer grows while the kernel answers
        ENOSPC.  With *log_level* > 0 the log is collected from the start and, on success,
        kept in :attr:`verifier_log`.

        Programs with BPF-to-BPF calls or callbacks (``bpf_loop``, ``bpf_user_ringbuf_drain``,
        ...) need BTF func_info: *btf* is a :class:`bpf.BTF` (loaded into the kernel here if
        it is not yet; it stays owned by the caller) or a BTF fd, and *func_info* a sequence
        of ``(insn_offset, func_type_id)`` pairs, one per function, the main program's at
        offset 0 (see :func:`bpf.asm.func_info`).  ``func_info="auto"`` builds both with
        :func:`bpf.asm.func_info` and frees them after the load.  *line_info* is an
        optional sequence of ``(insn_offset, file_name_off, line_off, line_col)``
        (``struct bpf_line_info``; the offsets are into *btf*'s strings, ``line_col`` is
        ``line << 10 | column``), which needs *func_info*.  Pre-packed records (bytes-like)
        are passed through unchecked.

        Raises :class:`bpf.VerifierError` (with ``.log``) when the verifier rejects the
        program, ``BPFPermissionError`` without CAP_BPF, ``BPFError`` for other failures,
        ``ValueError``/``TypeError`` for malformed arguments.
        """
        prog_type = int(prog_type)
        data = _insns_bytes(insns)
        if name is not None:
            if not isinstance(name, str):
                raise TypeError(f"name must be a str, not {type(name).__name__}")
            if not _NAME_RE.match(name):
                raise ValueError(f"program name {name!r} may hold only letters, digits, "
                                 f"'_' and '.'")
            name = name[:15]
        if fd_array is not None:
            try:
                memoryview(fd_array)
            except TypeError:
                import array

                fd_array = array.array("i", [_fd_of(x, "fd_array item") for x in fd_array])
        if not isinstance(license, str):
            raise TypeError(f"license must be a str, not {type(license).__name__}")
        if log_level < 0 or log_level > 0xFFFF:
            raise ValueError(f"log_level must be a small non-negative int, got {log_level}")
        if log_size is not None and not 128 <= log_size <= _LOG_MAX:
            raise ValueError(f"log_size must be in 128..{_LOG_MAX}, got {log_size}")
        own_btf = None
        if isinstance(func_info, str):
            if func_info != "auto":
                raise ValueError(f"func_info must be 'auto' or a sequence of "
                                 f"(insn_offset, type_id) pairs, not {func_info!r}")
            if btf is not None:
                raise ValueError("func_info='auto' builds its own BTF: pass no btf")
            from .asm import func_info as _auto_func_info

            # A builder list gives the functions their label names; anything else (text,
            # bytes, a consumed iterator) is read back from the assembled bytes.
            own_btf, func_info = _auto_func_info(
                insns if isinstance(insns, (list, tuple)) else data, main=name or "main")
            btf = own_btf
        try:
            return cls._load_with_btf(prog_type, data, license, name, btf, func_info,
                                      line_info, expected_attach_type=expected_attach_type,
                                      attach_btf_id=attach_btf_id, attach_prog=attach_prog,
                                      attach_btf_obj=attach_btf_obj, prog_flags=prog_flags,
                                      ifindex=ifindex, kern_version=kern_version,
                                      log_level=log_level, log_size=log_size,
                                      fd_array=fd_array)
        finally:
            if own_btf is not None:
                own_btf.close()  # the loaded program holds its own reference to the BTF

    @classmethod
    def _load_with_btf(cls, prog_type: int, data: Any, license: str, name: Optional[str],
                       btf: Any, func_info: Any, line_info: Any, *,
                       expected_attach_type: Union[AttachType, int], attach_btf_id: int,
                       attach_prog: Any, attach_btf_obj: Any, prog_flags: int, ifindex: int,
                       kern_version: int, log_level: int, log_size: Optional[int],
                       fd_array: Any) -> "Program":
        n_insns = len(memoryview(data).cast("B")) // 8
        fi = li = None
        if func_info is not None:
            try:
                fi = bytes(memoryview(func_info))
                if len(fi) % 8 or not fi:
                    raise ValueError(f"func_info must be packed struct bpf_func_info records "
                                     f"(8 bytes each), got {len(fi)} bytes")
            except TypeError:
                fi = _pack_records(func_info, "func_info", _FUNC_FIELDS, n_insns, True)
        if line_info is not None:
            if func_info is None:
                raise ValueError("line_info needs func_info (and btf)")
            try:
                li = bytes(memoryview(line_info))
                if len(li) % 16 or not li:
                    raise ValueError(f"line_info must be packed struct bpf_line_info records "
                                     f"(16 bytes each), got {len(li)} bytes")
            except TypeError:
                li = _pack_records(line_info, "line_info", _LINE_FIELDS, n_insns, False)
        if btf is None:
            if fi is not None:
                raise ValueError("func_info needs btf (a bpf.BTF or a BTF fd)")
            btf_fd = 0
        elif isinstance(btf, _bpf.BTF):
            btf_fd = btf.fd if btf.fd >= 0 else btf.load()
        else:
            if isinstance(btf, bool):
                raise TypeError("btf must be a bpf.BTF, an int fd or an object with fileno()")
            btf_fd = _fd_of(btf, "btf")
            if btf_fd <= 0:
                raise ValueError(f"btf fd must be > 0, got {btf_fd}")
        kw: dict[str, Any] = dict(
            name=name, expected_attach_type=int(expected_attach_type),
            attach_btf_id=attach_btf_id,
            attach_prog_fd=_fd_of(attach_prog, "attach_prog"),
            attach_btf_obj_fd=_fd_of(attach_btf_obj, "attach_btf_obj"),
            prog_flags=prog_flags, prog_ifindex=ifindex, kern_version=kern_version,
            fd_array=fd_array, prog_btf_fd=btf_fd, func_info=fi, line_info=li)
        what = f"program {name!r}" if name else "the program"
        pt = _enum(ProgType, prog_type)
        what += f" ({pt.name if isinstance(pt, ProgType) else pt})"
        size = _LOG_START if log_size is None else log_size
        buf: Optional[bytearray] = None
        level = log_level
        if level:
            buf = bytearray(size)
        while True:
            try:
                prog = cls._load(prog_type, data, license, log_level=level, log_buf=buf, **kw)
            except BPFError as e:
                if e.errno == _errno.EPERM and buf is None:
                    raise  # a missing capability: the verifier never ran
                if buf is None:
                    # Run again with a log to learn why (libbpf does the same).
                    level = 1
                    buf = bytearray(size)
                    continue
                if e.errno == _errno.ENOSPC and len(buf) < _LOG_MAX:
                    need = getattr(e, "log_true_size", 0)
                    size = min(_LOG_MAX, max(need + 1, 2 * len(buf)))
                    buf = bytearray(size)
                    continue
                lines = _decode_log(buf)
                if not lines:
                    raise
                raise _verifier_error(e.errno or _errno.EINVAL, lines, what) from None
            if log_level and buf is not None:
                prog._verifier_log = _decode_log(buf)
            if expected_attach_type:
                prog.expected_attach_type = _enum(AttachType, int(expected_attach_type))
            return prog

    # Class-level default; load(log_level>0) sets it per instance.
    _verifier_log: list[str] = []

    @property
    def verifier_log(self) -> list[str]:
        """The verifier's log of a successful :meth:`load` with ``log_level`` > 0, else []."""
        return list(self._verifier_log)

    @property
    def type(self) -> Union[ProgType, int]:
        """The program type, a :class:`bpf.ProgType` (an int if this enum does not know it)."""
        return _enum(ProgType, self.prog_type)

    def info(self) -> ProgramInfo:
        """Read the kernel's current information about this program (one syscall)."""
        return ProgramInfo._from_dict(self._info())

    @property
    def map_ids(self) -> tuple[int, ...]:
        """Ids of the maps the program uses."""
        return tuple(self._info()["map_ids"])

    @property
    def run_cnt(self) -> int:
        """How many times the program ran while statistics were enabled."""
        return int(self._info()["run_cnt"])

    @property
    def run_time_ns(self) -> int:
        """Total run time in ns while statistics were enabled."""
        return int(self._info()["run_time_ns"])

    def test_run(self, data: Any = b"", ctx: Any = None, repeat: int = 1,
                 data_out_size: Optional[int] = None, ctx_out_size: Optional[int] = None,
                 flags: int = 0, cpu: int = 0, batch_size: int = 0) -> RunResult:
        """Run the program once (or *repeat* times) in the kernel on *data* and *ctx*.

        Uses BPF_PROG_TEST_RUN: nothing is attached and no packet reaches any device.
        *data* is the packet for network programs (an Ethernet frame for XDP and TC, at least
        14 bytes); *ctx* the context struct (``xdp_md``, ``__sk_buff``, a raw tracepoint's
        u64 arguments, ...).  The output buffers default to ``len(data) + 4096`` bytes and,
        for program types that copy it out, ``len(ctx)``; pass ``data_out_size`` /
        ``ctx_out_size`` to change them (0 passes none).  *flags* are
        ``BPF_F_TEST_RUN_ON_CPU`` (1, with *cpu*) or ``BPF_F_TEST_XDP_LIVE_FRAMES`` (2, with
        *batch_size*).

        Returns a :class:`RunResult` ``(retval, data, duration)`` with ``.ctx``.  Raises
        ``BPFError`` (EINVAL when the program type refuses an argument, ENOSPC when an output
        buffer is too small, ENOTSUPP when the type has no test run) and ``ValueError`` on a
        closed program or a bad size.
        """
        if repeat < 1:
            raise ValueError(f"repeat must be >= 1, got {repeat}")
        if data is not None and len(memoryview(data)) == 0:
            data = None
        if data_out_size is None:
            data_out_size = 0 if data is None else len(memoryview(data)) + _DATA_OUT_SLACK
        if ctx_out_size is None:
            ctx_out_size = (len(memoryview(ctx))
                            if ctx is not None and self.prog_type in _CTX_OUT_TYPES else 0)
        if data_out_size < 0 or ctx_out_size < 0:
            raise ValueError("data_out_size and ctx_out_size must be >= 0")
        # The kernel treats repeat 0 as 1, and some types (raw tracepoints) accept only 0.
        retval, dout, cout, duration = self._test_run(
            data, ctx, repeat if repeat > 1 else 0, data_out_size, ctx_out_size, flags, cpu,
            batch_size)
        return RunResult(retval, dout, duration, cout)

    def dup(self) -> "Program":
        """Return a new Program owning a duplicate of the fd (same kernel program)."""
        new = super().dup()
        new.expected_attach_type = self.expected_attach_type
        return new  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        if self.closed:
            return "<bpf.Program closed>"
        t = self.type
        tn = t.name if isinstance(t, ProgType) else str(t)
        return f"<bpf.Program {tn} name={self.name!r} id={self.id} fd={self.fd}>"


class StatsEnabled:
    """Keeps run-time statistics (``run_cnt``, ``run_time_ns``) on while open.

    Returned by :func:`enable_stats`.  Statistics stay on until every such handle is closed
    (and the ``kernel.bpf_stats_enabled`` sysctl is 0).
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def fileno(self) -> int:
        if self._fd < 0:
            raise ValueError("operation on closed stats handle")
        return self._fd

    def close(self) -> None:
        """Drop this handle (idempotent)."""
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    def __enter__(self) -> "StatsEnabled":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_fd", -1) >= 0:
            import warnings

            warnings.warn(f"unclosed stats handle fd={self._fd}", ResourceWarning,
                          stacklevel=2)
            self.close()


def enable_stats() -> StatsEnabled:
    """Turn on BPF run-time statistics (BPF_ENABLE_STATS) until the handle is closed.

    Use as ``with bpf.enable_stats(): ...``.  Needs CAP_SYS_ADMIN.
    """
    return StatsEnabled(_bpf._enable_stats(0))

"""Producers for the event tests and benchmarks, with no dependency on bpf.Map/bpf.Program.

A tiny bpf() wrapper (ctypes) creates maps and loads programs assembled here from raw
instructions, so the readers are tested against the kernel alone.  Producers write a sequence
number (from an atomic counter in an array map) into every record and count the records they
failed to emit, so a test can check received + dropped == produced.
"""

from __future__ import annotations

import ctypes
import os
import struct

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
NR_BPF = 321  # x86_64
NR_PERF_EVENT_OPEN = 298

MAP_CREATE, MAP_LOOKUP_ELEM, MAP_UPDATE_ELEM, PROG_LOAD, PROG_TEST_RUN = 0, 1, 2, 5, 10
ARRAY, PERF_EVENT_ARRAY, RINGBUF, USER_RINGBUF = 2, 4, 27, 31
PROG_TRACEPOINT, PROG_XDP = 5, 6


def sys_bpf(cmd: int, attr: bytearray) -> int:
    buf = (ctypes.c_char * len(attr)).from_buffer(attr)
    r = _libc.syscall(NR_BPF, cmd, buf, len(attr))
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"bpf({cmd}): {os.strerror(e)}")
    return r


class Fd:
    """An fd that closes itself (the tests' stand-in for bpf.Map / bpf.Program)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def map_create(mtype: int, key: int, value: int, entries: int) -> Fd:
    attr = bytearray(72)
    struct.pack_into("IIII", attr, 0, mtype, key, value, entries)
    return Fd(sys_bpf(MAP_CREATE, attr))


def map_lookup(m: Fd, key: bytes, vsize: int) -> bytes:
    attr = bytearray(32)
    k = ctypes.create_string_buffer(key, len(key))
    v = ctypes.create_string_buffer(vsize)
    struct.pack_into("I4xQQ", attr, 0, m.fd, ctypes.addressof(k), ctypes.addressof(v))
    sys_bpf(MAP_LOOKUP_ELEM, attr)
    return v.raw


def counters(m: Fd) -> tuple[int, int]:
    """(produced, dropped) from a producer's counter map."""
    return struct.unpack("QQ", map_lookup(m, b"\0\0\0\0", 16))


BTF_LOAD = 18


def btf_funcs(n: int) -> Fd:
    """A BTF blob with `int` and n static functions `int fN(void)` (types 3..n+2), enough
    func_info for programs with callback subprograms."""
    strs = b"\0int\0" + b"".join(b"f%d\0" % i for i in range(n))
    types = struct.pack("<IIII", 1, 1 << 24, 4, (1 << 24) | 32)     # [1] int
    types += struct.pack("<III", 0, 13 << 24, 1)                     # [2] int (void)
    off = 5
    for i in range(n):                                               # [3+i] fN
        types += struct.pack("<III", off, 12 << 24, 2)
        off += len(b"f%d" % i) + 1
    blob = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strs))
    blob += types + strs
    buf = ctypes.create_string_buffer(blob, len(blob))
    attr = bytearray(40)
    struct.pack_into("QQI", attr, 0, ctypes.addressof(buf), 0, len(blob))
    return Fd(sys_bpf(BTF_LOAD, attr))


def prog_load(ptype: int, insns: bytes | tuple[bytes, list[int]]) -> Fd:
    """Load raw instructions; a (insns, [subprog starts]) pair adds BTF func_info."""
    funcs: list[int] = []
    if isinstance(insns, tuple):
        insns, funcs = insns
    attr = bytearray(144)
    ibuf = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(1 << 16)
    struct.pack_into("IIQQIIQ", attr, 0, ptype, len(insns) // 8, ctypes.addressof(ibuf),
                     ctypes.addressof(lic), 1, len(log), ctypes.addressof(log))
    btf = None
    if funcs:
        btf = btf_funcs(len(funcs))
        finfo = b"".join(struct.pack("<II", off, 3 + i) for i, off in enumerate(funcs))
        fbuf = ctypes.create_string_buffer(finfo, len(finfo))
        struct.pack_into("IIQI", attr, 72, btf.fd, 8, ctypes.addressof(fbuf), len(funcs))
    try:
        return Fd(sys_bpf(PROG_LOAD, attr))
    except OSError as e:
        raise OSError(e.errno, f"{e.strerror}\n{log.value.decode(errors='replace')}") from None
    finally:
        if btf is not None:
            btf.close()


def run(prog: Fd, repeat: int = 1, data: bytes = bytes(64)) -> int:
    attr = bytearray(80)
    d = ctypes.create_string_buffer(data, len(data))
    struct.pack_into("IIIIQQI", attr, 0, prog.fd, 0, len(data), 0, ctypes.addressof(d), 0,
                     repeat)
    sys_bpf(PROG_TEST_RUN, attr)
    return struct.unpack_from("I", attr, 4)[0]


# ---- a minimal assembler ------------------------------------------------------------------------


class Asm:
    """Raw BPF instructions with forward labels."""

    def __init__(self) -> None:
        self.insns: list[list] = []
        self.labels: dict[str, int] = {}

    def raw(self, code, dst=0, src=0, off=0, imm=0):
        self.insns.append([code, dst, src, off, imm])
        return self

    def label(self, name):
        self.labels[name] = len(self.insns)
        return self

    def mov(self, dst, imm):  # r_dst = imm (64-bit, sign-extended)
        return self.raw(0xB7, dst, imm=imm)

    def mov32(self, dst, imm):
        return self.raw(0xB4, dst, imm=imm)

    def movr(self, dst, src):
        return self.raw(0xBF, dst, src)

    def add(self, dst, imm):
        return self.raw(0x07, dst, imm=imm)

    def rsh(self, dst, imm):
        return self.raw(0x77, dst, imm=imm)

    def ld_map(self, dst, m: Fd):
        self.raw(0x18, dst, 1, imm=m.fd)
        return self.raw(0, 0, 0, imm=0)

    def ld_func(self, dst, label):  # BPF_PSEUDO_FUNC: imm is relative to the next insn
        self.raw(0x18, dst, 4, imm=("func", label))
        return self.raw(0, 0, 0, imm=0)

    def stx(self, size, dst, off, src):  # *(size *)(dst + off) = src
        return self.raw({8: 0x7B, 4: 0x63}[size], dst, src, off)

    def st(self, size, dst, off, imm):
        return self.raw({8: 0x7A, 4: 0x62}[size], dst, 0, off, imm)

    def ldx(self, size, dst, src, off):
        return self.raw({8: 0x79, 4: 0x61}[size], dst, src, off)

    def fetch_add(self, dst, off, src):  # src = atomic_fetch_add((u64 *)(dst + off), src)
        return self.raw(0xDB, dst, src, off, 0x01)

    def atomic_add(self, dst, off, src):
        return self.raw(0xDB, dst, src, off, 0x00)

    def jeq(self, dst, imm, label):
        return self.raw(0x15, dst, 0, label, imm)

    def jne(self, dst, imm, label):
        return self.raw(0x55, dst, 0, label, imm)

    def jslt(self, dst, imm, label):
        return self.raw(0xC5, dst, 0, label, imm)

    def ja(self, label):
        return self.raw(0x05, 0, 0, label, 0)

    def call(self, helper):
        return self.raw(0x85, imm=helper)

    def exit(self):
        return self.raw(0x95)

    def bytes(self) -> bytes:
        out = bytearray()
        for pc, (code, dst, src, off, imm) in enumerate(self.insns):
            if isinstance(off, str):
                off = self.labels[off] - pc - 1
            if isinstance(imm, tuple):
                imm = self.labels[imm[1]] - pc - 1
            out += struct.pack("<BBhi", code, (src << 4) | dst, off, imm)
        return bytes(out)


# Helper ids
MAP_LOOKUP, PERF_OUTPUT, PID_TGID = 1, 25, 14
RB_OUTPUT, RB_RESERVE, RB_SUBMIT, RB_DISCARD = 130, 131, 132, 133
DYNPTR_READ, USER_RB_DRAIN = 201, 209
BPF_F_CURRENT_CPU = -1  # as a 32-bit mov: zero-extended to 0xffffffff


def _prologue(a: Asm, counter: Fd, pid: int | None) -> None:
    """r6 = ctx; r7 = &counter; r8 = seq (fetch-add 1); r9 = pid_tgid (tid in low bits)."""
    a.movr(6, 1)
    if pid is not None:
        a.call(PID_TGID).movr(9, 0).rsh(0, 32).jne(0, pid, "out")
    else:
        a.mov(9, 0)
    a.st(4, 10, -4, 0).ld_map(1, counter).movr(2, 10).add(2, -4).call(MAP_LOOKUP)
    a.jeq(0, 0, "out").movr(7, 0).mov(8, 1).fetch_add(7, 0, 8)


def _epilogue(a: Asm, ret: int) -> None:
    a.ja("out").label("drop").mov(1, 1).atomic_add(7, 8, 1)
    a.label("out").mov(0, ret).exit()


def ringbuf_producer(ring: Fd, counter: Fd, size: int = 16, pid: int | None = None,
                     ret: int = 2, discard_odd: bool = False) -> bytes:
    """Reserve `size` bytes, write (seq, tid), submit (or discard odd sequence numbers);
    count failed reservations."""
    a = Asm()
    _prologue(a, counter, pid)
    a.ld_map(1, ring).mov(2, size).mov(3, 0).call(RB_RESERVE).jeq(0, 0, "drop")
    a.stx(8, 0, 0, 8)
    if size >= 16:
        a.stx(8, 0, 8, 9)
    a.movr(1, 0).mov(2, 0)
    if discard_odd:
        a.movr(3, 8).raw(0x57, 3, imm=1).jeq(3, 0, "submit").call(RB_DISCARD).ja("out")
        a.label("submit")
    a.call(RB_SUBMIT)
    _epilogue(a, ret)
    return a.bytes()


def perf_producer(perf: Fd, counter: Fd, size: int = 16, pid: int | None = None,
                  ret: int = 2) -> bytes:
    """bpf_perf_event_output(ctx, perf, CURRENT_CPU, &(seq, tid, 0...), size); count failures."""
    a = Asm()
    _prologue(a, counter, pid)
    base = -8 - size
    for off in range(0, size, 8):
        a.st(8, 10, base + off, 0)
    a.stx(8, 10, base, 8)
    if size >= 16:
        a.stx(8, 10, base + 8, 9)
    a.movr(1, 6).ld_map(2, perf).mov32(3, BPF_F_CURRENT_CPU).movr(4, 10).add(4, base)
    a.mov(5, size).call(PERF_OUTPUT).jslt(0, 0, "drop")
    _epilogue(a, ret)
    return a.bytes()


def user_ringbuf_echo(user_rb: Fd, ring: Fd, counter: Fd,
                      ret: int = 2) -> tuple[bytes, list[int]]:
    """Drain the user ring buffer; echo each message's first 8 bytes (+1) into `ring`.

    counter[0] counts messages drained (the drain helper's return value is added).
    """
    a = Asm()
    a.st(4, 10, -4, 0).ld_map(1, counter).movr(2, 10).add(2, -4).call(MAP_LOOKUP)
    a.jeq(0, 0, "out").movr(7, 0)
    a.ld_map(1, user_rb).ld_func(2, "cb").mov(3, 0).mov(4, 0).call(USER_RB_DRAIN)
    a.jslt(0, 0, "out").atomic_add(7, 0, 0)
    a.label("out").mov(0, ret).exit()
    # callback(struct bpf_dynptr *dynptr, void *ctx)
    a.label("cb").movr(3, 1).movr(1, 10).add(1, -8).mov(2, 8).mov(4, 0).mov(5, 0)
    a.call(DYNPTR_READ).jne(0, 0, "cb_out")
    a.ldx(8, 1, 10, -8).add(1, 1).stx(8, 10, -8, 1)
    a.ld_map(1, ring).movr(2, 10).add(2, -8).mov(3, 8).mov(4, 0).call(RB_OUTPUT)
    a.label("cb_out").mov(0, 0).exit()
    return a.bytes(), [0, a.labels["cb"]]


# ---- tracepoint attachment without bpf.Link (perf_event_open + PERF_EVENT_IOC_SET_BPF) ----------

PERF_TYPE_TRACEPOINT = 2
PERF_EVENT_IOC_ENABLE = 0x2400
PERF_EVENT_IOC_SET_BPF = 0x40042408


def attach_tracepoint(prog: Fd, tracefs: str, category: str, name: str) -> Fd:
    import fcntl

    with open(f"{tracefs}/events/{category}/{name}/id") as f:
        tp_id = int(f.read())
    attr = bytearray(128)
    struct.pack_into("IIQQ", attr, 0, PERF_TYPE_TRACEPOINT, 128, tp_id, 1)
    buf = (ctypes.c_char * 128).from_buffer(attr)
    fd = _libc.syscall(NR_PERF_EVENT_OPEN, buf, -1, 0, -1, 8)
    if fd < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"perf_event_open: {os.strerror(e)}")
    fcntl.ioctl(fd, PERF_EVENT_IOC_SET_BPF, prog.fd)
    fcntl.ioctl(fd, PERF_EVENT_IOC_ENABLE, 0)
    return Fd(fd)

"""The ``python -m bpf`` command line.

With no subcommand it runs the live demo: a program assembled with :mod:`bpf.asm` on the
``raw_syscalls:sys_enter`` tracepoint counts system calls per process into a hash map (tgid ->
count), and Python polls the map several times a second and shows a top-like table.  It needs
no compiler and no files.  ``info`` prints versions and whether this process may use bpf().
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import os
import platform
import shutil
import signal
import struct
import sys
import time
from typing import Iterator, TextIO

from . import _bpf
from .enums import MapType


def _may_create_maps() -> tuple[bool, str]:
    """Return (ok, reason): can this process create a BPF map, and if not, why not."""
    try:
        ok = _bpf.probe_map_type(int(MapType.ARRAY))
    except OSError as e:
        if e.errno in (errno.EPERM, errno.EACCES):
            why = "permission denied: needs root, or CAP_BPF (CAP_SYS_ADMIN on kernels < 5.8)"
            try:
                with open("/proc/sys/kernel/unprivileged_bpf_disabled") as f:
                    if f.read().strip() != "0" and os.geteuid() != 0:
                        why += "; kernel.unprivileged_bpf_disabled is set"
            except OSError:
                pass
            return False, why
        if e.errno == errno.ENOSYS:
            return False, "the bpf() syscall is not implemented here (emulator or seccomp?)"
        return False, f"bpf() failed: {e}"
    if not ok:
        return False, "the kernel refused to create an ARRAY map"
    return True, "yes"


def cmd_info(args: argparse.Namespace) -> int:
    from . import __version__

    major, minor = _bpf.libbpf_version()
    ok, why = _may_create_maps()
    print(f"bpf       {__version__} (Python {platform.python_version()})")
    print(f"libbpf    {major}.{minor} (vendored, statically linked)")
    print(f"kernel    {_bpf.kernel_release()} ({platform.machine()})")
    print(f"cpus      {_bpf.possible_cpus()} possible")
    print(f"btf       {'yes' if os.path.exists('/sys/kernel/btf/vmlinux') else 'no'} "
          "(/sys/kernel/btf/vmlinux)")
    print(f"can create maps: {why}")
    return 0 if ok else 1


# ---- the live demo -----------------------------------------------------------------------

TRACEFS = "/sys/kernel/tracing"


@contextlib.contextmanager
def _tracefs_mounted() -> Iterator[None]:
    """Make sure tracefs is mounted (the tracepoint's id lives there); unmount on exit only
    what this process mounted."""
    from .perf import tracefs_path

    if tracefs_path(required=False):
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"tracefs", TRACEFS.encode(), b"tracefs", 0, None) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"mount -t tracefs tracefs {TRACEFS}: {os.strerror(e)} (the demo "
                      "needs tracefs for the tracepoint's id)")
    try:
        yield
    finally:
        libc.umount2(TRACEFS.encode(), 2)  # MNT_DETACH


def demo_program_text(map_fd: int) -> str:
    """The demo's program, in the assembler syntax of ``llvm-objdump -d``.

    It runs on every system call entry: key = tgid (upper half of get_current_pid_tgid), then
    :func:`bpf.asm.count_text` adds 1 to the process's counter, or inserts 1 for a process
    seen first.
    """
    from .asm import count_text

    return f"""
        call 14                         ; bpf_get_current_pid_tgid
        r0 >>= 32                       ; tgid
        *(u32 *)(r10 - 4) = r0
{count_text(map_fd, key=-4, scratch=-16)}
        r0 = 0
        exit
    """


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "(exited)"


def _table(rows: list[tuple[int, int, float]], elapsed: float, total: int, top: int,
           width: int) -> list[str]:
    lines = [f"syscalls per process (raw_syscalls:sys_enter)   {elapsed:6.1f}s   "
             f"{total} calls, {len(rows)} processes",
             f"{'PID':>8}  {'COMMAND':<16} {'CALLS/S':>10} {'TOTAL':>12}"]
    for pid, count, rate in rows[:top]:
        lines.append(f"{pid:>8}  {_comm(pid)[:16]:<16} {rate:>10.0f} {count:>12}")
    return [ln[:width] for ln in lines]


def cmd_demo(args: argparse.Namespace) -> int:
    import bpf
    from . import asm

    out: TextIO = sys.stdout
    plain = args.plain or not out.isatty()
    interval = max(0.05, args.interval)
    with contextlib.ExitStack() as stack:
        stack.enter_context(_tracefs_mounted())
        counts = stack.enter_context(bpf.Map.create(
            MapType.HASH, key_size=4, value_size=8, max_entries=16384, name="syscalls"))
        prog = stack.enter_context(bpf.Program.load(
            bpf.ProgType.TRACEPOINT, asm.assemble(demo_program_text(counts.fd)),
            name="count_syscalls"))
        stack.enter_context(prog.attach_tracepoint("raw_syscalls", "sys_enter"))
        start = last_draw = time.monotonic()
        prev: dict[int, int] = {}
        prev_t = start
        rates: dict[int, float] = {}
        stop = []
        old = signal.signal(signal.SIGINT, lambda *a: stop.append(1))
        stack.callback(signal.signal, signal.SIGINT, old)
        if not plain:
            out.write("\x1b[?25l")  # hide the cursor while redrawing
            stack.callback(out.write, "\x1b[?25h\n")
        while not stop:
            time.sleep(interval)
            now = time.monotonic()
            snap = {struct.unpack("<I", k)[0]: struct.unpack("<Q", v)[0]
                    for k, v in counts.items()}
            dt = now - prev_t
            rates = {pid: (c - prev.get(pid, 0)) / dt for pid, c in snap.items()}
            prev, prev_t = snap, now
            elapsed = now - start
            done = args.duration is not None and elapsed >= args.duration
            rows = sorted(((p, c, rates[p]) for p, c in snap.items()),
                          key=lambda r: (r[2], r[1]), reverse=True)
            width = shutil.get_terminal_size((100, 24)).columns
            if plain:
                if now - last_draw >= 1.0 or done:
                    last_draw = now
                    print("\n".join(_table(rows, elapsed, sum(snap.values()), args.top,
                                           width)), file=out)
                    print(file=out)
                    out.flush()
            else:
                lines = _table(rows, elapsed, sum(snap.values()),
                               min(args.top, shutil.get_terminal_size().lines - 4), width)
                out.write("\x1b[H\x1b[2J" + "\n".join(lines) + "\n(ctrl-c quits)")
                out.flush()
            if done:
                break
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m bpf",
        description="eBPF for Python. Without a command: a live top-like view of system "
                    "calls per process, counted by a BPF program on raw_syscalls:sys_enter.")
    ap.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                    help="stop after this many seconds (default: until ctrl-c)")
    ap.add_argument("--plain", action="store_true",
                    help="print a table every second instead of redrawing the screen "
                         "(the default when stdout is not a terminal)")
    ap.add_argument("--interval", type=float, default=0.25, metavar="SECONDS",
                    help="how often to read the map (default 0.25)")
    ap.add_argument("--top", type=int, default=15, metavar="N", help="rows shown (default 15)")
    ap.set_defaults(func=cmd_demo)
    sub = ap.add_subparsers(dest="command")
    p = sub.add_parser("info", help="versions and whether this process may use bpf()")
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("demo", help="the live syscall view (also the default)")
    # SUPPRESS: options given before the subcommand are not reset by its defaults
    p.add_argument("--duration", type=float, default=argparse.SUPPRESS, metavar="SECONDS")
    p.add_argument("--plain", action="store_true", default=argparse.SUPPRESS)
    p.add_argument("--interval", type=float, default=argparse.SUPPRESS, metavar="SECONDS")
    p.add_argument("--top", type=int, default=argparse.SUPPRESS, metavar="N")
    p.set_defaults(func=cmd_demo)
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    try:
        return int(args.func(args))
    except _bpf.BPFError as e:
        print(f"python -m bpf: {e}", file=sys.stderr)
        if e.errno in (errno.EPERM, errno.EACCES):
            print("run it as root (or with CAP_BPF and CAP_PERFMON)", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0

"""The ``python -m bpf`` command line."""

from __future__ import annotations

import argparse
import errno
import os
import platform
import sys

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


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m bpf", description="eBPF for Python.")
    sub = ap.add_subparsers(dest="command")
    p = sub.add_parser("info", help="versions and whether this process may use bpf()")
    p.set_defaults(func=cmd_info)
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    func = getattr(args, "func", cmd_info)
    return func(args)

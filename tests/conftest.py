"""Shared fixtures: real kernel only, and everything a test creates is removed after it.

Skips must name the missing kernel feature.  With BPF_TESTS_STRICT=1 (set by CI) a skip
through ``skip_missing`` becomes a failure, so a feature this machine has can never hide behind
a skip.  The only exceptions are the feature keys listed in BPF_TESTS_ABSENT (comma-separated),
which CI sets to what its machines verifiably lack (see .ci/run).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import subprocess
import tempfile
import uuid

import pytest

STRICT = os.environ.get("BPF_TESTS_STRICT", "") not in ("", "0")
ABSENT = {f.strip() for f in os.environ.get("BPF_TESTS_ABSENT", "").split(",") if f.strip()}

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_void_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
MNT_DETACH = 2


def skip_missing(reason: str, feature: str | None = None) -> None:
    """Skip because the kernel lacks *feature*; under BPF_TESTS_STRICT=1 fail instead, unless
    *feature* is one BPF_TESTS_ABSENT declares missing on this machine."""
    if STRICT and (feature is None or feature not in ABSENT):
        pytest.fail(f"missing kernel feature (BPF_TESTS_STRICT=1): {reason}")
    pytest.skip(reason)


def mount(fstype: str, target: str) -> None:
    if _libc.mount(fstype.encode(), target.encode(), fstype.encode(), 0, None) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"mount -t {fstype} {target}: {os.strerror(e)}")


def umount(target: str) -> None:
    if _libc.umount2(target.encode(), MNT_DETACH) != 0:
        e = ctypes.get_errno()
        if e not in (errno.EINVAL, errno.ENOENT):
            raise OSError(e, f"umount {target}: {os.strerror(e)}")


def is_mounted(target: str, fstype: str | None = None) -> bool:
    with open("/proc/self/mounts") as f:
        for line in f:
            parts = line.split()
            if parts[1] == target and (fstype is None or parts[2] == fstype):
                return True
    return False


@pytest.fixture
def bpffs():
    """A private bpffs mount for one test (a directory path); unmounted afterwards."""
    d = tempfile.mkdtemp(prefix="bpffs-")
    mount("bpf", d)
    try:
        yield d
    finally:
        umount(d)
        os.rmdir(d)


@contextlib.contextmanager
def mounted(fstype: str, target: str):
    """Mount *fstype* at *target* unless it already is; undo only what was done here."""
    if is_mounted(target, fstype):
        yield target
        return
    os.makedirs(target, exist_ok=True)
    mount(fstype, target)
    try:
        yield target
    finally:
        umount(target)


@pytest.fixture
def tracefs():
    """/sys/kernel/tracing mounted for the test (and unmounted if the test mounted it)."""
    with mounted("tracefs", "/sys/kernel/tracing") as t:
        yield t


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


class VethPair:
    """A network namespace ``ns`` holding ``peer``; ``host`` stays in the test's namespace.

    Addresses: host 10.200.x.1/30, peer 10.200.x.2/30 (only ever between these two ends).
    """

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.ns = f"bpft-{tag}"
        self.host = f"bh{tag}"
        self.peer = f"bp{tag}"
        n = int(tag, 16) % 250 + 1
        self.host_ip, self.peer_ip = f"10.200.{n}.1", f"10.200.{n}.2"

    def create(self) -> None:
        _ip("netns", "add", self.ns)
        _ip("link", "add", self.host, "type", "veth", "peer", "name", self.peer)
        _ip("link", "set", self.peer, "netns", self.ns)
        _ip("addr", "add", f"{self.host_ip}/30", "dev", self.host)
        _ip("link", "set", self.host, "up")
        _ip("-n", self.ns, "addr", "add", f"{self.peer_ip}/30", "dev", self.peer)
        _ip("-n", self.ns, "link", "set", self.peer, "up")
        _ip("-n", self.ns, "link", "set", "lo", "up")

    def ifindex(self) -> int:
        return socket_if_nametoindex(self.host)

    def run_in_ns(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.ns, *cmd], check=check,
                              capture_output=True, text=True)

    def destroy(self) -> None:
        _ip("link", "del", self.host, check=False)
        _ip("netns", "del", self.ns, check=False)


def socket_if_nametoindex(name: str) -> int:
    import socket

    return socket.if_nametoindex(name)


@pytest.fixture
def veth():
    """A veth pair whose peer end lives in a fresh network namespace; removed afterwards."""
    if shutil.which("ip") is None:
        pytest.fail("iproute2's `ip` is required for network tests (apt-get install iproute2)")
    v = VethPair()
    try:
        v.create()
        yield v
    finally:
        v.destroy()


def pytest_report_header(config):
    try:
        import bpf

        return [f"bpf {bpf.__version__}, libbpf {bpf.libbpf_version()}, kernel "
                f"{bpf.kernel_release()}, strict={STRICT}"]
    except Exception as e:  # pragma: no cover - import problems show up in the tests
        return [f"bpf import failed: {e}"]

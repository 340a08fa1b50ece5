"""Programs and maps for the link tests, built from raw instructions.

Kept independent of bpf.Program/bpf.Map/bpf.asm so that the link tests exercise only the link
layer; ``RawProgram`` carries the attach methods through bpf.links.ProgramAttachMixin exactly
as bpf.Program does.
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct
import subprocess

from bpf.enums import AttachType, MapType, ProgType
from bpf.links import ProgramAttachMixin

_NR_BPF = {"x86_64": 321, "aarch64": 280}[platform.machine()]
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

BPF_MAP_CREATE, BPF_MAP_LOOKUP_ELEM, BPF_MAP_UPDATE_ELEM, BPF_PROG_LOAD = 0, 1, 2, 5
BPF_OBJ_GET_INFO_BY_FD = 15


def _bpf(cmd: int, attr: ctypes.Array) -> int:
    r = _libc.syscall(_NR_BPF, cmd, ctypes.byref(attr), ctypes.sizeof(attr))
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"bpf({cmd}): {os.strerror(e)}")
    return r


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def ld_map(reg: int, fd: int) -> bytes:
    return insn(0x18, reg, 1, 0, fd) + insn(0, 0, 0, 0, 0)


def mov_imm(reg: int, imm: int) -> bytes:
    return insn(0xB7, reg, 0, 0, imm)


EXIT = insn(0x95)


class RawMap:
    """An ARRAY of u64 (or any simple map) over raw bpf() calls."""

    def __init__(self, max_entries: int = 4, map_type: int = MapType.ARRAY, key_size: int = 4,
                 value_size: int = 8) -> None:
        attr = ctypes.create_string_buffer(struct.pack("<IIIII", map_type, key_size, value_size,
                                                       max_entries, 0), 72)
        self.fd = _bpf(BPF_MAP_CREATE, attr)
        self.key_size, self.value_size = key_size, value_size

    def __getitem__(self, key: int) -> int:
        k = ctypes.create_string_buffer(key.to_bytes(self.key_size, "little"))
        v = ctypes.create_string_buffer(self.value_size)
        attr = ctypes.create_string_buffer(struct.pack("<I4xQQQ", self.fd, ctypes.addressof(k),
                                                       ctypes.addressof(v), 0), 32)
        _bpf(BPF_MAP_LOOKUP_ELEM, attr)
        return int.from_bytes(v.raw, "little")

    def __setitem__(self, key: int, value: int) -> None:
        k = ctypes.create_string_buffer(key.to_bytes(self.key_size, "little"))
        v = ctypes.create_string_buffer(value.to_bytes(self.value_size, "little"))
        attr = ctypes.create_string_buffer(struct.pack("<I4xQQQ", self.fd, ctypes.addressof(k),
                                                       ctypes.addressof(v), 0), 32)
        _bpf(BPF_MAP_UPDATE_ELEM, attr)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> RawMap:
        return self

    def __exit__(self, *a: object) -> None:
        self.close()


class RawProgram(ProgramAttachMixin):
    """A program loaded with BPF_PROG_LOAD from instruction bytes."""

    def __init__(self, prog_type: int, insns: bytes, expected_attach_type: int = 0,
                 attach_btf_id: int = 0, name: str = "t", license: str = "GPL") -> None:
        self.type = ProgType(prog_type)
        self.expected_attach_type = (AttachType(expected_attach_type)
                                     if expected_attach_type else None)
        ins = ctypes.create_string_buffer(insns, len(insns))
        lic = ctypes.create_string_buffer(license.encode())
        log = ctypes.create_string_buffer(65536)
        raw = bytearray(128)
        struct.pack_into("<IIQQIIQ", raw, 0, prog_type, len(insns) // 8, ctypes.addressof(ins),
                         ctypes.addressof(lic), 1, len(log), ctypes.addressof(log))
        raw[48:48 + len(name[:15])] = name[:15].encode()
        struct.pack_into("<I", raw, 68, expected_attach_type)
        struct.pack_into("<I", raw, 108, attach_btf_id)
        attr = ctypes.create_string_buffer(bytes(raw), 128)
        try:
            self.fd = _bpf(BPF_PROG_LOAD, attr)
        except OSError as e:
            raise OSError(e.errno, f"{e.strerror}\n{log.value.decode(errors='replace')}")
        info = ctypes.create_string_buffer(256)
        iattr = ctypes.create_string_buffer(struct.pack("<IIQ", self.fd, 256,
                                                        ctypes.addressof(info)), 16)
        _bpf(BPF_OBJ_GET_INFO_BY_FD, iattr)
        self.id = struct.unpack_from("<I", info.raw, 4)[0]

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> RawProgram:
        return self

    def __exit__(self, *a: object) -> None:
        self.close()


def counter_insns(map_fd: int, ret: int, drop_ret: int | None = None, slot: int = 0,
                  switch_slot: int = 1) -> bytes:
    """Add 1 to map[slot]; return drop_ret if map[switch_slot] != 0, else ret."""
    code = b"".join([
        insn(0x62, 10, 0, -4, slot),          # *(u32 *)(r10 - 4) = slot
        insn(0xBF, 2, 10),                    # r2 = r10
        insn(0x07, 2, 0, 0, -4),              # r2 += -4
        ld_map(1, map_fd),                    # r1 = map
        insn(0x85, 0, 0, 0, 1),               # call map_lookup_elem
        insn(0x15, 0, 0, 2, 0),               # if r0 == 0 goto +2
        mov_imm(1, 1),                        # r1 = 1
        insn(0xDB, 0, 1, 0, 0),               # lock *(u64 *)(r0 + 0) += r1
    ])
    if drop_ret is not None:
        code += b"".join([
            insn(0x62, 10, 0, -4, switch_slot),
            insn(0xBF, 2, 10),
            insn(0x07, 2, 0, 0, -4),
            ld_map(1, map_fd),
            insn(0x85, 0, 0, 0, 1),
            insn(0x15, 0, 0, 4, 0),           # if r0 == 0 goto pass
            insn(0x79, 1, 0, 0, 0),           # r1 = *(u64 *)(r0 + 0)
            insn(0x15, 1, 0, 2, 0),           # if r1 == 0 goto pass
            mov_imm(0, drop_ret),
            EXIT,
        ])
    return code + mov_imm(0, ret) + EXIT


def btf_func_id(name: str) -> int | None:
    """The vmlinux BTF id of FUNC *name* (through bpftool), or None."""
    try:
        out = subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux"],
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    needle = f"] FUNC '{name}' "
    for line in out.splitlines():
        if needle in line:
            return int(line[1:line.index("]")])
    return None


_ECHO_SRC = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
while True:
    data, addr = s.recvfrom(2048)
    s.sendto(data, addr)
"""


class Echo:
    """A UDP echo server on the veth peer (inside its namespace) and a host-side client.

    ``roundtrip(n)`` sends n datagrams from the host end and returns how many came back: they
    cross the host interface's egress (request) and ingress (reply), so a drop in either
    direction shows.  Neighbour entries are static so that dropping ARP cannot stall a later
    round.
    """

    PORT = 9999

    def __init__(self, veth) -> None:
        import sys

        self.veth = veth
        with open(f"/sys/class/net/{veth.host}/address") as f:
            host_mac = f.read().strip()
        peer_mac = veth.run_in_ns("cat", f"/sys/class/net/{veth.peer}/address").stdout.strip()
        subprocess.run(["ip", "neigh", "replace", veth.peer_ip, "lladdr", peer_mac, "dev",
                        veth.host, "nud", "permanent"], check=True)
        veth.run_in_ns("ip", "neigh", "replace", veth.host_ip, "lladdr", host_mac, "dev",
                       veth.peer, "nud", "permanent")
        self.proc = subprocess.Popen(["ip", "netns", "exec", veth.ns, sys.executable, "-c",
                                      _ECHO_SRC, veth.peer_ip, str(self.PORT)],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "ready"
        import socket

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((veth.host_ip, 0))
        self.round = 0

    def roundtrip(self, n: int = 5, timeout: float = 0.5) -> int:
        import socket
        import time

        self.round += 1
        self.sock.setblocking(False)
        try:
            while True:
                self.sock.recv(2048)
        except BlockingIOError:
            pass
        tag = f"r{self.round}:".encode()
        for i in range(n):
            self.sock.sendto(tag + str(i).encode(), (self.veth.peer_ip, self.PORT))
        got = 0
        deadline = time.monotonic() + timeout
        self.sock.settimeout(0.05)
        while got < n and time.monotonic() < deadline:
            try:
                if self.sock.recv(2048).startswith(tag):
                    got += 1
            except socket.timeout:
                pass
        return got

    def close(self) -> None:
        self.sock.close()
        self.proc.kill()
        self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()


def _probe_events() -> list[str]:
    out = []
    for base in ("/sys/kernel/tracing", "/sys/kernel/debug/tracing"):
        for name in ("kprobe_events", "uprobe_events"):
            try:
                with open(os.path.join(base, name)) as f:
                    out += [ln.strip() for ln in f if "pybpf" in ln]
            except OSError:
                pass
    return out


def _interfaces() -> set[str]:
    return set(os.listdir("/sys/class/net"))


def _netns() -> set[str]:
    try:
        return set(os.listdir("/run/netns"))
    except OSError:
        return set()


import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def leftovers():
    """After a module's tests: no interface, netns, qdisc, pin or probe event left behind."""
    before_if, before_ns = _interfaces(), _netns()
    before_qd = subprocess.run(["tc", "qdisc", "show"], capture_output=True, text=True).stdout
    yield
    assert _interfaces() == before_if, "interfaces left behind"
    assert _netns() == before_ns, "network namespaces left behind"
    after_qd = subprocess.run(["tc", "qdisc", "show"], capture_output=True, text=True).stdout
    assert after_qd.count("clsact") == before_qd.count("clsact"), "clsact qdisc left behind"
    assert not _probe_events(), "probe events left behind"

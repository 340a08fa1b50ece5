"""Cgroup, socket filter, sockmap, netns, netfilter and iterator attachments."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import uuid

import pytest

import bpf
from bpf.enums import AttachType, LinkType, MapType, ProgType

from conftest import mount, skip_missing, umount
from link_helpers import (  # noqa: F401
    EXIT, RawMap, RawProgram, btf_func_id, counter_insns, insn, leftovers, mov_imm,
)


@pytest.fixture
def counters():
    with RawMap(4) as m:
        yield m


def _cgroup2_root() -> str | None:
    with open("/proc/self/mounts") as f:
        for line in f:
            p = line.split()
            if p[2] == "cgroup2":
                return p[1]
    return None


@pytest.fixture
def cgroup():
    """A fresh cgroup v2 directory (cgroup2 mounted for the test if it is nowhere)."""
    root = _cgroup2_root()
    mounted = None
    if root is None:
        mounted = tempfile.mkdtemp(prefix="cg2-")
        mount("cgroup2", mounted)
        root = mounted
    path = os.path.join(root, f"pybpf-{uuid.uuid4().hex[:8]}")
    os.mkdir(path)
    try:
        yield path
    finally:
        os.rmdir(path)
        if mounted:
            umount(mounted)
            os.rmdir(mounted)


SENDER = r"""
import os, socket, sys
with open(sys.argv[1] + "/cgroup.procs", "w") as f:
    f.write(str(os.getpid()))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
ok = 0
for i in range(int(sys.argv[2])):
    try:
        s.sendto(b"x", ("127.0.0.1", 9))
        ok += 1
    except PermissionError:
        pass
print(ok)
"""


def send_from_cgroup(cg: str, n: int) -> int:
    out = subprocess.run([sys.executable, "-c", SENDER, cg, str(n)], capture_output=True,
                         text=True, check=True).stdout
    return int(out)


@pytest.mark.parametrize("use_link", [True, False], ids=["link", "prog_attach"])
def test_cgroup_skb_egress(cgroup, counters, use_link):
    # returns 1 (allow) unless the switch is on, then 0 (drop: sendto fails with EPERM)
    with RawProgram(ProgType.CGROUP_SKB, counter_insns(counters.fd, 1, 0),
                    expected_attach_type=AttachType.CGROUP_INET_EGRESS) as prog:
        with prog.attach_cgroup(cgroup, link=use_link) as link:
            info = link.info()
            if use_link:
                assert info.type == LinkType.CGROUP
                assert info.attach_type == AttachType.CGROUP_INET_EGRESS
                assert info.cgroup_id == os.stat(cgroup).st_ino
            assert send_from_cgroup(cgroup, 4) == 4
            assert counters[0] >= 4
            counters[1] = 1
            assert send_from_cgroup(cgroup, 3) == 0
        assert send_from_cgroup(cgroup, 3) == 3      # detached: the switch no longer matters


def test_cgroup_link_detach_and_update(cgroup, counters):
    with RawProgram(ProgType.CGROUP_SKB, counter_insns(counters.fd, 1),
                    expected_attach_type=AttachType.CGROUP_INET_EGRESS) as a, \
            RawProgram(ProgType.CGROUP_SKB, counter_insns(counters.fd, 0, slot=2),
                       expected_attach_type=AttachType.CGROUP_INET_EGRESS) as b:
        with a.attach_cgroup(cgroup, "egress") as link:
            link.update(b)
            assert link.info().prog_id == b.id
            assert send_from_cgroup(cgroup, 2) == 0 and counters[2] >= 2
            link.detach()                             # the link stays open, defunct
            assert not link.closed
            assert send_from_cgroup(cgroup, 2) == 2
        with pytest.raises(ValueError, match="unknown attach type"):
            RawProgram.attach_cgroup(a, cgroup, "sideways")


def test_cgroup_missing_directory(counters):
    with RawProgram(ProgType.CGROUP_SKB, counter_insns(counters.fd, 1),
                    expected_attach_type=AttachType.CGROUP_INET_EGRESS) as prog:
        with pytest.raises(FileNotFoundError, match="no cgroup directory"):
            prog.attach_cgroup("/sys/fs/cgroup/definitely-not-here")


def test_socket_filter(counters):
    # a socket filter returning 0 drops everything on that socket; the count still goes up
    with RawProgram(ProgType.SOCKET_FILTER, counter_insns(counters.fd, 0)) as prog, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(0.2)
        link = prog.attach_socket(rx)
        try:
            assert link.info().kind == "socket filter"
            tx.sendto(b"dropped", rx.getsockname())
            with pytest.raises(socket.timeout):
                rx.recv(100)
            assert counters[0] == 1
        finally:
            link.close()
        tx.sendto(b"passes", rx.getsockname())
        assert rx.recv(100) == b"passes"
        assert counters[0] == 1
        with pytest.raises(bpf.NotSupportedError, match="pinned"):
            with prog.attach_socket(rx.fileno()) as l2:
                l2.pin("/sys/fs/bpf/never")


def test_sockmap_verdict(counters):
    with RawMap(2, map_type=MapType.SOCKMAP, key_size=4, value_size=4) as sm, \
            RawProgram(ProgType.SK_SKB, mov_imm(0, 1) + EXIT,
                       expected_attach_type=AttachType.SK_SKB_STREAM_VERDICT) as prog:
        with prog.attach_sockmap(sm) as link:
            info = link.info()
            if info.kernel:
                assert info.type == LinkType.SOCKMAP
                assert info.attach_type == AttachType.SK_SKB_STREAM_VERDICT


def test_sk_lookup_netns(veth):
    with RawProgram(ProgType.SK_LOOKUP, mov_imm(0, 1) + EXIT,
                    expected_attach_type=AttachType.SK_LOOKUP) as prog:
        path = f"/run/netns/{veth.ns}"
        with prog.attach_netns(path) as link:
            info = link.info()
            assert info.type == LinkType.NETNS
            assert info.netns_ino == os.stat(path).st_ino
            assert info.attach_type == AttachType.SK_LOOKUP


def in_netns(ns: str, fn):
    """Run fn() in a thread that joined network namespace *ns* (setns is per thread)."""
    import ctypes
    import threading

    libc = ctypes.CDLL(None, use_errno=True)
    result: list = []

    def run() -> None:
        fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
        try:
            if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
                raise OSError(ctypes.get_errno(), "setns")
        finally:
            os.close(fd)
        try:
            result.append(("ok", fn()))
        except BaseException as e:
            result.append(("err", e))

    t = threading.Thread(target=run)
    t.start()
    t.join()
    kind, value = result[0]
    if kind == "err":
        raise value
    return value


def test_netfilter_accept_in_the_test_namespace(veth):
    # NF_ACCEPT for every packet, hooked in the veth's namespace only
    with RawProgram(ProgType.NETFILTER, mov_imm(0, 1) + EXIT,
                    expected_attach_type=AttachType.NETFILTER) as prog:
        def attach_and_check():
            with prog.attach_netfilter("ipv4", "local_in", priority=-128) as link:
                info = link.info()
                assert info.type == LinkType.NETFILTER
                return (info.pf, info.hooknum, info.priority)

        try:
            got = in_netns(veth.ns, attach_and_check)
        except bpf.NotSupportedError:
            skip_missing("BPF netfilter links")
        assert got == (2, 1, -128)


def test_iterator_output():
    fid = btf_func_id("bpf_iter_bpf_map")
    if fid is None:
        skip_missing("vmlinux BTF with bpf_iter_bpf_map")
    # for each map: bpf_seq_write(meta->seq, "abcd", 4)
    code = b"".join([
        insn(0x79, 6, 1, 0, 0),         # r6 = ctx->meta
        insn(0x79, 7, 1, 8, 0),         # r7 = ctx->map
        insn(0x15, 7, 0, 6, 0),         # if r7 == 0 goto out
        insn(0x79, 1, 6, 0, 0),         # r1 = meta->seq
        insn(0x62, 10, 0, -4, 0x64636261),
        insn(0xBF, 2, 10),
        insn(0x07, 2, 0, 0, -4),
        mov_imm(3, 4),
        insn(0x85, 0, 0, 0, 127),       # bpf_seq_write
        mov_imm(0, 0),
        EXIT,
    ])
    try:
        prog = RawProgram(ProgType.TRACING, code, expected_attach_type=AttachType.TRACE_ITER,
                          attach_btf_id=fid)
    except PermissionError:
        skip_missing("BPF iterators: the kernel refuses TRACING programs (EPERM)", feature="tracing")
    with prog, RawMap(1) as m, prog.attach_iter() as link:
        out = link.read()
        assert out and len(out) % 4 == 0 and set(out) <= set(b"abcd")
        assert link.info().type == LinkType.ITER
        del m


def test_cgroup_links_ordered_with_before(cgroup, counters):
    with RawProgram(ProgType.CGROUP_SKB, counter_insns(counters.fd, 1),
                    expected_attach_type=AttachType.CGROUP_INET_EGRESS) as a, \
            RawProgram(ProgType.CGROUP_SKB, counter_insns(counters.fd, 1, slot=2),
                       expected_attach_type=AttachType.CGROUP_INET_EGRESS) as b:
        with a.attach_cgroup(cgroup, "egress") as la:
            try:
                lb = b.attach_cgroup(cgroup, "egress", before=la)
            except bpf.BPFError as e:
                if e.errno in (22, 95):
                    skip_missing("ordered cgroup links (BPF_F_BEFORE on cgroups, 6.15+)")
                raise
            with lb:
                fd = os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    q = bpf._bpf.prog_query(fd, int(AttachType.CGROUP_INET_EGRESS))
                finally:
                    os.close(fd)
                assert q["prog_ids"] == [b.id, a.id]

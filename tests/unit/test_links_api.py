"""Privilege-free parts of the link layer: attr packing, symbol lookup, LinkInfo, CLI args."""

from __future__ import annotations

import struct
import sys

import pytest

import bpf
from bpf import perf
from bpf.cli import build_parser
from bpf.enums import AttachType, LinkType

links_mod = sys.modules["bpf.links"]


def test_perf_attr_layout():
    a = perf.pack_attr(perf.TYPE_SOFTWARE, 0, sample_freq=99, config1=7, config2=9)
    assert len(a) == 112
    t, size, config, period = struct.unpack_from("<IIQQ", a)
    assert (t, size, config, period) == (perf.TYPE_SOFTWARE, 112, 0, 99)
    flags = struct.unpack_from("<Q", a, 40)[0]
    assert flags & (1 << 10)                        # freq
    assert struct.unpack_from("<QQ", a, 56) == (7, 9)


def test_perf_event_open_validates_before_the_syscall():
    with pytest.raises(ValueError, match="unknown perf event"):
        bpf.perf_event_open("bogus")
    with pytest.raises(ValueError, match="pid=-1 and cpu=-1"):
        bpf.perf_event_open("cpu-clock", pid=-1, cpu=-1)


def test_libc_symbols_resolve():
    libc = links_mod.resolve_binary("c")
    assert "libc" in libc
    assert links_mod.resolve_binary("libc.so.6") == libc
    offs = links_mod.symbol_offsets(libc, ["getppid", "getpid"])
    assert offs["getppid"] > 0 and offs["getpid"] > 0
    with pytest.raises(LookupError, match="no function"):
        links_mod.symbol_offsets(libc, ["surely_not_a_libc_function"])
    with pytest.raises(FileNotFoundError, match="cannot find"):
        links_mod.resolve_binary("libsurelynotthere")


def test_linkinfo_fields():
    i = bpf.LinkInfo({"type": int(LinkType.TCX), "id": 3, "prog_id": 4, "ifindex": 2,
                      "attach_type": int(AttachType.TCX_EGRESS)})
    assert i.type == LinkType.TCX and i.kind == "tcx" and i.kernel
    assert i.attach_type is AttachType.TCX_EGRESS and i.ifindex == 2
    with pytest.raises(AttributeError):
        i.cgroup_id
    assert "ifindex=2" in repr(i)


def test_cli_arguments():
    ap = build_parser()
    a = ap.parse_args(["--duration", "3", "--plain"])
    assert a.duration == 3 and a.plain and a.func.__name__ == "cmd_demo"
    a = ap.parse_args(["--duration", "2", "demo"])
    assert a.duration == 2                          # not reset by the subcommand
    assert ap.parse_args(["info"]).func.__name__ == "cmd_info"

"""Programs of bpf.Object (the committed test objects in tests/bpf/) attached through links:
section-name attach, the libbpf attach path, and the per-hook methods."""

from __future__ import annotations

import errno

import os
import pathlib
import subprocess

import pytest

import bpf
from bpf.enums import AttachType, LinkType

from conftest import skip_missing
from link_helpers import Echo, leftovers  # noqa: F401
from test_links_other import cgroup, send_from_cgroup  # noqa: F401
from test_links_trace import target_binary  # noqa: F401

OBJS = pathlib.Path(__file__).resolve().parents[1] / "bpf"


def load(name: str) -> bpf.Object:
    return bpf.Object.load_file(str(OBJS / f"{name}.bpf.o"))


def test_xdp_object_counts_drops_flows(veth):
    echo = Echo(veth)
    try:
        with load("xdp_counter") as obj:
            prog = obj.programs["xdp_count"]
            with pytest.raises(ValueError, match="attach_xdp"):
                prog.attach()
            with prog.attach_xdp(veth.host, "drv") as link:
                assert link.info().type == LinkType.XDP
                assert echo.roundtrip(4) == 4
                assert obj.globals["packets"] >= 4
                obj.globals["drop"] = 1
                assert echo.roundtrip(2) == 0
            assert echo.roundtrip(2) == 2
    finally:
        echo.close()


@pytest.mark.parametrize("tcx", [True, False], ids=["tcx", "clsact"])
def test_tc_object(veth, tcx):
    echo = Echo(veth)
    try:
        with load("tc_counter") as obj:
            prog = obj.programs["tc_count"]
            with prog.attach_tc(veth.host, "egress", tcx=tcx):
                assert echo.roundtrip(3) == 3
                assert obj.globals["packets"] >= 3 and obj.globals["bytes"] > 0
            assert bpf.tc_query(veth.host, "egress") == []
    finally:
        echo.close()


def test_tracepoint_object_by_section_and_by_libbpf(tracefs):
    with load("tp_sys_enter") as obj:
        prog = obj.programs["count_sys_enter"]
        counts = obj.maps["counts"]
        with prog.attach() as link:                 # "tracepoint/raw_syscalls/sys_enter"
            assert link.info().tp_name == "sys_enter"
            os.getppid()
            assert counts.lookup(os.getpid().to_bytes(4, "little")) is not None
        libbpf_link = prog._libbpf_attach("auto")    # libbpf's bpf_program__attach
        assert libbpf_link is not None
        with libbpf_link:
            assert libbpf_link.info().type == LinkType.PERF_EVENT


def test_uprobe_object(target_binary):  # noqa: F811
    with load("uprobe") as obj:
        entry, ret = obj.programs["uprobe_entry"], obj.programs["uprobe_return"]
        with pytest.raises(ValueError, match="attach_uprobe"):
            entry.attach()
        with entry.attach_uprobe(target_binary, "target_fn"), \
                ret.attach_uprobe(target_binary, "target_fn", retprobe=True):
            subprocess.run([target_binary, "4"], check=True)
        assert obj.globals["calls"] == 4 and obj.globals["returns"] == 4
        assert obj.globals["last_arg"] == 3 and obj.globals["last_ret"] == 4
        # libbpf's own uprobe attach (symbol resolution by libbpf)
        link = entry._libbpf_attach("uprobe", binary=target_binary, func="other_fn")
        assert link is not None
        with link:
            subprocess.run([target_binary, "2"], check=True)
        assert obj.globals["calls"] == 6


def test_cgroup_object_takes_attach_type_from_section(cgroup):  # noqa: F811
    with load("cgroup_skb") as obj:
        egress = obj.programs["count_egress"]
        with egress.attach_cgroup(cgroup) as link:
            assert link.info().attach_type == AttachType.CGROUP_INET_EGRESS
            assert send_from_cgroup(cgroup, 3) == 3
            assert obj.globals["egress_packets"] >= 3
            obj.globals["deny_egress"] = 1
            assert send_from_cgroup(cgroup, 2) == 0
        assert send_from_cgroup(cgroup, 2) == 2


def test_kprobe_object(tracefs):
    with load("kprobe_counter") as obj:
        for prog in obj.programs.values():
            try:
                link = prog.attach()           # kprobe/__x64_sys_getpgid, kretprobe/...
            except bpf.NotSupportedError:
                skip_missing("kprobes (CONFIG_KPROBES)", feature="kprobes")
            with link:
                os.getpgid(0)


def test_fentry_object():
    try:
        obj = load("fentry_fexit")
    except bpf.BPFError as e:
        if e.errno != errno.EPERM:
            raise
        skip_missing(f"fentry/fexit programs (load refused: {e})", feature="tracing")
    with obj:
        for prog in obj.programs.values():
            with prog.attach() as link:
                assert link.info().type == LinkType.TRACING
                os.getpgid(0)

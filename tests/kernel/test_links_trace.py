"""Tracing links: tracepoints, kprobes, uprobes, fentry/fexit, raw tracepoints, perf events,
pins, ids."""

from __future__ import annotations

import errno
import os
import subprocess
import time

import pytest

import bpf
from bpf.enums import AttachType, LinkType, ProgType

from conftest import skip_missing
from link_helpers import RawMap, RawProgram, btf_func_id, counter_insns, leftovers  # noqa: F401


@pytest.fixture
def counters():
    with RawMap(4) as m:
        yield m


def counting(ptype, m, slot=0, **kw):
    return RawProgram(ptype, counter_insns(m.fd, 0, slot=slot), **kw)


def test_tracepoint_counts_and_stops_after_close(tracefs, counters):
    with counting(ProgType.TRACEPOINT, counters) as prog:
        with prog.attach_tracepoint("syscalls", "sys_enter_getppid") as link:
            info = link.info()
            assert info.type == LinkType.PERF_EVENT and info.tp_name == "sys_enter_getppid"
            assert info.prog_id == prog.id
            for _ in range(10):
                os.getppid()
            n = counters[0]
            assert n >= 10
        for _ in range(10):
            os.getppid()
        assert counters[0] == n


def test_tracepoint_errors(tracefs, counters):
    with counting(ProgType.TRACEPOINT, counters) as prog:
        with pytest.raises(FileNotFoundError, match="no tracepoint syscalls:nope"):
            prog.attach_tracepoint("syscalls", "nope")


def test_tracefs_missing_says_how_to_mount(counters, monkeypatch):
    from bpf import perf

    monkeypatch.setattr(perf.os.path, "exists", lambda p: False)
    with pytest.raises(FileNotFoundError, match="mount -t tracefs"):
        perf.tracefs_path()


@pytest.mark.parametrize("retprobe", [False, True], ids=["kprobe", "kretprobe"])
@pytest.mark.parametrize("legacy", [False, True], ids=["pmu", "tracefs"])
def test_kprobe(tracefs, counters, retprobe, legacy):
    with counting(ProgType.KPROBE, counters) as prog:
        try:
            link = prog.attach_kprobe("__x64_sys_getppid", retprobe=retprobe, legacy=legacy)
        except bpf.NotSupportedError as e:
            skip_missing(f"kprobes: {e}", feature="kprobes")
        with link:
            for _ in range(5):
                os.getppid()
            assert counters[0] >= 5
            if legacy:
                with open(os.path.join(tracefs, "kprobe_events")) as f:
                    assert "pybpf" in f.read()
        with open(os.path.join(tracefs, "kprobe_events")) as f:
            assert "pybpf" not in f.read()


def test_kprobe_unknown_function(tracefs, counters):
    with counting(ProgType.KPROBE, counters) as prog:
        with pytest.raises(bpf.BPFError) as ei:
            prog.attach_kprobe("no_such_function_xyz")
        # either the function is unknown or the kernel has no kprobes at all: both say so
        assert "no kernel function" in str(ei.value) or "no kprobes" in str(ei.value) \
            or "unknown function" in str(ei.value)


@pytest.mark.parametrize("legacy", [False, True], ids=["pmu", "tracefs"])
@pytest.mark.parametrize("retprobe", [False, True], ids=["uprobe", "uretprobe"])
def test_uprobe_libc(tracefs, counters, legacy, retprobe):
    with counting(ProgType.KPROBE, counters) as prog:
        with prog.attach_uprobe("c", "getppid", retprobe=retprobe, legacy=legacy) as link:
            info = link.info()
            assert "libc" in info.file_name
            if not legacy:
                assert info.type == LinkType.PERF_EVENT
            else:
                with open(os.path.join(tracefs, "uprobe_events")) as f:
                    assert "pybpf" in f.read()
            for _ in range(5):
                os.getppid()
            assert counters[0] >= 5
        with open(os.path.join(tracefs, "uprobe_events")) as f:
            assert "pybpf" not in f.read()


TARGET_C = r"""
#include <stdlib.h>
__attribute__((noinline)) int target_fn(int x) { return x + 1; }
__attribute__((noinline)) int other_fn(int x) { return x * 2; }
int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 3, s = 0;
    for (int i = 0; i < n; i++) s += target_fn(i) + other_fn(i);
    return s == -1;
}
"""


@pytest.fixture(scope="module")
def target_binary(tmp_path_factory):
    d = tmp_path_factory.mktemp("uprobe")
    src = d / "target.c"
    src.write_text(TARGET_C)
    exe = d / "target"
    subprocess.run(["cc", "-O1", "-o", str(exe), str(src)], check=True)
    return str(exe)


def test_uprobe_on_test_binary(counters, target_binary):
    with counting(ProgType.KPROBE, counters) as prog:
        with prog.attach_uprobe(target_binary, "target_fn"):
            subprocess.run([target_binary, "7"], check=True)
            assert counters[0] == 7
        subprocess.run([target_binary, "7"], check=True)
        assert counters[0] == 7
        # the same by offset
        sys_links = __import__("sys").modules["bpf.links"]
        off = sys_links.symbol_offsets(target_binary, ["other_fn"])["other_fn"]
        with prog.attach_uprobe(target_binary, off):
            subprocess.run([target_binary, "4"], check=True)
        assert counters[0] == 11


def test_uprobe_pid_filter(counters, target_binary):
    with counting(ProgType.KPROBE, counters) as prog:
        p = subprocess.Popen([target_binary, "5"])
        # a pid that is not the target's: nothing counted from other processes
        with prog.attach_uprobe(target_binary, "target_fn", pid=os.getpid()):
            p.wait()
            subprocess.run([target_binary, "5"], check=True)
        assert counters[0] == 0


def test_uprobe_unknown_symbol_and_binary(counters, target_binary):
    with counting(ProgType.KPROBE, counters) as prog:
        with pytest.raises(LookupError, match="no function nope_fn"):
            prog.attach_uprobe(target_binary, "nope_fn")
        with pytest.raises(FileNotFoundError):
            prog.attach_uprobe("/no/such/binary", "main")
        with pytest.raises(FileNotFoundError, match="cannot find"):
            prog.attach_uprobe("libdoesnotexist", "main")


def test_uprobe_multi(counters, target_binary):
    with RawProgram(ProgType.KPROBE, counter_insns(counters.fd, 0),
                    expected_attach_type=AttachType.TRACE_UPROBE_MULTI) as prog:
        try:
            link = prog.attach_uprobe_multi(target_binary, ["target_fn", "other_fn"])
        except bpf.NotSupportedError:
            skip_missing("multi-uprobe links (6.6+)")
        with link:
            info = link.info()
            assert info.type == LinkType.UPROBE_MULTI and info.count == 2
            assert info.path == os.path.realpath(target_binary)
            subprocess.run([target_binary, "3"], check=True)
            assert counters[0] == 6
        with prog.attach_uprobe_multi(target_binary, "*_fn") as link:
            assert link.info().count == 2


def test_fentry_fexit(counters, tmp_path):
    fid = btf_func_id("do_sys_openat2")
    if fid is None:
        skip_missing("vmlinux BTF with do_sys_openat2")
    for slot, at in ((0, AttachType.TRACE_FENTRY), (1, AttachType.TRACE_FEXIT)):
        try:
            prog = RawProgram(ProgType.TRACING, counter_insns(counters.fd, 0, slot=slot),
                              expected_attach_type=at, attach_btf_id=fid)
        except PermissionError:
            # this VM's kernel refuses every TRACING program (also libbpf/bpftool loads) with
            # EPERM while root: the trampoline hook is not usable here
            skip_missing("fentry/fexit: the kernel refuses TRACING programs (EPERM)", feature="tracing")
        with prog:
            with prog.attach_trace() as link:
                info = link.info()
                assert info.type == LinkType.TRACING and info.attach_type == at
                assert info.target_btf_id == fid
                for _ in range(5):
                    with open(tmp_path / "f", "w"):
                        pass
                assert counters[slot] >= 5
            # also through the section-name dispatch of attach()
            prog.section_name = "fentry/do_sys_openat2"
            with prog.attach() as link:
                assert link.info().type == LinkType.TRACING


def test_raw_tracepoint(counters):
    with counting(ProgType.RAW_TRACEPOINT, counters) as prog:
        with prog.attach_raw_tracepoint("sys_enter") as link:
            info = link.info()
            assert info.type == LinkType.RAW_TRACEPOINT and info.tp_name == "sys_enter"
            os.getppid()
            assert counters[0] >= 1
        with pytest.raises(bpf.BPFError, match="no tracepoint named"):
            prog.attach_raw_tracepoint("no_such_tp")


def test_perf_event_sampling(counters):
    with counting(ProgType.PERF_EVENT, counters) as prog:
        with bpf.perf_event_open("task-clock", pid=0, cpu=-1, sample_period=100_000) as ev:
            with prog.attach_perf_event(ev) as link:
                assert link.info().type == LinkType.PERF_EVENT
                t = time.monotonic()
                while time.monotonic() - t < 0.1:
                    pass
                assert counters[0] > 0
                assert ev.read() > 0


def test_perf_event_open_kinds():
    with bpf.perf_event_open("cpu-clock", cpu=0) as ev:
        assert ev.fileno() > 0 and "cpu-clock" in repr(ev)
    assert ev.closed
    try:
        with bpf.perf_event_open("instructions", pid=0, cpu=-1) as ev:
            assert ev.read() >= 0
    except bpf.NotSupportedError as e:
        assert "no such event" in str(e)
    with pytest.raises(ValueError, match="unknown perf event"):
        bpf.perf_event_open("nonsense")


def test_perf_event_tracepoint(tracefs, counters):
    with counting(ProgType.TRACEPOINT, counters) as prog, \
            bpf.perf_event_open("tracepoint:syscalls:sys_enter_getppid") as ev, \
            prog.attach_perf_event(ev):
        os.getppid()
        assert counters[0] >= 1


def test_pinned_link_survives_its_objects(tracefs, bpffs, counters):
    path = os.path.join(bpffs, "tp_link")
    with counting(ProgType.TRACEPOINT, counters) as prog:
        link = prog.attach_tracepoint("syscalls", "sys_enter_getppid")
        link_id = link.info().id
        link.pin(path)
        link.close()
    # program and link objects are gone; the pin keeps both attached
    os.getppid()
    n = counters[0]
    assert n >= 1
    assert link_id in [i.id for i in bpf.links()]
    with bpf.Link.from_pin(path) as again:
        assert again.info().id == link_id
        again.unpin(path)
    assert link_id not in [i.id for i in bpf.links()]
    os.getppid()
    assert counters[0] == n


def test_link_from_id_and_bad_fds(counters):
    with counting(ProgType.RAW_TRACEPOINT, counters) as prog:
        with prog.attach_raw_tracepoint("sys_enter") as link:
            i = link.info()
            with bpf.Link.from_id(i.id) as same:
                assert same.info() == i
            with link.dup() as d:
                assert d.info().id == i.id
            assert repr(link).startswith("<bpf.Link raw_tracepoint")
        with pytest.raises(ValueError, match="closed link"):
            link.info()
        with pytest.raises(bpf.BPFError, match="not a BPF link"):
            bpf.Link.from_fd(prog.fd)
        with pytest.raises(bpf.BPFError):
            bpf.Link.from_id(0xFFFFFFF0)


def test_update_not_supported_on_perf_links(tracefs, counters):
    with counting(ProgType.TRACEPOINT, counters) as a, \
            counting(ProgType.TRACEPOINT, counters, slot=1) as b:
        with a.attach_tracepoint("syscalls", "sys_enter_getppid") as link:
            with pytest.raises(bpf.BPFError) as ei:
                link.update(b)
            assert ei.value.errno in (errno.EOPNOTSUPP, errno.EINVAL)


def test_kprobe_multi(tracefs, counters):
    with RawProgram(ProgType.KPROBE, counter_insns(counters.fd, 0),
                    expected_attach_type=AttachType.TRACE_KPROBE_MULTI) as prog:
        try:
            link = prog.attach_kprobe_multi(functions=["__x64_sys_getppid"])
        except bpf.NotSupportedError:
            skip_missing("multi-kprobes (CONFIG_FPROBE)", feature="kprobes")
        with link:
            assert link.info().type == LinkType.KPROBE_MULTI
            os.getppid()
            assert counters[0] >= 1
        with pytest.raises(ValueError, match="exactly one"):
            prog.attach_kprobe_multi("a*", functions=["b"])


def test_attach_from_section_names(tracefs, counters):
    with counting(ProgType.TRACEPOINT, counters) as tp:
        tp.section_name = "tracepoint/syscalls/sys_enter_getppid"
        with tp.attach() as link:
            os.getppid()
            assert link.info().tp_name == "sys_enter_getppid"
    with counting(ProgType.RAW_TRACEPOINT, counters) as raw:
        raw.section_name = "raw_tp/sys_enter"
        with raw.attach() as link:
            assert link.info().type == LinkType.RAW_TRACEPOINT
    with RawProgram(ProgType.XDP, counter_insns(counters.fd, 2)) as xdp:
        xdp.section_name = "xdp"
        with pytest.raises(ValueError, match="attach_xdp"):
            xdp.attach()
        xdp.section_name = None
        with pytest.raises(ValueError, match="no section name"):
            xdp.attach()

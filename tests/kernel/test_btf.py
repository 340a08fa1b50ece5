"""BTF: the kernel's types, files, building and loading."""

from __future__ import annotations

import gc
import os

import pytest

import bpf
from bpf.btf import BTFKind


def test_vmlinux_find_struct():
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        pytest.fail("this machine has BTF; /sys/kernel/btf/vmlinux must exist")
    with bpf.BTF.vmlinux() as btf:
        assert len(btf) > 10000
        ts = btf.find("task_struct", BTFKind.STRUCT)
        assert ts.kind is BTFKind.STRUCT and ts.size > 1000
        names = {m.name for m in ts.members}
        assert {"pid", "tgid", "comm"} <= names
        pid = next(m for m in ts.members if m.name == "pid")
        assert btf.size_of(pid.type_id) == 4
        assert btf.fd == -1  # parsed, not loaded
    assert btf.closed
    with pytest.raises(ValueError, match="closed BTF"):
        btf.find("task_struct")
    btf.close()  # idempotent


def test_find_missing_raises_keyerror():
    with bpf.BTF.vmlinux() as btf:
        with pytest.raises(KeyError):
            btf.find("no_such_type_really_xyz")
        with pytest.raises(KeyError):
            btf.type(len(btf) + 5)


def test_build_load_and_roundtrip_bytes():
    btf, key, val = bpf.BTF.for_map(4, 24)
    with btf:
        assert btf.fd > 0
        assert btf.size_of(val) == 24 and btf.size_of(key) == 4
        raw = btf.raw()
    with bpf.BTF.from_bytes(raw) as copy:
        assert copy.type(val).kind is BTFKind.STRUCT
        assert [m.name for m in copy.type(val).members] == ["data"]


def test_loaded_btf_warns_if_never_closed():
    btf, _, _ = bpf.BTF.for_map(4, 8)
    with pytest.warns(ResourceWarning):
        del btf
        gc.collect()


def test_bad_input():
    with pytest.raises(bpf.BPFError):
        bpf.BTF.from_bytes(b"\x00" * 10)
    with pytest.raises(TypeError):
        bpf.BTF.from_bytes(12)  # type: ignore[arg-type]
    with pytest.raises(OSError):
        bpf.BTF.from_file("/nonexistent/file.o")
    with pytest.raises(ValueError):
        bpf.BTF.for_map(3, 8)
    with bpf.BTF.new() as b:
        with pytest.raises(ValueError, match="unknown BTF kind"):
            b.add("bogus")
        with pytest.raises(TypeError):
            b.add(1)

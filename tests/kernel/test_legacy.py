"""bpf.legacy.load_elf against the real kernel, with the committed legacy objects."""

from __future__ import annotations

import os
import pathlib
import random
import struct
import sys

import pytest

import bpf
import bpf.legacy

BPF_DIR = pathlib.Path(__file__).resolve().parents[1] / "bpf"
DEF20 = str(BPF_DIR / "legacy_def20.bpf.o")
DEF28 = str(BPF_DIR / "legacy_def28.bpf.o")
PKT = bytes(64)
ZERO = struct.pack("I", 0)
SKB_LEN = len(PKT) - 14  # a socket filter sees the packet after the Ethernet header



def u64(raw: bytes | None) -> int:
    assert raw is not None
    return int(struct.unpack("Q", raw)[0])


def test_def20_maps_programs_and_text_subprogram():
    with bpf.legacy.load_elf(DEF20) as obj:
        assert obj.license == "GPL"
        assert set(obj.maps) == {"counters", "lengths"}
        counters = obj.maps["counters"]
        assert counters.type == bpf.MapType.ARRAY
        assert (counters.key_size, counters.value_size, counters.max_entries) == (4, 8, 8)
        assert obj.maps["lengths"].type == bpf.MapType.HASH
        assert obj.map_defs["lengths"].max_entries == 64
        types = {name: p.type for name, p in obj.programs.items()}
        assert types == {
            "sock_count": bpf.ProgType.SOCKET_FILTER, "xdp_count": bpf.ProgType.XDP,
            "cls_count": bpf.ProgType.SCHED_CLS, "act_count": bpf.ProgType.SCHED_ACT,
            "kprobe_count": bpf.ProgType.KPROBE, "kretprobe_count": bpf.ProgType.KPROBE,
            "tp_count": bpf.ProgType.TRACEPOINT, "raw_tp_count": bpf.ProgType.RAW_TRACEPOINT,
        }
        assert obj.programs["kprobe_count"].section == "kprobe/__x64_sys_getpgid"
        assert obj.skipped == []
        # socket filter: the program's own map relocation and the .text subprogram's
        retval = obj.programs["sock_count"].test_run(PKT)[0]
        assert retval == SKB_LEN
        assert u64(counters.lookup(ZERO)) == 1
        assert u64(obj.maps["lengths"].lookup(struct.pack("I", SKB_LEN))) == 1
        # classifier returns 0 once bump() returned a positive count
        assert obj.programs["cls_count"].test_run(PKT)[0] == 0
        assert obj.programs["cls_count"].test_run(PKT)[0] == 0
        assert u64(counters.lookup(struct.pack("I", 2))) == 2
        assert obj.programs["xdp_count"].test_run(PKT)[0] == 2  # XDP_PASS
        assert u64(counters.lookup(struct.pack("I", 1))) == 1
        progs = list(obj.programs.values())
    assert obj.closed
    assert all(p.closed for p in progs)
    assert "closed" in repr(obj)
    obj.close()  # idempotent


def test_def28_pinning_and_map_in_map(bpffs):
    pin = os.path.join(bpffs, "shared")
    with bpf.legacy.load_elf(DEF28, pin_path=bpffs) as obj:
        assert set(obj.maps) == {"inner_tmpl", "outer", "shared"}
        assert obj.map_defs["shared"].pinning == 2
        assert obj.map_defs["outer"].inner_map_idx == 0
        assert obj.maps["outer"].type == bpf.MapType.ARRAY_OF_MAPS
        assert os.path.exists(pin)
        with bpf.Map.create(bpf.MapType.ARRAY, 4, 8, 1) as inner:
            obj.maps["outer"].update(ZERO, struct.pack("I", inner.fd))
            assert obj.programs["sock_count"].test_run(PKT)[0] == SKB_LEN
            assert u64(inner.lookup(ZERO)) == 1  # through the map-in-map
        assert u64(obj.maps["shared"].lookup(ZERO)) == 1  # through add_shared (.text -> .text)
        assert obj.programs["cls_count"].test_run(PKT)[0] == 0
        assert u64(obj.maps["shared"].lookup(struct.pack("I", 1))) == 1
        # a second load reuses the pinned map
        with bpf.legacy.load_elf(DEF28, pin_path=bpffs) as again:
            assert again.maps["shared"].id == obj.maps["shared"].id
            assert again.maps["outer"].id != obj.maps["outer"].id
    assert os.path.exists(pin)  # the pin stays
    os.unlink(pin)


def test_def28_incompatible_pin_and_missing_pin_path(bpffs):
    with pytest.raises(ValueError, match="no pin_path"):
        bpf.legacy.load_elf(DEF28)
    pin = os.path.join(bpffs, "shared")
    with bpf.Map.create(bpf.MapType.HASH, 4, 8, 4) as other:
        other.pin(pin)
    with pytest.raises(ValueError, match="pinned at"):
        bpf.legacy.load_elf(DEF28, pin_path=bpffs)
    os.unlink(pin)


def test_section_types():
    st = bpf.legacy.section_prog_type
    assert st("xdp") == bpf.ProgType.XDP
    assert st("xdp/prog") == bpf.ProgType.XDP
    assert st("tc_cls") == st("classifier") == bpf.ProgType.SCHED_CLS
    assert st("tc_act") == st("action") == bpf.ProgType.SCHED_ACT
    assert st("kprobe/x") == st("kretprobe/x") == bpf.ProgType.KPROBE
    assert st("tracepoint/a/b") == bpf.ProgType.TRACEPOINT
    assert st("raw_tracepoint/x") == bpf.ProgType.RAW_TRACEPOINT
    assert st("socket") == bpf.ProgType.SOCKET_FILTER
    assert st("kprobe") is None and st(".text") is None and st("xdpfoo") is None


def test_bad_files(tmp_path):
    p = tmp_path / "x.o"
    p.write_bytes(b"\0" * 100)
    with pytest.raises(ValueError, match="not an ELF file"):
        bpf.legacy.load_elf(p)
    with pytest.raises(ValueError, match="not BPF"):
        bpf.legacy.load_elf(sys.executable)
    with pytest.raises(FileNotFoundError):
        bpf.legacy.load_elf(tmp_path / "missing.o")
    data = pathlib.Path(DEF20).read_bytes()
    for cut in (64, 300, len(data) // 2, len(data) - 8):
        p.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="corrupt|outside|no symbol table"):
            bpf.legacy.load_elf(p)


def test_corrupted_files_never_crash(tmp_path):
    data = pathlib.Path(DEF20).read_bytes()
    rnd = random.Random(99)
    p = tmp_path / "c.o"
    errors = 0
    for _ in range(60):
        buf = bytearray(data)
        for _ in range(rnd.randint(1, 6)):
            buf[rnd.randrange(64, len(buf))] = rnd.randrange(256)
        p.write_bytes(bytes(buf))
        try:
            bpf.legacy.load_elf(p).close()
        except (ValueError, bpf.BPFError):
            errors += 1
    assert errors > 0


def test_libbpf_refuses_and_object_points_here():
    with pytest.raises(bpf.BPFError, match="legacy"):
        bpf.Object.open(DEF28)

"""bpf.Object against the real kernel, with the committed objects of tests/bpf/."""

from __future__ import annotations

import errno
import os
import pathlib
import random
import struct
import sys
import threading

import pytest

import bpf

BPF_DIR = pathlib.Path(__file__).resolve().parents[1] / "bpf"
PKT = bytes(64)  # an all-zero Ethernet frame is enough for test_run of tc programs


def obj_path(name: str) -> str:
    return str(BPF_DIR / f"{name}.bpf.o")



# ---- open, close, spec views -------------------------------------------------------------

@pytest.mark.parametrize("kind", ["path", "pathlib", "bytes", "bytearray", "memoryview"])
def test_open_sources(kind):
    p = obj_path("globals")
    data = pathlib.Path(p).read_bytes()
    src = {"path": p, "pathlib": pathlib.Path(p), "bytes": data, "bytearray": bytearray(data),
           "memoryview": memoryview(data)}[kind]
    with bpf.Object.open(src, name="globals") as obj:
        assert isinstance(obj, bpf.Object)
        assert obj.name == "globals"
        assert not obj.loaded and not obj.closed
        assert "rw_globals" in obj.programs
        assert repr(obj) == "<Object 'globals' opened>"
    assert obj.closed
    assert "closed" in repr(obj)


def test_close_is_idempotent_and_closed_raises():
    obj = bpf.Object.open(obj_path("globals"))
    obj.close()
    obj.close()
    for call in (lambda: obj.load(), lambda: obj.maps["globals.bss"], lambda: obj.globals,
                 lambda: obj.program_names(), lambda: obj.name, lambda: obj.__enter__()):
        with pytest.raises(ValueError, match="closed object"):
            call()


def test_unclosed_object_warns():
    obj = bpf.Object.open(obj_path("globals"))
    with pytest.warns(ResourceWarning, match="unclosed object"):
        del obj
        import gc

        gc.collect()


def test_map_specs_before_load():
    with bpf.Object.open(obj_path("pinned")) as obj:
        assert set(obj.maps) == {"pinned_counts", "private_counts"}
        spec = obj.maps["private_counts"]
        assert isinstance(spec, bpf.MapSpec)
        assert spec.type == bpf.MapType.HASH
        assert (spec.key_size, spec.value_size, spec.max_entries) == (4, 8, 16)
        assert spec.flags == 0
        assert spec.pin_path is None and not spec.internal and spec.inner is None
        spec.max_entries = 4096
        spec.flags = bpf.MapFlags.NO_PREALLOC
        assert spec.max_entries == 4096 and spec.flags == bpf.MapFlags.NO_PREALLOC
        spec.type = bpf.MapType.LRU_HASH
        assert obj.maps["private_counts"].type == bpf.MapType.LRU_HASH
        spec.type = bpf.MapType.HASH
        with pytest.raises(KeyError):
            obj.maps["nope"]
        assert "nope" not in obj.maps
        with pytest.raises(OverflowError):
            spec.max_entries = 1 << 40


def test_program_specs_before_load():
    with bpf.Object.open(obj_path("verifier_fail")) as obj:
        assert list(obj.programs) == ["bad_deref", "good"]
        p = obj.programs["good"]
        assert isinstance(p, bpf.ProgramSpec)
        assert p.name == "good" and p.section == "tc"
        assert p.type == bpf.ProgType.SCHED_CLS
        assert p.autoload is True
        assert p.insn_count == 2
        p.type = bpf.ProgType.SCHED_ACT
        assert p.type == bpf.ProgType.SCHED_ACT
        p.expected_attach_type = bpf.AttachType.CGROUP_INET_INGRESS
        assert p.expected_attach_type == bpf.AttachType.CGROUP_INET_INGRESS
        p.autoload = False
        assert obj.programs["good"].autoload is False
        assert "good" in repr(p)


def test_spec_setters_after_load_raise_busy():
    obj = bpf.Object.open(obj_path("pinned"))
    with obj:
        spec = obj.maps["private_counts"]
        prog = obj.programs["count"]
        obj.maps["pinned_counts"].pin_path = None  # no bpffs needed
        obj.load()
        with pytest.raises(bpf.BPFError) as ei:
            spec.max_entries = 10
        assert ei.value.errno == errno.EBUSY
        with pytest.raises(bpf.BPFError):
            prog.autoload = False
        with pytest.raises(bpf.BPFError) as ei:
            obj.load()
        assert ei.value.errno == errno.EBUSY


# ---- load, live maps and programs ----------------------------------------------------------

def test_live_maps_programs(bpffs):
    with bpf.Object.open(obj_path("pinned"), pin_root=bpffs) as obj:
        obj.maps["private_counts"].max_entries = 123
        obj.load()
        assert obj.loaded and "loaded" in repr(obj)
        m = obj.maps["private_counts"]
        assert isinstance(m, bpf.Map)
        assert m.max_entries == 123
        assert obj.maps["private_counts"] is m  # same object on every access
        p = obj.programs["count"]
        assert isinstance(p, bpf.Program)
        assert obj.programs["count"] is p
        assert p.section == "tc" and p._object is obj
        assert set(obj.maps) == {"pinned_counts", "private_counts"}
        kept = m.dup()
        p.test_run(PKT)
        p.test_run(PKT)
        key = struct.pack("I", 0)
        assert struct.unpack("Q", m.lookup(key))[0] == 2
        assert struct.unpack("Q", obj.maps["pinned_counts"].lookup(key))[0] == 2
    assert m.closed and p.closed  # close() closed what it handed out
    try:
        assert struct.unpack("Q", kept.lookup(key))[0] == 2  # a dup outlives the object
    finally:
        kept.close()


def test_pin_by_name_reuses_the_pinned_map(bpffs):
    path = os.path.join(bpffs, "pinned_counts")
    with bpf.Object.open(obj_path("pinned"), pin_root=bpffs) as a:
        assert a.maps["pinned_counts"].pin_path == path
        assert a.maps["private_counts"].pin_path is None
        a.load()
        assert os.path.exists(path)
        with bpf.Object.load_file(obj_path("pinned"), pin_root=bpffs) as b:
            assert b.maps["pinned_counts"].id == a.maps["pinned_counts"].id
            assert b.maps["private_counts"].id != a.maps["private_counts"].id
    assert os.path.exists(path)  # pins outlive the objects
    # reuse of an explicitly given map
    with bpf.Object.open(obj_path("pinned")) as c:
        c.maps["pinned_counts"].pin_path = None
        with bpf.Map.from_pin(path) as pinned:
            c.maps["pinned_counts"].reuse(pinned)
            c.load()
            assert c.maps["pinned_counts"].id == pinned.id
    with bpf.Object.open(obj_path("pinned")) as d:
        d.maps["pinned_counts"].pin_path = None
        d.maps["pinned_counts"].reuse_pinned(path)
        d.load()
        with bpf.Map.from_pin(path) as pinned:
            assert d.maps["pinned_counts"].id == pinned.id
    os.unlink(path)


def test_reuse_takes_the_given_map_and_incompatible_pins_fail(bpffs):
    # libbpf renames the spec after the reused map's kernel name: keep the same name
    with bpf.Map.create(bpf.MapType.ARRAY, 4, 8, 9, name="pinned_counts") as other:
        with bpf.Object.open(obj_path("pinned")) as obj:
            obj.maps["pinned_counts"].pin_path = None
            obj.maps["pinned_counts"].reuse(other)
            assert obj.maps["pinned_counts"].max_entries == 9  # the reused map's attributes
            obj.load()
            assert obj.maps["pinned_counts"].id == other.id
    with bpf.Map.create(bpf.MapType.HASH, 4, 8, 16) as other:
        other.pin(os.path.join(bpffs, "pinned_counts"))
        with bpf.Object.open(obj_path("pinned"), pin_root=bpffs) as obj:
            with pytest.raises(bpf.BPFError) as ei:
                obj.load()  # the pin holds a HASH, the object declares an ARRAY
            assert "pinned_counts" in str(ei.value)
        os.unlink(os.path.join(bpffs, "pinned_counts"))


def test_autocreate_off_leaves_map_out():
    with bpf.Object.open(obj_path("tailcall")) as obj:
        obj.programs["entry"].autoload = False
        obj.maps["jump_table"].autocreate = False
        obj.load()
        assert "jump_table" not in obj.maps
        with pytest.raises(KeyError, match="autocreate"):
            obj.maps["jump_table"]
        with pytest.raises(KeyError, match="autoload"):
            obj.programs["entry"]
        assert "entry" not in obj.programs


def test_map_in_map_inner_specs():
    with bpf.Object.open(obj_path("map_in_map")) as obj:
        inner = obj.maps["outer"].inner
        assert inner is not None and inner.name == "outer.inner"
        assert (inner.type, inner.max_entries) == (bpf.MapType.ARRAY, 1)
        with pytest.raises(ValueError, match="read-only"):
            inner.max_entries = 8  # libbpf cannot change inner specs
        assert obj.maps["outer_fd"].inner is None
        with pytest.raises(AttributeError):
            obj.maps["outer_fd"].inner_map
        with bpf.Map.create(bpf.MapType.HASH, 4, 8, 16) as tmpl, \
                bpf.Map.create(bpf.MapType.ARRAY, 4, 8, 8) as tmpl8:
            obj.maps["outer_fd"].inner_map = tmpl  # outer_fd declares no template
            obj.maps["outer"].inner_map = tmpl8    # replaces the declared 1-entry template
            assert obj.maps["outer"].inner is None
            obj.load()
        outer = obj.maps["outer"]
        assert outer.type == bpf.MapType.ARRAY_OF_MAPS
        assert obj.maps["outer_fd"].type == bpf.MapType.HASH_OF_MAPS
        prog = obj.programs["bump_inner"]
        assert prog.test_run(PKT)[0] == 1  # outer[0] empty
        with bpf.Map.create(bpf.MapType.ARRAY, 4, 8, 1) as small:
            with pytest.raises(bpf.BPFError):  # the template now says 8 entries
                outer.update(struct.pack("I", 0), struct.pack("I", small.fd))
        with bpf.Map.create(bpf.MapType.ARRAY, 4, 8, 8) as m:
            outer.update(struct.pack("I", 0), struct.pack("I", m.fd))
            assert prog.test_run(PKT)[0] == 0
            assert struct.unpack("Q", m.lookup(struct.pack("I", 0)))[0] == 1


def test_missing_inner_map_fails_with_libbpf_reason():
    with bpf.Object.open(obj_path("map_in_map")) as obj:
        with pytest.raises(bpf.BPFError) as ei:
            obj.load()
    assert "outer_fd" in str(ei.value) and "libbpf:" in repr(ei.value)


# ---- globals -------------------------------------------------------------------------------

def test_globals_before_load():
    with bpf.Object.open(obj_path("globals")) as obj:
        g = obj.globals
        assert set(g) == {"data_int", "data_str", "ro_int", "ro_neg", "bss_u64", "bss_s32",
                          "bss_u8", "bss_u16", "runs", "extra_int"}
        assert g["data_int"] == 7
        assert g["data_str"] == b"hello\0\0\0"
        assert g["ro_int"] == 3
        assert g["ro_neg"] == -5
        assert g["bss_u64"] == 0
        assert g["extra_int"] == 11
        info = g.info("ro_neg")
        assert (info.section, info.size, info.kind, info.signed) == (".rodata", 8, "int", True)
        assert g.info("data_str").kind == "bytes"
        assert g.info("bss_u64").signed is False
        g["ro_int"] = 40
        g["data_str"] = b"HELLO!!\0"
        assert g["ro_int"] == 40 and g["data_str"] == b"HELLO!!\0"
        with pytest.raises(KeyError):
            g["missing"]
        with pytest.raises(ValueError, match="8 bytes, got 3"):
            g["data_str"] = b"abc"
        with pytest.raises(TypeError):
            g["data_str"] = 5
        with pytest.raises(TypeError):
            g["data_int"] = "seven"
        with pytest.raises(OverflowError):
            g["bss_u8"] = 256
        with pytest.raises(OverflowError):
            g["bss_u64"] = -1
        g["bss_s32"] = -2**31
        assert g["bss_s32"] == -2**31
        g["bss_s32"] = 0


def test_globals_both_ways_through_the_program():
    with bpf.Object.open(obj_path("globals")) as obj:
        g = obj.globals
        g["ro_int"] = 4  # .rodata: before load only
        g["data_int"] = 10
        obj.load()
        prog = obj.programs["rw_globals"]
        retval = prog.test_run(PKT)[0]
        assert retval == 14  # data_int + ro_int, both set from Python
        assert g["runs"] == 1
        assert g["bss_u64"] == 24 and g["bss_s32"] == -10
        assert g["bss_u8"] == ord("h") and g["bss_u16"] == 995
        assert g["extra_int"] == 12
        # after load, through the mmap: a write is seen by the next run without a syscall
        g["data_int"] = 100
        g["data_str"] = b"zebra\0\0\0"
        retval = prog.test_run(PKT)[0]
        assert retval == 104
        assert g["runs"] == 2 and g["bss_s32"] == -100 and g["bss_u8"] == ord("z")
        # the .bss map seen through the map fd agrees with the mapping
        bss = obj.maps[".bss"]
        raw = bss.lookup(struct.pack("I", 0))
        assert struct.unpack_from("Q", raw, 0)[0] == 2
        with pytest.raises(ValueError, match="read-only once the object is loaded"):
            g["ro_int"] = 5
        with pytest.raises(ValueError, match="read-only"):
            obj.global_write(".rodata", 0, b"\0\0\0\0")
        assert g["ro_int"] == 4
        with pytest.raises(ValueError, match="outside"):
            obj.global_read(".bss", 20, 100)
    with pytest.raises(ValueError, match="closed"):
        obj.global_read(".bss", 0, 1)


def test_globals_from_another_thread_after_load():
    with bpf.Object.load_file(obj_path("globals")) as obj:
        results = []

        def worker() -> None:
            obj.globals["data_int"] = 1000
            results.append(obj.programs["rw_globals"].test_run(PKT)[0])

        t = threading.Thread(target=worker)
        t.start()
        t.join()
        assert results == [1003]
        assert obj.globals["bss_s32"] == -1000


def test_close_racing_load_in_another_thread():
    for _ in range(5):
        obj = bpf.Object.open(obj_path("core"))
        errors: list[BaseException] = []

        def load() -> None:
            try:
                obj.load()
            except (ValueError, RuntimeError) as e:  # closed before load started
                errors.append(e)

        t = threading.Thread(target=load)
        t.start()
        obj.close()  # during load: deferred until load() returns; never a use-after-free
        t.join()
        assert obj.closed
        assert all("closed" in str(e) for e in errors)
        obj.close()


# ---- CO-RE -----------------------------------------------------------------------------------

@pytest.mark.parametrize("btf_path", [None, "/sys/kernel/btf/vmlinux"])
def test_core_reads_the_current_task(btf_path):
    with bpf.Object.open(obj_path("core"), btf_path=btf_path) as obj:
        obj.load()
        obj.programs["read_task"].test_run(PKT)
        g = obj.globals
        assert g["has_pid_field"] == 1
        assert g["seen_tgid"] == os.getpid()
        assert g["seen_pid"] == threading.get_native_id()
        assert g["seen_ppid"] == os.getppid()


def test_core_with_bogus_kernel_btf_fails_clearly(tmp_path):
    bogus = tmp_path / "vmlinux"
    bogus.write_bytes(b"not BTF")
    with bpf.Object.open(obj_path("core"), btf_path=bogus) as obj:
        with pytest.raises(bpf.BPFError) as ei:
            obj.load()
        assert "load object" in str(ei.value)


# ---- verifier errors -------------------------------------------------------------------------

def test_verifier_error_names_program_instruction_and_reason():
    with bpf.Object.open(obj_path("verifier_fail")) as obj:
        with pytest.raises(bpf.VerifierError) as ei:
            obj.load()
    e = ei.value
    assert e.errno == errno.EACCES
    assert e.program == "bad_deref"
    msg = str(e)
    assert "load program 'bad_deref' (section 'tc')" in msg
    assert "R0 invalid mem access 'map_value_or_null'" in msg
    assert "r0 = *(u64 *)(r0 +0)" in msg  # the failing instruction
    assert isinstance(e.log, list) and all(isinstance(x, str) for x in e.log)
    assert any("invalid mem access" in line for line in e.log)
    assert e.log[-1].startswith("processed ")
    assert e.reason == "R0 invalid mem access 'map_value_or_null'"
    assert e.insn == 7


def test_failed_load_cannot_be_retried_and_load_file_cleans_up():
    with bpf.Object.open(obj_path("verifier_fail")) as obj:
        with pytest.raises(bpf.VerifierError):
            obj.load()
        with pytest.raises(bpf.BPFError, match="open it again"):
            obj.load()
    with pytest.raises(bpf.VerifierError):
        bpf.Object.load_file(obj_path("verifier_fail"))  # closes what it opened: no warning


def test_autoload_off_skips_the_bad_program():
    with bpf.Object.open(obj_path("verifier_fail")) as obj:
        obj.programs["bad_deref"].autoload = False
        obj.load()
        assert list(obj.programs) == ["good"]
        assert obj.programs["good"].test_run(PKT)[0] == 1


def test_verbose_log_level_loads():
    with bpf.Object.open(obj_path("globals")) as obj:
        obj.load(log_level=2, log_size=1 << 16)
        assert obj.loaded
    with bpf.Object.open(obj_path("globals")) as obj:
        with pytest.raises(ValueError):
            obj.load(log_size=10)


# ---- tail calls ------------------------------------------------------------------------------

def test_tail_calls_through_program_arrays():
    with bpf.Object.load_file(obj_path("tailcall")) as obj:
        entry = obj.programs["entry"]
        table = obj.maps["jump_table"]
        assert table.type == bpf.MapType.PROG_ARRAY
        assert entry.test_run(PKT)[0] == 1  # empty slot: falls through
        table.update(struct.pack("I", 0), struct.pack("I", obj.programs["tail_one"].fd))
        table.update(struct.pack("I", 1), struct.pack("I", obj.programs["tail_two"].fd))
        assert entry.test_run(PKT)[0] == 11
        obj.globals["slot"] = 1
        assert entry.test_run(PKT)[0] == 22
        obj.globals["slot"] = 3
        assert entry.test_run(PKT)[0] == 1
        # jump_static was filled by libbpf from its declaration
        assert obj.programs["entry_static"].test_run(PKT)[0] == 22


# ---- bad input ---------------------------------------------------------------------------------

def test_not_elf_and_wrong_machine(tmp_path):
    text = tmp_path / "x.o"
    text.write_text("hello, I am not an ELF file at all, but I am long enough " * 3)
    with pytest.raises(ValueError, match="not an ELF file"):
        bpf.Object.open(text)
    with pytest.raises(ValueError, match="shorter than an ELF header"):
        bpf.Object.open(b"")
    with pytest.raises(ValueError, match="not BPF"):
        bpf.Object.open(sys.executable)
    with pytest.raises(FileNotFoundError):
        bpf.Object.open(tmp_path / "missing.o")
    with pytest.raises(TypeError):
        bpf.Object.open(12)  # type: ignore[arg-type]


def test_legacy_object_is_refused_with_a_pointer_to_legacy():
    with pytest.raises(bpf.BPFError, match="bpf.legacy.load_elf"):
        bpf.Object.open(obj_path("legacy_def20"))


@pytest.mark.parametrize("cut", [64, 200, 1000, 2000, -100, -1])
def test_truncated_objects_raise(cut):
    data = pathlib.Path(obj_path("globals")).read_bytes()
    with pytest.raises(bpf.BPFError):
        with bpf.Object.open(data[:cut]) as obj:
            obj.load()


def test_corrupted_objects_never_crash():
    data = pathlib.Path(obj_path("globals")).read_bytes()
    rnd = random.Random(1234)
    outcomes = {"ok": 0, "error": 0}
    for _ in range(150):
        buf = bytearray(data)
        for _ in range(rnd.randint(1, 8)):
            buf[rnd.randrange(64, len(buf))] = rnd.randrange(256)
        try:
            with bpf.Object.open(bytes(buf)) as obj:
                obj.load()
                obj.globals.items()
            outcomes["ok"] += 1
        except (bpf.BPFError, ValueError, KeyError):
            outcomes["error"] += 1
    assert outcomes["ok"] + outcomes["error"] == 150
    assert outcomes["error"] > 0


# ---- every committed object loads (the material other tests build on) -----------------------

@pytest.mark.parametrize("name", sorted(
    p.name[:-len(".bpf.o")] for p in BPF_DIR.glob("*.bpf.o")
    # legacy_*: libbpf refuses them; verifier_fail, map_in_map: need setup (own tests);
    # fentry_fexit: tracing programs, which a kernel in lockdown=confidentiality (as this
    # project's VM) refuses with EPERM; the links tests deal with it.
    if not p.name.startswith(("legacy_", "verifier_fail", "map_in_map", "fentry_fexit"))))
def test_committed_object_loads(name, bpffs):
    with bpf.Object.open(obj_path(name), pin_root=bpffs) as obj:
        assert len(obj.programs) >= 1
        obj.load()
        assert obj.loaded
    if name == "pinned":
        os.unlink(os.path.join(bpffs, "pinned_counts"))


def test_sources_and_objects_are_committed_together():
    sources = {p.name[:-len(".bpf.c")] for p in BPF_DIR.glob("*.bpf.c")}
    objects = {p.name[:-len(".bpf.o")] for p in BPF_DIR.glob("*.bpf.o")}
    assert sources == objects
    for name in sources:
        src = (BPF_DIR / f"{name}.bpf.c").read_text()
        assert src.startswith("/* "), f"{name}.bpf.c lacks its one-line description"

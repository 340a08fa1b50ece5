"""The build: versions, symbol hiding, dynamic dependencies, interposition, vendoring."""

from __future__ import annotations

import ctypes.util
import hashlib
import io
import os
import pathlib
import subprocess
import sys
import tarfile

import pytest

import bpf
from bpf import _bpf

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "vendor"))
import fetch  # noqa: E402


def test_versions():
    assert bpf.libbpf_version() == (1, 7)
    assert isinstance(bpf.__version__, str) and bpf.__version__
    n = bpf.possible_cpus()
    assert n >= 1 and n >= os.cpu_count()


def test_exceptions_hierarchy():
    assert issubclass(bpf.BPFError, OSError)
    assert issubclass(bpf.KeyNotFoundError, bpf.BPFError)
    assert issubclass(bpf.KeyNotFoundError, KeyError)
    assert issubclass(bpf.KeyExistsError, bpf.BPFError)
    assert issubclass(bpf.VerifierError, bpf.BPFError)
    assert issubclass(bpf.NotSupportedError, bpf.BPFError)
    assert issubclass(bpf.BPFPermissionError, PermissionError)
    e = bpf.KeyNotFoundError(2, "lookup: No such file or directory")
    assert e.errno == 2 and isinstance(e, KeyError)


def _elf():
    from elftools.elf.elffile import ELFFile

    f = open(_bpf.__file__, "rb")
    return f, ELFFile(f)


def test_exports_only_pyinit():
    f, elf = _elf()
    with f:
        dynsym = elf.get_section_by_name(".dynsym")
        exported = sorted(
            s.name for s in dynsym.iter_symbols()
            if s.name and s["st_shndx"] != "SHN_UNDEF"
            and s["st_info"]["bind"] in ("STB_GLOBAL", "STB_WEAK")
        )
    assert exported == ["PyInit__bpf"]


def test_needs_only_libc_and_loader():
    f, elf = _elf()
    with f:
        dyn = elf.get_section_by_name(".dynamic")
        needed = [t.needed for t in dyn.iter_tags() if t.entry.d_tag == "DT_NEEDED"]
    for lib in needed:
        assert lib.startswith(("libc.so", "ld-linux", "ld64.so", "ld-musl", "libc.musl")), needed
    assert any(lib.startswith(("libc.so", "libc.musl", "ld-musl")) for lib in needed)


def test_system_libbpf_cannot_interpose():
    """A system libbpf.so loaded RTLD_GLOBAL first must not take over our calls."""
    path = ctypes.util.find_library("bpf")
    if path is None:
        pytest.fail("no system libbpf.so to prove interposition against "
                    "(.ci/run installs Debian's libbpf-dev)")
    code = (
        "import ctypes, sys\n"
        f"lib = ctypes.CDLL({path!r}, mode=ctypes.RTLD_GLOBAL)\n"
        "sys_ver = (lib.libbpf_major_version(), lib.libbpf_minor_version())\n"
        "import bpf\n"
        "print(sys_ver, bpf.libbpf_version())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split(")")
    sys_ver, ours = out[0] + ")", out[1].strip() + ")"
    assert ours == "(1, 7)"
    assert sys_ver != ours  # the system copy really is a different libbpf


def _archive(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_fetch_verifies_and_extracts(tmp_path):
    data = _archive({"pkg-1.0/src/a.c": b"int a;\n", "pkg-1.0/docs/x.md": b"x",
                     "pkg-1.0/LICENSE": b"L"})
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "pkg-1.0.tar.gz").write_bytes(data)
    pin = {"version": "1.0", "archive": "pkg-1.0.tar.gz",
           "sha256": [hashlib.sha256(data).hexdigest()], "urls": [], "debian_pool": [],
           "keep": ["src/", "LICENSE"]}
    got = fetch.obtain("pkg", pin, str(cache), offline=True)
    assert got == data
    dest = tmp_path / "out" / "pkg"
    assert fetch.extract("pkg", got, pin["keep"], str(dest)) == 2
    assert (dest / "src" / "a.c").read_bytes() == b"int a;\n"
    assert not (dest / "docs").exists()
    assert fetch.is_present(pin, str(dest))


def test_fetch_refuses_tampered_archive(tmp_path):
    good = _archive({"pkg-1.0/src/a.c": b"int a;\n"})
    bad = good[:-20]  # truncated
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "pkg-1.0.tar.gz").write_bytes(bad)
    want = hashlib.sha256(good).hexdigest()
    pin = {"version": "1.0", "archive": "pkg-1.0.tar.gz", "sha256": [want],
           "urls": [], "debian_pool": [], "keep": ["src/"]}
    with pytest.raises(fetch.FetchError) as ei:
        fetch.obtain("pkg", pin, str(cache), offline=True)
    msg = str(ei.value)
    assert "pkg-1.0.tar.gz" in msg
    assert want in msg and hashlib.sha256(bad).hexdigest() in msg


def test_pins_cover_the_three_libraries():
    pins = fetch.load_pins()
    assert pins["libbpf"]["version"] == "1.7.0"
    assert pins["elfutils"]["version"] == "0.192"
    assert pins["zlib"]["version"] == "1.3.1"
    assert len(pins["zlib"]["sha256"]) == 2  # upstream and Debian's repack


def test_debian_mirrors_parsed():
    mirrors = fetch.debian_mirrors()
    assert all(m.startswith("http") and not m.endswith("/") for m in mirrors)


def test_libbpf_logging_routes_to_python(caplog):
    import logging

    with caplog.at_level(logging.DEBUG, logger="bpf.libbpf"):
        bpf._log._emit(0, "hello from libbpf\n")
    assert ("bpf.libbpf", logging.WARNING, "hello from libbpf") in caplog.record_tuples


def test_cli_info_runs():
    r = subprocess.run([sys.executable, "-m", "bpf", "info"], capture_output=True, text=True)
    assert "libbpf    1.7" in r.stdout
    assert "can create maps" in r.stdout

"""The sdist embeds the vendored sources and builds in an empty venv without fetching them."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import tarfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_sdist_builds_offline(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--sdist", "--outdir", str(dist), str(ROOT)],
                   check=True, capture_output=True, text=True)
    (sdist,) = dist.glob("bpf-*.tar.gz")
    with tarfile.open(sdist) as t:
        names = t.getnames()
    assert any(n.endswith("vendor/fetched/libbpf/src/libbpf.c") for n in names)
    assert any(n.endswith("vendor/fetched/elfutils/libelf/elf_begin.c") for n in names)
    assert any(n.endswith("vendor/fetched/zlib/inflate.c") for n in names)
    assert any("LICENSE" in n and "libbpf" in n for n in names)
    assert not any(n.endswith(".so") for n in names)
    # compiled objects only where they are test material, never build output
    assert all("/tests/bpf/" in n for n in names if n.endswith(".o"))
    assert any(n.endswith(".bpf.o") for n in names)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    env = dict(os.environ, BPF_VENDOR_OFFLINE="1", BPF_VENDOR_CACHE=str(tmp_path / "empty"))
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", str(sdist)], env=env,
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([str(py), "-c", "import bpf; print(bpf.libbpf_version())"],
                       capture_output=True, text=True, cwd=tmp_path, check=True)
    assert r.stdout.strip() == "(1, 7)"

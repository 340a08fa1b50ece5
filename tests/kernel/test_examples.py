"""Each program in examples/ runs to completion with a bounded duration or packet count."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import time
import uuid

from conftest import skip_missing  # noqa: F401
from link_helpers import leftovers  # noqa: F401

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def start(name: str, *args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.Popen([sys.executable, str(EXAMPLES / name), *args], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout is not None
    first = p.stdout.readline()
    if not first:
        out, err = p.communicate()
        raise AssertionError(f"{name} failed to start: {err}")
    return p


def finish(p: subprocess.Popen, first: str = "") -> str:
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    return out


def test_xdp_counter(veth):
    p = start("xdp_counter.py", veth.host, "--mode", "skb", "--packets", "5",
              "--duration", "20")
    # five datagrams from the peer's namespace towards the host end
    veth.run_in_ns(sys.executable, "-c",
                   "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                   f"[s.sendto(b'x' * 100, ('{veth.host_ip}', 9)) for _ in range(5)]")
    out = finish(p)
    last = [ln for ln in out.splitlines() if "packets" in ln][-1]
    packets = int(last.split()[1])
    assert packets >= 5
    assert int(last.split()[3]) >= 5 * 100


def test_kprobe_openat(tracefs, tmp_path, monkeypatch):
    name = f"pybpf-example-{uuid.uuid4().hex[:8]}"
    monkeypatch.chdir(tmp_path)          # a relative name: what openat() sees
    p = start("kprobe_openat.py", "--duration", "2")
    for _ in range(3):
        with open(name, "w"):
            pass
        time.sleep(0.1)
    out = finish(p)
    assert name in out


def test_uprobe_libc():
    p = start("uprobe_libc.py", "getppid", "--duration", "1.5")
    for _ in range(50):
        os.getppid()
    out = finish(p)
    counts = {int(a): int(b) for a, b in (ln.split() for ln in out.splitlines()
                                          if ln.strip()[:1].isdigit())}
    assert counts.get(os.getpid(), 0) >= 50

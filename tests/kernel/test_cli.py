"""``python -m bpf``: the live demo (plain mode, bounded by --duration) and ``info``."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

from conftest import is_mounted

ROOT = pathlib.Path(__file__).resolve().parents[2]


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bpf", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def test_demo_plain_with_duration():
    was_mounted = is_mounted("/sys/kernel/tracing", "tracefs")
    r = run_cli("--duration", "1.5", "--plain")
    assert r.returncode == 0, r.stderr
    assert "syscalls per process" in r.stdout
    assert "PID" in r.stdout and "CALLS/S" in r.stdout
    # the demo itself makes system calls while polling: it is in its own table
    rows = [ln.split() for ln in r.stdout.splitlines() if ln.strip()[:1].isdigit()]
    assert rows and all(int(row[-1]) > 0 for row in rows)
    assert "\x1b[" not in r.stdout
    # tracefs is unmounted again if the demo mounted it
    assert is_mounted("/sys/kernel/tracing", "tracefs") == was_mounted


def test_demo_is_plain_when_piped_and_runs_as_a_subcommand():
    r = run_cli("demo", "--duration", "0.6", "--top", "3")
    assert r.returncode == 0, r.stderr
    assert "syscalls per process" in r.stdout and "\x1b[" not in r.stdout
    rows = [ln for ln in r.stdout.splitlines() if ln.strip()[:1].isdigit()]
    assert 0 < len(rows) <= 3


def test_info_subcommand():
    r = run_cli("info")
    assert r.returncode == 0, r.stderr
    assert "libbpf" in r.stdout and "kernel" in r.stdout
    assert f"{os.uname().release}" in r.stdout


def test_bad_option_is_a_usage_error():
    r = run_cli("--duration", "soon")
    assert r.returncode == 2 and "usage" in r.stderr


def test_demo_redraws_on_a_terminal():
    import pty
    import select

    master, slave = pty.openpty()
    try:
        p = subprocess.Popen([sys.executable, "-m", "bpf", "--duration", "0.8", "--top", "4"],
                             cwd=ROOT, stdout=slave, stderr=subprocess.PIPE)
        os.close(slave)
        slave = -1
        out = b""
        while True:
            r, _, _ = select.select([master], [], [], 10)
            if not r:
                break
            try:
                chunk = os.read(master, 65536)
            except OSError:   # EIO once the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        assert p.wait(timeout=30) == 0, p.stderr.read() if p.stderr else ""
        if p.stderr:
            p.stderr.close()
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    text = out.decode(errors="replace")
    assert "\x1b[H\x1b[2J" in text and "syscalls per process" in text
    assert text.count("\x1b[H\x1b[2J") >= 2          # redrawn several times a second

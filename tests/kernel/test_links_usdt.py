"""USDT through libbpf: a program of a bpf.Object on a probe of a small test binary.

The binary's probe is written out by hand (what <sys/sdt.h>'s DTRACE_PROBE1 expands to: a nop
and a .note.stapsdt entry), so the test needs only a C compiler.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import time

import pytest

import bpf

from link_helpers import leftovers  # noqa: F401

OBJ = pathlib.Path(__file__).resolve().parents[1] / "bpf" / "links" / "usdt.bpf.o"

USDT_C = r"""
#include <stdlib.h>
__attribute__((noinline)) static void tick(int x)
{
    __asm__ __volatile__(
        "990: nop\n"
        ".pushsection .note.stapsdt,\"?\",\"note\"\n"
        ".balign 4\n"
        ".4byte 992f-991f, 994f-993f, 3\n"
        "991: .asciz \"stapsdt\"\n"
        "992: .balign 4\n"
        "993: .8byte 990b\n"
        ".8byte _.stapsdt.base\n"
        ".8byte 0\n"
        ".asciz \"pybpf\"\n"
        ".asciz \"tick\"\n"
        ".asciz \"-4@%0\"\n"
        "994: .balign 4\n"
        ".popsection\n"
        ".ifndef _.stapsdt.base\n"
        ".pushsection .stapsdt.base,\"aG\",\"progbits\",.stapsdt.base,comdat\n"
        ".weak _.stapsdt.base\n"
        ".hidden _.stapsdt.base\n"
        "_.stapsdt.base: .space 1\n"
        ".size _.stapsdt.base, 1\n"
        ".popsection\n"
        ".endif\n"
        :: "nor"(x));
}
int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 3;
    for (int i = 1; i <= n; i++)
        tick(i);
    return 0;
}
"""


@pytest.fixture(scope="module")
def usdt_binary(tmp_path_factory):
    d = tmp_path_factory.mktemp("usdt")
    (d / "usdt.c").write_text(USDT_C)
    subprocess.run(["cc", "-O1", "-o", str(d / "usdt"), str(d / "usdt.c")], check=True)
    return str(d / "usdt")


def test_usdt_through_libbpf(usdt_binary):
    with bpf.Object.load_file(str(OBJ)) as obj:
        prog = obj.programs["usdt_tick"]
        with prog.attach_usdt(usdt_binary, "pybpf", "tick") as link:
            subprocess.run([usdt_binary, "4"], check=True)
            assert obj.globals["hits"] == 4
            assert obj.globals["arg_sum"] == 1 + 2 + 3 + 4
            assert not link.closed
        subprocess.run([usdt_binary, "2"], check=True)
        assert obj.globals["hits"] == 4


def test_usdt_errors(usdt_binary, tmp_path):
    with bpf.Object.load_file(str(OBJ)) as obj:
        prog = obj.programs["usdt_tick"]
        with pytest.raises(bpf.BPFError):
            prog.attach_usdt(usdt_binary, "pybpf", "no_such_probe")
    raw = bpf.Program.load(bpf.ProgType.KPROBE, b"\xb7\0\0\0\0\0\0\0\x95\0\0\0\0\0\0\0")
    with raw, pytest.raises(bpf.NotSupportedError, match="bpf.Object"):
        raw.attach_usdt(usdt_binary, "pybpf", "tick")


def test_usdt_link_closed_after_its_object_does_not_crash(usdt_binary):
    obj = bpf.Object.load_file(str(OBJ))
    link = obj.programs["usdt_tick"].attach_usdt(usdt_binary, "pybpf", "tick")
    obj.close()        # frees libbpf's USDT state: the link must not touch it any more
    link.close()
    assert link.closed


def _attachments(prog_id: int) -> int:
    """Kernel links of the program (uprobe_multi or perf links) plus perf event fds of ours
    (libbpf's fallback on kernels without those links)."""
    n = sum(1 for info in bpf.links() if info.prog_id == prog_id)
    for fd in os.listdir("/proc/self/fd"):
        try:
            n += os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[perf_event]"
        except OSError:
            pass
    return n


def test_closing_the_object_detaches_its_usdt_links(usdt_binary):
    obj = bpf.Object.load_file(str(OBJ))
    prog = obj.programs["usdt_tick"]
    prog_id = prog.id
    link = prog.attach_usdt(usdt_binary, "pybpf", "tick")
    assert _attachments(prog_id) > 0
    subprocess.run([usdt_binary, "1"], check=True)
    assert obj.globals["hits"] == 1
    obj.close()                 # must detach the link first, not leak libbpf's uprobes
    assert link.closed
    assert _attachments(prog_id) == 0
    # Nothing holds the program any more: the kernel frees it (after an RCU grace period).
    deadline = time.monotonic() + 5
    while any(p.id == prog_id for p in bpf.programs()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(p.id == prog_id for p in bpf.programs())
    link.close()                # still fine: closing twice is a no-op

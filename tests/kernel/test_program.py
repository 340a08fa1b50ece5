"""bpf.Program against the real kernel: loading, adoption, info, pins, test runs, errors.

The programs here are written as raw instruction bytes (a tiny local encoder), so these
tests do not depend on bpf.asm; test_program_asm.py checks the assembler against them.
"""

from __future__ import annotations

import errno
import os
import socket
import struct

import pytest

import bpf

XDP_ABORTED, XDP_DROP, XDP_PASS = 0, 1, 2


def I(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, dst | (src << 4), off, imm)


EXIT = I(0x95)
RET2 = I(0xB7, 0, imm=2) + EXIT  # r0 = 2; exit


def mov(dst: int, imm: int) -> bytes:
    return I(0xB7, dst, imm=imm)


# XDP: ABORTED for frames shorter than an Ethernet header, PASS for IPv4, DROP otherwise.
XDP_IPV4_ONLY = b"".join([
    I(0x61, 2, 1, 0),          # 0: r2 = *(u32 *)(r1 + 0)    data
    I(0x61, 3, 1, 4),          # 1: r3 = *(u32 *)(r1 + 4)    data_end
    mov(0, XDP_ABORTED),       # 2: r0 = 0
    I(0xBF, 4, 2),             # 3: r4 = r2
    I(0x07, 4, imm=14),        # 4: r4 += 14
    I(0x2D, 4, 3, 4),          # 5: if r4 > r3 goto +4
    I(0x69, 5, 2, 12),         # 6: r5 = *(u16 *)(r2 + 12)   ethertype, network order
    mov(0, XDP_DROP),          # 7: r0 = 1
    I(0x55, 5, 0, 1, 0x0008),  # 8: if r5 != 0x8 goto +1     (0x0800 read little-endian)
    mov(0, XDP_PASS),          # 9: r0 = 2
    EXIT,                      # 10
])


def eth(ethertype: int, payload: bytes = b"") -> bytes:
    return b"\x02\x00\x00\x00\x00\x01" + b"\x02\x00\x00\x00\x00\x02" + \
        struct.pack("!H", ethertype) + payload


def ipv4_udp(dport: int) -> bytes:
    udp = struct.pack("!HHHH", 12345, dport, 8 + 4, 0) + b"ping"
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, socket.IPPROTO_UDP, 0,
                     socket.inet_aton("10.0.0.1"), socket.inet_aton("10.0.0.2"))
    return eth(0x0800, ip + udp)


@pytest.fixture
def xdp():
    with bpf.Program.load(bpf.ProgType.XDP, XDP_IPV4_ONLY, name="ipv4_only") as p:
        yield p


# ---- loading and attributes -------------------------------------------------------------------

def test_load_attributes(xdp):
    assert isinstance(xdp, bpf.Program)
    assert xdp.type is bpf.ProgType.XDP
    assert xdp.name == "ipv4_only"
    assert xdp.id > 0 and xdp.fd > 0 and xdp.fileno() == xdp.fd
    assert len(xdp.tag) == 16 and int(xdp.tag, 16) >= 0
    info = xdp.info()
    assert isinstance(info, bpf.ProgramInfo)
    assert (info.id, info.name, info.type, info.tag) == (xdp.id, "ipv4_only", bpf.ProgType.XDP,
                                                         xdp.tag)
    assert info.map_ids == () and xdp.map_ids == ()
    assert info.gpl_compatible is True
    assert info.xlated_prog_len == len(XDP_IPV4_ONLY)
    assert info.verified_insns >= 8
    assert "XDP" in repr(xdp) and "ipv4_only" in repr(xdp)


def test_xlated_and_jited(xdp):
    # The verifier rewrote the xdp_md accesses into xdp_buff ones: same length, other code.
    assert len(xdp.xlated()) == len(XDP_IPV4_ONLY)
    assert xdp.xlated()[8 * 2:] == XDP_IPV4_ONLY[8 * 2:]
    # No context access, no map, no helper: the translated program is the input.
    with bpf.Program.load(bpf.ProgType.SOCKET_FILTER, RET2) as p:
        assert p.xlated() == RET2
    jited = xdp.jited()
    assert isinstance(jited, bytes)
    with open("/proc/sys/net/core/bpf_jit_enable") as f:
        if f.read().strip() != "0":
            assert len(jited) == xdp.info().jited_prog_len > 0


def test_tag_matches_bpftool(xdp):
    import json
    import shutil
    import subprocess

    if shutil.which("bpftool") is None:
        pytest.fail("bpftool is required for this test")
    out = subprocess.run(["bpftool", "-j", "prog", "show", "id", str(xdp.id)],
                         capture_output=True, text=True, check=True).stdout
    shown = json.loads(out)
    assert shown["tag"] == xdp.tag and shown["name"] == "ipv4_only"


def test_license_and_name_validation():
    with bpf.Program.load(bpf.ProgType.SOCKET_FILTER, RET2, license="Proprietary") as p:
        assert p.info().gpl_compatible is False
        assert p.name == ""
    with bpf.Program.load(bpf.ProgType.SOCKET_FILTER, RET2,
                          name="a_very_long_program_name") as p:
        assert p.name == "a_very_long_pro"  # the kernel keeps 15 characters
    with pytest.raises(ValueError, match="letters, digits"):
        bpf.Program.load(bpf.ProgType.SOCKET_FILTER, RET2, name="bad name!")
    with pytest.raises(TypeError):
        bpf.Program.load(bpf.ProgType.SOCKET_FILTER, RET2, name=3)  # type: ignore[arg-type]


@pytest.mark.parametrize("insns", [b"", RET2[:-1], b"\x00" * 12])
def test_bad_instruction_buffers(insns):
    with pytest.raises(ValueError, match="multiple of 8"):
        bpf.Program.load(bpf.ProgType.SOCKET_FILTER, insns)


def test_insns_type_error():
    with pytest.raises(TypeError, match="insns"):
        bpf.Program.load(bpf.ProgType.SOCKET_FILTER, 42)


def test_any_bytes_like_insns():
    import array

    for buf in (bytearray(RET2), memoryview(RET2), array.array("B", RET2)):
        with bpf.Program.load(bpf.ProgType.SOCKET_FILTER, buf) as p:
            assert p.test_run(b"\x00" * 20).retval == 2


def test_cannot_instantiate_directly():
    with pytest.raises(TypeError):
        bpf.Program()  # type: ignore[call-arg]


# ---- the verifier's error -----------------------------------------------------------------------

def test_verifier_error_message_and_log():
    bad = I(0x61, 0, 1, 4000) + EXIT  # r0 = *(u32 *)(r1 + 4000): outside __sk_buff
    with pytest.raises(bpf.VerifierError) as ei:
        bpf.Program.load(bpf.ProgType.SOCKET_FILTER, bad, name="bad_ctx")
    e = ei.value
    assert isinstance(e, bpf.BPFError) and e.errno == errno.EACCES
    assert isinstance(e.log, list) and all(isinstance(ln, str) for ln in e.log)
    assert any("invalid bpf_context access off=4000" in ln for ln in e.log)
    msg = str(e)
    assert "verifier rejected program 'bad_ctx' (SOCKET_FILTER)" in msg
    assert "invalid bpf_context access off=4000 size=4" in msg
    assert "at insn 0: r0 = *(u32 *)(r1 +4000)" in msg
    assert e.reason == "invalid bpf_context access off=4000 size=4"
    assert e.insn == 0
    assert e.operation == "program load"


def test_verifier_error_einval():
    # The last instruction must be an exit or a jump.
    with pytest.raises(bpf.VerifierError) as ei:
        bpf.Program.load(bpf.ProgType.SOCKET_FILTER, mov(0, 0))
    assert ei.value.errno == errno.EINVAL
    assert "last insn is not an exit or jmp" in str(ei.value)


def test_verifier_error_uninitialized_register():
    with pytest.raises(bpf.VerifierError) as ei:
        bpf.Program.load(bpf.ProgType.SOCKET_FILTER, I(0xBF, 0, 5) + EXIT)  # r0 = r5
    assert "R5 !read_ok" in str(ei.value)
    assert ei.value.insn == 0


def test_log_buffer_grows_on_enospc():
    # A long straight-line program whose log at level 1 is far larger than 256 bytes.
    body = b"".join(mov(i % 9 + 2, i) for i in range(200))
    with pytest.raises(bpf.VerifierError) as ei:
        bpf.Program.load(bpf.ProgType.SOCKET_FILTER, body + I(0x61, 0, 1, 4000) + EXIT,
                         log_level=1, log_size=256)
    log = ei.value.log
    assert sum(len(ln) + 1 for ln in log) > 256
    # The whole log came back: it starts at the first instruction, not mid-way.
    assert any(ln.startswith("0: ") for ln in log)
    assert ei.value.errno != errno.ENOSPC


def test_verifier_log_on_success():
    with bpf.Program.load(bpf.ProgType.SOCKET_FILTER, RET2, log_level=2, log_size=256) as p:
        log = p.verifier_log
        assert any("processed 2 insns" in ln for ln in log)
    with bpf.Program.load(bpf.ProgType.SOCKET_FILTER, RET2) as p:
        assert p.verifier_log == []


def test_bad_prog_type():
    with pytest.raises(bpf.BPFError) as ei:
        bpf.Program.load(9999, RET2)
    assert ei.value.errno == errno.EINVAL
    assert not isinstance(ei.value, bpf.VerifierError)


# ---- test runs ------------------------------------------------------------------------------

def test_xdp_verdicts_on_crafted_packets(xdp):
    assert xdp.test_run(ipv4_udp(53)).retval == XDP_PASS
    assert xdp.test_run(eth(0x86DD, b"\x60" + b"\x00" * 39)).retval == XDP_DROP  # IPv6
    assert xdp.test_run(eth(0x0806, b"\x00" * 28)).retval == XDP_DROP  # ARP
    retval, data, duration = xdp.test_run(ipv4_udp(80), repeat=10)
    assert retval == XDP_PASS and data == ipv4_udp(80)
    assert isinstance(duration, int) and duration >= 0


def test_xdp_short_frame_rejected_by_kernel(xdp):
    # The kernel refuses XDP test frames shorter than an Ethernet header.
    with pytest.raises(bpf.BPFError) as ei:
        xdp.test_run(b"\x00" * 4)
    assert ei.value.errno == errno.EINVAL


def test_xdp_ctx_in_and_out(xdp):
    # xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex
    ctx = struct.pack("<6I", 0, len(ipv4_udp(1)), 0, 0, 0, 0)
    r = xdp.test_run(ipv4_udp(1), ctx=ctx)
    assert r.retval == XDP_PASS
    assert r.ctx is not None and len(r.ctx) == 24
    assert struct.unpack("<6I", r.ctx)[1] == len(ipv4_udp(1))


def test_run_result_shape(xdp):
    r = xdp.test_run(ipv4_udp(1))
    assert isinstance(r, tuple) and len(r) == 3
    assert r.retval == r[0] and r.data == r[1] and r.duration == r[2]
    assert r.ctx is None
    assert "retval=2" in repr(r)
    import pickle

    r2 = pickle.loads(pickle.dumps(r))
    assert r2 == r and r2.ctx == r.ctx


def test_socket_filter_returns_length():
    # r0 = skb->len; exit: a socket filter's return value is how many bytes to keep.  The
    # test run hands it the frame as a received skb: the Ethernet header is already pulled.
    with bpf.Program.load(bpf.ProgType.SOCKET_FILTER, I(0x61, 0, 1, 0) + EXIT) as p:
        for pad in (0, 14, 1454):
            pkt = ipv4_udp(7) + b"\x00" * pad
            assert p.test_run(pkt).retval == len(pkt) - 14


def test_sched_cls_rewrites_packet_and_ctx():
    # TC program: set the first byte of the frame to 0xff and skb->mark to 42, return
    # TC_ACT_SHOT (2).  __sk_buff: mark at 8, data at 76, data_end at 80 (192 bytes).
    prog = b"".join([
        I(0x61, 2, 1, 76),        # r2 = skb->data
        I(0x61, 3, 1, 80),        # r3 = skb->data_end
        I(0xBF, 4, 2),            # r4 = r2
        I(0x07, 4, imm=1),        # r4 += 1
        I(0x2D, 4, 3, 1),         # if r4 > r3 goto +1
        I(0x72, 2, 0, 0, 0xFF),   # *(u8 *)(r2 + 0) = 0xff
        mov(5, 42),               # r5 = 42
        I(0x63, 1, 5, 8),         # *(u32 *)(r1 + 8) = r5    skb->mark
        mov(0, 2),                # r0 = TC_ACT_SHOT
        EXIT,
    ])
    pkt = ipv4_udp(9)
    with bpf.Program.load(bpf.ProgType.SCHED_CLS, prog, name="tc_mark") as p:
        r = p.test_run(pkt, ctx=bytes(192))
        assert r.retval == 2
        assert r.data == b"\xff" + pkt[1:]
        assert r.ctx is not None and len(r.ctx) == 192
        assert struct.unpack_from("<I", r.ctx, 8)[0] == 42
        # Without ctx no context is copied out, and data still is.
        r = p.test_run(pkt)
        assert r.ctx is None and r.data == b"\xff" + pkt[1:]
        # A data_out buffer too small for the frame: ENOSPC, with the sizes in the message.
        with pytest.raises(bpf.BPFError) as ei:
            p.test_run(pkt, data_out_size=8)
        assert ei.value.errno == errno.ENOSPC
        assert f"data_out_size=8 for {len(pkt)} bytes" in str(ei.value)
        # data_out_size=0: the kernel copies nothing out.
        assert p.test_run(pkt, data_out_size=0).data is None


def test_raw_tracepoint_with_ctx():
    # r0 = ctx[0] + ctx[1] (two u64 arguments of the tracepoint)
    prog = I(0x79, 0, 1, 0) + I(0x79, 2, 1, 8) + I(0x0F, 0, 2) + EXIT
    with bpf.Program.load(bpf.ProgType.RAW_TRACEPOINT, prog, name="raw_sum") as p:
        r = p.test_run(ctx=struct.pack("<QQ", 40, 2))
        assert r.retval == 42
        assert r.data is None and r.ctx is None
        # flags: BPF_F_TEST_RUN_ON_CPU with a CPU number
        assert p.test_run(ctx=struct.pack("<QQ", 1, 2), flags=1, cpu=0).retval == 3
        # raw tracepoints accept no repetition: the kernel says EINVAL.
        with pytest.raises(bpf.BPFError) as ei:
            p.test_run(ctx=struct.pack("<QQ", 1, 2), repeat=5)
        assert ei.value.errno == errno.EINVAL


def test_test_run_argument_errors(xdp):
    with pytest.raises(ValueError):
        xdp.test_run(ipv4_udp(1), repeat=0)
    with pytest.raises(TypeError):
        xdp.test_run("not bytes")
    with pytest.raises(ValueError):
        xdp.test_run(ipv4_udp(1), flags=-1)
    with pytest.raises(ValueError):
        xdp.test_run(ipv4_udp(1), data_out_size=-5)


def test_stats_count_runs(xdp):
    with bpf.enable_stats() as stats:
        assert not stats.closed and stats.fileno() > 0
        before = xdp.run_cnt
        xdp.test_run(ipv4_udp(1), repeat=5)
        assert xdp.run_cnt >= before + 5
        assert xdp.run_time_ns > 0
        assert xdp.info().run_cnt == xdp.run_cnt
    assert stats.closed


# ---- fd ownership, adoption, pins -------------------------------------------------------------

def test_close_and_closed_errors(xdp):
    p = bpf.Program.load(bpf.ProgType.XDP, XDP_IPV4_ONLY)
    p.close()
    p.close()  # idempotent
    assert p.closed and repr(p) == "<bpf.Program closed>"
    for op in (lambda: p.id, lambda: p.name, lambda: p.tag, lambda: p.type, p.info, p.xlated,
               p.jited, p.fileno, lambda: p.test_run(ipv4_udp(1)), lambda: p.pin("/x")):
        with pytest.raises(ValueError, match="closed program"):
            op()


def test_from_fd_dup_and_transfer(xdp):
    with bpf.Program.from_fd(xdp.fd) as q:
        assert q.fd != xdp.fd and q.id == xdp.id and q.name == xdp.name
        assert type(q) is bpf.Program
    assert not xdp.closed  # the original fd is untouched
    fd = os.dup(xdp.fd)
    q = bpf.Program.from_fd(fd, transfer=True)
    assert q.fd == fd and q.id == xdp.id
    q.close()
    with pytest.raises(OSError):
        os.fstat(fd)  # closed with q: it was transferred


def test_from_fd_rejects_other_fds():
    r, w = os.pipe()
    try:
        with pytest.raises(ValueError, match="not a BPF program"):
            bpf.Program.from_fd(r)
    finally:
        os.close(r)
        os.close(w)
    with pytest.raises(ValueError):
        bpf.Program.from_fd(-1)


def test_dup_and_detach(xdp):
    with xdp.dup() as d:
        assert isinstance(d, bpf.Program) and d.id == xdp.id and d.fd != xdp.fd
    q = xdp.dup()
    fd = q.detach()
    assert q.closed
    try:
        with bpf.Program.from_fd(fd) as again:
            assert again.id == xdp.id
    finally:
        os.close(fd)


def test_from_id(xdp):
    with bpf.Program.from_id(xdp.id) as q:
        assert q.id == xdp.id and q.tag == xdp.tag
        assert q.test_run(ipv4_udp(1)).retval == XDP_PASS
    p = bpf.Program.load(bpf.ProgType.SOCKET_FILTER, RET2)
    pid = p.id
    p.close()
    with pytest.raises(bpf.BPFError) as ei:
        bpf.Program.from_id(pid)
    assert ei.value.errno == errno.ENOENT


@pytest.mark.parametrize("bad,exc", [(-1, ValueError), (1 << 40, ValueError), ("7", TypeError)])
def test_from_id_bad_ids(bad, exc):
    with pytest.raises(exc, match="program id"):
        bpf.Program.from_id(bad)


def test_pin_and_from_pin(xdp, bpffs):
    path = os.path.join(bpffs, "xdp_prog")
    xdp.pin(path)
    try:
        assert os.path.exists(path)
        with bpf.Program.from_pin(path) as q:
            assert q.id == xdp.id
        # pathlib works as well
        import pathlib

        with bpf.Program.from_pin(pathlib.Path(path)) as q:
            assert q.id == xdp.id
        with pytest.raises(bpf.BPFError) as ei:
            xdp.pin(path)
        assert ei.value.errno == errno.EEXIST
    finally:
        os.unlink(path)
    with pytest.raises(bpf.BPFError) as ei:
        bpf.Program.from_pin(path)
    assert ei.value.errno == errno.ENOENT


def test_pinned_program_outlives_fd(bpffs):
    path = os.path.join(bpffs, "p")
    p = bpf.Program.load(bpf.ProgType.SOCKET_FILTER, RET2)
    pid = p.id
    p.pin(path)
    p.close()
    try:
        with bpf.Program.from_id(pid) as q:
            assert q.test_run(b"\x00" * 20).retval == 2
    finally:
        os.unlink(path)


def test_unclosed_program_warns():
    p = bpf.Program.load(bpf.ProgType.SOCKET_FILTER, RET2)
    with pytest.warns(ResourceWarning, match="unclosed program"):
        del p
        import gc

        gc.collect()


def test_subclass_constructors_make_subclass(xdp):
    class MyProg(bpf.Program):
        pass

    with MyProg.load(bpf.ProgType.SOCKET_FILTER, RET2) as p:
        assert type(p) is MyProg
    with MyProg.from_id(xdp.id) as p:
        assert type(p) is MyProg
        with p.dup() as d:
            assert type(d) is MyProg


def test_syscall_program_writes_ctx_back():
    # BPF_PROG_TYPE_SYSCALL (sleepable): ctx[1] = ctx[0] + 5.  The kernel writes the context
    # back into the input buffer, which is our private copy: the caller's bytes stay intact.
    prog = I(0x61, 2, 1, 0) + I(0x07, 2, imm=5) + I(0x63, 1, 2, 4) + mov(0, 3) + EXIT
    ctx = struct.pack("<II", 10, 0)
    with bpf.Program.load(bpf.ProgType.SYSCALL, prog, prog_flags=1 << 4) as p:
        r = p.test_run(ctx=ctx)
        assert r.retval == 3 and r.data is None
        assert struct.unpack("<II", r.ctx) == (10, 15)
    assert ctx == struct.pack("<II", 10, 0)


def test_close_while_test_run_in_flight(xdp):
    import threading
    import time

    p = xdp.dup()
    fd = p.fd
    result: list = []

    def run():
        try:
            result.append(p.test_run(ipv4_udp(1), repeat=3_000_000))
        except Exception as e:  # pragma: no cover - reported below
            result.append(e)

    t = threading.Thread(target=run)
    t.start()
    time.sleep(0.02)  # the run releases the GIL: close() happens while it is in the kernel
    p.close()
    assert p.closed
    with pytest.raises(ValueError, match="closed program"):
        p.test_run(ipv4_udp(1))
    t.join()
    assert isinstance(result[0], bpf.RunResult) and result[0].retval == XDP_PASS
    assert fd > 0


def test_expected_attach_type_reaches_the_kernel():
    # cgroup sock_addr programs must name their hook at load time.
    with bpf.Program.load(bpf.ProgType.CGROUP_SOCK_ADDR, mov(0, 1) + EXIT,
                          expected_attach_type=bpf.AttachType.CGROUP_INET4_CONNECT) as p:
        assert p.type is bpf.ProgType.CGROUP_SOCK_ADDR
        # The kernel's info does not report it: load() remembers it, dup() keeps it.
        assert p.expected_attach_type is bpf.AttachType.CGROUP_INET4_CONNECT
        with p.dup() as d:
            assert d.expected_attach_type is bpf.AttachType.CGROUP_INET4_CONNECT
        with bpf.Program.from_id(p.id) as q:
            assert q.expected_attach_type is None
    with pytest.raises(bpf.BPFError) as ei:
        bpf.Program.load(bpf.ProgType.CGROUP_SOCK_ADDR, mov(0, 1) + EXIT)
    assert ei.value.errno == errno.EINVAL and not isinstance(ei.value, bpf.VerifierError)


def test_attach_prog_argument_types():
    with pytest.raises(TypeError, match="attach_prog"):
        bpf.Program.load(bpf.ProgType.EXT, RET2, attach_prog="nope")


def test_log_arguments_validated():
    with pytest.raises(ValueError, match="log_size"):
        bpf.Program.load(bpf.ProgType.SOCKET_FILTER, RET2, log_level=1, log_size=16)
    with pytest.raises(ValueError, match="log_level"):
        bpf.Program.load(bpf.ProgType.SOCKET_FILTER, RET2, log_level=-1)

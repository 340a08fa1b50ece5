"""XDP and TC links on a veth pair: counting, dropping, flowing again after close."""

from __future__ import annotations

import subprocess
import threading
import time

import pytest

import bpf
from bpf.enums import LinkType, ProgType

from conftest import skip_missing
from link_helpers import Echo, RawMap, RawProgram, counter_insns, leftovers  # noqa: F401

XDP_PASS, XDP_DROP = 2, 1
TC_ACT_OK, TC_ACT_SHOT = 0, 2


@pytest.fixture
def counters():
    with RawMap(4) as m:
        yield m


@pytest.fixture
def echo(veth):
    e = Echo(veth)
    try:
        yield e
    finally:
        e.close()


def qdiscs(dev: str) -> str:
    return subprocess.run(["tc", "qdisc", "show", "dev", dev], capture_output=True,
                          text=True, check=True).stdout


@pytest.mark.parametrize("mode", [None, "skb", "drv"])
@pytest.mark.parametrize("use_link", [True, False], ids=["bpf_link", "netlink"])
def test_xdp_counts_drops_and_flows_after_close(veth, echo, counters, mode, use_link):
    with RawProgram(ProgType.XDP, counter_insns(counters.fd, XDP_PASS, XDP_DROP)) as prog:
        link = prog.attach_xdp(veth.host, mode, link=use_link)
        try:
            state = bpf.xdp_query(veth.host)
            assert state.prog_id == prog.id
            assert state.mode == (mode or "drv")
            info = link.info()
            assert info.prog_id == prog.id and info.ifindex == veth.ifindex()
            if use_link:
                assert info.type == LinkType.XDP and info.kernel
            else:
                assert info.kind == "xdp" and not info.kernel
            assert echo.roundtrip(5) == 5
            assert counters[0] >= 5          # the echo replies came in through XDP
            counters[1] = 1                  # the program drops now
            before = counters[0]
            assert echo.roundtrip(3) == 0
            assert counters[0] >= before + 3
        finally:
            link.close()
        assert link.closed
        assert bpf.xdp_query(veth.host).prog_id == 0
        assert echo.roundtrip(3) == 3        # drop switch still on, but nothing attached


def test_xdp_hw_mode_on_veth_says_not_supported(veth, counters):
    with RawProgram(ProgType.XDP, counter_insns(counters.fd, XDP_PASS)) as prog:
        with pytest.raises(bpf.NotSupportedError, match="offload"):
            prog.attach_xdp(veth.host, "hw")
        with pytest.raises(bpf.NotSupportedError, match="offload"):
            prog.attach_xdp(veth.host, "hw", link=False)
    assert bpf.xdp_query(veth.host).prog_id == 0


def test_xdp_already_attached_and_replace(veth, counters, echo):
    with RawProgram(ProgType.XDP, counter_insns(counters.fd, XDP_PASS)) as a, \
            RawProgram(ProgType.XDP, counter_insns(counters.fd, XDP_PASS, slot=2)) as b:
        with a.attach_xdp(veth.host, "skb"):
            with pytest.raises(bpf.BPFError, match="already has an XDP program") as ei:
                b.attach_xdp(veth.host, "skb")
            assert str(a.id) in str(ei.value)
        with a.attach_xdp(veth.host, "skb", link=False) as la:
            with pytest.raises(bpf.BPFError, match="already"):
                b.attach_xdp(veth.host, "skb", link=False)
            lb = b.attach_xdp(veth.host, "skb", replace=True)
            assert bpf.xdp_query(veth.host).prog_id == b.id
            la.close()   # a is no longer attached: closing it must not remove b
            assert bpf.xdp_query(veth.host).prog_id == b.id
            lb.close()
        assert bpf.xdp_query(veth.host).prog_id == 0


def test_interface_not_found(counters):
    with RawProgram(ProgType.XDP, counter_insns(counters.fd, XDP_PASS)) as prog:
        with pytest.raises(bpf.BPFError, match="no interface named 'nope0'"):
            prog.attach_xdp("nope0")
        with pytest.raises(bpf.BPFError, match="no interface"):
            prog.attach_tc("nope0")
        with pytest.raises(ValueError, match="mode"):
            prog.attach_xdp("lo", "turbo")


def test_xdp_update_swaps_program(veth, counters, echo):
    with RawProgram(ProgType.XDP, counter_insns(counters.fd, XDP_PASS, slot=0)) as a, \
            RawProgram(ProgType.XDP, counter_insns(counters.fd, XDP_PASS, slot=2)) as b:
        for use_link in (True, False):
            counters[0] = counters[2] = 0
            with a.attach_xdp(veth.host, "skb", link=use_link) as link:
                assert echo.roundtrip(3) == 3
                n0 = counters[0]
                assert n0 >= 3 and counters[2] == 0
                link.update(b)
                assert link.info().prog_id == b.id
                assert bpf.xdp_query(veth.host).prog_id == b.id
                assert echo.roundtrip(3) == 3
                assert counters[0] == n0 and counters[2] >= 3
            assert bpf.xdp_query(veth.host).prog_id == 0


@pytest.mark.parametrize("direction", ["ingress", "egress"])
@pytest.mark.parametrize("tcx", [True, False], ids=["tcx", "clsact"])
def test_tc_counts_drops_and_flows_after_close(veth, echo, counters, direction, tcx):
    with RawProgram(ProgType.SCHED_CLS, counter_insns(counters.fd, TC_ACT_OK,
                                                      TC_ACT_SHOT)) as prog:
        try:
            link = prog.attach_tc(veth.host, direction, tcx=tcx)
        except bpf.NotSupportedError:
            if tcx:
                skip_missing("tcx links (kernel 6.6+)")
            raise
        try:
            attached = bpf.tc_query(veth.host, direction)
            assert [a.prog_id for a in attached] == [prog.id]
            assert attached[0].kind == ("tcx" if tcx else "clsact")
            if tcx:
                assert link.info().type == LinkType.TCX
                assert attached[0].link_id == link.info().id
            else:
                assert "clsact" in qdiscs(veth.host)
                assert link.info().direction == direction
            assert echo.roundtrip(5) == 5
            assert counters[0] >= 5
            counters[1] = 1
            assert echo.roundtrip(3) == 0
        finally:
            link.close()
        assert bpf.tc_query(veth.host, direction) == []
        assert "clsact" not in qdiscs(veth.host)    # we created it, so we removed it
        assert echo.roundtrip(3) == 3


def test_clsact_qdisc_created_by_someone_else_stays(veth, counters):
    subprocess.run(["tc", "qdisc", "add", "dev", veth.host, "clsact"], check=True)
    with RawProgram(ProgType.SCHED_CLS, counter_insns(counters.fd, TC_ACT_OK)) as prog:
        with prog.attach_tc(veth.host, "egress", tcx=False, priority=7, handle=3) as link:
            info = link.info()
            assert (info.priority, info.handle) == (7, 3)
            [a] = bpf.tc_query(veth.host, "egress")
            assert (a.priority, a.handle, a.prog_id) == (7, 3, prog.id)
        assert bpf.tc_query(veth.host, "egress") == []
    assert "clsact" in qdiscs(veth.host)
    subprocess.run(["tc", "qdisc", "del", "dev", veth.host, "clsact"], check=True)


def test_clsact_two_filters_qdisc_goes_with_the_last(veth, counters):
    with RawProgram(ProgType.SCHED_CLS, counter_insns(counters.fd, TC_ACT_OK)) as prog:
        a = prog.attach_tc(veth.host, "ingress", tcx=False)
        b = prog.attach_tc(veth.host, "egress", tcx=False)
        a.close()
        assert "clsact" in qdiscs(veth.host)
        assert len(bpf.tc_query(veth.host, "egress")) == 1
        b.close()
        assert "clsact" not in qdiscs(veth.host)


def test_tc_update_replaces_in_place(veth, counters, echo):
    with RawProgram(ProgType.SCHED_CLS, counter_insns(counters.fd, TC_ACT_OK)) as a, \
            RawProgram(ProgType.SCHED_CLS, counter_insns(counters.fd, TC_ACT_SHOT, slot=2)) as b:
        for tcx in (True, False):
            with a.attach_tc(veth.host, "ingress", tcx=tcx) as link:
                assert echo.roundtrip(3) == 3
                link.update(b)
                assert [x.prog_id for x in bpf.tc_query(veth.host, "ingress")] == [b.id]
                assert echo.roundtrip(3) == 0
            assert echo.roundtrip(3) == 3


def test_tcx_before_after_ordering(veth, counters):
    with RawProgram(ProgType.SCHED_CLS, counter_insns(counters.fd, TC_ACT_OK)) as a, \
            RawProgram(ProgType.SCHED_CLS, counter_insns(counters.fd, TC_ACT_OK, slot=2)) as b, \
            RawProgram(ProgType.SCHED_CLS, counter_insns(counters.fd, TC_ACT_OK, slot=3)) as c:
        with a.attach_tc(veth.host, "ingress", tcx=True) as la:
            with b.attach_tc(veth.host, "ingress", before=la) as lb, \
                    c.attach_tc(veth.host, "ingress", after=b):
                order = [x.prog_id for x in bpf.tc_query(veth.host, "ingress")]
                assert order == [b.id, c.id, a.id]
                assert lb.info().prog_id == b.id
        with pytest.raises(ValueError, match="tcx"):
            a.attach_tc(veth.host, "ingress", tcx=False, before=True)


def test_close_while_another_thread_polls(veth, counters, echo):
    with RawProgram(ProgType.XDP, counter_insns(counters.fd, XDP_PASS)) as prog:
        link = prog.attach_xdp(veth.host, "skb")
        stop = threading.Event()
        seen: list[int] = []
        errors: list[BaseException] = []

        def poll() -> None:
            try:
                while not stop.is_set():
                    seen.append(counters[0])
                    try:
                        link.info()
                    except ValueError:
                        pass  # closed: the expected outcome once the main thread closed it
                    time.sleep(0.001)
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)

        t = threading.Thread(target=poll)
        t.start()
        try:
            assert echo.roundtrip(3) == 3
            # let the poller observe the counts before the close, however loaded the machine
            deadline = time.monotonic() + 10
            while not (seen and seen[-1] >= 3) and time.monotonic() < deadline:
                time.sleep(0.01)
            link.close()
            assert echo.roundtrip(2) == 2
        finally:
            stop.set()
            t.join()
        assert not errors
        assert seen and max(seen) >= 3
        assert bpf.xdp_query(veth.host).prog_id == 0


def test_xdp_link_detach_keeps_the_object(veth, counters):
    with RawProgram(ProgType.XDP, counter_insns(counters.fd, XDP_PASS)) as prog:
        for use_link in (True, False):
            with prog.attach_xdp(veth.host, "skb", link=use_link) as link:
                link.detach()
                assert not link.closed
                assert bpf.xdp_query(veth.host).prog_id == 0
                link.info()     # still answers (a defunct kernel link, or the record)
                link.detach()  # idempotent for netlink attachments; kernel links: no-op
            assert link.closed


def test_unclosed_attachment_detaches_when_collected(veth, counters):
    import gc

    with RawProgram(ProgType.XDP, counter_insns(counters.fd, XDP_PASS)) as prog:
        for use_link in (True, False):
            link = prog.attach_xdp(veth.host, "skb", link=use_link)
            assert bpf.xdp_query(veth.host).prog_id == prog.id
            with pytest.warns(ResourceWarning, match="unclosed link"):
                del link
                gc.collect()
            assert bpf.xdp_query(veth.host).prog_id == 0


def test_release_fd_keeps_the_attachment(veth, counters):
    with RawProgram(ProgType.XDP, counter_insns(counters.fd, XDP_PASS)) as prog:
        link = prog.attach_xdp(veth.host, "skb")
        fd = link.release_fd()
        assert link.closed
        assert bpf.xdp_query(veth.host).prog_id == prog.id
        with bpf.Link.from_fd(fd, transfer=True) as again:
            assert again.info().ifindex == veth.ifindex()
        assert bpf.xdp_query(veth.host).prog_id == 0   # the transferred fd was the last


def test_pinned_xdp_link_outlives_its_objects(veth, bpffs, counters, echo):
    path = f"{bpffs}/xdp_link"
    with RawProgram(ProgType.XDP, counter_insns(counters.fd, XDP_PASS)) as prog:
        link = prog.attach_xdp(veth.host, "skb")
        link.pin(path)
        link.close()
        prog_id = prog.id
    assert bpf.xdp_query(veth.host).prog_id == prog_id
    assert echo.roundtrip(2) == 2 and counters[0] >= 2
    with bpf.Link.from_pin(path) as again:
        assert again.info().ifindex == veth.ifindex()
        again.unpin(path)
    assert bpf.xdp_query(veth.host).prog_id == 0

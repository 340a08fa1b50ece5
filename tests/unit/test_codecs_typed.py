"""The codecs typed maps build on top of user codecs: per-CPU lists, LPM keys, fd slots."""

from __future__ import annotations

import ipaddress
import struct

import numpy as np
import pytest

import bpf
from bpf.typed import LPMKeyCodec, PerCPUCodec, _FdCodec


def test_percpu_codec_layout():
    c = PerCPUCodec(bpf.u32, 3)
    assert (c.stride, c.size) == (8, 24)
    raw = c.encode([1, 2, 3])
    assert raw == b"".join(struct.pack("=I4x", v) for v in (1, 2, 3))
    assert c.decode(raw) == [1, 2, 3]
    assert c.encode(7) == struct.pack("=I4x", 7) * 3          # one value copied to all
    assert c.encode((4, 5, 6)) == c.encode([4, 5, 6])         # a tuple, for scalar codecs
    assert c.decode_array(raw + c.encode(9), 2) == [[1, 2, 3], [9, 9, 9]]
    assert c.encode_array([[1, 2, 3], 0]) == raw + bytes(24)
    v = c.view(raw + raw, 2)
    assert v.shape == (2, 3) and v.tolist() == [[1, 2, 3], [1, 2, 3]]
    assert c.encode(np.array([1, 2, 3], dtype=np.uint32)) == raw   # numpy: one per CPU
    assert c.encode(np.uint32(7)) == c.encode(7)                     # numpy scalar: copied
    with pytest.raises(ValueError, match="takes 3 values"):
        c.encode([1, 2])
    with pytest.raises(ValueError, match="takes 3 values"):
        c.encode(np.zeros(4, np.uint32))
    with pytest.raises(OverflowError):
        c.encode([1, 2, -1])


def test_percpu_codec_with_tuple_values_and_no_dtype():
    c = PerCPUCodec(bpf.codecs.as_codec("IHH"), 2)
    assert c.stride == 8 and c.size == 16
    # a tuple is one value of a multi-item codec, copied to every CPU
    assert c.decode(c.encode((1, 2, 3))) == [(1, 2, 3), (1, 2, 3)]
    assert c.decode(c.encode([(1, 2, 3), (4, 5, 6)])) == [(1, 2, 3), (4, 5, 6)]
    with pytest.raises(TypeError, match="numpy dtype"):
        c.view(bytes(16), 1)


def test_percpu_codec_numpy_stride():
    c = PerCPUCodec(bpf.codecs.as_codec(np.dtype("u2")), 2)
    raw = c.encode([1, 2])
    assert raw == struct.pack("=H6xH6x", 1, 2)
    assert c.encode(np.array([1, 2], np.uint16)) == raw
    assert [int(x) for x in c.decode(raw)] == [1, 2]


@pytest.mark.parametrize("key,raw", [
    ((24, "10.1.2.0"), struct.pack("=I", 24) + bytes([10, 1, 2, 0])),
    ((8, ipaddress.IPv4Address("10.0.0.0")), struct.pack("=I", 8) + bytes([10, 0, 0, 0])),
    ((16, b"\x0a\x02\x00\x00"), struct.pack("=I", 16) + bytes([10, 2, 0, 0])),
    (ipaddress.ip_network("192.168.0.0/16"), struct.pack("=I", 16) + bytes([192, 168, 0, 0])),
    ("1.2.3.4", struct.pack("=I", 32) + bytes([1, 2, 3, 4])),
    (ipaddress.IPv4Address("1.2.3.4"), struct.pack("=I", 32) + bytes([1, 2, 3, 4])),
])
def test_lpm_key_encodings(key, raw):
    c = LPMKeyCodec(4)
    assert c.size == 8 and c.encode(key) == raw
    plen, addr = c.decode(raw)
    assert plen == struct.unpack_from("=I", raw)[0]
    assert isinstance(addr, ipaddress.IPv4Address) and addr.packed == raw[4:]


def test_lpm_key_v6_and_other_sizes():
    c6 = LPMKeyCodec(16)
    raw = c6.encode(ipaddress.ip_network("2001:db8::/32"))
    assert c6.decode(raw) == (32, ipaddress.IPv6Address("2001:db8::"))
    c3 = LPMKeyCodec(3)  # not an IP address: bytes back
    assert c3.decode(c3.encode((12, b"abc"))) == (12, b"abc")
    assert c3.decode_array(c3.encode((1, b"abc")) + c3.encode((2, b"xyz")), 2) == \
        [(1, b"abc"), (2, b"xyz")]


@pytest.mark.parametrize("key,exc", [
    ((33, "10.0.0.0"), ValueError),
    ((-1, "10.0.0.0"), ValueError),
    ((8, "::1"), ValueError),
    ((8, "not an address"), ValueError),
    ((8, b"\x01\x02"), ValueError),
    (("8", "10.0.0.0"), TypeError),
    ((8, 10), TypeError),
    ((8,), ValueError),
    (ipaddress.ip_network("::/0"), ValueError),
    (3.5, TypeError),
])
def test_lpm_key_bad(key, exc):
    with pytest.raises(exc):
        LPMKeyCodec(4).encode(key)


def test_fd_codec():
    c = _FdCodec("map")

    class HasFileno:
        def fileno(self):
            return 5

    assert c.encode(HasFileno()) == struct.pack("=I", 5)
    assert c.encode(7) == struct.pack("=I", 7)
    assert c.decode(struct.pack("=I", 1234)) == 1234
    for bad, exc in [(-1, ValueError), ("3", TypeError), (True, TypeError), (None, TypeError)]:
        with pytest.raises(exc):
            c.encode(bad)


def test_percpu_codec_two_dimensional_arrays():
    c = PerCPUCodec(bpf.u32, 2)
    vals = np.array([[1, 2], [3, 4]])
    assert c.encode_array(vals) == c.encode([1, 2]) + c.encode([3, 4])
    with pytest.raises(ValueError, match="2 columns"):
        c.encode_array(np.zeros((2, 3), np.uint32))
    with pytest.raises(OverflowError):
        c.encode_array(np.array([[1, -1]]))

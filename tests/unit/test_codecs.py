"""Codecs without a kernel: every kind, one element and batches, strides, and bad input."""

from __future__ import annotations

import ctypes
import struct
import sys

import numpy as np
import pytest

import bpf
from bpf.codecs import (CStrCodec, CtypesCodec, NumpyCodec, ProtocolCodec, RawCodec,
                        StructCodec, as_codec)


class Point(ctypes.Structure):
    _fields_ = [("x", ctypes.c_uint32), ("y", ctypes.c_uint16), ("tag", ctypes.c_uint8)]


class Either(ctypes.Union):
    _fields_ = [("i", ctypes.c_int32), ("f", ctypes.c_float)]


U32x4 = ctypes.c_uint32 * 4


class Be16:
    """The Node.js package's conversion protocol: size, parse(buf), format(buf, value)."""

    size = 2

    def parse(self, buf):
        return int.from_bytes(buf, "big")

    def format(self, buf, value):
        buf[:2] = value.to_bytes(2, "big")


# ---- one element, every kind -------------------------------------------------------------

@pytest.mark.parametrize("codec,value,raw", [
    (bpf.u8, 255, b"\xff"),
    (bpf.u16, 0x1234, struct.pack("=H", 0x1234)),
    (bpf.u32, 7, struct.pack("=I", 7)),
    (bpf.u64, 2**64 - 1, b"\xff" * 8),
    (bpf.s8, -1, b"\xff"),
    (bpf.s16, -2, struct.pack("=h", -2)),
    (bpf.s32, -3, struct.pack("=i", -3)),
    (bpf.s64, -2**63, struct.pack("=q", -2**63)),
    (bpf.f32, 1.5, struct.pack("=f", 1.5)),
    (bpf.f64, -0.25, struct.pack("=d", -0.25)),
    ("I", 9, struct.pack("I", 9)),
    ("<Q", 10, (10).to_bytes(8, "little")),
    (">I", 11, (11).to_bytes(4, "big")),
    ("!H", 12, (12).to_bytes(2, "big")),
    ("16s", b"abc" + bytes(13), b"abc" + bytes(13)),
    ("IHH", (1, 2, 3), struct.pack("IHH", 1, 2, 3)),
    ("?", True, b"\x01"),
    (bpf.cstr(8), "héllo", "héllo".encode().ljust(8, b"\0")),
    (bpf.raw(3), b"xyz", b"xyz"),
    (ctypes.c_uint64, 2**40, struct.pack("=Q", 2**40)),
    (ctypes.c_int16, -5, struct.pack("=h", -5)),
    (ctypes.c_double, 2.5, struct.pack("=d", 2.5)),
    (ctypes.c_uint32.__ctype_be__, 1, b"\0\0\0\1"),
    (ctypes.c_uint32.__ctype_le__, 1, b"\1\0\0\0"),
    (Be16(), 0x0102, b"\x01\x02"),
])
def test_roundtrip_scalar_kinds(codec, value, raw):
    c = as_codec(codec)
    assert c.size == len(raw)
    assert c.encode(value) == raw
    assert c.decode(raw) == value
    # the Node.js protocol on our own codecs
    buf = bytearray(c.size)
    c.format(buf, value)
    assert bytes(buf) == raw
    assert c.parse(raw) == value


def test_named_codecs_repr_and_identity():
    assert repr(bpf.u32) == "bpf.u32"
    assert repr(bpf.cstr(16)) == "bpf.cstr(16)"
    assert as_codec(bpf.u32) is bpf.u32
    assert isinstance(as_codec("I"), StructCodec)
    assert isinstance(as_codec(bpf.cstr(4)), CStrCodec)


def test_ctypes_structure_union_array_return_instances():
    c = as_codec(Point)
    assert isinstance(c, CtypesCodec) and c.size == ctypes.sizeof(Point) == 8
    raw = c.encode((1, 2, 3))
    p = c.decode(raw)
    assert isinstance(p, Point) and (p.x, p.y, p.tag) == (1, 2, 3)
    assert c.encode({"x": 4, "tag": 5}) == bytes(Point(x=4, tag=5))
    assert c.encode(Point(9, 8, 7)) == bytes(Point(9, 8, 7))
    assert c.encode(bytes(Point(1, 1, 1))) == bytes(Point(1, 1, 1))

    u = as_codec(Either)
    v = u.decode(u.encode({"f": 1.0}))
    assert isinstance(v, Either) and v.f == 1.0

    a = as_codec(U32x4)
    got = a.decode(a.encode([1, 2, 3, 4]))
    assert isinstance(got, U32x4) and list(got) == [1, 2, 3, 4]


def test_numpy_scalar_structured_and_subarray():
    c = as_codec(np.uint32)
    assert isinstance(c, NumpyCodec) and c.size == 4
    v = c.decode(c.encode(7))
    assert isinstance(v, np.uint32) and v == 7

    dt = np.dtype([("a", "<u4"), ("b", "<i2"), ("c", "S2")])
    s = as_codec(dt)
    rec = s.decode(s.encode((1, -2, b"hi")))
    assert isinstance(rec, np.void)
    assert (rec["a"], rec["b"], rec["c"]) == (1, -2, b"hi")
    rec["a"] = 5  # records are writable copies
    assert s.encode(rec)[:4] == (5).to_bytes(4, "little")

    sub = as_codec(np.dtype(("<u2", (3,))))
    assert sub.size == 6
    assert list(sub.decode(sub.encode([1, 2, 3]))) == [1, 2, 3]

    f = as_codec(np.dtype("f8"))
    assert f.decode(f.encode(np.float64(0.5))) == 0.5


# ---- batches -----------------------------------------------------------------------------

BATCH_CASES = [
    (bpf.u32, [1, 2, 3]),
    (bpf.s64, [-1, 0, 2**62]),
    (bpf.f64, [0.5, -1.0, 3.25]),
    ("<H", [1, 65535, 7]),
    (">I", [1, 2, 3]),
    ("IHH", [(1, 2, 3), (4, 5, 6)]),
    ("4s", [b"ab\0\0", b"wxyz"]),
    (ctypes.c_uint16, [5, 6]),
    (Point, [(1, 2, 3), (4, 5, 6)]),
    (np.uint64, [1, 2, 2**63]),
    (np.dtype([("a", "u4"), ("b", "u4")]), [(1, 2), (3, 4)]),
    (bpf.cstr(6), ["a", "bcdef", ""]),
    (bpf.raw(2), [b"ab", b"cd"]),
    (Be16(), [1, 2, 3]),
    (np.dtype(("u2", (3,))), [[1, 2, 3], [4, 5, 6]]),
    (U32x4, [[1, 2, 3, 4], [5, 6, 7, 8]]),
]


def _norm(v):
    if isinstance(v, ctypes.Structure):
        return tuple(getattr(v, f[0]) for f in v._fields_)
    if isinstance(v, np.void):
        return tuple(v.tolist())
    if isinstance(v, (np.ndarray, ctypes.Array)):
        return list(v)
    return v


@pytest.mark.parametrize("spec,values", BATCH_CASES, ids=lambda x: repr(x)[:30])
@pytest.mark.parametrize("pad", [0, 8])
def test_batches_roundtrip_with_stride(spec, values, pad):
    c = as_codec(spec)
    stride = c.size + pad
    packed = c.encode_array(values, stride)
    assert len(packed) == len(values) * stride
    # the same bytes as element by element
    for i, v in enumerate(values):
        assert packed[i * stride:i * stride + c.size] == c.encode(v)
        assert packed[i * stride + c.size:(i + 1) * stride] == bytes(pad)
    got = c.decode_array(packed, len(values), stride)
    assert [_norm(g) for g in got] == [_norm(v) if not isinstance(v, tuple) else v
                                       for v in values]


def test_batch_decode_is_one_call_for_native_scalars():
    raw = struct.pack("=5I", 1, 2, 3, 4, 5)
    # decode_array reads a bytearray or a memoryview as well, and only the n elements asked
    assert bpf.u32.decode_array(bytearray(raw) + b"junk", 5) == [1, 2, 3, 4, 5]
    assert bpf.u32.decode_array(memoryview(raw), 2) == [1, 2]
    with pytest.raises(ValueError, match="fewer than"):
        bpf.u32.decode_array(raw, 6)


def test_dtypes():
    assert bpf.u32.dtype == np.dtype("=u4")
    assert bpf.f64.dtype == np.dtype("f8")
    assert as_codec(">I").dtype == np.dtype(">u4")
    assert as_codec("16s").dtype == np.dtype("S16")
    assert as_codec("IHH").dtype is None
    assert bpf.cstr(4).dtype == np.dtype("S4")
    assert bpf.raw(3).dtype == np.dtype("V3")
    assert as_codec(Point).dtype.itemsize == 8
    assert as_codec(Be16()).dtype is None


# ---- bad input ---------------------------------------------------------------------------

@pytest.mark.parametrize("codec,value,exc", [
    (bpf.u8, 256, OverflowError),
    (bpf.u8, -1, OverflowError),
    (bpf.s8, 128, OverflowError),
    (bpf.u64, 2**64, OverflowError),
    (bpf.u32, "1", TypeError),
    (bpf.u32, 1.5, TypeError),
    (bpf.u32, None, TypeError),
    (bpf.f64, "x", TypeError),
    ("IHH", (1, 2), ValueError),
    ("IHH", 5, TypeError),
    ("IHH", (1, 2, 70000), OverflowError),
    ("4s", b"toolong", ValueError),
    ("4s", 4, TypeError),
    (bpf.cstr(4), "abcde", ValueError),
    (bpf.cstr(4), "a\0b", ValueError),
    (bpf.cstr(4), 4, TypeError),
    (bpf.raw(4), b"abc", ValueError),
    (bpf.raw(4), "abcd", TypeError),
    (ctypes.c_uint8, 300, OverflowError),
    (Point, (1, 2, 300), OverflowError),
    (Point, {"x": -1}, OverflowError),
    (Point, ("a",), TypeError),
    (Point, 5, TypeError),
    (Point, b"short", ValueError),
    (U32x4, [1, 2, 3, 4, 5], IndexError),
    (np.uint8, 300, OverflowError),
    (np.uint32, 1.5, TypeError),
    (np.uint32, "abc", ValueError),
    (np.dtype(("u2", (3,))), [1, 2], ValueError),
])
def test_bad_values(codec, value, exc):
    c = as_codec(codec)
    with pytest.raises(exc) as ei:
        c.encode(value)
    assert c.name in str(ei.value) or "bytes" in str(ei.value) or "NUL" in str(ei.value)


@pytest.mark.parametrize("codec,values,exc", [
    (bpf.u32, [1, -1], OverflowError),
    (bpf.u32, [1, "x"], TypeError),
    (">I", [1, 2**32], OverflowError),
    ("IHH", [(1, 2, 3), (1, 2)], ValueError),
    (np.uint8, [1, 256], OverflowError),
    (np.uint8, [1, 2.5], TypeError),
    (Point, [(1, 2, 3), (1, 2, 999)], OverflowError),
])
def test_bad_batch_values(codec, values, exc):
    with pytest.raises(exc):
        as_codec(codec).encode_array(values)


def test_size_mismatch_is_found_with_a_clear_message():
    with pytest.raises(ValueError, match=r"key codec bpf?.?u32.* 4 bytes but the map's "
                                         r"key_size is 8|key codec u32 is 4 bytes"):
        as_codec(bpf.u32, 8, "key")
    with pytest.raises(ValueError, match="value codec .* 8 bytes but the map's value_size is 4"):
        as_codec(Point, 4, "value")
    assert as_codec(None, 12).size == 12
    assert isinstance(as_codec(bytes, 3), RawCodec)


@pytest.mark.parametrize("spec,exc", [
    ("Z", ValueError),
    ("", ValueError),
    (3.5, TypeError),
    (object(), TypeError),
    (ctypes.c_char_p, TypeError),
    (ctypes.c_wchar, TypeError),
    (np.dtype("O"), TypeError),
    (type("NoSize", (), {"parse": lambda s, b: 0, "format": lambda s, b, v: 0,
                         "size": 0})(), TypeError),
    (type("NoParse", (), {"parse": 1, "format": 1, "size": 4})(), TypeError),
])
def test_bad_specs(spec, exc):
    with pytest.raises(exc):
        as_codec(spec)


def test_raw_without_size_is_an_error():
    with pytest.raises(ValueError, match="needs the map's size"):
        as_codec(None)


def test_protocol_codec_gets_bytes_and_fresh_buffers():
    seen = []

    class Spy:
        size = 4

        def parse(self, buf):
            seen.append(type(buf))
            return bytes(buf)

        def format(self, buf, value):
            assert buf == bytearray(4)
            buf[:] = value

    c = as_codec(Spy())
    assert isinstance(c, ProtocolCodec)
    assert c.encode(b"abcd") == b"abcd"
    assert c.decode_array(b"abcdefgh", 2) == [b"abcd", b"efgh"]
    assert seen == [bytes, bytes]

    class Grows(Spy):
        def format(self, buf, value):
            buf.extend(b"x")

    with pytest.raises(ValueError, match="resized"):
        as_codec(Grows()).encode(b"")


def test_native_byteorder_codecs_match_the_host():
    assert bpf.u32.encode(1) == (1).to_bytes(4, sys.byteorder)


# ---- numpy arrays into any codec with a dtype ----------------------------------------------

def test_ndarray_fast_path_converts_with_range_checks():
    assert bpf.u32.encode_array(np.arange(3)) == struct.pack("=3I", 0, 1, 2)  # int64 in
    assert bpf.u16.encode_array(np.array([1, 2], np.uint8), 4) == struct.pack("=H2xH2x", 1, 2)
    assert bpf.f32.encode_array(np.array([0.5, 1])) == struct.pack("=2f", 0.5, 1.0)
    assert as_codec(">I").encode_array(np.array([1], np.uint32)) == b"\0\0\0\1"
    assert as_codec(np.uint16).encode_array(np.array([7, 8])) == struct.pack("=2H", 7, 8)
    with pytest.raises(OverflowError, match="u8"):
        bpf.u8.encode_array(np.array([1, 256]))
    with pytest.raises(OverflowError):
        bpf.u32.encode_array(np.array([-1]))
    with pytest.raises(TypeError, match="integers"):
        bpf.u32.encode_array(np.array([1.5]))
    with pytest.raises(OverflowError):
        as_codec(np.uint8).encode_array(np.array([300]))
    # several items per element: no dtype, so element by element (tuples from the rows)
    assert as_codec("HH").encode_array([tuple(r) for r in np.array([[1, 2]]).tolist()]) == \
        struct.pack("HH", 1, 2)
    dt = np.dtype([("a", "u4"), ("b", "u4")])
    rec = np.array([(1, 2)], dt)
    assert as_codec(dt).encode_array(rec, 16) == struct.pack("=II8x", 1, 2)

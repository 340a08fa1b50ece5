"""Codecs: how a map's key or value bytes become Python values and back.

A codec knows its ``size`` in bytes and converts one element (``decode``/``encode``) or a whole
packed batch at once (``decode_array``/``encode_array``).  Batch conversion is what makes typed
iteration cheap: one ``memoryview.cast(...).tolist()``, one ``struct.iter_unpack``, one
ctypes array or one numpy view per batch, never one Python call per element where it can be
avoided.

Every codec also speaks the conversion protocol of the Node.js ``bpf`` package -- ``size``,
``parse(buffer)`` and ``format(buffer, value)`` -- and any user object with those three
attributes is accepted where a codec is expected.

:func:`as_codec` turns whatever a user passes as ``key=``/``value=`` into a codec:

* a :class:`Codec` (``bpf.u32``, ``bpf.cstr(16)``, ...);
* a :mod:`struct` format string (``"I"``, ``"<Q"``, ``"16s"``, ``"IHH"``): a format with one
  item decodes to that item, several items decode to a tuple;
* a :mod:`ctypes` type: scalars (``c_uint32``) decode to Python values, ``Structure``,
  ``Union`` and ``Array`` types decode to instances;
* a numpy dtype or scalar type (``np.uint32``, ``np.dtype([...])``): values come back as numpy
  scalars or records;
* ``None`` or ``bytes``: raw bytes of the map's own size;
* any object with ``size``, ``parse`` and ``format``.
"""

from __future__ import annotations

import array
import ctypes
import re
import struct
import sys
from typing import Any, Callable, Iterable, Sequence

__all__ = [
    "Codec", "StructCodec", "CtypesCodec", "NumpyCodec", "ProtocolCodec", "CStrCodec",
    "RawCodec", "as_codec", "cstr", "raw",
    "u8", "u16", "u32", "u64", "s8", "s16", "s32", "s64", "f32", "f64",
]

_LITTLE = sys.byteorder == "little"


class Codec:
    """Base of all codecs: a fixed ``size`` and conversions of one element or a batch.

    Subclasses implement :meth:`encode` and :meth:`decode`; the batch methods have generic
    versions here that subclasses replace with faster whole-buffer ones.
    """

    size: int = 0
    name: str = "codec"

    # -- one element ---------------------------------------------------------------------
    def encode(self, value: Any) -> bytes:
        """Return the ``size`` bytes of *value*; TypeError/ValueError/OverflowError if it
        does not fit the codec."""
        raise NotImplementedError

    def decode(self, buf: Any) -> Any:
        """Return the value held in the first ``size`` bytes of the bytes-like *buf*."""
        raise NotImplementedError

    # -- fast paths used by typed maps ---------------------------------------------------
    # ``_pack``/``_unpack`` are the cheapest callables doing encode/decode (often C
    # functions).  They may raise raw errors (struct.error ...): callers catch and then call
    # encode() to get the clear exception.
    @property
    def _pack(self) -> Callable[[Any], bytes]:
        return self.encode

    @property
    def _unpack(self) -> Callable[[Any], Any]:
        return self.decode

    @property
    def _unpack1(self) -> Callable[[Any], tuple[Any]]:
        """A callable returning ``(value,)``: for a one-item struct format it is the C
        ``Struct.unpack`` itself, so the hot path pays no Python frame for decoding."""
        dec = self._unpack
        return lambda b: (dec(b),)

    # -- batches -------------------------------------------------------------------------
    def decode_array(self, buf: Any, n: int, stride: int | None = None) -> list[Any]:
        """Return the list of *n* values packed in *buf*, one every *stride* bytes
        (default ``size``)."""
        stride = stride or self.size
        mv = memoryview(buf).cast("B")
        dec, size = self.decode, self.size
        return [dec(mv[i:i + size]) for i in range(0, n * stride, stride)]

    def encode_array(self, values: Iterable[Any], stride: int | None = None) -> bytes:
        """Return the values packed one every *stride* bytes (default ``size``), padding
        with zeros."""
        stride = stride or self.size
        enc = self.encode
        if stride == self.size:
            return b"".join([enc(v) for v in values])
        pad = bytes(stride - self.size)
        return b"".join([enc(v) + pad for v in values])

    @property
    def dtype(self) -> Any:
        """The numpy dtype of one element, or None when there is no exact one."""
        return None

    # -- Node.js conversion protocol -----------------------------------------------------
    def parse(self, buffer: Any) -> Any:
        """Same as :meth:`decode` (the Node.js ``bpf`` package's name)."""
        return self.decode(buffer)

    def format(self, buffer: Any, value: Any) -> None:
        """Write *value* into the first ``size`` bytes of the writable *buffer*."""
        memoryview(buffer).cast("B")[: self.size] = self.encode(value)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} ({self.size} bytes)>"


# ---- struct formats ---------------------------------------------------------------------

_TOKEN = re.compile(r"\s*(\d*)([xcbB?hHiIlLqQnNefdspP])")
# standard-size code -> native code of the same size and signedness (for memoryview.cast and
# array.array, which only know native codes)
_STD_TO_NATIVE = {"b": "b", "B": "B", "h": "h", "H": "H", "i": "i", "I": "I", "l": "i",
                  "L": "I", "q": "q", "Q": "Q", "f": "f", "d": "d", "?": "?"}
_NATIVE_CASTABLE = set("bBhHiIlLqQnNfd?")
_ARRAY_CODES = set("bBhHiIlLqQfd")


def _parse_format(fmt: str) -> tuple[str, list[tuple[str, int]]]:
    """Split a struct format into its byte-order prefix and its items [(code, count)]."""
    prefix = fmt[0] if fmt and fmt[0] in "@=<>!" else ""
    body = fmt[len(prefix):]
    items: list[tuple[str, int]] = []
    pos = 0
    body = body.rstrip()
    while pos < len(body):
        m = _TOKEN.match(body, pos)
        if m is None:
            raise ValueError(f"bad struct format {fmt!r} at {body[pos:]!r}")
        count = int(m.group(1)) if m.group(1) else 1
        code = m.group(2)
        if code == "x":
            pass
        elif code in "sp":
            items.append((code, count))
        else:
            items.extend([(code, 1)] * count)
        pos = m.end()
    return prefix, items


def _first(unpack: Callable[[Any], tuple[Any, ...]]) -> Callable[[Any], Any]:
    def decode(b: Any, _u: Callable[[Any], tuple[Any, ...]] = unpack) -> Any:
        return _u(b)[0]
    return decode


def _struct_error(codec: Codec, value: Any, e: BaseException) -> Exception:
    """Turn a struct.error (or another low-level failure) into TypeError/OverflowError/
    ValueError that names the codec and the value."""
    msg = str(e)
    what = f"{value!r} does not fit codec {codec.name}: {msg}"
    if isinstance(e, (TypeError, OverflowError)):
        return type(e)(what)
    if "requires" in msg or "out of range" in msg or "too large" in msg:
        return OverflowError(what)
    if "not an integer" in msg or "not a float" in msg or "must be" in msg \
            or "expected" in msg and "items" not in msg:
        return TypeError(what)
    return ValueError(what)


def _from_ndarray(codec: Codec, values: Any, stride: int) -> bytes | None:
    """Pack a numpy array of elements in one step, or return None when *values* is not a
    numpy array or the codec has no dtype.  Integer arrays are checked for values that do
    not fit (numpy's astype would wrap them), floats refused for integer codecs."""
    np = sys.modules.get("numpy")
    if np is None or not isinstance(values, np.ndarray):
        return None
    dt = codec.dtype
    if dt is None:
        return None
    a = values
    if a.dtype != dt:
        if dt.fields is not None or dt.shape or a.dtype.fields is not None:
            return None  # structured conversions go element by element
        if dt.kind in "iub" and a.dtype.kind == "f":
            raise TypeError(f"codec {codec.name} takes integers, not {a.dtype} values")
        if dt.kind in "iub" and a.dtype.kind in "iub":
            conv = a.astype(dt)
            if not np.array_equal(conv, a):
                raise OverflowError(f"values out of range for codec {codec.name}")
            a = conv
        elif dt.kind == "f" and a.dtype.kind in "iuf":
            a = a.astype(dt)
        elif dt.kind in "SV" and a.dtype.kind in "SV" and a.dtype.itemsize <= dt.itemsize:
            a = a.astype(dt)
        else:
            return None
    n = a.size * a.dtype.itemsize // codec.size
    if n * codec.size != a.nbytes:
        raise ValueError(f"a {a.dtype} array of shape {a.shape} does not make whole elements "
                         f"of codec {codec.name}")
    if stride == codec.size:
        return np.ascontiguousarray(a).tobytes()  # type: ignore[no-any-return]
    out = bytearray(n * stride)
    view = np.ndarray((n,), dt, buffer=out, strides=(stride,))
    view[...] = a.reshape((n,) + dt.shape)
    return bytes(out)


class StructCodec(Codec):
    """A codec from a :mod:`struct` format string.

    A format with one item (``"I"``, ``"<Q"``, ``"16s"``) decodes to that item; several items
    (``"IHH"``) decode to a tuple and encode from a tuple.  ``s`` items longer than their
    field raise ValueError (struct itself would truncate silently).  The format is used as
    given: ``"@"`` (the default) applies native alignment, so ``"IB"`` is 5 bytes while the C
    struct is 8 -- write ``"IB3x"`` to match.
    """

    def __init__(self, fmt: str, name: str | None = None) -> None:
        if not isinstance(fmt, str):
            raise TypeError(f"struct format must be str, not {type(fmt).__name__}")
        try:
            self.struct = struct.Struct(fmt)
        except struct.error as e:
            raise ValueError(f"bad struct format {fmt!r}: {e}") from None
        self.format_string = fmt
        self.name = name or repr(fmt)
        self.size = self.struct.size
        if self.size == 0:
            raise ValueError(f"struct format {fmt!r} is empty")
        self.prefix, items = _parse_format(fmt)
        self.nitems = len(items)
        self.scalar = self.nitems == 1
        # lengths of "s" items, to refuse values struct would silently truncate
        self._slens = [(i, n) for i, (c, n) in enumerate(items) if c == "s"]
        # one native code with which memoryview.cast / array.array read and write the format
        self._native: str | None = None
        self._code = items[0][0] if self.scalar else ""
        if self.scalar and items[0][1] == 1:
            code = items[0][0]
            if self.prefix in ("", "@") and code in _NATIVE_CASTABLE:
                self._native = code
            elif self.prefix == "=" or (self.prefix == "<" and _LITTLE) or \
                    (self.prefix in (">", "!") and not _LITTLE):
                self._native = _STD_TO_NATIVE.get(code)
            if self._native is not None and struct.calcsize(self._native) != self.size:
                self._native = None
        pack, unpack = self.struct.pack, self.struct.unpack
        if self.scalar and not self._slens:
            self._fast_pack: Callable[[Any], bytes] = pack
            self._fast_unpack: Callable[[Any], Any] = _first(unpack)
        elif self.scalar:
            self._fast_pack = self.encode
            self._fast_unpack = _first(unpack)
        else:
            self._fast_pack = self.encode
            self._fast_unpack = unpack
        self._padded: dict[int, struct.Struct] = {}

    @property
    def _pack(self) -> Callable[[Any], bytes]:
        return self._fast_pack

    @property
    def _unpack(self) -> Callable[[Any], Any]:
        return self._fast_unpack

    @property
    def _unpack1(self) -> Callable[[Any], tuple[Any]]:
        if self.scalar:
            return self.struct.unpack  # type: ignore[return-value]
        return super()._unpack1

    def _check_strings(self, items: Sequence[Any]) -> None:
        for i, n in self._slens:
            v = items[i]
            if isinstance(v, (bytes, bytearray)) and len(v) > n:
                raise ValueError(f"{v!r} is {len(v)} bytes, more than the {n} of codec "
                                 f"{self.name}")

    def encode(self, value: Any) -> bytes:
        if self.scalar:
            items: Sequence[Any] = (value,)
        else:
            if isinstance(value, (str, bytes, bytearray, memoryview)) or \
                    not isinstance(value, Sequence):
                raise TypeError(f"codec {self.name} takes a sequence of {self.nitems} items, "
                                f"not {type(value).__name__}")
            if len(value) != self.nitems:
                raise ValueError(f"codec {self.name} takes {self.nitems} items, got "
                                 f"{len(value)}")
            items = value
        if self._slens:
            self._check_strings(items)
        try:
            return self.struct.pack(*items)
        except (struct.error, TypeError, OverflowError) as e:
            raise _struct_error(self, value, e) from None

    def decode(self, buf: Any) -> Any:
        t = self.struct.unpack_from(buf)
        return t[0] if self.scalar else t

    def _strided(self, stride: int) -> struct.Struct:
        s = self._padded.get(stride)
        if s is None:
            if stride < self.size:
                raise ValueError(f"stride {stride} is smaller than codec {self.name}")
            body = self.format_string[len(self.prefix):]
            s = struct.Struct(f"{self.prefix}{body}{stride - self.size}x")
            self._padded[stride] = s
        return s

    def decode_array(self, buf: Any, n: int, stride: int | None = None) -> list[Any]:
        stride = stride or self.size
        mv = memoryview(buf).cast("B")[: n * stride]
        if len(mv) != n * stride:
            raise ValueError(f"buffer of {len(mv)} bytes holds fewer than {n} elements")
        if stride == self.size and self._native is not None:
            return mv.cast(self._native).tolist()  # type: ignore[call-overload, no-any-return]
        s = self.struct if stride == self.size else self._strided(stride)
        if self.scalar:
            return [t[0] for t in s.iter_unpack(mv)]
        return list(s.iter_unpack(mv))

    def encode_array(self, values: Iterable[Any], stride: int | None = None) -> bytes:
        stride = stride or self.size
        b = _from_ndarray(self, values, stride)
        if b is not None:
            return b
        if stride == self.size and self._native in _ARRAY_CODES:
            try:
                return array.array(self._native, values).tobytes()  # type: ignore[arg-type]
            except (TypeError, OverflowError, ValueError):
                pass  # redo element by element for an error that names the value
        vals = list(values)
        out = bytearray(len(vals) * stride)
        pack_into = (self.struct if stride == self.size else self._strided(stride)).pack_into
        for i, v in enumerate(vals):
            if self._slens or not self.scalar:
                out[i * stride:i * stride + self.size] = self.encode(v)
                continue
            try:
                pack_into(out, i * stride, v)
            except (struct.error, TypeError, OverflowError) as e:
                raise _struct_error(self, v, e) from None
        return bytes(out)

    @property
    def dtype(self) -> Any:
        if not self.scalar:
            return None
        import numpy as np

        if self._slens:
            return np.dtype(f"S{self.size}")
        code = self._code
        if code in "bhilqn":
            kind = "i"
        elif code in "BHILQN":
            kind = "u"
        elif code in "efd":
            kind = "f"
        elif code == "?":
            kind = "b"
        else:
            return None
        order = "<" if self.prefix == "<" else ">" if self.prefix in (">", "!") else "="
        return np.dtype(f"{order}{kind}{self.size}")

    def __repr__(self) -> str:
        return f"<StructCodec {self.name} ({self.size} bytes)>"


class _NamedStruct(StructCodec):
    """The predefined scalar codecs (``bpf.u32`` ...): native byte order, standard size."""

    def __init__(self, fmt: str, name: str) -> None:
        super().__init__(fmt, name)

    def __repr__(self) -> str:
        return f"bpf.{self.name}"

    def __reduce__(self) -> str:
        return self.name


u8 = _NamedStruct("=B", "u8")
u16 = _NamedStruct("=H", "u16")
u32 = _NamedStruct("=I", "u32")
u64 = _NamedStruct("=Q", "u64")
s8 = _NamedStruct("=b", "s8")
s16 = _NamedStruct("=h", "s16")
s32 = _NamedStruct("=i", "s32")
s64 = _NamedStruct("=q", "s64")
f32 = _NamedStruct("=f", "f32")
f64 = _NamedStruct("=d", "f64")


# ---- raw bytes and C strings ------------------------------------------------------------

def _as_bytes(value: Any, codec: Codec) -> bytes:
    try:
        b = memoryview(value).cast("B").tobytes()
    except TypeError:
        raise TypeError(f"codec {codec.name} takes a bytes-like object, not "
                        f"{type(value).__name__}") from None
    return b


class RawCodec(Codec):
    """Bytes in, bytes out: any bytes-like value of exactly ``size`` bytes."""

    def __init__(self, size: int) -> None:
        if not isinstance(size, int) or size <= 0:
            raise ValueError(f"raw codec size must be a positive int, not {size!r}")
        self.size = size
        self.name = f"raw({size})"

    def encode(self, value: Any) -> bytes:
        b = value if type(value) is bytes else _as_bytes(value, self)
        if len(b) != self.size:
            raise ValueError(f"codec {self.name} takes {self.size} bytes, got {len(b)}")
        return b

    def decode(self, buf: Any) -> bytes:
        if type(buf) is bytes and len(buf) == self.size:
            return buf
        return bytes(memoryview(buf).cast("B")[: self.size])

    def decode_array(self, buf: Any, n: int, stride: int | None = None) -> list[bytes]:
        stride = stride or self.size
        b = bytes(memoryview(buf).cast("B")[: n * stride])
        size = self.size
        return [b[i:i + size] for i in range(0, n * stride, stride)]

    def encode_array(self, values: Iterable[Any], stride: int | None = None) -> bytes:
        stride = stride or self.size
        if stride == self.size:
            return b"".join([self.encode(v) for v in values])
        pad = bytes(stride - self.size)
        return b"".join([self.encode(v) + pad for v in values])

    @property
    def dtype(self) -> Any:
        import numpy as np

        return np.dtype(f"V{self.size}")

    def __repr__(self) -> str:
        return f"bpf.raw({self.size})"


def raw(size: int) -> RawCodec:
    """Return a codec of raw bytes of *size* bytes."""
    return RawCodec(size)


class CStrCodec(Codec):
    """NUL-padded text in a fixed field (``char comm[16]``).

    Decoding stops at the first NUL; encoding takes str (encoded with *encoding*) or bytes
    and raises ValueError when it does not fit in ``size`` bytes.  A value of exactly
    ``size`` bytes is stored without a terminating NUL, as ``strncpy`` would.
    """

    def __init__(self, size: int, encoding: str = "utf-8", errors: str = "surrogateescape"):
        if not isinstance(size, int) or size <= 0:
            raise ValueError(f"cstr size must be a positive int, not {size!r}")
        self.size = size
        self.encoding, self.errors = encoding, errors
        self.name = f"cstr({size})"

    def encode(self, value: Any) -> bytes:
        if isinstance(value, str):
            b = value.encode(self.encoding, self.errors)
        elif isinstance(value, (bytes, bytearray, memoryview)):
            b = bytes(value)
        else:
            raise TypeError(f"codec {self.name} takes str or bytes, not "
                            f"{type(value).__name__}")
        if len(b) > self.size:
            raise ValueError(f"{value!r} is {len(b)} bytes, more than the {self.size} of "
                             f"codec {self.name}")
        if b"\0" in b:
            raise ValueError(f"{value!r} contains a NUL byte")
        return b.ljust(self.size, b"\0")

    def decode(self, buf: Any) -> str:
        b = bytes(memoryview(buf).cast("B")[: self.size])
        return b.split(b"\0", 1)[0].decode(self.encoding, self.errors)

    def decode_array(self, buf: Any, n: int, stride: int | None = None) -> list[str]:
        stride = stride or self.size
        b = bytes(memoryview(buf).cast("B")[: n * stride])
        size, enc, err = self.size, self.encoding, self.errors
        return [b[i:i + size].split(b"\0", 1)[0].decode(enc, err)
                for i in range(0, n * stride, stride)]

    @property
    def dtype(self) -> Any:
        import numpy as np

        return np.dtype(f"S{self.size}")

    def __repr__(self) -> str:
        return f"bpf.cstr({self.size})"


def cstr(size: int, encoding: str = "utf-8", errors: str = "surrogateescape") -> CStrCodec:
    """Return a codec of NUL-padded text in a field of *size* bytes."""
    return CStrCodec(size, encoding, errors)


# ---- ctypes -----------------------------------------------------------------------------

_SimpleCData = ctypes.c_int.__mro__[1]  # ctypes._SimpleCData
_STRUCT_OK = set("cbB?hHiIlLqQfdg") - {"g"}


def _ctypes_scalar_codec(t: type) -> StructCodec:
    code = getattr(t, "_type_", None)
    if not isinstance(code, str) or code not in _STRUCT_OK:
        raise TypeError(f"ctypes type {t.__name__} has no fixed-size value codec "
                        "(pointers, wide chars and long double are not supported)")
    if getattr(t, "__ctype_le__", None) is t and getattr(t, "__ctype_be__", None) is not t:
        prefix = "<" if not _LITTLE else "@"
    elif getattr(t, "__ctype_be__", None) is t and getattr(t, "__ctype_le__", None) is not t:
        prefix = ">" if _LITTLE else "@"
    else:
        prefix = "@"
    if prefix != "@":
        code = _STD_TO_NATIVE.get(code, code)
        if struct.calcsize(prefix + code) != ctypes.sizeof(t):
            code = {8: "q", 4: "i", 2: "h", 1: "b"}[ctypes.sizeof(t)]
            if t(-1).value != -1:  # unsigned
                code = code.upper()
    return StructCodec(prefix + code, name=f"ctypes.{t.__name__}")


class CtypesCodec(Codec):
    """A ctypes ``Structure``, ``Union`` or ``Array`` type: values decode to instances.

    Encoding takes an instance of the type, a bytes-like object of its size, a tuple (fields
    in order, or elements of an Array) or a dict of fields.  Integer fields given in a tuple
    or dict are checked against their field (ctypes itself would wrap them silently).
    """

    def __init__(self, ctype: type) -> None:
        if not (isinstance(ctype, type) and issubclass(
                ctype, (ctypes.Structure, ctypes.Union, ctypes.Array))):
            raise TypeError(f"{ctype!r} is not a ctypes Structure, Union or Array type")
        self.ctype: Any = ctype
        self.size = ctypes.sizeof(ctype)
        if self.size == 0:
            raise ValueError(f"ctypes type {ctype.__name__} has size 0")
        self.name = f"ctypes.{ctype.__name__}"
        self._from = ctype.from_buffer_copy

    def _build(self, value: Any) -> Any:
        t = self.ctype
        if isinstance(value, t):
            return value
        if isinstance(value, (bytes, bytearray, memoryview)):
            b = _as_bytes(value, self)
            if len(b) != self.size:
                raise ValueError(f"codec {self.name} takes {self.size} bytes, got {len(b)}")
            return self._from(b)
        try:
            if isinstance(value, dict):
                inst = t(**value)
                given: Iterable[tuple[Any, Any]] = value.items()
            elif isinstance(value, (tuple, list)):
                inst = t(*value)
                if issubclass(t, ctypes.Array):
                    given = enumerate(value)
                else:
                    given = zip([f[0] for f in t._fields_], value)
            else:
                raise TypeError(f"codec {self.name} takes a {t.__name__}, a tuple, a dict or "
                                f"bytes, not {type(value).__name__}")
        except (TypeError, ValueError, AttributeError, IndexError, RuntimeError) as e:
            if isinstance(e, TypeError) and "takes a" in str(e):
                raise
            raise type(e)(f"{value!r} does not fit codec {self.name}: {e}") from None
        for k, v in given:
            if isinstance(v, int) and not isinstance(v, bool):
                got = inst[k] if isinstance(k, int) else getattr(inst, k)
                if got != v:
                    raise OverflowError(f"{v!r} is out of range for {k!r} of codec "
                                        f"{self.name}")
        return inst

    def encode(self, value: Any) -> bytes:
        return bytes(self._build(value))

    def decode(self, buf: Any) -> Any:
        if len(memoryview(buf).cast("B")) != self.size:
            buf = memoryview(buf).cast("B")[: self.size]
        return self._from(buf)

    def decode_array(self, buf: Any, n: int, stride: int | None = None) -> list[Any]:
        stride = stride or self.size
        mv = memoryview(buf).cast("B")
        if stride == self.size:
            # one ctypes array over the whole batch; its elements are instances sharing it
            return list((self.ctype * n).from_buffer_copy(mv[: n * stride]))
        f, size = self._from, self.size
        return [f(mv[i:i + size]) for i in range(0, n * stride, stride)]

    def encode_array(self, values: Iterable[Any], stride: int | None = None) -> bytes:
        stride = stride or self.size
        pad = bytes(stride - self.size)
        build = self._build
        return b"".join([bytes(build(v)) + pad for v in values])

    @property
    def dtype(self) -> Any:
        import numpy as np

        try:
            dt = np.dtype(self.ctype)
        except (TypeError, ValueError, NotImplementedError):
            return None
        return dt if dt.itemsize == self.size else None


# ---- numpy ------------------------------------------------------------------------------

def _is_numpy_spec(spec: Any) -> bool:
    np = sys.modules.get("numpy")
    if np is None:
        return False
    if isinstance(spec, np.dtype):
        return True
    return isinstance(spec, type) and issubclass(spec, np.generic)


class NumpyCodec(Codec):
    """A numpy dtype (scalar, structured or sub-array): values come back as numpy scalars,
    records (``numpy.void``) or arrays; batches become one array view, no per-element work."""

    def __init__(self, dtype: Any) -> None:
        import numpy as np

        self._np = np
        self.dtype_ = np.dtype(dtype)
        if self.dtype_.hasobject:
            raise TypeError(f"numpy dtype {self.dtype_} holds Python objects")
        self.size = self.dtype_.itemsize
        if self.size == 0:
            raise ValueError(f"numpy dtype {self.dtype_} has size 0")
        self.name = f"numpy.dtype({str(self.dtype_)!r})"
        self._int = self.dtype_.kind in "iub"

    @property
    def dtype(self) -> Any:
        return self.dtype_

    def _array(self, value: Any) -> Any:
        np = self._np
        dt = self.dtype_
        if isinstance(value, (np.ndarray, np.generic)) and value.dtype == dt:
            a = np.asarray(value)
        else:
            if self._int and isinstance(value, float):
                raise TypeError(f"codec {self.name} takes integers, not float {value!r}")
            if isinstance(value, (bytes, bytearray, memoryview)) and self.dtype_.kind not in "SV":
                b = _as_bytes(value, self)
                if len(b) != self.size:
                    raise ValueError(f"codec {self.name} takes {self.size} bytes, got "
                                     f"{len(b)}")
                return np.frombuffer(b, dt)
            try:
                a = np.array(value, dtype=dt.base if dt.shape else dt)
            except (TypeError, ValueError, OverflowError) as e:
                raise type(e)(f"{value!r} does not fit codec {self.name}: {e}") from None
            if dt.shape and a.shape != dt.shape:
                raise ValueError(f"{value!r} does not fit codec {self.name}: shape "
                                 f"{a.shape}, not {dt.shape}")
        if a.nbytes != self.size:
            raise ValueError(f"{value!r} does not fit codec {self.name}: it makes "
                             f"{a.nbytes} bytes, not {self.size}")
        return a

    def encode(self, value: Any) -> bytes:
        return self._array(value).tobytes()

    def decode(self, buf: Any) -> Any:
        np = self._np
        a = np.frombuffer(buf, self.dtype_, count=1)
        v = a[0]
        if isinstance(v, np.void):
            return v.copy()  # a writable record that does not pin the lookup's buffer
        return v

    def view(self, buf: Any, n: int, stride: int | None = None) -> Any:
        """Return a read-only array viewing *n* elements of *buf*, one every *stride* bytes."""
        np = self._np
        stride = stride or self.size
        if stride == self.size:
            return np.frombuffer(buf, self.dtype_, count=n)
        return np.ndarray((n,), self.dtype_, buffer=memoryview(buf).cast("B"),
                          strides=(stride,))

    def decode_array(self, buf: Any, n: int, stride: int | None = None) -> list[Any]:
        a = self.view(buf, n, stride)
        if a.dtype.fields is not None:
            a = a.copy()
        return list(a)

    def encode_array(self, values: Iterable[Any], stride: int | None = None) -> bytes:
        np = self._np
        stride = stride or self.size
        b = _from_ndarray(self, values, stride)
        if b is not None:
            return b
        if isinstance(values, np.ndarray) and values.dtype == self.dtype_:
            arr = values
        else:
            vals = list(values)
            dt = self.dtype_
            try:
                arr = np.array(vals, dtype=dt.base if dt.shape else dt) if vals else \
                    np.zeros(0, dt)
                if dt.shape and arr.shape != (len(vals),) + dt.shape:
                    raise ValueError("shape")
            except (TypeError, ValueError, OverflowError):
                arr = np.zeros(len(vals), self.dtype_)
                for i, v in enumerate(vals):  # the element at fault gets a clear error
                    arr[i] = self._array(v)
            else:
                if self._int and any(isinstance(v, float) for v in vals):
                    raise TypeError(f"codec {self.name} takes integers, not floats")
        n = arr.size * arr.dtype.itemsize // self.size
        if arr.nbytes != n * self.size:
            raise ValueError(f"values do not make whole elements of codec {self.name}")
        if stride == self.size:
            return np.ascontiguousarray(arr).tobytes()
        out = bytearray(n * stride)
        view = np.ndarray((n,), self.dtype_, buffer=out, strides=(stride,))
        view[...] = arr.reshape((n,) + self.dtype_.shape) if self.dtype_.shape else \
            arr.reshape(n)
        return bytes(out)


# ---- the Node.js protocol ---------------------------------------------------------------

class ProtocolCodec(Codec):
    """Wraps a user object with ``size``, ``parse(buffer)`` and ``format(buffer, value)``:
    ``parse`` gets ``size`` bytes; ``format`` gets a zeroed ``bytearray`` of ``size`` bytes to
    fill."""

    def __init__(self, obj: Any) -> None:
        size = getattr(obj, "size", None)
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise TypeError(f"codec object {obj!r} must have a positive int size, not "
                            f"{size!r}")
        if not callable(getattr(obj, "parse", None)) or not callable(getattr(obj, "format",
                                                                             None)):
            raise TypeError(f"codec object {obj!r} needs parse(buffer) and "
                            "format(buffer, value) methods")
        self.obj = obj
        self.size = size
        self.name = getattr(obj, "name", None) or type(obj).__name__
        self._parse = obj.parse
        self._format = obj.format

    def encode(self, value: Any) -> bytes:
        buf = bytearray(self.size)
        self._format(buf, value)
        if len(buf) != self.size:
            raise ValueError(f"codec {self.name}.format() resized its buffer from "
                             f"{self.size} to {len(buf)} bytes")
        return bytes(buf)

    def decode(self, buf: Any) -> Any:
        if type(buf) is not bytes or len(buf) != self.size:
            buf = bytes(memoryview(buf).cast("B")[: self.size])
        return self._parse(buf)

    def decode_array(self, buf: Any, n: int, stride: int | None = None) -> list[Any]:
        stride = stride or self.size
        b = bytes(memoryview(buf).cast("B")[: n * stride])
        p, size = self._parse, self.size
        return [p(b[i:i + size]) for i in range(0, n * stride, stride)]


# ---- resolution -------------------------------------------------------------------------

def as_codec(spec: Any, size: int | None = None, what: str | None = None) -> Codec:
    """Return the codec for *spec* (see the module docstring for what is accepted).

    *size* is the map's size for this key or value: used for raw bytes (``None``/``bytes``)
    and checked against the codec, raising ValueError when they differ; *what* (``"key"``
    or ``"value"``) names the field in that message.
    """
    codec: Codec
    if isinstance(spec, Codec):
        codec = spec
    elif spec is None or spec is bytes:
        if size is None:
            raise ValueError("raw bytes codec needs the map's size")
        codec = RawCodec(size) if size > 0 else _EMPTY
    elif isinstance(spec, str):
        codec = StructCodec(spec)
    elif isinstance(spec, type) and issubclass(spec, _SimpleCData):
        codec = _ctypes_scalar_codec(spec)
    elif isinstance(spec, type) and issubclass(spec, (ctypes.Structure, ctypes.Union,
                                                      ctypes.Array)):
        codec = CtypesCodec(spec)
    elif _is_numpy_spec(spec):
        codec = NumpyCodec(spec)
    elif hasattr(spec, "size") and hasattr(spec, "parse") and hasattr(spec, "format"):
        codec = ProtocolCodec(spec)
    else:
        raise TypeError(f"cannot make a codec from {spec!r}: give a struct format string, a "
                        "ctypes type, a numpy dtype, a bpf codec (bpf.u32 ...), bytes, or an "
                        "object with size, parse(buffer) and format(buffer, value)")
    if size is not None and codec.size != size:
        field = f"map's {what}_size" if what else "map's field"
        raise ValueError(f"{what + ' ' if what else ''}codec {codec.name} is {codec.size} "
                         f"bytes but the {field} is {size}")
    return codec


class _EmptyCodec(Codec):
    """The zero-size key of queue, stack and bloom filter maps."""

    size = 0
    name = "empty"

    def encode(self, value: Any) -> bytes:
        return b""

    def decode(self, buf: Any) -> None:
        return None


_EMPTY = _EmptyCodec()

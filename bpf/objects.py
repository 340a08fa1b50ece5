"""ELF objects through libbpf: ``bpf.Object``.

An object is opened (``Object.open``), optionally adjusted through its spec views (map sizes,
flags, pin paths, reuse of existing maps, program autoload and types, global variables), then
loaded (``load()``).  After load ``obj.maps[name]`` are ``bpf.Map`` objects and
``obj.programs[name]`` are ``bpf.Program`` objects, each owning a duplicate of libbpf's fd, so
they outlive the object; ``obj.close()`` closes the ones it handed out, call ``.dup()`` on one
to keep it past ``close()``.  Global variables stay reachable by name through ``obj.globals``,
read and written in the data sections' memory mappings.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import weakref
from collections.abc import Iterator, Mapping
from typing import Any, Literal, NamedTuple, Union

from . import _bpf
from ._bpf import BPFError, NotSupportedError, VerifierError
from .enums import AttachType, MapFlags, MapType, ProgType

__all__ = ["Object", "MapSpec", "ProgramSpec", "Globals", "Variable"]

_EM_BPF = 247
_BYTEORDER: Literal["little", "big"] = "little" if sys.byteorder == "little" else "big"
_Source = Union[str, bytes, bytearray, memoryview, "os.PathLike[str]"]


# ---- helpers ------------------------------------------------------------------------------

def _describe(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return repr(os.fspath(source))
    return f"image of {len(memoryview(source).cast('B'))} bytes"


def check_elf_header(head: bytes, what: str) -> None:
    """Raise ValueError unless *head* starts a 64-bit ELF file for the BPF machine."""
    if len(head) < 64:
        raise ValueError(f"{what} is not a BPF ELF object: {len(head)} bytes, shorter than an "
                         "ELF header")
    if head[:4] != b"\x7fELF":
        raise ValueError(f"{what} is not an ELF file (magic {head[:4]!r})")
    if head[4] != 2:
        raise ValueError(f"{what} is a 32-bit ELF file; BPF objects are ELF64")
    if head[5] not in (1, 2):
        raise ValueError(f"{what} has an invalid ELF data encoding ({head[5]})")
    machine = int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")
    if machine != _EM_BPF:
        raise ValueError(f"{what} is an ELF object for machine {machine}, not BPF "
                         f"(e_machine {_EM_BPF})")


def _read_head(source: Any) -> bytes:
    if isinstance(source, (str, bytes, os.PathLike)) and not isinstance(source, bytes):
        with open(source, "rb") as f:
            return f.read(64)
    return bytes(memoryview(source).cast("B")[:64])


class _Capture(logging.Handler):
    """Collects libbpf's warnings emitted by this thread (the print hook logs them)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            msg = record.getMessage().strip()
            self.lines.append(msg[8:] if msg.startswith("libbpf: ") else msg)


@contextlib.contextmanager
def _libbpf_messages() -> Iterator[_Capture]:
    logger = logging.getLogger("bpf.libbpf")
    cap = _Capture()
    logger.addHandler(cap)
    try:
        yield cap
    finally:
        logger.removeHandler(cap)


def _augment(e: BaseException, cap: _Capture) -> None:
    """Append libbpf's last warnings (its reason) to a BPFError's message."""
    if not isinstance(e, BPFError) or isinstance(e, VerifierError) or not cap.lines:
        return
    tail = [ln for ln in cap.lines if ln][-3:]
    if tail and e.strerror is not None:
        e.strerror = f"{e.strerror}; libbpf: {' | '.join(tail)}"
        e.args = (e.errno, e.strerror)


# ---- spec views ---------------------------------------------------------------------------

class MapSpec:
    """A map of an opened object, before load: read and change its attributes.

    Setters raise ``BPFError`` (EBUSY) once the object is loaded.
    """

    def __init__(self, obj: Object, name: str) -> None:
        self._obj = obj
        self._name = name

    def _spec(self) -> dict[str, Any]:
        return self._obj.map_spec(self._name)

    def _set(self, field: str, value: object) -> None:
        self._obj.map_set(self._name, field, value)

    @property
    def name(self) -> str:
        """The map's name (for data sections, libbpf's "<object>.<section>" name)."""
        return str(self._spec()["name"])

    @property
    def type(self) -> MapType:
        return MapType(self._spec()["type"])

    @type.setter
    def type(self, value: int) -> None:
        self._set("type", int(value))

    @property
    def key_size(self) -> int:
        return int(self._spec()["key_size"])

    @key_size.setter
    def key_size(self, value: int) -> None:
        self._set("key_size", value)

    @property
    def value_size(self) -> int:
        return int(self._spec()["value_size"])

    @value_size.setter
    def value_size(self, value: int) -> None:
        self._set("value_size", value)

    @property
    def max_entries(self) -> int:
        return int(self._spec()["max_entries"])

    @max_entries.setter
    def max_entries(self, value: int) -> None:
        self._set("max_entries", value)

    @property
    def flags(self) -> MapFlags:
        return MapFlags(self._spec()["flags"])

    @flags.setter
    def flags(self, value: int) -> None:
        self._set("flags", int(value))

    @property
    def numa_node(self) -> int:
        return int(self._spec()["numa_node"])

    @numa_node.setter
    def numa_node(self, value: int) -> None:
        self._set("numa_node", value)

    @property
    def map_extra(self) -> int:
        return int(self._spec()["map_extra"])

    @map_extra.setter
    def map_extra(self, value: int) -> None:
        self._set("map_extra", value)

    @property
    def pin_path(self) -> str | None:
        """Where the map is pinned at load (reused if a compatible pin exists there)."""
        return self._spec()["pin_path"]

    @pin_path.setter
    def pin_path(self, value: str | os.PathLike[str] | None) -> None:
        self._set("pin_path", value)

    @property
    def autocreate(self) -> bool:
        """Whether load() creates this map (programs using a map that is not created fail)."""
        return bool(self._spec()["autocreate"])

    @autocreate.setter
    def autocreate(self, value: bool) -> None:
        self._set("autocreate", bool(value))

    @property
    def internal(self) -> bool:
        """True for the maps libbpf makes for .data/.rodata/.bss/.kconfig sections."""
        return bool(self._spec()["internal"])

    @property
    def inner(self) -> MapSpec | None:
        """The inner map's spec of a map-in-map declared with ``__array(values, ...)``
        (read-only: libbpf cannot change it; give the outer map a template map through
        ``inner_map`` instead)."""
        inner = self._spec()["inner"]
        return None if inner is None else MapSpec(self._obj, f"{self._name}.inner")

    @property
    def inner_map(self) -> None:
        raise AttributeError("inner_map is write-only; read .inner for the spec")

    @inner_map.setter
    def inner_map(self, value: Any) -> None:
        """Use an existing map (a Map or an fd) as the template of this map-in-map's inner
        maps, replacing a declared one.  libbpf keeps the fd without a dup: keep the map
        open until load() returns."""
        self._set("inner_map_fd", _fd_of(value))

    def reuse(self, map_or_fd: Any) -> None:
        """Use an existing map (a Map or an fd; it is dup'ed) instead of creating one at load.

        The map's own type, sizes and flags replace the declared ones (libbpf does not compare
        them; the verifier checks the programs against the map they get), and so does its kernel
        name: give the map the declared name, or look the spec up by its new name."""
        self._obj.map_reuse_fd(self._name, _fd_of(map_or_fd))

    def reuse_pinned(self, path: str | os.PathLike[str]) -> None:
        """Reuse the map pinned at *path* (see ``reuse``)."""
        from .maps import Map  # type: ignore[attr-defined]

        if self._obj.closed:  # before opening the pin: ValueError, not ENOENT or a stray fd
            raise ValueError("operation on closed object")
        with Map.from_pin(os.fspath(path)) as m:
            self.reuse(m)

    def __repr__(self) -> str:
        try:
            s = self._spec()
        except (ValueError, KeyError):
            return f"<MapSpec {self._name!r} (object closed)>"
        return (f"<MapSpec {s['name']!r} type={MapType(s['type']).name} key_size={s['key_size']}"
                f" value_size={s['value_size']} max_entries={s['max_entries']}>")


def _fd_of(value: Any) -> int:
    if isinstance(value, int):
        return value
    fileno = getattr(value, "fileno", None)
    if fileno is None:
        raise TypeError(f"expected a Map or an fd, not {type(value).__name__}")
    return int(fileno())


class ProgramSpec:
    """A program of an opened object, before load: read and change its attributes."""

    def __init__(self, obj: Object, name: str) -> None:
        self._obj = obj
        self._name = name

    def _spec(self) -> dict[str, Any]:
        return self._obj.program_spec(self._name)

    def _set(self, field: str, value: object) -> None:
        self._obj.program_set(self._name, field, value)

    @property
    def name(self) -> str:
        return self._name

    @property
    def section(self) -> str:
        """The ELF section, e.g. "xdp", "kprobe/do_unlinkat" (what attach() goes by)."""
        return str(self._spec()["section"])

    @property
    def type(self) -> ProgType:
        return ProgType(self._spec()["type"])

    @type.setter
    def type(self, value: int) -> None:
        self._set("type", int(value))

    @property
    def expected_attach_type(self) -> AttachType | int:
        v = int(self._spec()["expected_attach_type"])
        try:
            return AttachType(v)
        except ValueError:
            return v

    @expected_attach_type.setter
    def expected_attach_type(self, value: int) -> None:
        self._set("expected_attach_type", int(value))

    @property
    def autoload(self) -> bool:
        """Whether load() loads this program; off, it is skipped (and gets no fd)."""
        return bool(self._spec()["autoload"])

    @autoload.setter
    def autoload(self, value: bool) -> None:
        self._set("autoload", bool(value))

    @property
    def autoattach(self) -> bool:
        return bool(self._spec()["autoattach"])

    @autoattach.setter
    def autoattach(self, value: bool) -> None:
        self._set("autoattach", bool(value))

    @property
    def flags(self) -> int:
        return int(self._spec()["flags"])

    @flags.setter
    def flags(self, value: int) -> None:
        self._set("flags", value)

    @property
    def log_level(self) -> int:
        return int(self._spec()["log_level"])

    @log_level.setter
    def log_level(self, value: int) -> None:
        self._set("log_level", value)

    @property
    def insn_count(self) -> int:
        return int(self._spec()["insn_cnt"])

    def set_attach_target(self, function: str | None, target: Any = None) -> None:
        """Set the BTF target of fentry/fexit/freplace programs: a kernel function (target
        None) or a function of the loaded program *target* (a Program or fd)."""
        self._set("attach_target", (0 if target is None else _fd_of(target), function))

    def __repr__(self) -> str:
        try:
            s = self._spec()
        except (ValueError, KeyError):
            return f"<ProgramSpec {self._name!r} (object closed)>"
        return (f"<ProgramSpec {self._name!r} section={s['section']!r} "
                f"type={ProgType(s['type']).name} autoload={s['autoload']}>")


# ---- name -> spec or live object mappings ----------------------------------------------------

class _Names(Mapping[str, Any]):
    """Read-only mapping by name: specs before load, live Map/Program objects after."""

    def __init__(self, obj: Object, kind: str) -> None:
        self._obj = obj
        self._kind = kind

    def _names(self) -> list[str]:
        if self._kind == "map":
            names = self._obj.map_names()
            if self._obj.loaded:
                names = [n for n in names if self._obj.map_spec(n)["fd"] >= 0]
            return names
        names = self._obj.program_names()
        if self._obj.loaded:
            names = [n for n in names if self._obj.program_spec(n)["fd"] >= 0]
        return names

    def __getitem__(self, name: str) -> Any:
        if self._kind == "map":
            return self._obj._map(name)
        return self._obj._program(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            self.__getitem__(name)
        except KeyError:
            return False
        return True

    def __repr__(self) -> str:
        if self._obj.closed:  # the names are the object's: repr must still work
            return f"<{self._kind}s of {self._obj!r}>"
        return f"<{self._kind}s of {self._obj!r}: {self._names()}>"


class Variable(NamedTuple):
    """A global variable: its data section, offset and size in it, and how it is decoded."""

    name: str
    section: str
    offset: int
    size: int
    kind: str  # "int" (1, 2, 4 or 8 byte integers and enums) or "bytes"
    signed: bool


class Globals:
    """Global variables of ``.data``, ``.rodata``, ``.bss`` (and ``.data.*`` ...) by name.

    Integers and enums of 1, 2, 4 or 8 bytes read as ``int`` (signedness from BTF) and take an
    ``int``; anything else reads as ``bytes`` and takes a bytes-like object of exactly its size.
    Before load the values are the initial ones the object will be loaded with; after load
    reads and writes go straight to the sections' memory mappings shared with the programs
    (no syscall).  ``.rodata`` variables are writable before load only.
    """

    def __init__(self, obj: Object) -> None:
        self._obj = obj
        self._vars: dict[str, Variable] | None = None

    def _table(self) -> dict[str, Variable]:
        if self._vars is None:
            table: dict[str, Variable] = {}
            for v in self._obj.variables():
                table.setdefault(v[0], Variable(*v))
            self._vars = table
        return self._vars

    def info(self, name: str) -> Variable:
        """Return where variable *name* lives (KeyError if the object's BTF has none)."""
        try:
            return self._table()[name]
        except KeyError:
            raise KeyError(name) from None

    def __getitem__(self, name: str) -> int | bytes:
        table = self._vars if self._vars is not None else self._table()
        try:
            name_, section, offset, size, kind, signed = table[name]
        except KeyError:
            raise KeyError(name) from None
        raw = self._obj.global_read(section, offset, size)
        if kind == "int":
            return int.from_bytes(raw, _BYTEORDER, signed=signed)
        return raw

    def __setitem__(self, name: str, value: Any) -> None:
        v = self.info(name)
        if self._obj.loaded and v.section.startswith(".rodata"):
            raise ValueError(f"global {name!r} is in {v.section}, read-only once the object is "
                             "loaded; set it before load()")
        if isinstance(value, int) and not isinstance(value, bool) or (
                isinstance(value, bool) and v.kind == "int"):
            if v.kind != "int":
                raise TypeError(f"global {name!r} is {v.size} bytes of non-integer data: "
                                "assign a bytes-like object")
            try:
                data = int(value).to_bytes(v.size, _BYTEORDER, signed=v.signed)
            except OverflowError:
                raise OverflowError(f"{value} does not fit global {name!r} "
                                    f"({'signed' if v.signed else 'unsigned'} {v.size * 8}-bit)"
                                    ) from None
        else:
            try:
                data = bytes(memoryview(value).cast("B"))
            except TypeError:
                raise TypeError(f"global {name!r} takes "
                                f"{'an int' if v.kind == 'int' else 'a bytes-like object'}, not "
                                f"{type(value).__name__}") from None
            if len(data) != v.size:
                raise ValueError(f"global {name!r} is {v.size} bytes, got {len(data)}")
        self._obj.global_write(v.section, v.offset, data)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._table()

    def __iter__(self) -> Iterator[str]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())

    def keys(self) -> list[str]:
        return list(self._table())

    def items(self) -> list[tuple[str, int | bytes]]:
        return [(n, self[n]) for n in self._table()]

    def get(self, name: str, default: Any = None) -> Any:
        return self[name] if name in self else default

    def __repr__(self) -> str:
        if self._obj.closed:  # the table lives in the object's maps: repr must still work
            return f"<globals of {self._obj!r}>"
        return f"<globals of {self._obj!r}: {list(self._table())}>"


# ---- the object ---------------------------------------------------------------------------

class Object(_bpf.Object):
    """An ELF object of BPF maps and programs, opened and loaded through libbpf.

    ``Object.open(path_or_bytes)`` parses it without touching the kernel; ``load()`` creates
    the maps and loads the programs.  ``close()`` frees libbpf's object, which closes its own
    fds, and closes the Map and Program objects that ``maps``/``programs`` handed out; the
    kernel objects live on while other fds, pins or links hold them.  Links that libbpf made
    for its programs (``attach_usdt``, ``attach()`` by a section only libbpf understands) need
    the object's libbpf state to detach, so ``close()`` closes them first.

    Raises ``ValueError`` for files that are not BPF ELF objects, ``BPFError`` (errno, with
    libbpf's reason) when libbpf refuses the object, ``VerifierError`` when a program is
    refused by the verifier.
    """

    _live_maps: dict[str, Any]
    _live_programs: dict[str, Any]
    _libbpf_links: weakref.WeakSet[Any]
    _globals: Globals

    @classmethod
    def open(  # type: ignore[override]
            cls, source: _Source, pin_root: str | os.PathLike[str] | None = None, *,
            name: str | None = None, btf_path: str | os.PathLike[str] | None = None,
            kconfig: str | None = None) -> Object:
        """Open an object from a path or a bytes-like ELF image, without loading it.

        pin_root: directory (on bpffs) for maps declared ``__uint(pinning,
        LIBBPF_PIN_BY_NAME)`` (default /sys/fs/bpf).  btf_path: kernel BTF to use for CO-RE
        instead of /sys/kernel/btf/vmlinux.  name: the object's name (default: file name).
        """
        what = _describe(source)
        check_elf_header(_read_head(source), what)
        src: Any = os.fspath(source) if isinstance(source, os.PathLike) else source
        with _libbpf_messages() as cap:
            try:
                obj = super().open(src, name=name, pin_root=pin_root,
                                   btf_custom_path=btf_path, kconfig=kconfig)
            except BPFError as e:
                if any("legacy map definitions" in ln for ln in cap.lines):
                    legacy = NotSupportedError(
                        e.errno, f"open object {what}: its maps are legacy SEC(\"maps\") "
                                 "definitions, which libbpf 1.x refuses; load it with "
                                 "bpf.legacy.load_elf()")
                    legacy.operation = "open object"
                    raise legacy from None
                _augment(e, cap)
                raise
        obj._live_maps = {}
        obj._live_programs = {}
        obj._libbpf_links = weakref.WeakSet()  # filled by Program._libbpf_attach (links.py)
        obj._globals = Globals(obj)
        return obj  # type: ignore[return-value]

    @classmethod
    def load_file(cls, source: _Source, pin_root: str | os.PathLike[str] | None = None,
                  **kwargs: Any) -> Object:
        """Open and load in one call (same arguments as ``open``); nothing leaks on failure."""
        obj = cls.open(source, pin_root, **kwargs)
        try:
            obj.load()
        except BaseException:
            obj.close()
            raise
        return obj

    def load(self, log_level: int = 0, log_size: int = 1 << 20) -> None:  # type: ignore[override]
        """Create the maps and load the programs (GIL released).

        Raises VerifierError (``.log``: the verifier's lines, ``.program``: the name) when a
        program is refused; BPFError for other failures, with libbpf's reason appended.  A
        failed load cannot be retried: open the object again.
        """
        with _libbpf_messages() as cap:
            try:
                super().load(log_level=log_level, log_size=log_size)
            except VerifierError as e:
                # the same .reason / .insn as Program.load's VerifierError
                from .programs import _summarize

                e.reason, e.insn = _summarize(e.log)[:2]
                raise
            except BPFError as e:
                _augment(e, cap)
                raise

    # ---- views ----

    @property
    def maps(self) -> Mapping[str, Any]:
        """Maps by name: ``MapSpec`` before load, ``bpf.Map`` after (internal maps included,
        also reachable by section name, ``obj.maps[".bss"]``)."""
        if self.closed:
            raise ValueError("operation on closed object")
        return _Names(self, "map")

    @property
    def programs(self) -> Mapping[str, Any]:
        """Programs by name: ``ProgramSpec`` before load, ``bpf.Program`` after."""
        if self.closed:
            raise ValueError("operation on closed object")
        return _Names(self, "program")

    @property
    def globals(self) -> Globals:
        """Global variables by name (see ``Globals``)."""
        if self.closed:
            raise ValueError("operation on closed object")
        return self._globals

    def _map(self, name: str) -> Any:
        spec = self.map_spec(name)  # KeyError / ValueError(closed)
        if not self.loaded:
            return MapSpec(self, spec["name"])
        key = spec["name"]
        m = self._live_maps.get(key)
        if m is None or m.closed:
            if spec["fd"] < 0:
                raise KeyError(f"map {name!r} was not created (autocreate is off)")
            from .maps import Map  # type: ignore[attr-defined]

            m = Map.from_fd(spec["fd"])  # type: ignore[attr-defined]  # a dup: outlives us
            self._live_maps[key] = m
        return m

    def _program(self, name: str) -> Any:
        spec = self.program_spec(name)
        if not self.loaded:
            return ProgramSpec(self, name)
        p = self._live_programs.get(name)
        if p is None or p.closed:
            if spec["fd"] < 0:
                raise KeyError(f"program {name!r} was not loaded (autoload is off)")
            from .programs import Program  # type: ignore[attr-defined]

            p = Program.from_fd(spec["fd"])  # type: ignore[attr-defined]
            # What attach() needs later: the section (attach point) and the libbpf program,
            # reachable as _object.program_spec(name) / the Object's entry points.
            p.section = spec["section"]  # type: ignore[attr-defined]
            p._object = self  # type: ignore[attr-defined]
            p._object_name = name  # type: ignore[attr-defined]
            self._live_programs[name] = p
        return p

    def close(self) -> None:
        """Close the libbpf-made links of its programs (they cannot detach without the libbpf
        object), the Maps and Programs handed out, then free the libbpf object (idempotent)."""
        links = getattr(self, "_libbpf_links", None)
        if links is not None:
            for link in list(links):
                link.close()
            links.clear()
        for table in (getattr(self, "_live_maps", {}), getattr(self, "_live_programs", {})):
            for o in table.values():
                o.close()
            table.clear()
        super().close()

    def __enter__(self) -> Object:
        super().__enter__()
        return self

    def __exit__(self, *exc: object) -> Literal[False]:
        self.close()
        return False

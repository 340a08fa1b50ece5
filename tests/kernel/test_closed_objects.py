"""Closed objects: every public method and property of every resource type raises ValueError.

The project standard: closing, double closing and using closed objects are defined behaviours;
a closed object raises ValueError, never a crash, EBADF from a recycled fd, or a hang.

For each resource type a factory builds a live object (plus whatever it depends on, closed at
the end); the test closes it twice, checks ``closed`` and ``repr``, then calls one public name
(discovered with ``dir()`` at collection time, so a method added later is covered without
editing this file) with the arguments in ``ARGS`` and expects ValueError.  ``ALLOWED`` lists
the names where another behaviour is deliberate, with the reason.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import socket
from typing import Any, Callable

import pytest

import bpf
from bpf import asm
from bpf.asm import R0
from bpf.enums import MapType, ProgType

HERE = os.path.dirname(os.path.abspath(__file__))
OBJ = os.path.join(HERE, "..", "bpf", "xdp_counter.bpf.o")


# ---- factories: each returns (object, [dependencies to close afterwards]) --------------------

def _xdp_prog() -> Any:
    return bpf.Program.load(ProgType.XDP, [asm.mov(R0, 2), asm.exit()])


def _sockfilter_prog() -> Any:
    return bpf.Program.load(ProgType.SOCKET_FILTER, [asm.mov(R0, 0), asm.exit()])


def make_map() -> tuple[Any, list[Any]]:
    return bpf.Map.create(MapType.HASH, 4, 8, 16), []


def make_hashmap() -> tuple[Any, list[Any]]:
    return bpf.HashMap.create(key=bpf.u32, value=bpf.u64, max_entries=4), []


def make_arraymap() -> tuple[Any, list[Any]]:
    return bpf.ArrayMap.create(4, value=bpf.u32), []


def make_queuemap() -> tuple[Any, list[Any]]:
    return bpf.QueueMap.create(4, value=bpf.u32), []


def make_ringbufmap() -> tuple[Any, list[Any]]:
    return bpf.RingBufMap.create(4096), []


def _typed(make: Callable[[], Any]) -> Callable[[], tuple[Any, list[Any]]]:
    return lambda: (make(), [])


_TEMPLATE = dict(map_type=MapType.ARRAY, key_size=4, value_size=4, max_entries=1)

# More typed views: each is checked like the four above (their extra methods included).
MORE_TYPED = {
    "LRUHashMap": (bpf.LRUHashMap, _typed(lambda: bpf.LRUHashMap.create(
        key=bpf.u32, value=bpf.u64, max_entries=4))),
    "PerCPUHashMap": (bpf.PerCPUHashMap, _typed(lambda: bpf.PerCPUHashMap.create(
        key=bpf.u32, value=bpf.u64, max_entries=4))),
    "PerCPUArrayMap": (bpf.PerCPUArrayMap, _typed(lambda: bpf.PerCPUArrayMap.create(
        4, value=bpf.u64))),
    "LPMTrieMap": (bpf.LPMTrieMap, _typed(lambda: bpf.LPMTrieMap.create(4, value=bpf.u32))),
    "BloomFilterMap": (bpf.BloomFilterMap, _typed(lambda: bpf.BloomFilterMap.create(
        4, value=bpf.u32))),
    "StackMap": (bpf.StackMap, _typed(lambda: bpf.StackMap.create(4, value=bpf.u32))),
    "ArrayOfMaps": (bpf.ArrayOfMaps, _typed(lambda: bpf.ArrayOfMaps.create(2, _TEMPLATE))),
    "HashOfMaps": (bpf.HashOfMaps, _typed(lambda: bpf.HashOfMaps.create(2, _TEMPLATE))),
    "ProgArrayMap": (bpf.ProgArrayMap, _typed(lambda: bpf.ProgArrayMap.create(2))),
    "PerfEventArrayMap": (bpf.PerfEventArrayMap, _typed(bpf.PerfEventArrayMap.create)),
    "UserRingBufMap": (bpf.UserRingBufMap, _typed(lambda: bpf.UserRingBufMap.create(4096))),
}


def make_program() -> tuple[Any, list[Any]]:
    return _xdp_prog(), []


def make_xdp_link() -> tuple[Any, list[Any]]:
    prog = _xdp_prog()
    try:
        return prog.attach_xdp("lo"), [prog]
    except BaseException:
        prog.close()
        raise


def make_raw_tp_link() -> tuple[Any, list[Any]]:
    prog = bpf.Program.load(ProgType.RAW_TRACEPOINT, [asm.mov(R0, 0), asm.exit()])
    try:
        return prog.attach_raw_tracepoint("sys_enter"), [prog]
    except BaseException:
        prog.close()
        raise


def make_socket_link() -> tuple[Any, list[Any]]:
    prog = _sockfilter_prog()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        return prog.attach_socket(sock), [prog, sock]
    except BaseException:
        prog.close()
        sock.close()
        raise


def make_btf() -> tuple[Any, list[Any]]:
    return bpf.BTF.from_file(OBJ), []


def make_btf_loaded() -> tuple[Any, list[Any]]:
    b = bpf.BTF.new()
    try:
        b.add("int", "int", 4)
        b.load()
    except BaseException:
        b.close()
        raise
    return b, []


def make_object() -> tuple[Any, list[Any]]:
    return bpf.Object.open(OBJ), []


def make_object_loaded() -> tuple[Any, list[Any]]:
    o = bpf.Object.open(OBJ)
    try:
        o.load()
    except BaseException:
        o.close()
        raise
    return o, []


def make_ringbuffer() -> tuple[Any, list[Any]]:
    m = bpf.RingBufMap.create(4096)
    return bpf.RingBuffer(m.map, lambda r: None), [m]


def make_perfbuffer() -> tuple[Any, list[Any]]:
    m = bpf.PerfEventArrayMap.create()
    return bpf.PerfBuffer(m.map, lambda r: None), [m]


def make_userringbuffer() -> tuple[Any, list[Any]]:
    m = bpf.UserRingBufMap.create(4096)
    return bpf.UserRingBuffer(m.map), [m]


def make_perfevent() -> tuple[Any, list[Any]]:
    return bpf.perf_event_open("cpu-clock", pid=0, cpu=-1), []


# name -> (class whose dir() is walked, factory)
TYPES: dict[str, tuple[type, Callable[[], tuple[Any, list[Any]]]]] = {
    "Map": (bpf.Map, make_map),
    "HashMap": (bpf.HashMap, make_hashmap),
    "ArrayMap": (bpf.ArrayMap, make_arraymap),
    "QueueMap": (bpf.QueueMap, make_queuemap),
    "RingBufMap": (bpf.RingBufMap, make_ringbufmap),
    "Program": (bpf.Program, make_program),
    "XDPLink": (bpf.Link, make_xdp_link),
    "RawTracepointLink": (bpf.Link, make_raw_tp_link),
    "SocketAttachment": (bpf.Link, make_socket_link),
    "BTF": (bpf.BTF, make_btf),
    "BTFLoaded": (bpf.BTF, make_btf_loaded),
    "Object": (bpf.Object, make_object),
    "ObjectLoaded": (bpf.Object, make_object_loaded),
    "RingBuffer": (bpf.RingBuffer, make_ringbuffer),
    "PerfBuffer": (bpf.PerfBuffer, make_perfbuffer),
    "UserRingBuffer": (bpf.UserRingBuffer, make_userringbuffer),
    "PerfEvent": (bpf.PerfEvent, make_perfevent),
    **MORE_TYPED,
}

# Types whose objects own a file descriptor (the recycled-fd test runs for these).
FD_TYPES = ["Map", "HashMap", "ArrayMap", "QueueMap", "RingBufMap", "Program", "XDPLink",
            "RawTracepointLink", "SocketAttachment",
            "BTFLoaded", "ObjectLoaded", "RingBuffer", "PerfBuffer", "UserRingBuffer",
            "PerfEvent"]

# Dunders that are operations on the object (the rest of the underscore names are private or
# Python machinery).
DUNDERS = {"__len__", "__iter__", "__reversed__", "__getitem__", "__setitem__", "__delitem__",
           "__contains__", "__enter__", "__bool__", "__aiter__", "__next__"}

# Plausible arguments per public name: (args, kwargs).  Names not listed are called with none;
# properties and plain attributes are read.
_K4 = b"\x00" * 4
_LPM = (8, "10.0.0.0")
_V8 = b"\x00" * 8
ARGS: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {
    # maps
    "__getitem__": ((0,), {}),
    "__setitem__": ((0, 0), {}),
    "__delitem__": ((0,), {}),
    "__contains__": ((0,), {}),
    "lookup": ((_K4,), {}),
    "lookup_into": ((_K4, bytearray(8)), {}),
    "get": ((0,), {}),
    "update": ((0, 0), {}),
    "delete": ((_K4,), {}),
    "lookup_and_delete": ((_K4,), {}),
    "next_key": ((None,), {}),
    "lookup_batch": ((bytearray(4), bytearray(8)), {}),
    "lookup_and_delete_batch": ((bytearray(4), bytearray(8)), {}),
    "update_batch": ((_K4, _V8), {}),
    "delete_batch": ((_K4,), {}),
    "pin": (("/sys/fs/bpf/closed_objects_never",), {}),
    "pop": ((0,), {}),
    "setdefault": ((0, 0), {}),
    "update_many": (([(0, 0)],), {}),
    "update_arrays": (([0], [0]), {}),
    "set_all": (([0, 0, 0, 0],), {}),
    "count": ((0,), {}),
    "index": ((0,), {}),
    "push": ((0,), {}),
    "typed": ((), {"key": bpf.u32, "value": bpf.u64}),
    "sum": ((0,), {}),
    "min": ((0,), {}),
    "max": ((0,), {}),
    "reduce": ((0, max), {}),
    "get_map": ((0,), {}),
    "get_program": ((0,), {}),
    # programs
    "attach_cgroup": (("/sys/fs/cgroup",), {}),
    "attach_kprobe": (("do_nanosleep",), {}),
    "attach_kprobe_multi": (("do_nanosleep",), {}),
    "attach_uprobe": (("/bin/true", "main"), {}),
    "attach_uprobe_multi": (("/bin/true", "main"), {}),
    "attach_usdt": (("/bin/true", "p", "n"), {}),
    "attach_tracepoint": (("syscalls", "sys_enter_getpid"), {}),
    "attach_raw_tracepoint": (("sys_enter",), {}),
    "attach_socket": ((0,), {}),
    "attach_sockmap": ((0,), {}),
    "attach_tc": (("lo",), {}),
    "attach_xdp": (("lo",), {}),
    "attach_perf_event": ((0,), {}),
    "test_run": ((b"\x00" * 64,), {}),
    # links
    "unpin": (("/sys/fs/bpf/closed_objects_never",), {}),
    # BTF
    "add": (("int", "int", 4), {}),
    "find": (("int",), {}),
    "find_id": (("int",), {}),
    "resolve_size": ((1,), {}),
    "size_of": ((1,), {}),
    "type": ((1,), {}),
    "type_info": ((1,), {}),
    # Object
    "global_read": ((".bss", 0, 4), {}),
    "global_write": ((".bss", 0, b"\x00" * 4), {}),
    "map_fd": (("xdp_coun.bss",), {}),
    "map_reuse_fd": (("xdp_coun.bss", 1), {}),
    "map_set": (("xdp_coun.bss", "max_entries", 4), {}),
    "map_spec": (("xdp_coun.bss",), {}),
    "program_fd": (("xdp_count",), {}),
    "program_set": (("xdp_count", "autoload", True), {}),
    "program_spec": (("xdp_count",), {}),
    # readers
    "ring_info": ((0,), {}),
    # Waits get a finite timeout: a closed reader must raise at once, and one that waited
    # instead fails the test (DID NOT RAISE) rather than hanging it.
    "poll": ((1.0,), {}),
    "records": ((1.0,), {}),
    "poll_async": ((1.0,), {}),
    "reserve": ((8,), {"timeout": 1.0}),
    "submit": ((None,), {}),
    "discard": ((None,), {}),
    "write": ((b"\x00" * 8,), {"timeout": 1.0}),
}
# Per-type overrides of ARGS: (type name, method) -> (args, kwargs).
TYPE_ARGS: dict[tuple[str, str], tuple[tuple[Any, ...], dict[str, Any]]] = {
    ("Map", "__getitem__"): ((_K4,), {}),
    ("Map", "__setitem__"): ((_K4, _V8), {}),
    ("Map", "__delitem__"): ((_K4,), {}),
    ("Map", "__contains__"): ((_K4,), {}),
    ("Map", "get"): ((_K4,), {}),
    ("Map", "update"): ((_K4, _V8), {}),
    ("XDPLink", "update"): ((None,), {}),
    ("SocketAttachment", "update"): ((None,), {}),
    ("RawTracepointLink", "update"): ((None,), {}),
    ("RingBuffer", "add"): ((None, None), {}),
    ("BloomFilterMap", "add"): ((0,), {}),
    **{("LPMTrieMap", n): ((_LPM,) + a, k) for n, (a, k) in {
        "__contains__": ((), {}), "__delitem__": ((), {}), "__getitem__": ((), {}),
        "__setitem__": ((0,), {}), "get": ((), {}), "pop": ((), {}),
        "setdefault": ((0,), {}), "update": ((0,), {})}.items()},
    ("LPMTrieMap", "update_many"): (([(_LPM, 0)],), {}),
}

# Deliberate behaviours other than ValueError on a closed object: (type or None for all,
# name) -> reason.  The call must then succeed, unless the reason names the exception the
# name raises open or closed (RAISES).
RAISES: dict[tuple[str, str], type[BaseException]] = {
    ("QueueMap", "__len__"): TypeError,
    ("StackMap", "__len__"): TypeError,
    ("UserRingBufMap", "reader"): TypeError,
    # arrays() needs numpy dtypes for both codecs: these maps' codecs have none.
    **{(t, "arrays"): TypeError
       for t in ("LPMTrieMap", "ArrayOfMaps", "HashOfMaps", "ProgArrayMap")},
    ("LPMTrieMap", "update_arrays"): TypeError,
}
ALLOWED: dict[tuple[str | None, str], str] = {
    (None, "close"): "idempotent: closing again is a no-op",
    (None, "closed"): "reports the state",
    (None, "__repr__"): "repr works and says closed (checked separately)",
    (None, "__exit__"): "calls close(), which is idempotent",
    # Map metadata fixed at creation and cached in the object: reading it touches no fd
    # (repr and error messages use it).  Program's equivalents read the kernel and raise.
    **{("Map", n): "cached creation metadata" for n in (
        "id", "name", "type", "flags", "key_size", "value_size", "raw_value_size",
        "max_entries", "map_extra")},
    (None, "ncpus"): "cached codec metadata (values per element)",
    ("Map", "__bool__"): "a map object is always true (like a file object, closed or not)",
    **{(t, "__len__"): "TypeError: len() is undefined for a queue or stack, open or closed"
       for t in ("QueueMap", "StackMap")},
    ("UserRingBufMap", "reader"): "TypeError: the map is written, not read, open or closed",
    **{(t, "arrays"): "TypeError: the codecs have no numpy dtype, open or closed"
       for t in ("LPMTrieMap", "ArrayOfMaps", "HashOfMaps", "ProgArrayMap")},
    ("LPMTrieMap", "update_arrays"): "TypeError: the LPM key codec has no numpy dtype",
    (None, "loaded"): "reports state: False once closed, like closed reports True",
    ("Program", "verifier_log"): "the log of the load, kept in Python; touches no fd",
}


def _public_names(cls: type) -> list[str]:
    out = []
    for name in dir(cls):
        if name.startswith("_") and name not in DUNDERS:
            continue
        static = inspect.getattr_static(cls, name)
        if static is None:  # e.g. __reversed__ = None, expected_attach_type = None markers
            continue
        if isinstance(static, (classmethod, staticmethod)) or \
                type(static).__name__ == "classmethod_descriptor":
            continue  # constructors: not operations on an instance
        if isinstance(static, (tuple, int, str)):
            continue  # class constants (map_types)
        out.append(name)
    return out


CASES = [pytest.param(t, n, id=f"{t}.{n}")
         for t, (cls, _) in TYPES.items() for n in _public_names(cls)]


@contextlib.contextmanager
def closed_object(tname: str):
    obj, deps = TYPES[tname][1]()
    try:
        obj.close()
        obj.close()  # double close: no error
        yield obj
    finally:
        obj.close()
        for d in reversed(deps):
            d.close()


def _allowed(tname: str, name: str) -> str | None:
    return ALLOWED.get((tname, name)) or ALLOWED.get((None, name))


@pytest.mark.parametrize("tname", list(TYPES))
def test_close_twice_and_repr(tname):
    with closed_object(tname) as obj:
        assert obj.closed is True
        assert "closed" in repr(obj)
        obj.__exit__(None, None, None)  # closes again: still fine
        assert obj.closed is True


def _call(obj: Any, tname: str, name: str) -> Any:
    static = inspect.getattr_static(type(obj), name, None)
    args, kwargs = TYPE_ARGS.get((tname, name)) or ARGS.get(name, ((), {}))
    attr = getattr(obj, name)  # a property raises here
    if not callable(attr) or isinstance(static, property) or \
            type(static).__name__ in ("getset_descriptor", "member_descriptor"):
        return attr
    res = attr(*args, **kwargs)
    # Views (keys(), items(), values()) are lazy: iterate them.
    if not hasattr(res, "__next__") and hasattr(res, "__iter__") and \
            not isinstance(res, (str, bytes, list, tuple, dict)):
        res = iter(res)
    # Generators and async iterators do their work lazily: drive them one step.
    if inspect.isgenerator(res) or hasattr(res, "__next__"):
        next(res)
    elif hasattr(res, "__anext__"):
        import asyncio
        asyncio.run(res.__anext__())
    elif inspect.iscoroutine(res):
        import asyncio
        asyncio.run(res)
    return res


@pytest.mark.parametrize("tname,name", CASES)
def test_closed_raises_value_error(tname, name):
    reason = _allowed(tname, name)
    with closed_object(tname) as obj:
        if reason:
            if (tname, name) in RAISES:
                with pytest.raises(RAISES[tname, name]):
                    _call(obj, tname, name)
            else:
                _call(obj, tname, name)  # must not raise
            return
        with pytest.raises(ValueError, match="closed"):
            _call(obj, tname, name)


def _fd_of(obj: Any) -> int:
    """The fd an object owns (an Object: its program's, which close() frees)."""
    if isinstance(obj, bpf.Object):
        return int(obj.program_fd("xdp_count"))
    if isinstance(obj, bpf.BTF):
        return int(obj.fd)
    return int(obj.fileno())


@pytest.mark.parametrize("tname", FD_TYPES)
def test_closed_never_uses_recycled_fd(tname, tmp_path):
    obj, deps = TYPES[tname][1]()
    opened: list[int] = []
    try:
        fd = _fd_of(obj)
        obj.close()
        # Readers free several fds (epoll, maps, perf events): open files until one gets the
        # number this object had.
        while not opened or opened[-1] != fd:
            assert len(opened) < 256, f"fd {fd} was not freed by close()"
            opened.append(os.open(tmp_path / "x", os.O_RDWR | os.O_CREAT))
        with pytest.raises(ValueError, match="closed"):
            _fd_of(obj)
        names = [n for n in _public_names(type(obj)) if not _allowed(tname, n)]
        assert names
        for name in names:
            with pytest.raises(ValueError, match="closed"):
                _call(obj, tname, name)
        obj.close()  # must not close the recycled number
        obj.__exit__(None, None, None)
        for n in opened:
            os.fstat(n)
    finally:
        for n in opened:
            os.close(n)
        obj.close()
        for d in reversed(deps):
            d.close()


# ---- what an Object hands out: usable only while the Object is open -------------------------

def _child(loaded: bool, get: Callable[[Any], Any]) -> Callable[[], tuple[Any, Any]]:
    def make() -> tuple[Any, Any]:
        o = bpf.Object.open(OBJ)
        try:
            if loaded:
                o.load()
            return get(o), o
        except BaseException:
            o.close()
            raise
    return make


CHILDREN: dict[str, tuple[type, Callable[[], tuple[Any, Any]]]] = {
    "MapSpec": (bpf.MapSpec, _child(False, lambda o: o.maps["xdp_coun.bss"])),
    "ProgramSpec": (bpf.ProgramSpec, _child(False, lambda o: o.programs["xdp_count"])),
    "Globals": (bpf.Globals, _child(True, lambda o: o.globals)),
}
CHILD_ARGS: dict[str, tuple[Any, ...]] = {
    "__getitem__": ("packets",), "__setitem__": ("packets", 1), "__contains__": ("packets",),
    "get": ("packets",), "info": ("packets",), "reuse": (1,),
    "reuse_pinned": ("/sys/fs/bpf/closed_objects_never",), "set_attach_target": ("f",),
}
def test_object_names_after_close():
    """A name mapping taken from an Object before close: repr works, lookups raise."""
    for loaded in (False, True):
        for get in (lambda o: o.maps, lambda o: o.programs):
            names, obj = _child(loaded, get)()
            obj.close()
            assert "closed" in repr(names)
            for op in (lambda: list(names), lambda: len(names), lambda: names["xdp_count"],
                       lambda: "xdp_count" in names):
                with pytest.raises(ValueError, match="closed"):
                    op()


CHILD_CASES = [pytest.param(t, n, id=f"{t}.{n}")
               for t, (cls, _) in CHILDREN.items()
               for n in _public_names(cls) if n not in ("name", "section")]


@pytest.mark.parametrize("tname,name", CHILD_CASES)
def test_object_children_after_close(tname, name):
    """Specs and globals of a closed Object raise ValueError (not a crash on freed libbpf
    state); their names, fixed at open, stay readable."""
    child, obj = CHILDREN[tname][1]()
    obj.close()
    assert "closed" in repr(child)
    static = inspect.getattr_static(type(child), name)
    if isinstance(static, property) and static.fget is not None and \
            "write-only" in (inspect.getsource(static.fget)):
        pass  # read raises AttributeError open or closed (MapSpec.inner_map)
    else:
        with pytest.raises(ValueError, match="closed"):
            attr = getattr(child, name)
            if callable(attr) and not isinstance(static, property):
                r = attr(*CHILD_ARGS.get(name, ()))
                if hasattr(r, "__next__"):
                    next(r)
    if isinstance(static, property) and static.fset is not None:
        with pytest.raises(ValueError, match="closed"):
            setattr(child, name, 1)


def test_btf_fd_after_failed_load():
    """A BTF the kernel refused has no fd: ``fd`` is -1, not libbpf's stored -errno."""
    # An object file's BTF before libbpf's fixups (DATASEC sizes, extern vars): the kernel
    # rejects it with EINVAL.
    with bpf.BTF.from_file(OBJ) as b:
        with pytest.raises(bpf.BPFError):
            b.load()
        assert b.fd == -1
        assert "fd=-1" in repr(b)

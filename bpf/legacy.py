"""Loader for ELF objects with legacy ``SEC("maps")`` map definitions (pure Python).

libbpf 1.x refuses objects that declare maps as ``struct bpf_map_def SEC("maps")``.  Such
objects come from older toolchains and from Go loaders that parse ELF files themselves.
``load_elf`` reads them with pyelftools, creates the maps, applies the relocations and loads
the programs through ``bpf.Map.create`` and ``bpf.Program.load``.

Map definitions (little-endian u32 fields, one per symbol in a ``maps`` or ``maps/...``
section; the size of a definition is the symbol's size, or the section's size divided by the
number of map symbols):

* 20 bytes: ``type, key_size, value_size, max_entries, map_flags``
* 28 bytes: the same, then ``inner_map_idx`` (for ARRAY_OF_MAPS/HASH_OF_MAPS: index, by
  offset, of the definition used as the inner map's template) and ``pinning`` (0: none,
  2: ``PIN_GLOBAL_NS``, reuse the map pinned at ``<pin_path>/<name>`` or create and pin it)

Relocations: ``ld_imm64`` instructions referring to a map symbol get the map's fd
(``src_reg = BPF_PSEUDO_MAP_FD``); BPF-to-BPF calls into ``.text`` get ``.text`` appended to
the calling program and their offsets fixed.  Programs come from the sections ``socket``,
``xdp``, ``tc_cls``/``classifier``, ``tc_act``/``action``, ``kprobe/``, ``kretprobe/``,
``tracepoint/`` and ``raw_tracepoint/``, one per global function, with the license of the
``license`` section.  Other sections are ignored (listed in ``skipped``).
"""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass
from typing import Any, Literal

from .enums import MapType, ProgType
from .objects import check_elf_header

__all__ = ["load_elf", "LegacyObject", "LegacyMapDef"]

_BPF_LD_IMM64 = 0x18
_BPF_CALL = 0x85
_BPF_PSEUDO_MAP_FD = 1
_BPF_PSEUDO_CALL = 1
_PIN_NONE, _PIN_OBJECT_NS, _PIN_GLOBAL_NS = 0, 1, 2
_MAP_IN_MAP = (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS)

_SECTION_TYPES: list[tuple[str, ProgType]] = [
    ("socket", ProgType.SOCKET_FILTER),
    ("xdp", ProgType.XDP),
    ("tc_cls", ProgType.SCHED_CLS),
    ("classifier", ProgType.SCHED_CLS),
    ("tc_act", ProgType.SCHED_ACT),
    ("action", ProgType.SCHED_ACT),
    ("kprobe", ProgType.KPROBE),
    ("kretprobe", ProgType.KPROBE),
    ("tracepoint", ProgType.TRACEPOINT),
    ("raw_tracepoint", ProgType.RAW_TRACEPOINT),
]


def section_prog_type(section: str) -> ProgType | None:
    """Return the program type of a legacy section name, or None if it holds no program."""
    for prefix, ptype in _SECTION_TYPES:
        if section == prefix or section.startswith(prefix + "/"):
            if prefix in ("kprobe", "kretprobe", "tracepoint", "raw_tracepoint") and \
                    section == prefix:
                return None  # these need an attach point after the slash
            return ptype
    return None


@dataclass
class LegacyMapDef:
    """One parsed map definition."""

    name: str
    offset: int
    type: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int
    inner_map_idx: int = 0
    pinning: int = 0


class LegacyObject:
    """What ``load_elf`` returns: live maps and programs by name, like a loaded
    ``bpf.Object``.  ``close()`` closes them all (pinned maps stay pinned)."""

    def __init__(self, path: str, license: str) -> None:
        self.path = path
        self.license = license
        self.maps: dict[str, Any] = {}
        self.programs: dict[str, Any] = {}
        self.map_defs: dict[str, LegacyMapDef] = {}
        self.skipped: list[str] = []
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def loaded(self) -> bool:
        return not self._closed

    def close(self) -> None:
        """Close every map and program fd this object holds (idempotent)."""
        for table in (self.programs, self.maps):
            for o in table.values():
                o.close()
        self._closed = True

    def __enter__(self) -> LegacyObject:
        if self._closed:
            raise ValueError("operation on closed object")
        return self

    def __exit__(self, *exc: object) -> Literal[False]:
        self.close()
        return False

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"maps={list(self.maps)} programs={list(self.programs)}"
        return f"<LegacyObject {os.path.basename(self.path)!r} {state}>"


def _bad(path: str, msg: str) -> ValueError:
    return ValueError(f"{path}: {msg}")


def _parse_map_defs(elf: Any, symbols: list[Any], path: str) -> dict[int, list[LegacyMapDef]]:
    """Map definitions by section index."""
    out: dict[int, list[LegacyMapDef]] = {}
    for idx, sec in enumerate(elf.iter_sections()):
        if not (sec.name == "maps" or sec.name.startswith("maps/")):
            continue
        data = sec.data()
        syms = sorted((s for s in symbols if s["st_shndx"] == idx and s.name
                       and s["st_info"]["type"] in ("STT_OBJECT", "STT_NOTYPE")),
                      key=lambda s: s["st_value"])
        if not syms:
            if data:
                raise _bad(path, f"section {sec.name!r} has map data but no map symbols")
            continue
        defs = []
        for s in syms:
            size = s["st_size"] or len(data) // len(syms)
            off = s["st_value"]
            if size not in (20, 28):
                raise _bad(path, f"map {s.name!r}: unsupported bpf_map_def size {size} "
                                 "(20 or 28 bytes expected)")
            if off + size > len(data):
                raise _bad(path, f"map {s.name!r}: definition at {off}+{size} is outside "
                                 f"section {sec.name!r} of {len(data)} bytes")
            fields = struct.unpack_from(f"<{size // 4}I", data, off)
            defs.append(LegacyMapDef(s.name, off, *fields))
        out[idx] = defs
    return out


def _create_maps(obj: LegacyObject, defs: list[LegacyMapDef], pin_path: str | None) -> None:
    from .maps import Map  # type: ignore[attr-defined]

    by_index = {i: d for i, d in enumerate(defs)}

    def create(d: LegacyMapDef, depth: int = 0) -> Any:
        if d.name in obj.maps:
            return obj.maps[d.name]
        if depth > len(defs):
            raise _bad(obj.path, f"map {d.name!r}: inner_map_idx loop")
        inner = None
        if d.type in _MAP_IN_MAP:
            tmpl = by_index.get(d.inner_map_idx)
            if tmpl is None or tmpl is d:
                raise _bad(obj.path, f"map {d.name!r}: inner_map_idx {d.inner_map_idx} names no "
                                     "other map definition")
            inner = create(tmpl, depth + 1)
        if d.pinning not in (_PIN_NONE, _PIN_GLOBAL_NS):
            raise _bad(obj.path, f"map {d.name!r}: pinning {d.pinning} is not supported "
                                 "(0: none, 2: global namespace)")
        m = None
        pinned = None
        if d.pinning == _PIN_GLOBAL_NS:
            if pin_path is None:
                raise ValueError(f"{obj.path}: map {d.name!r} is pinned (pinning 2) but no "
                                 "pin_path was given")
            pinned = os.path.join(pin_path, d.name)
            if os.path.exists(pinned):
                m = Map.from_pin(pinned)  # type: ignore[attr-defined]
                want = (d.type, d.key_size, d.value_size, d.max_entries)
                have = (int(m.type), m.key_size, m.value_size, m.max_entries)
                if want != have:
                    m.close()
                    raise ValueError(f"{obj.path}: map {d.name!r}: the map pinned at {pinned} "
                                     f"has (type, key, value, max_entries) {have}, the object "
                                     f"declares {want}")
        if m is None:
            m = Map.create(d.type, d.key_size, d.value_size, d.max_entries,  # type: ignore
                           flags=d.flags, name=_kernel_name(d.name), inner_map=inner)
            if pinned is not None:
                try:
                    m.pin(pinned)
                except BaseException:
                    m.close()
                    raise
        obj.maps[d.name] = m
        obj.map_defs[d.name] = d
        return m

    for d in defs:
        create(d)


def _kernel_name(name: str) -> str:
    """The kernel keeps 15 characters of [A-Za-z0-9_.]."""
    return "".join(c if c.isalnum() or c in "_." else "_" for c in name)[:15]


def _relocations(elf: Any, sec_index: int) -> list[Any]:
    from elftools.elf.relocation import RelocationSection

    out: list[Any] = []
    for sec in elf.iter_sections():
        if isinstance(sec, RelocationSection) and sec["sh_info"] == sec_index:
            out.extend(sec.iter_relocations())
    return out


class _Linker:
    """Applies map and call relocations to one program (plus an appended .text)."""

    def __init__(self, obj: LegacyObject, elf: Any, symbols: list[Any],
                 map_defs: dict[int, list[LegacyMapDef]], text_index: int | None) -> None:
        self.obj = obj
        self.elf = elf
        self.symbols = symbols
        self.map_defs = map_defs
        self.text_index = text_index
        self.text = bytes(elf.get_section(text_index).data()) if text_index is not None else b""
        self.text_relocs = _relocations(elf, text_index) if text_index is not None else []

    def _map_fd(self, sym: Any, insn: bytearray, at: int) -> int:
        imm = struct.unpack_from("<i", insn, at + 4)[0]
        off = sym["st_value"] + (imm if sym["st_info"]["type"] == "STT_SECTION" else 0)
        for d in self.map_defs[sym["st_shndx"]]:
            if d.offset == off:
                return int(self.obj.maps[d.name].fileno())
        raise _bad(self.obj.path, f"relocation to offset {off} of a maps section names no map")

    def _apply(self, code: bytearray, base: int, relocs: list[Any], lo: int, hi: int,
               text_base: int | None, what: str) -> bool:
        """Patch code[base + (r_offset - lo) / 8] for relocations in [lo, hi); return True if
        a call into .text was found.  text_base: where .text starts in code (None: not yet
        known, only recorded)."""
        calls_text = False
        for r in relocs:
            off = r["r_offset"]
            if not lo <= off < hi:
                continue
            if (off - lo) % 8:
                raise _bad(self.obj.path, f"{what}: misaligned relocation at {off}")
            i = base + (off - lo) // 8
            at = i * 8
            if at + 8 > len(code):
                raise _bad(self.obj.path, f"{what}: relocation at {off} is outside the code")
            sym = self.symbols[r["r_info_sym"]]
            opcode = code[at]
            if sym["st_shndx"] in self.map_defs:
                if opcode != _BPF_LD_IMM64 or at + 16 > len(code):
                    raise _bad(self.obj.path, f"{what}: map relocation at {off} is not on an "
                                              "ld_imm64 instruction")
                fd = self._map_fd(sym, code, at)
                code[at + 1] = (code[at + 1] & 0x0F) | (_BPF_PSEUDO_MAP_FD << 4)
                struct.pack_into("<i", code, at + 4, fd)
                struct.pack_into("<i", code, at + 12, 0)
            elif sym["st_shndx"] == self.text_index and opcode == _BPF_CALL and \
                    (code[at + 1] >> 4) == _BPF_PSEUDO_CALL:
                calls_text = True
                if text_base is None:
                    continue
                imm = struct.unpack_from("<i", code, at + 4)[0]
                target = sym["st_value"] // 8 + imm + 1  # index inside .text
                if not 0 <= target < len(self.text) // 8:
                    raise _bad(self.obj.path, f"{what}: call at {off} targets instruction "
                                              f"{target} outside .text")
                struct.pack_into("<i", code, at + 4, text_base + target - (i + 1))
            else:
                name = sym.name or self.elf.get_section(sym["st_shndx"]).name \
                    if isinstance(sym["st_shndx"], int) else sym.name
                raise _bad(self.obj.path, f"{what}: unsupported relocation to {name!r} (the "
                                          "legacy loader handles maps and .text calls only)")
        return calls_text

    def link(self, section: Any, sec_index: int, lo: int, hi: int, name: str) -> bytes:
        code = bytearray(section.data()[lo:hi])
        relocs = _relocations(self.elf, sec_index)
        if not self._apply(code, 0, relocs, lo, hi, None, name):  # patches the maps
            return bytes(code)
        text_base = len(code) // 8
        code += self.text
        self._apply(code, 0, relocs, lo, hi, text_base, name)
        self._apply(code, text_base, self.text_relocs, 0, len(self.text), text_base,
                    f"{name} (.text)")
        return bytes(code)


def load_elf(path: str | os.PathLike[str], pin_path: str | os.PathLike[str] | None = None
             ) -> LegacyObject:
    """Load an object whose maps are legacy ``SEC("maps")`` definitions; return its maps and
    programs by name.

    pin_path: directory on bpffs for maps with ``pinning = 2``.  Raises ValueError for files
    that are not BPF ELF objects or use what this loader does not support, BPFError when the
    kernel refuses a map, VerifierError when it refuses a program.  On failure everything
    created so far is closed (pins made here stay).
    """
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    spath = os.fspath(path)
    ppath = os.fspath(pin_path) if pin_path is not None else None
    with open(spath, "rb") as f:
        data = f.read()
    check_elf_header(data[:64], repr(spath))
    try:
        elf = ELFFile(io.BytesIO(data))
        from elftools.elf.sections import SymbolTableSection

        symtab = elf.get_section_by_name(".symtab")
        if not isinstance(symtab, SymbolTableSection):
            raise _bad(spath, "no symbol table (.symtab): stripped objects cannot be loaded")
        symbols = list(symtab.iter_symbols())
        lic = elf.get_section_by_name("license")
        license = bytes(lic.data()).split(b"\0", 1)[0].decode("ascii", "replace") if lic else ""
        map_defs = _parse_map_defs(elf, symbols, spath)
        text_index = None
        sections = list(elf.iter_sections())
        for idx, sec in enumerate(sections):
            if sec.name == ".text" and sec["sh_size"]:
                text_index = idx
    except ELFError as e:
        raise ValueError(f"{spath}: corrupt ELF file: {e}") from None
    except (struct.error, UnicodeDecodeError, IndexError, KeyError, AssertionError) as e:
        raise ValueError(f"{spath}: corrupt ELF file ({type(e).__name__}: {e})") from None

    from .programs import Program  # type: ignore[attr-defined]

    obj = LegacyObject(spath, license)
    try:
        for defs in map_defs.values():
            _create_maps(obj, defs, ppath)
        linker = _Linker(obj, elf, symbols, map_defs, text_index)
        for idx, sec in enumerate(sections):
            if sec["sh_type"] != "SHT_PROGBITS" or not sec["sh_flags"] & 0x4:  # SHF_EXECINSTR
                continue
            if sec.name == ".text":
                continue
            ptype = section_prog_type(sec.name)
            if ptype is None:
                obj.skipped.append(sec.name)
                continue
            funcs = sorted((s for s in symbols if s["st_shndx"] == idx and s.name
                            and s["st_info"]["type"] == "STT_FUNC"
                            and s["st_info"]["bind"] == "STB_GLOBAL"),
                           key=lambda s: s["st_value"])
            if not funcs:
                funcs_spans = [(sec.name.replace("/", "_"), 0, sec["sh_size"])]
            else:
                funcs_spans = [(s.name, s["st_value"], s["st_value"] + (s["st_size"] or
                               sec["sh_size"] - s["st_value"])) for s in funcs]
            for name, lo, hi in funcs_spans:
                if hi > sec["sh_size"] or lo % 8 or (hi - lo) % 8 or hi <= lo:
                    raise _bad(spath, f"function {name!r} spans [{lo}, {hi}) of section "
                                      f"{sec.name!r} ({sec['sh_size']} bytes)")
                try:
                    insns = linker.link(sec, idx, lo, hi, name)
                except (ELFError, struct.error, IndexError, KeyError, AssertionError) as e:
                    raise _bad(spath, f"corrupt ELF file while linking {name!r} "
                                      f"({type(e).__name__}: {e})") from None
                prog = Program.load(ptype, insns, license=license,  # type: ignore[attr-defined]
                                    name=_kernel_name(name))
                prog.section = sec.name  # type: ignore[attr-defined]
                obj.programs[name] = prog
    except ELFError as e:
        obj.close()
        raise ValueError(f"{spath}: corrupt ELF file: {e}") from None
    except BaseException:
        obj.close()
        raise
    return obj

"""Read the committed test objects: program sections, BPF-to-BPF call linking, listings.

Shared by tests/unit/test_asm_objects.py and tests/kernel/test_program_asm.py.  Uses
pyelftools (a dependency of the package).
"""

from __future__ import annotations

import pathlib
import re
import struct

from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationSection

HERE = pathlib.Path(__file__).resolve().parent
OBJECTS = sorted(HERE.glob("*.bpf.o"))
R_BPF_64_32 = 10  # the relocation of a BPF-to-BPF call


def sections(path: pathlib.Path) -> dict[str, bytes]:
    """Executable sections of an object: name -> instruction bytes."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        return {s.name: s.data() for s in elf.iter_sections()
                if s["sh_flags"] & 0x4 and s["sh_size"] > 0}


def call_relocations(path: pathlib.Path, name: str) -> list[int]:
    """Instruction indexes in section *name* whose call needs linking against .text."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        out = []
        for s in elf.iter_sections():
            if isinstance(s, RelocationSection) and s.name == ".rel" + name:
                symtab = elf.get_section(s["sh_link"])
                for r in s.iter_relocations():
                    if r["r_info_type"] != R_BPF_64_32:
                        raise ValueError(f"unexpected relocation type {r['r_info_type']}")
                    sym = symtab.get_symbol(r["r_info_sym"])
                    if elf.get_section(sym["st_shndx"]).name != ".text":
                        raise ValueError("only calls into .text are linked here")
                    out.append(r["r_offset"] // 8)
        return out


def linked_program(path: pathlib.Path, name: str) -> bytes:
    """Section *name* followed by .text, with its calls into .text resolved (what libbpf does
    for BPF-to-BPF calls: the callee's index is section symbol value / 8 + imm + 1)."""
    secs = sections(path)
    main = bytearray(secs[name])
    relocs = call_relocations(path, name)
    if not relocs:
        return bytes(main)
    n = len(main) // 8
    for idx in relocs:
        code, regs, off, imm = struct.unpack_from("<BBhi", main, 8 * idx)
        callee = n + imm + 1  # the .text section symbol has value 0
        struct.pack_into("<BBhi", main, 8 * idx, code, regs, off, callee - (idx + 1))
    return bytes(main) + secs[".text"]


def listing(path: pathlib.Path, alu32: bool = False) -> dict[str, list[tuple[int, str]]]:
    """The committed llvm-objdump listing: section -> [(slot, text)]."""
    dump = path.with_suffix(".alu32.objdump" if alu32 else ".objdump")
    out: dict[str, list[tuple[int, str]]] = {}
    cur: list[tuple[int, str]] = []
    for ln in dump.read_text().splitlines():
        m = re.match(r"^Disassembly of section (\S+):$", ln)
        if m:
            cur = out.setdefault(m.group(1), [])
            continue
        m = re.match(r"^\s*(\d+):\t(.*)$", ln)
        if m:
            cur.append((int(m.group(1)), normalize(m.group(2))))
    return out


def normalize(text: str) -> str:
    """One instruction's text without objdump's target annotation and extra spaces."""
    if text.strip() == "<unknown>":
        return "<unknown>"  # an encoding this LLVM cannot decode
    text = re.sub(r"\s*<[^<>]*>$", "", text)
    return re.sub(r"\s+", " ", text).strip()

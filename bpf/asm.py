"""eBPF assembler and disassembler (in progress)."""

from __future__ import annotations

from typing import Any

__all__ = ["assemble", "assemble_insns"]


def assemble(text: str) -> bytes:
    raise NotImplementedError("bpf.asm.assemble")


def assemble_insns(items: list[Any]) -> bytes:
    raise NotImplementedError("bpf.asm.assemble_insns")

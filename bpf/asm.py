"""eBPF assembler and disassembler: instruction builders, a text assembler, a disassembler.

Three ways to write a program, all producing the bytes :meth:`bpf.Program.load` takes:

- **Builders** — one function per instruction, registers :data:`R0` … :data:`R10`, labels::

      from bpf import asm
      from bpf.asm import R0, R1
      code = asm.assemble_insns([
          asm.mov(R0, 0),
          asm.jeq(R1, 0, "out"),
          asm.mov(R0, 1),
          asm.label("out"),
          asm.exit(),
      ])

  A register operand is a :class:`Reg` (``R1``); a plain ``int`` is an immediate.  Jump
  targets are label names or relative offsets (in instructions, from the next one).

- **Text** — :func:`assemble` reads the syntax ``llvm-objdump -d`` prints (``r0 = 1``,
  ``if r1 > 4 goto +2``, ``r1 = *(u32 *)(r2 + 4)``, ``lock *(u64 *)(r1 + 0) += r2``,
  ``r1 = 0x1234 ll``, ``w0 = w1``, ``call 1``, ``exit``) and the one ``bpftool prog dump
  xlated`` prints (``0: (b7) r0 = 2``, ``goto pc+1``, ``call bpf_map_lookup_elem#1``,
  ``r1 = map[id:5]``), plus ``name:`` labels and ``goto name``.

- **Disassembly** — :func:`disassemble` writes the llvm-objdump syntax back, such that
  ``assemble(disassemble(code)) == code`` for every well-formed instruction (anything else
  comes out as ``.quad 0x…``, which assemble() reads back too).

Map references: :func:`ld_map_fd` and :func:`ld_map_value` embed a map's fd *number*; the
map must stay open until the program is loaded (the kernel then holds its own reference).

Callbacks (:func:`ld_func` for ``bpf_loop``, ``bpf_user_ringbuf_drain``, ...) need BTF
func_info at load time: ``bpf.Program.load(..., func_info="auto")``, or :func:`func_info` for
the BTF and records themselves; :func:`subprograms` lists where the functions start.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import struct
from typing import Any, Iterable, NamedTuple, Optional, Union

__all__ = [
    "Reg", "R0", "R1", "R2", "R3", "R4", "R5", "R6", "R7", "R8", "R9", "R10", "FP",
    "Insn", "Label", "label", "AsmError", "HELPERS", "helper_id", "helper_name",
    "assemble", "assemble_insns", "disassemble", "decode",
    # ALU
    "mov", "mov32", "add", "add32", "sub", "sub32", "mul", "mul32", "div", "div32",
    "sdiv", "sdiv32", "mod", "mod32", "smod", "smod32", "or_", "or32", "and_", "and32",
    "lsh", "lsh32", "rsh", "rsh32", "arsh", "arsh32", "xor", "xor32", "neg", "neg32",
    "movsx", "movsx32", "be", "le", "bswap", "addr_space_cast",
    # jumps and calls
    "ja", "gotol", "may_goto", "jeq", "jgt", "jge", "jset", "jne", "jsgt", "jsge", "jlt",
    "jle", "jslt", "jsle", "jeq32", "jgt32", "jge32", "jset32", "jne32", "jsgt32", "jsge32",
    "jlt32", "jle32", "jslt32", "jsle32", "call", "call_local", "call_kfunc", "callx", "exit",
    # memory
    "ldx", "ldxsx", "st", "stx", "ldxb", "ldxh", "ldxw", "ldxdw", "ldxsb", "ldxsh", "ldxsw",
    "stb", "sth", "stw", "stdw", "stxb", "stxh", "stxw", "stxdw", "ld_abs", "ld_ind",
    # atomics
    "atomic_add", "atomic_or", "atomic_and", "atomic_xor", "atomic_xchg", "atomic_cmpxchg",
    "load_acquire", "store_release",
    # 64-bit immediates
    "ld_imm64", "ld_map_fd", "ld_map_value", "ld_map_idx", "ld_map_idx_value", "ld_btf_id",
    "ld_func",
    # text snippets
    "count_text",
    # BTF func_info for programs with subprograms
    "subprograms", "func_info",
]

# ---- encoding constants (uapi linux/bpf_common.h, linux/bpf.h) ---------------------------------

LD, LDX, ST, STX, ALU, JMP, JMP32, ALU64 = range(8)
W, H, B, DW = 0x00, 0x08, 0x10, 0x18
IMM, ABS, IND, MEM, MEMSX, ATOMIC = 0x00, 0x20, 0x40, 0x60, 0x80, 0xC0
K, X = 0x00, 0x08

_ALU_OPS = {"add": 0x00, "sub": 0x10, "mul": 0x20, "div": 0x30, "or": 0x40, "and": 0x50,
            "lsh": 0x60, "rsh": 0x70, "neg": 0x80, "mod": 0x90, "xor": 0xA0, "mov": 0xB0,
            "arsh": 0xC0, "end": 0xD0}
_JMP_OPS = {"ja": 0x00, "jeq": 0x10, "jgt": 0x20, "jge": 0x30, "jset": 0x40, "jne": 0x50,
            "jsgt": 0x60, "jsge": 0x70, "call": 0x80, "exit": 0x90, "jlt": 0xA0, "jle": 0xB0,
            "jslt": 0xC0, "jsle": 0xD0, "jcond": 0xE0}
FETCH, XCHG, CMPXCHG, LOAD_ACQ, STORE_REL = 0x01, 0xE1, 0xF1, 0x100, 0x110

PSEUDO_MAP_FD, PSEUDO_MAP_VALUE, PSEUDO_BTF_ID, PSEUDO_FUNC = 1, 2, 3, 4
PSEUDO_MAP_IDX, PSEUDO_MAP_IDX_VALUE = 5, 6
PSEUDO_CALL, PSEUDO_KFUNC_CALL = 1, 2

_SIZES = {1: B, 2: H, 4: W, 8: DW}
_SIZE_BYTES = {B: 1, H: 2, W: 4, DW: 8}
_SIZE_NAMES = {"b": 1, "h": 2, "w": 4, "dw": 8, "u8": 1, "u16": 2, "u32": 4, "u64": 8}


class AsmError(ValueError):
    """Bad assembler input: an unknown instruction, operand out of range, undefined label."""


class Reg(enum.IntEnum):
    """A BPF register.  ``R10`` (``FP``) is the read-only frame pointer."""

    R0 = 0
    R1 = 1
    R2 = 2
    R3 = 3
    R4 = 4
    R5 = 5
    R6 = 6
    R7 = 7
    R8 = 8
    R9 = 9
    R10 = 10

    def __repr__(self) -> str:
        return f"r{int(self)}"


R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = tuple(Reg)
FP = R10

# ---- helper ids: the kernel's __BPF_FUNC_MAPPER (uapi linux/bpf.h), id = position ---------------

_HELPER_NAMES = """
unspec map_lookup_elem map_update_elem map_delete_elem probe_read ktime_get_ns trace_printk
get_prandom_u32 get_smp_processor_id skb_store_bytes l3_csum_replace l4_csum_replace
tail_call clone_redirect get_current_pid_tgid get_current_uid_gid get_current_comm
get_cgroup_classid skb_vlan_push skb_vlan_pop skb_get_tunnel_key skb_set_tunnel_key
perf_event_read redirect get_route_realm perf_event_output skb_load_bytes get_stackid
csum_diff skb_get_tunnel_opt skb_set_tunnel_opt skb_change_proto skb_change_type
skb_under_cgroup get_hash_recalc get_current_task probe_write_user current_task_under_cgroup
skb_change_tail skb_pull_data csum_update set_hash_invalid get_numa_node_id skb_change_head
xdp_adjust_head probe_read_str get_socket_cookie get_socket_uid set_hash setsockopt
skb_adjust_room redirect_map sk_redirect_map sock_map_update xdp_adjust_meta
perf_event_read_value perf_prog_read_value getsockopt override_return sock_ops_cb_flags_set
msg_redirect_map msg_apply_bytes msg_cork_bytes msg_pull_data bind xdp_adjust_tail
skb_get_xfrm_state get_stack skb_load_bytes_relative fib_lookup sock_hash_update
msg_redirect_hash sk_redirect_hash lwt_push_encap lwt_seg6_store_bytes lwt_seg6_adjust_srh
lwt_seg6_action rc_repeat rc_keydown skb_cgroup_id get_current_cgroup_id get_local_storage
sk_select_reuseport skb_ancestor_cgroup_id sk_lookup_tcp sk_lookup_udp sk_release
map_push_elem map_pop_elem map_peek_elem msg_push_data msg_pop_data rc_pointer_rel spin_lock
spin_unlock sk_fullsock tcp_sock skb_ecn_set_ce get_listener_sock skc_lookup_tcp
tcp_check_syncookie sysctl_get_name sysctl_get_current_value sysctl_get_new_value
sysctl_set_new_value strtol strtoul sk_storage_get sk_storage_delete send_signal
tcp_gen_syncookie skb_output probe_read_user probe_read_kernel probe_read_user_str
probe_read_kernel_str tcp_send_ack send_signal_thread jiffies64 read_branch_records
get_ns_current_pid_tgid xdp_output get_netns_cookie get_current_ancestor_cgroup_id sk_assign
ktime_get_boot_ns seq_printf seq_write sk_cgroup_id sk_ancestor_cgroup_id ringbuf_output
ringbuf_reserve ringbuf_submit ringbuf_discard ringbuf_query csum_level skc_to_tcp6_sock
skc_to_tcp_sock skc_to_tcp_timewait_sock skc_to_tcp_request_sock skc_to_udp6_sock
get_task_stack load_hdr_opt store_hdr_opt reserve_hdr_opt inode_storage_get
inode_storage_delete d_path copy_from_user snprintf_btf seq_printf_btf skb_cgroup_classid
redirect_neigh per_cpu_ptr this_cpu_ptr redirect_peer task_storage_get task_storage_delete
get_current_task_btf bprm_opts_set ktime_get_coarse_ns ima_inode_hash sock_from_file
check_mtu for_each_map_elem snprintf sys_bpf btf_find_by_name_kind sys_close timer_init
timer_set_callback timer_start timer_cancel get_func_ip get_attach_cookie task_pt_regs
get_branch_snapshot trace_vprintk skc_to_unix_sock kallsyms_lookup_name find_vma loop
strncmp get_func_arg get_func_ret get_func_arg_cnt get_retval set_retval xdp_get_buff_len
xdp_load_bytes xdp_store_bytes copy_from_user_task skb_set_tstamp ima_file_hash kptr_xchg
map_lookup_percpu_elem skc_to_mptcp_sock dynptr_from_mem ringbuf_reserve_dynptr
ringbuf_submit_dynptr ringbuf_discard_dynptr dynptr_read dynptr_write dynptr_data
tcp_raw_gen_syncookie_ipv4 tcp_raw_gen_syncookie_ipv6 tcp_raw_check_syncookie_ipv4
tcp_raw_check_syncookie_ipv6 ktime_get_tai_ns user_ringbuf_drain cgrp_storage_get
cgrp_storage_delete
""".split()

#: Helper function ids by name, as in ``enum bpf_func_id`` without the ``BPF_FUNC_`` prefix.
HELPERS: dict[str, int] = {name: i for i, name in enumerate(_HELPER_NAMES) if i}


def helper_id(name: Union[str, int]) -> int:
    """Return the id of helper *name* (``"map_lookup_elem"``, ``"bpf_map_lookup_elem"`` or
    ``"BPF_FUNC_map_lookup_elem"``); ints pass through.  Raises AsmError if unknown."""
    if isinstance(name, int):
        return name
    n = name
    for prefix in ("BPF_FUNC_", "bpf_"):
        if n.startswith(prefix):
            n = n[len(prefix):]
    try:
        return HELPERS[n]
    except KeyError:
        raise AsmError(f"unknown BPF helper {name!r}") from None


def helper_name(helper: int) -> Optional[str]:
    """Return ``"bpf_<name>"`` for a helper id, or None if this table does not know it."""
    if 0 < helper < len(_HELPER_NAMES):
        return "bpf_" + _HELPER_NAMES[helper]
    return None


# ---- instructions ------------------------------------------------------------------------------

def _s32(v: int, what: str) -> int:
    """Check a 32-bit immediate: signed, or unsigned up to 2**32-1 (wrapped to signed)."""
    if not isinstance(v, int) or isinstance(v, bool):
        raise TypeError(f"{what} must be an int, not {type(v).__name__}")
    if -(1 << 31) <= v < (1 << 31):
        return v
    if (1 << 31) <= v < (1 << 32):
        return v - (1 << 32)
    raise AsmError(f"{what} {v} does not fit in 32 bits")


def _s16(v: int, what: str) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise TypeError(f"{what} must be an int, not {type(v).__name__}")
    if -(1 << 15) <= v < (1 << 15):
        return v
    raise AsmError(f"{what} {v} does not fit in 16 bits (-32768..32767)")


def _reg(r: Any, what: str = "register") -> int:
    if isinstance(r, Reg):
        return int(r)
    if isinstance(r, str):
        m = re.fullmatch(r"[rw](\d+)", r)
        if m and int(m.group(1)) <= 10:
            return int(m.group(1))
    raise TypeError(f"{what} must be a register (bpf.asm.R0 ... R10), got {r!r}")


def _size(size: Union[int, str]) -> int:
    if isinstance(size, str):
        if size.lower() not in _SIZE_NAMES:
            raise AsmError(f"unknown size {size!r} (b, h, w, dw)")
        size = _SIZE_NAMES[size.lower()]
    if size not in _SIZES:
        raise AsmError(f"access size must be 1, 2, 4 or 8 bytes, got {size!r}")
    return _SIZES[size]


class Insn(NamedTuple):
    """One instruction: ``code``, ``dst``, ``src``, ``off``, ``imm`` as in ``struct bpf_insn``.

    ``ld_imm64`` (code 0x18) spans two slots; ``imm`` holds the first slot's immediate and
    ``imm2`` the second's.  ``target`` names a label still to be resolved into ``off`` (jumps)
    or ``imm`` (calls, ``ld_func``) by :func:`assemble_insns`.
    """

    code: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0
    imm2: int = 0
    target: Optional[str] = None

    @property
    def wide(self) -> bool:
        """True for the two-slot ``ld_imm64``."""
        return self.code == (LD | IMM | DW)

    @property
    def slots(self) -> int:
        """Number of 8-byte slots the instruction takes (1, or 2 for ``ld_imm64``)."""
        return 2 if self.wide else 1

    def encode(self) -> bytes:
        """Return the instruction's bytes (little-endian ``struct bpf_insn``)."""
        if self.target is not None:
            raise AsmError(f"unresolved label {self.target!r}: use assemble_insns()")
        b = struct.pack("<BBhi", self.code, (self.dst & 15) | ((self.src & 15) << 4), self.off,
                        self.imm)
        if self.wide:
            b += struct.pack("<BBhi", 0, 0, 0, self.imm2)
        return b

    def __bytes__(self) -> bytes:
        return self.encode()

    def __str__(self) -> str:
        if self.target is not None:
            return _format_target(self)
        return _format(self, None) or _quad(self)


def _format_target(i: Insn) -> str:
    """Text of an instruction whose target is still a label name."""
    text = _format(i._replace(target=None), None)
    return re.sub(r"(goto|gotol|may_goto|call) (?:pc)?[+-]?\d+|subprog\[[+-]\d+\]",
                  lambda m: (f"{m.group(1)} {i.target}" if m.group(1) else f"subprog[{i.target}]"),
                  text, count=1)


@dataclasses.dataclass(frozen=True)
class Label:
    """A position in a builder list that jumps and calls can name."""

    name: str

    def __str__(self) -> str:
        return f"{self.name}:"


def label(name: str) -> Label:
    """Mark the position of the next instruction as *name*."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_.$][\w.$]*", name):
        raise AsmError(f"bad label name {name!r}")
    return Label(name)


# ---- ALU ------------------------------------------------------------------------------------

def _alu(cls: int, op: str, dst: Any, src: Any, off: int = 0) -> Insn:
    d = _reg(dst, "dst")
    if isinstance(src, (Reg, str)):
        return Insn(cls | _ALU_OPS[op] | X, d, _reg(src, "src"), off, 0)
    return Insn(cls | _ALU_OPS[op] | K, d, 0, off, _s32(src, "immediate"))


def _named(fn: Any, name: str, doc: str) -> Any:
    """Name and document a builder made by one of the factories below (_alu_pair, ...)."""
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc
    return fn


def _alu_pair(op: str, signed: bool = False) -> tuple[Any, Any]:
    off = 1 if signed else 0
    name = ("s" if signed else "") + op
    return (_named(lambda dst, src: _alu(ALU64, op, dst, src, off), name,
                   f"``dst {name} src`` on 64 bits (src: a register or a 32-bit immediate)."),
            _named(lambda dst, src: _alu(ALU, op, dst, src, off), name + "32",
                   f"``dst {name} src`` on the low 32 bits, zero-extending the result."))


mov, mov32 = _alu_pair("mov")
add, add32 = _alu_pair("add")
sub, sub32 = _alu_pair("sub")
mul, mul32 = _alu_pair("mul")
div, div32 = _alu_pair("div")
sdiv, sdiv32 = _alu_pair("div", signed=True)
mod, mod32 = _alu_pair("mod")
smod, smod32 = _alu_pair("mod", signed=True)
or_, or32 = _alu_pair("or")
and_, and32 = _alu_pair("and")
lsh, lsh32 = _alu_pair("lsh")
rsh, rsh32 = _alu_pair("rsh")
arsh, arsh32 = _alu_pair("arsh")
xor, xor32 = _alu_pair("xor")


def neg(dst: Any) -> Insn:
    """``dst = -dst`` (64 bits)."""
    return Insn(ALU64 | _ALU_OPS["neg"], _reg(dst))


def neg32(dst: Any) -> Insn:
    """``dst = -dst`` (32 bits)."""
    return Insn(ALU | _ALU_OPS["neg"], _reg(dst))


def movsx(dst: Any, src: Any, bits: int) -> Insn:
    """``dst = (s8|s16|s32)src``: sign-extending move (cpu v4)."""
    if bits not in (8, 16, 32):
        raise AsmError(f"movsx sign-extends from 8, 16 or 32 bits, not {bits}")
    return Insn(ALU64 | _ALU_OPS["mov"] | X, _reg(dst), _reg(src), bits)


def movsx32(dst: Any, src: Any, bits: int) -> Insn:
    """``w_dst = (s8|s16)w_src`` (cpu v4)."""
    if bits not in (8, 16):
        raise AsmError(f"movsx32 sign-extends from 8 or 16 bits, not {bits}")
    return Insn(ALU | _ALU_OPS["mov"] | X, _reg(dst), _reg(src), bits)


def _end_bits(bits: int) -> int:
    if bits not in (16, 32, 64):
        raise AsmError(f"byte swaps are 16, 32 or 64 bits wide, not {bits}")
    return bits


def be(dst: Any, bits: int) -> Insn:
    """``dst = be<bits> dst``: convert between host and big-endian order."""
    return Insn(ALU | _ALU_OPS["end"] | X, _reg(dst), 0, 0, _end_bits(bits))


def le(dst: Any, bits: int) -> Insn:
    """``dst = le<bits> dst``: convert between host and little-endian order."""
    return Insn(ALU | _ALU_OPS["end"] | K, _reg(dst), 0, 0, _end_bits(bits))


def bswap(dst: Any, bits: int) -> Insn:
    """``dst = bswap<bits> dst``: unconditional byte swap (cpu v4)."""
    return Insn(ALU64 | _ALU_OPS["end"] | K, _reg(dst), 0, 0, _end_bits(bits))


def addr_space_cast(dst: Any, src: Any, dst_as: int, src_as: int) -> Insn:
    """``dst = addr_space_cast(src, dst_as, src_as)`` (BPF arena pointers)."""
    if not (0 <= dst_as < 1 << 16 and 0 <= src_as < 1 << 16):
        raise AsmError("address spaces must be in 0..65535")
    return Insn(ALU64 | _ALU_OPS["mov"] | X, _reg(dst), _reg(src), 1, (dst_as << 16) | src_as)


# ---- jumps and calls -------------------------------------------------------------------------

_Target = Union[int, str]


def _tgt(target: _Target) -> tuple[int, Optional[str]]:
    if isinstance(target, str):
        return 0, target
    if isinstance(target, Label):
        return 0, target.name
    if isinstance(target, int) and not isinstance(target, bool):
        return target, None
    raise TypeError(f"jump target must be a label name or an int offset, not {target!r}")


def ja(target: _Target) -> Insn:
    """``goto target`` (16-bit offset)."""
    off, t = _tgt(target)
    return Insn(JMP | _JMP_OPS["ja"], 0, 0, _s16(off, "jump offset"), 0, target=t)


def gotol(target: _Target) -> Insn:
    """``gotol target``: unconditional jump with a 32-bit offset (cpu v4)."""
    off, t = _tgt(target)
    return Insn(JMP32 | _JMP_OPS["ja"], 0, 0, 0, _s32(off, "jump offset"), target=t)


def may_goto(target: _Target) -> Insn:
    """``may_goto target``: a jump the verifier may take to bound loops."""
    off, t = _tgt(target)
    return Insn(JMP | _JMP_OPS["jcond"], 0, 0, _s16(off, "jump offset"), 0, target=t)


def _jmp(cls: int, op: str, dst: Any, src: Any, target: _Target) -> Insn:
    off, t = _tgt(target)
    off = _s16(off, "jump offset")
    d = _reg(dst, "dst")
    if isinstance(src, (Reg, str)):
        return Insn(cls | _JMP_OPS[op] | X, d, _reg(src, "src"), off, 0, target=t)
    return Insn(cls | _JMP_OPS[op] | K, d, 0, off, _s32(src, "immediate"), target=t)


def _jmp_pair(op: str) -> tuple[Any, Any]:
    return (_named(lambda dst, src, target: _jmp(JMP, op, dst, src, target), op,
                   f"``if dst <{op}> src goto target`` comparing 64 bits."),
            _named(lambda dst, src, target: _jmp(JMP32, op, dst, src, target), op + "32",
                   f"``if w_dst <{op}> w_src goto target`` comparing the low 32 bits."))


jeq, jeq32 = _jmp_pair("jeq")
jgt, jgt32 = _jmp_pair("jgt")
jge, jge32 = _jmp_pair("jge")
jset, jset32 = _jmp_pair("jset")
jne, jne32 = _jmp_pair("jne")
jsgt, jsgt32 = _jmp_pair("jsgt")
jsge, jsge32 = _jmp_pair("jsge")
jlt, jlt32 = _jmp_pair("jlt")
jle, jle32 = _jmp_pair("jle")
jslt, jslt32 = _jmp_pair("jslt")
jsle, jsle32 = _jmp_pair("jsle")


def call(helper: Union[int, str]) -> Insn:
    """``call helper``: a helper by id or name (``"map_lookup_elem"``, ``"bpf_ktime_get_ns"``)."""
    return Insn(JMP | _JMP_OPS["call"], 0, 0, 0, _s32(helper_id(helper), "helper id"))


def call_local(target: _Target) -> Insn:
    """BPF-to-BPF call of the function at *target* (a label, or a relative offset)."""
    off, t = _tgt(target)
    return Insn(JMP | _JMP_OPS["call"], 0, PSEUDO_CALL, 0, _s32(off, "call offset"), target=t)


def call_kfunc(btf_id: int, btf_fd_index: int = 0) -> Insn:
    """Call the kernel function with BTF id *btf_id* (in vmlinux, or in the module BTF at
    *btf_fd_index* of the load's fd_array)."""
    return Insn(JMP | _JMP_OPS["call"], 0, PSEUDO_KFUNC_CALL, _s16(btf_fd_index, "index"),
                _s32(btf_id, "BTF id"))


def callx(reg: Any) -> Insn:
    """``callx reg``: indirect call through a register."""
    return Insn(JMP | _JMP_OPS["call"] | X, _reg(reg))


def exit() -> Insn:
    """``exit``: return r0."""
    return Insn(JMP | _JMP_OPS["exit"])


# ---- memory ---------------------------------------------------------------------------------

def ldx(size: Union[int, str], dst: Any, src: Any, off: int = 0) -> Insn:
    """``dst = *(u<size> *)(src + off)``, zero-extended (size 1, 2, 4, 8 or b/h/w/dw)."""
    return Insn(LDX | MEM | _size(size), _reg(dst), _reg(src), _s16(off, "offset"))


def ldxsx(size: Union[int, str], dst: Any, src: Any, off: int = 0) -> Insn:
    """``dst = *(s<size> *)(src + off)``, sign-extended (sizes 1, 2, 4; cpu v4)."""
    s = _size(size)
    if s == DW:
        raise AsmError("sign-extending loads are 1, 2 or 4 bytes wide")
    return Insn(LDX | MEMSX | s, _reg(dst), _reg(src), _s16(off, "offset"))


def st(size: Union[int, str], dst: Any, off: int, imm: int) -> Insn:
    """``*(u<size> *)(dst + off) = imm``."""
    return Insn(ST | MEM | _size(size), _reg(dst), 0, _s16(off, "offset"), _s32(imm, "value"))


def stx(size: Union[int, str], dst: Any, off: int, src: Any) -> Insn:
    """``*(u<size> *)(dst + off) = src``."""
    return Insn(STX | MEM | _size(size), _reg(dst), _reg(src), _s16(off, "offset"))


def _sized(fn: Any, size: int, name: str, doc: str) -> Any:
    return _named(lambda *args: fn(size, *args), name, doc)


ldxb = _sized(ldx, 1, "ldxb", "``dst = *(u8 *)(src + off)``")
ldxh = _sized(ldx, 2, "ldxh", "``dst = *(u16 *)(src + off)``")
ldxw = _sized(ldx, 4, "ldxw", "``dst = *(u32 *)(src + off)``")
ldxdw = _sized(ldx, 8, "ldxdw", "``dst = *(u64 *)(src + off)``")
ldxsb = _sized(ldxsx, 1, "ldxsb", "``dst = *(s8 *)(src + off)``")
ldxsh = _sized(ldxsx, 2, "ldxsh", "``dst = *(s16 *)(src + off)``")
ldxsw = _sized(ldxsx, 4, "ldxsw", "``dst = *(s32 *)(src + off)``")
stb = _sized(st, 1, "stb", "``*(u8 *)(dst + off) = imm``")
sth = _sized(st, 2, "sth", "``*(u16 *)(dst + off) = imm``")
stw = _sized(st, 4, "stw", "``*(u32 *)(dst + off) = imm``")
stdw = _sized(st, 8, "stdw", "``*(u64 *)(dst + off) = imm``")
stxb = _sized(stx, 1, "stxb", "``*(u8 *)(dst + off) = src``")
stxh = _sized(stx, 2, "stxh", "``*(u16 *)(dst + off) = src``")
stxw = _sized(stx, 4, "stxw", "``*(u32 *)(dst + off) = src``")
stxdw = _sized(stx, 8, "stxdw", "``*(u64 *)(dst + off) = src``")


def ld_abs(size: Union[int, str], imm: int) -> Insn:
    """``r0 = *(u<size> *)skb[imm]``: legacy packet load (socket filters), network order."""
    return Insn(LD | ABS | _size(size), 0, 0, 0, _s32(imm, "offset"))


def ld_ind(size: Union[int, str], src: Any, imm: int = 0) -> Insn:
    """``r0 = *(u<size> *)skb[src + imm]``: legacy indirect packet load."""
    return Insn(LD | IND | _size(size), 0, _reg(src), 0, _s32(imm, "offset"))


# ---- atomics --------------------------------------------------------------------------------

def _atomic(size: Union[int, str], dst: Any, off: int, src: Any, op: int) -> Insn:
    s = _size(size)
    if s not in (W, DW):
        raise AsmError("atomic read-modify-write operations are 4 or 8 bytes wide")
    return Insn(STX | ATOMIC | s, _reg(dst), _reg(src), _s16(off, "offset"), op)


def atomic_add(size: Union[int, str], dst: Any, off: int, src: Any, fetch: bool = False) -> Insn:
    """``lock *(u<size> *)(dst + off) += src``; with *fetch*, src receives the old value."""
    return _atomic(size, dst, off, src, _ALU_OPS["add"] | (FETCH if fetch else 0))


def atomic_or(size: Union[int, str], dst: Any, off: int, src: Any, fetch: bool = False) -> Insn:
    """``lock *(u<size> *)(dst + off) |= src`` (optionally fetching the old value)."""
    return _atomic(size, dst, off, src, _ALU_OPS["or"] | (FETCH if fetch else 0))


def atomic_and(size: Union[int, str], dst: Any, off: int, src: Any, fetch: bool = False) -> Insn:
    """``lock *(u<size> *)(dst + off) &= src`` (optionally fetching the old value)."""
    return _atomic(size, dst, off, src, _ALU_OPS["and"] | (FETCH if fetch else 0))


def atomic_xor(size: Union[int, str], dst: Any, off: int, src: Any, fetch: bool = False) -> Insn:
    """``lock *(u<size> *)(dst + off) ^= src`` (optionally fetching the old value)."""
    return _atomic(size, dst, off, src, _ALU_OPS["xor"] | (FETCH if fetch else 0))


def atomic_xchg(size: Union[int, str], dst: Any, off: int, src: Any) -> Insn:
    """``src = xchg(dst + off, src)``."""
    return _atomic(size, dst, off, src, XCHG)


def atomic_cmpxchg(size: Union[int, str], dst: Any, off: int, src: Any) -> Insn:
    """``r0 = cmpxchg(dst + off, r0, src)``: store src if the old value equals r0."""
    return _atomic(size, dst, off, src, CMPXCHG)


def load_acquire(size: Union[int, str], dst: Any, src: Any, off: int = 0) -> Insn:
    """``dst = load_acquire((u<size> *)(src + off))``."""
    return Insn(STX | ATOMIC | _size(size), _reg(dst), _reg(src), _s16(off, "offset"), LOAD_ACQ)


def store_release(size: Union[int, str], dst: Any, off: int, src: Any) -> Insn:
    """``store_release((u<size> *)(dst + off), src)``."""
    return Insn(STX | ATOMIC | _size(size), _reg(dst), _reg(src), _s16(off, "offset"),
                STORE_REL)


# ---- 64-bit immediates ----------------------------------------------------------------------

def _fd(m: Any) -> int:
    if isinstance(m, int) and not isinstance(m, bool):
        return m
    fileno = getattr(m, "fileno", None)
    if callable(fileno):
        return int(fileno())
    raise TypeError(f"map must be an fd or an object with fileno(), not {type(m).__name__}")


def ld_imm64(dst: Any, value: int, src: int = 0) -> Insn:
    """``dst = value ll``: load a 64-bit immediate (two slots).  *src* selects a pseudo
    source (``BPF_PSEUDO_*``) for the other ``ld_*`` forms."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"value must be an int, not {type(value).__name__}")
    if not -(1 << 63) <= value < (1 << 64):
        raise AsmError(f"{value} does not fit in 64 bits")
    v = value & ((1 << 64) - 1)
    lo, hi = v & 0xFFFFFFFF, v >> 32
    return Insn(LD | IMM | DW, _reg(dst), src, 0, _s32(lo, "low half"), _s32(hi, "high half"))


def ld_map_fd(dst: Any, map: Any) -> Insn:
    """``dst = map`` (BPF_PSEUDO_MAP_FD): a pointer to the map, given as an fd or a map
    object; the fd number is embedded, so keep the map open until the program is loaded."""
    return Insn(LD | IMM | DW, _reg(dst), PSEUDO_MAP_FD, 0, _s32(_fd(map), "fd"), 0)


def ld_map_value(dst: Any, map: Any, offset: int = 0) -> Insn:
    """``dst = &map_value[0] + offset`` (BPF_PSEUDO_MAP_VALUE) of an array map's first
    element, e.g. a global variable section; fd embedded as for :func:`ld_map_fd`."""
    return Insn(LD | IMM | DW, _reg(dst), PSEUDO_MAP_VALUE, 0, _s32(_fd(map), "fd"),
                _s32(offset, "offset"))


def ld_map_idx(dst: Any, index: int) -> Insn:
    """``dst = map`` by index into the load's ``fd_array`` (BPF_PSEUDO_MAP_IDX)."""
    return Insn(LD | IMM | DW, _reg(dst), PSEUDO_MAP_IDX, 0, _s32(index, "index"), 0)


def ld_map_idx_value(dst: Any, index: int, offset: int = 0) -> Insn:
    """``dst = &value + offset`` of the map at ``fd_array[index]`` (BPF_PSEUDO_MAP_IDX_VALUE)."""
    return Insn(LD | IMM | DW, _reg(dst), PSEUDO_MAP_IDX_VALUE, 0, _s32(index, "index"),
                _s32(offset, "offset"))


def ld_btf_id(dst: Any, btf_id: int, btf_obj_fd: int = 0) -> Insn:
    """``dst = &ksym`` for the kernel variable with BTF id *btf_id* (BPF_PSEUDO_BTF_ID)."""
    return Insn(LD | IMM | DW, _reg(dst), PSEUDO_BTF_ID, 0, _s32(btf_id, "BTF id"),
                _s32(btf_obj_fd, "fd"))


def ld_func(dst: Any, target: _Target) -> Insn:
    """``dst = &function`` at *target* (BPF_PSEUDO_FUNC), for callbacks such as bpf_loop."""
    off, t = _tgt(target)
    return Insn(LD | IMM | DW, _reg(dst), PSEUDO_FUNC, 0, _s32(off, "offset"), 0, target=t)


# ---- linking builder lists ------------------------------------------------------------------

def _flatten(items: Iterable[Any]) -> Iterable[Any]:
    for it in items:
        if isinstance(it, (Insn, Label)):
            yield it
        elif isinstance(it, (bytes, bytearray, memoryview)):
            yield from decode(it)
        elif isinstance(it, str):
            raise TypeError(f"a bare string {it!r} in an instruction list: use label(...) for "
                            "labels, or assemble() for text")
        elif isinstance(it, Iterable):
            yield from _flatten(it)
        else:
            raise TypeError(f"not an instruction: {it!r}")


def _resolve(items: Iterable[Any]) -> list[Insn]:
    flat = list(_flatten(items))
    labels: dict[str, int] = {}
    pc = 0
    for it in flat:
        if isinstance(it, Label):
            if it.name in labels:
                raise AsmError(f"label {it.name!r} defined twice")
            labels[it.name] = pc
        else:
            pc += it.slots
    out: list[Insn] = []
    pc = 0
    for it in flat:
        if isinstance(it, Label):
            continue
        if it.target is not None:
            if it.target not in labels:
                raise AsmError(f"undefined label {it.target!r}")
            rel = labels[it.target] - (pc + 1)
            cls, op = it.code & 7, it.code & 0xF0
            if it.wide or (cls == JMP and op == _JMP_OPS["call"]) or \
                    (cls == JMP32 and op == _JMP_OPS["ja"]):
                it = it._replace(imm=_s32(rel, f"offset to {it.target!r}"), target=None)
            else:
                it = it._replace(off=_s16(rel, f"jump to {it.target!r}"), target=None)
        out.append(it)
        pc += it.slots
    return out


def assemble_insns(items: Iterable[Any]) -> bytes:
    """Encode a list of instructions and labels (nested lists and raw bytes allowed) into
    the bytes :meth:`bpf.Program.load` takes.  Raises AsmError for undefined or duplicate
    labels and out-of-range offsets."""
    return b"".join(i.encode() for i in _resolve(items))


# ---- BTF func_info for BPF-to-BPF functions ---------------------------------------------------

def _code_and_labels(code: Any) -> tuple[bytes, dict[int, str]]:
    """Instruction bytes of *code* (bytes-like, assembler text or a builder list) and, for a
    builder list, the label names by instruction offset (the first label wins)."""
    if isinstance(code, str):
        return assemble(code), {}
    try:
        return bytes(memoryview(code).cast("B")), {}
    except TypeError:
        pass
    items = list(_flatten([code] if isinstance(code, Insn) else code))
    names: dict[int, str] = {}
    pc = 0
    for it in items:
        if isinstance(it, Label):
            names.setdefault(pc, it.name)
        else:
            pc += it.slots
    return assemble_insns(items), names


def subprograms(code: Any) -> list[int]:
    """Start offsets (in 8-byte instruction slots) of the functions in *code*: 0 for the main
    program, then every target of a BPF-to-BPF call (:func:`call_local`) or of a function
    pointer load (:func:`ld_func`, callbacks), sorted.  The kernel splits a program into
    subprograms at exactly these offsets, and wants one func_info record for each."""
    data, _ = _code_and_labels(code)
    n = len(data) // 8
    starts = {0}
    pc = 0
    for i in decode(data):
        if (i.code == JMP | _JMP_OPS["call"] and i.src == PSEUDO_CALL) or \
                (i.code == LD | IMM | DW and i.src == PSEUDO_FUNC and i.wide):
            t = pc + 1 + i.imm
            if not 0 <= t < n:
                raise AsmError(f"insn {pc}: function target {t} outside the program "
                               f"(0..{n - 1})")
            starts.add(t)
        pc += i.slots
    return sorted(starts)


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def func_info(code: Any, main: str = "main",
              names: Optional[dict[int, str]] = None) -> tuple[Any, list[tuple[int, int]]]:
    """Build the BTF and func_info that let the kernel load *code* with subprograms.

    The kernel accepts BPF-to-BPF calls and callbacks (``bpf_loop``,
    ``bpf_user_ringbuf_drain``, ``bpf_for_each_map_elem``, timers) only with BTF func_info:
    one ``FUNC`` type per function, at the offsets :func:`subprograms` finds.  This gives
    every function the same generic prototype, ``long f(unsigned long, ...)`` with five
    parameters; the main program is ``global``, the others ``static``, so the verifier checks
    each call with the registers the caller passes (callbacks with the helper's own rules)
    rather than with the prototype.  Global subprograms, which the verifier checks
    separately against their prototype, need a hand-built BTF instead.

    Function names come from *names* (offset -> name), else from the first label at each
    offset when *code* is a builder list, else ``sub_<offset>``; the main program is *main*.
    Names that are not C identifiers are replaced the same way.

    Returns ``(btf, records)``: a new :class:`bpf.BTF` (not loaded; the caller closes it) and
    the ``(insn_offset, func_type_id)`` pairs, ready for
    ``bpf.Program.load(..., btf=btf, func_info=records)``.  ``func_info="auto"`` in
    :meth:`bpf.Program.load` does all this itself.
    """
    from .btf import BTF

    data, labels = _code_and_labels(code)
    if names is not None:
        labels = {**labels, **names}
    starts = subprograms(data)
    btf = BTF.new()
    try:
        ulong = btf.add("int", "unsigned long", 8, 0)
        long_ = btf.add("int", "long", 8, 1)  # encoding 1: signed
        proto = btf.add("func_proto", long_)
        for k in range(1, 6):
            btf.add("func_param", f"a{k}", ulong)
        records = []
        for off in starts:
            name = main if off == 0 else labels.get(off, "")
            if not isinstance(name, str) or not _IDENT.fullmatch(name):
                name = "main" if off == 0 else f"sub_{off}"
            records.append((off, btf.add("func", name, proto, 1 if off == 0 else 0)))
    except BaseException:
        btf.close()
        raise
    return btf, records


def decode(code: Any) -> list[Insn]:
    """Split instruction bytes into :class:`Insn` objects (``ld_imm64`` as one)."""
    mv = memoryview(code).cast("B")
    if len(mv) % 8:
        raise AsmError(f"instruction bytes must be a multiple of 8, got {len(mv)}")
    raw = bytes(mv)
    out: list[Insn] = []
    i, n = 0, len(raw) // 8
    while i < n:
        c, regs, off, imm = struct.unpack_from("<BBhi", raw, 8 * i)
        if c == (LD | IMM | DW) and i + 1 < n:
            c2, r2, off2, imm2 = struct.unpack_from("<BBhi", raw, 8 * i + 8)
            if c2 == 0 and r2 == 0 and off2 == 0:
                out.append(Insn(c, regs & 15, regs >> 4, off, imm, imm2))
                i += 2
                continue
        out.append(_Raw(c, regs & 15, regs >> 4, off, imm) if c == (LD | IMM | DW)
                   else Insn(c, regs & 15, regs >> 4, off, imm))
        i += 1
    return out


class _Raw(Insn):
    """An ld_imm64 opcode without its second slot: kept as one raw slot."""

    __slots__ = ()

    @property
    def wide(self) -> bool:
        return False


# ---- disassembler ---------------------------------------------------------------------------

_ALU_SYM = {0x00: "+=", 0x10: "-=", 0x20: "*=", 0x30: "/=", 0x40: "|=", 0x50: "&=",
            0x60: "<<=", 0x70: ">>=", 0x90: "%=", 0xA0: "^=", 0xC0: "s>>="}
_JMP_SYM = {0x10: "==", 0x20: ">", 0x30: ">=", 0x40: "&", 0x50: "!=", 0x60: "s>",
            0x70: "s>=", 0xA0: "<", 0xB0: "<=", 0xC0: "s<", 0xD0: "s<="}
_ATOMIC_SYM = {0x00: ("+=", "add"), 0x40: ("|=", "or"), 0x50: ("&=", "and"),
               0xA0: ("^=", "xor")}
_USIZE = {B: "u8", H: "u16", W: "u32", DW: "u64"}
_SSIZE = {B: "s8", H: "s16", W: "s32"}


def _mem(base: int, off: int) -> str:
    return f"(r{base} {'-' if off < 0 else '+'} {abs(off)})"


def _rel(off: int) -> str:
    return f"{off:+d}"


class _Ctx:
    def __init__(self, xlated: bool, helper_names: bool) -> None:
        self.xlated = xlated
        self.helper_names = helper_names


_KSYMS: Optional[tuple[int, dict[int, str]]] = None


def _kernel_call_names() -> tuple[int, dict[int, str]]:
    """(__bpf_call_base, address -> symbol) from /proc/kallsyms, read once.

    In xlated code a helper call's imm is the helper's address minus __bpf_call_base (what
    bpftool resolves the same way).  Empty when kallsyms hides addresses."""
    global _KSYMS
    if _KSYMS is None:
        base = 0
        names: dict[int, str] = {}
        try:
            with open("/proc/kallsyms") as f:
                for ln in f:
                    parts = ln.split()
                    if len(parts) >= 3 and parts[1] in "Tt":
                        addr = int(parts[0], 16)
                        if addr:
                            names.setdefault(addr, parts[2])
                            if parts[2] == "__bpf_call_base":
                                base = addr
        except OSError:
            pass
        _KSYMS = (base, names if base else {})
    return _KSYMS


def _format(i: Insn, ctx: Optional[_Ctx]) -> str:
    """One instruction as text, or '' when its encoding is not canonical."""
    c, d, s, off, imm = i.code, i.dst, i.src, i.off, i.imm
    if d > 10 or s > 10:
        return ""  # no such register: only .quad describes it
    cls = c & 7
    if cls in (ALU, ALU64):
        r = "r" if cls == ALU64 else "w"
        op, srcx = c & 0xF0, c & X
        if op == _ALU_OPS["end"]:
            if s or off or imm not in (16, 32, 64):
                return ""
            if cls == ALU64:
                return "" if srcx else f"r{d} = bswap{imm} r{d}"
            return f"r{d} = {'be' if srcx else 'le'}{imm} r{d}"
        if op == _ALU_OPS["neg"]:
            return "" if (srcx or s or off or imm) else f"{r}{d} = -{r}{d}"
        if op == _ALU_OPS["mov"]:
            if srcx:
                if imm == 0 and off == 0:
                    return f"{r}{d} = {r}{s}"
                if imm == 0 and (off in (8, 16, 32) if cls == ALU64 else off in (8, 16)):
                    return f"{r}{d} = (s{off}){r}{s}"
                if cls == ALU64 and off == 1 and imm in (1, 1 << 16):
                    return f"r{d} = addr_space_cast(r{s}, {imm >> 16}, {imm & 0xFFFF})"
                return ""
            if s or off:
                return ""
            return f"{r}{d} = {imm}"
        if op not in _ALU_SYM:
            return ""
        sym = _ALU_SYM[op]
        if op in (_ALU_OPS["div"], _ALU_OPS["mod"]) and off == 1:
            sym = "s" + sym
        elif off:
            return ""
        if srcx:
            return "" if imm else f"{r}{d} {sym} {r}{s}"
        return "" if s else f"{r}{d} {sym} {imm}"
    if cls in (JMP, JMP32):
        op, srcx = c & 0xF0, c & X
        if op == _JMP_OPS["ja"]:
            if srcx or d or s:
                return ""
            if cls == JMP:
                return "" if imm else f"goto {_rel(off)}"
            return "" if off else f"gotol {_rel(imm)}"
        if cls == JMP and op == _JMP_OPS["exit"]:
            return "" if (srcx or d or s or off or imm) else "exit"
        if cls == JMP and op == _JMP_OPS["call"]:
            if srcx:
                return "" if (s or off or imm) else f"callx r{d}"
            if d:
                return ""
            if s == PSEUDO_CALL:
                # In xlated code the kernel keeps the subprogram's index in off.
                return f"call pc{_rel(imm)}" + (f"#off:{off}" if off else "")
            if s == PSEUDO_KFUNC_CALL:
                return f"call kfunc#{imm}" if off == 0 else f"call kfunc#{imm}:{off}"
            if s or off:
                return ""
            if ctx is not None and ctx.helper_names:
                if ctx.xlated:
                    base, syms = _kernel_call_names()
                    name = syms.get(base + imm) if base else None
                else:
                    name = helper_name(imm)
                if name:
                    return f"call {name}#{imm}"
            return f"call {imm}"
        if cls == JMP and op == _JMP_OPS["jcond"]:
            return "" if (srcx or d or s or imm) else f"may_goto {_rel(off)}"
        if op not in _JMP_SYM:
            return ""
        r = "r" if cls == JMP else "w"
        if srcx:
            return "" if imm else f"if {r}{d} {_JMP_SYM[op]} {r}{s} goto {_rel(off)}"
        return "" if s else f"if {r}{d} {_JMP_SYM[op]} {imm} goto {_rel(off)}"
    size, mode = c & 0x18, c & 0xE0
    if cls == LDX:
        if mode == MEM:
            return "" if imm else f"r{d} = *({_USIZE[size]} *){_mem(s, off)}"
        if mode == MEMSX and size != DW:
            return "" if imm else f"r{d} = *({_SSIZE[size]} *){_mem(s, off)}"
        return ""
    if cls == ST:
        if mode != MEM or s:
            return ""
        return f"*({_USIZE[size]} *){_mem(d, off)} = {imm}"
    if cls == STX:
        if mode == MEM:
            return "" if imm else f"*({_USIZE[size]} *){_mem(d, off)} = r{s}"
        if mode != ATOMIC:
            return ""
        if imm == LOAD_ACQ:
            r = "r" if size == DW else "w"
            return f"{r}{d} = load_acquire(({_USIZE[size]} *){_mem(s, off)})"
        if imm == STORE_REL:
            r = "r" if size == DW else "w"
            return f"store_release(({_USIZE[size]} *){_mem(d, off)}, {r}{s})"
        if size not in (W, DW):
            return ""
        r = "r" if size == DW else "w"
        u = _USIZE[size]
        if imm in _ATOMIC_SYM:
            return f"lock *({u} *){_mem(d, off)} {_ATOMIC_SYM[imm][0]} {r}{s}"
        if imm & ~FETCH in _ATOMIC_SYM:
            name = _ATOMIC_SYM[imm & ~FETCH][1]
            return f"{r}{s} = atomic_fetch_{name}(({u} *){_mem(d, off)}, {r}{s})"
        sfx = "_64" if size == DW else "32_32"
        where = f"r{d} {'-' if off < 0 else '+'} {abs(off)}"
        if imm == XCHG:
            return f"{r}{s} = xchg{sfx}({where}, {r}{s})"
        if imm == CMPXCHG:
            return f"{r}0 = cmpxchg{sfx}({where}, {r}0, {r}{s})"
        return ""
    if cls == LD:
        if mode == ABS and size != DW:
            return "" if (d or s or off) else f"r0 = *({_USIZE[size]} *)skb[{imm}]"
        if mode == IND and size != DW:
            if d or off:
                return ""
            return f"r0 = *({_USIZE[size]} *)skb[r{s}]" if imm == 0 else \
                f"r0 = *({_USIZE[size]} *)skb[r{s} {'-' if imm < 0 else '+'} {abs(imm)}]"
        if c == (LD | IMM | DW) and i.wide and off == 0:
            kind = "id" if ctx is not None and ctx.xlated else "fd"
            if s == 0:
                v = (imm & 0xFFFFFFFF) | ((i.imm2 & 0xFFFFFFFF) << 32)
                if v >= 1 << 63:
                    v -= 1 << 64
                return f"r{d} = {v} ll"
            if s == PSEUDO_MAP_FD and i.imm2 == 0:
                return f"r{d} = map[{kind}:{imm}]"
            if s == PSEUDO_MAP_VALUE:
                return f"r{d} = map[{kind}:{imm}][0]{i.imm2:+d}"
            if s == PSEUDO_MAP_IDX and i.imm2 == 0:
                return f"r{d} = map[idx:{imm}]"
            if s == PSEUDO_MAP_IDX_VALUE:
                return f"r{d} = map[idx:{imm}]{i.imm2:+d}"
            if s == PSEUDO_FUNC and i.imm2 == 0:
                return f"r{d} = subprog[{imm:+d}]"
            return f"ld_pseudo r{d}, {s}, {imm}" + (f", {i.imm2}" if i.imm2 else "")
        return ""
    return ""


def _quad(i: Insn) -> str:
    b = i.encode() if not i.wide else Insn(i.code, i.dst, i.src, i.off, i.imm).encode()
    return f".quad {struct.unpack('<Q', b[:8])[0]:#018x}"


def disassemble(code: Any, *, xlated: bool = False, helper_names: bool = False,
                offsets: bool = False) -> str:
    """Return the text of instruction bytes (or Insn objects), one instruction a line.

    The syntax is llvm-objdump's (``r0 = 1``, ``if r1 > 4 goto +2``, ``call 1``); jump and
    call offsets stay relative.  Forms llvm-objdump prints with pseudo operands are written
    the way bpftool does: ``r1 = map[fd:3]`` (``map[id:N]`` with *xlated*, for the output of
    :meth:`bpf.Program.xlated`, where the kernel stores map ids), ``r1 = map[fd:3][0]+8``,
    ``call pc+5`` (BPF-to-BPF), ``r1 = subprog[+5]``.  *helper_names* writes
    ``call bpf_map_lookup_elem#1`` (with *xlated*, where the kernel stores the helper's
    address, the name comes from /proc/kallsyms as bpftool does); *offsets* prefixes each
    line with its slot index.
    Encodings that no instruction form describes come out as ``.quad 0x…``; :func:`assemble`
    reads all of it back to the same bytes.
    """
    if isinstance(code, Insn):
        insns: list[Any] = [code]
    elif isinstance(code, (list, tuple)):
        insns = list(code)
    else:
        insns = list(decode(code))
    ctx = _Ctx(xlated, helper_names)
    lines = []
    pc = 0
    for i in insns:
        if isinstance(i, Label):
            lines.append(f"{i.name}:")
            continue
        text = _format(i, ctx) if i.target is None else _format_target(i)
        if not text:
            text = _quad(i)
            if i.wide:
                text += "\n" + (f"{pc + 1:>5}: " if offsets else "") + \
                    f".quad {struct.unpack('<Q', struct.pack('<BBhi', 0, 0, 0, i.imm2))[0]:#018x}"
        lines.append(f"{pc:>5}: {text}" if offsets else text)
        pc += i.slots
    return "\n".join(lines) + ("\n" if lines else "")


# ---- text assembler -------------------------------------------------------------------------

_REG = r"([rw])(\d+)"
_NUM = r"([+-]?(?:0[xX][0-9a-fA-F]+|\d+))"
_MEMRE = r"\(r(\d+)\s*(?:([+-])\s*(0[xX][0-9a-fA-F]+|\d+))?\)"
_TARGET = r"(?:pc)?([+-]\d+|[A-Za-z_.$][\w.$]*)"
_SZ = {"u8": B, "u16": H, "u32": W, "u64": DW, "s8": B, "s16": H, "s32": W}
_ALU_BY_SYM = {v: k for k, v in _ALU_SYM.items()}
_JMP_BY_SYM = {v: k for k, v in _JMP_SYM.items()}


def _n(s: str) -> int:
    neg = s.startswith("-")
    s = s.lstrip("+-")
    v = int(s, 16) if s.lower().startswith("0x") else int(s, 10)
    return -v if neg else v


def _off(sign: Optional[str], num: Optional[str]) -> int:
    if num is None:
        return 0
    v = _n(num)
    return -v if sign == "-" else v


def _r(m: re.Match, g: int) -> int:  # type: ignore[type-arg]
    n = int(m.group(g))
    if n > 10:
        raise AsmError(f"no register {m.group(g - 1)}{n}")
    return n


_PREFIX = re.compile(r"^\s*\d+:\s*(?:\(([0-9a-fA-F]{2})\)\s*)?((?:[0-9a-fA-F]{2}\s){8,16})?")
_FUNC_HDR = re.compile(r"^[0-9a-fA-F]+ <([^>]+)>:$")
_C_HDR = re.compile(r"^[\w\s\*]*?\b(\w+)\(.*\):$")
_LABEL = re.compile(r"^([A-Za-z_.$][\w.$]*):$")
_RELOC = re.compile(r"^[0-9a-fA-F]+:\s+R_BPF_\w+")
_BYTES_ONLY = re.compile(r"^(?:[0-9a-fA-F]{2}\s+)*[0-9a-fA-F]{2}$")


# Instruction patterns, compiled once (assemble() tries them in order on each line).
_RE_QUAD = re.compile(r"\.quad " + _NUM)
_RE_GOTO = re.compile(r"(goto|gotol|may_goto) " + _TARGET)
_RE_IF = re.compile(r"if " + _REG + r" (==|!=|>|>=|<|<=|s>|s>=|s<|s<=|&) (?:" + _REG + r"|" +
                    _NUM + r") goto " + _TARGET)
_RE_CALLX = re.compile(r"callx r(\d+)")
_RE_CALL = re.compile(r"call (.+)")
_RE_LOCK = re.compile(r"lock \*\((u32|u64) \*\)" + _MEMRE + r" (\+=|\|=|&=|\^=) " + _REG)
_RE_FETCH = re.compile(_REG + r" = atomic(?:64)?_fetch_(add|or|and|xor)\(\((u32|u64) \*\)" +
                       _MEMRE + r", " + _REG + r"\)")
_RE_XCHG_LLVM = re.compile(_REG + r" = (xchg_64|xchg32_32|cmpxchg_64|cmpxchg32_32)\(r(\d+)"
                           r"(?: ([+-]) (0[xX][0-9a-fA-F]+|\d+))?, " +
                           r"(?:" + _REG + r", )?" + _REG + r"\)")
_RE_XCHG_KERNEL = re.compile(_REG + r" = atomic(64)?_(xchg|cmpxchg)\(\((u32|u64) \*\)" + _MEMRE +
                             r", (?:" + _REG + r", )?" + _REG + r"\)")
_RE_LOAD_ACQ = re.compile(_REG + r" = load_acquire\(\((u8|u16|u32|u64) \*\)" + _MEMRE + r"\)")
_RE_STORE_REL = re.compile(r"store_release\(\((u8|u16|u32|u64) \*\)" + _MEMRE + r", " + _REG +
                           r"\)")
_RE_STORE = re.compile(r"\*\((u8|u16|u32|u64) \*\)" + _MEMRE + r" = (?:" + _REG + r"|" + _NUM +
                       r")")
_RE_LOAD = re.compile(_REG + r" = \*\((u8|u16|u32|u64|s8|s16|s32) \*\)" + _MEMRE)
_RE_SKB = re.compile(r"r0 = \*\((u8|u16|u32) \*\)skb\[(?:r(\d+)(?: ?([+-]) ?" +
                     r"(0[xX][0-9a-fA-F]+|\d+))?|" + _NUM + r")\]")
_RE_LD_PSEUDO = re.compile(r"ld_pseudo r(\d+), ?(\d+), ?" + _NUM + r"(?:, ?" + _NUM + r")?")
_RE_MAPREF = re.compile(r"r(\d+) = map\[(fd|id|idx):(-?\d+)\](?:\[0\])?(?: ?([+-]) ?(\d+))?")
_RE_SUBPROG = re.compile(r"r(\d+) = subprog\[" + _TARGET.replace("(?:pc)?", "") + r"\]")
_RE_IMM64 = re.compile(r"r(\d+) = " + _NUM + r"( ll)?")
_RE_ENDIAN = re.compile(r"r(\d+) = (be|le|bswap)(16|32|64) r(\d+)")
_RE_ASCAST = re.compile(r"r(\d+) = addr_space_cast\(r(\d+), ?(\d+), ?(\d+)\)")
_RE_NEG = re.compile(_REG + r" = -" + _REG)
_RE_MOVSX = re.compile(_REG + r" = \((s8|s16|s32)\)" + _REG)
_RE_ALU = re.compile(_REG + r" (=|\+=|-=|\*=|/=|\|=|&=|<<=|>>=|%=|\^=|s>>=|s/=|s%=) (?:" + _REG +
                     r"|" + _NUM + r")")
_RE_CALL_PC = re.compile(r"pc([+-]\d+)(?:#(?:off:(-?\d+)|\S*))?")
_RE_CALL_KFUNC = re.compile(r"kfunc#(-?\d+)(?::(-?\d+))?")
_RE_CALL_HASH = re.compile(r"[\w.]*#" + _NUM)
_RE_CALL_NUM = re.compile(_NUM)
_RE_IDENT = re.compile(r"[A-Za-z_.$][\w.$]*")


class _Asm:
    def __init__(self) -> None:
        self.items: list[Any] = []

    def line(self, raw: str, lineno: int) -> None:
        text = raw
        for c in (";", "//"):
            k = text.find(c)
            if k >= 0:
                text = text[:k]
        text = text.strip()
        if not text or text.startswith("#"):
            return
        m = _FUNC_HDR.match(text)
        if m:
            self.items.append(Label(m.group(1).split("+")[0]))
            return
        if "file format" in text or text.startswith("Disassembly of section"):
            return
        if _RELOC.match(text) or _BYTES_ONLY.match(text):
            return  # llvm-objdump -r relocation lines, bpftool's "opcodes" byte lines
        hint = None
        m = _PREFIX.match(text)
        if m:
            hint = int(m.group(1), 16) if m.group(1) else None
            rawhex = m.group(2)
            text = text[m.end():].strip()
            if not text:
                return  # a continuation line of raw bytes
            if text == "<unknown>":
                # llvm-objdump could not decode it; its raw bytes (if shown) still say what it is
                if not rawhex:
                    raise AsmError(f"line {lineno}: llvm-objdump printed <unknown> without the "
                                   f"raw bytes: {raw.strip()!r}")
                b = bytes.fromhex(rawhex.replace(" ", "").replace("\t", ""))
                for k in range(0, len(b) - 7, 8):
                    c, regs, off, imm = struct.unpack_from("<BBhi", b, k)
                    self.items.append(_Raw(c, regs & 15, regs >> 4, off, imm))
                return
        else:
            m = _LABEL.match(text) or _C_HDR.match(text)
            if m:
                self.items.append(Label(m.group(1)))
                return
        text = re.sub(r"\s*<[^<>]*>$", "", text)      # objdump's "<LBB0_2>" annotation
        text = re.sub(r"\s+", " ", text)
        try:
            self.items.append(self.insn(text, hint))
        except (AsmError, TypeError, ValueError) as e:
            raise AsmError(f"line {lineno}: {e}: {raw.strip()!r}") from None

    def insn(self, t: str, hint: Optional[int]) -> Any:
        if t == "exit":
            return exit()
        # A cheap look at the text picks the patterns worth trying.
        head = t.split(" ", 1)[0]
        m = _RE_QUAD.fullmatch(t) if t.startswith(".quad") else None
        if m:
            v = _n(m.group(1)) & ((1 << 64) - 1)
            c, regs, off, imm = struct.unpack("<BBhi", struct.pack("<Q", v))
            return _Raw(c, regs & 15, regs >> 4, off, imm)
        m = _RE_GOTO.fullmatch(t) if head in ("goto", "gotol", "may_goto") else None
        if m:
            off, tg = self.target(m.group(2))
            jf: Any = {"goto": ja, "gotol": gotol, "may_goto": may_goto}[m.group(1)]
            return jf(tg if tg is not None else off)
        m = _RE_IF.fullmatch(t) if head == "if" else None
        if m:
            cls = JMP if m.group(1) == "r" else JMP32
            d = _r(m, 2)
            off, tg = self.target(m.group(7))
            op = _JMP_BY_SYM[m.group(3)]
            if m.group(4):
                if m.group(4) != m.group(1):
                    raise AsmError("mixed r and w registers in a comparison")
                return Insn(cls | op | X, d, _r(m, 5), _s16(off, "jump offset"), 0, target=tg)
            return Insn(cls | op | K, d, 0, _s16(off, "jump offset"), _s32(_n(m.group(6)),
                                                                           "immediate"),
                        target=tg)
        m = _RE_CALLX.fullmatch(t) if head == "callx" else None
        if m:
            return callx(Reg(_r(m, 1)))
        m = _RE_CALL.fullmatch(t) if head == "call" else None
        if m:
            return self.call(m.group(1))
        m = _RE_LOCK.fullmatch(t) if head == "lock" else None
        if m:
            op = {"+=": 0x00, "|=": 0x40, "&=": 0x50, "^=": 0xA0}[m.group(5)]
            return Insn(STX | ATOMIC | _SZ[m.group(1)], _r(m, 2), _r(m, 7),
                        _s16(_off(m.group(3), m.group(4)), "offset"), op)
        m = _RE_FETCH.fullmatch(t) if "_fetch_" in t else None
        if m:
            if _r(m, 2) != _r(m, 9):
                raise AsmError("atomic_fetch_* returns into its source register")
            op = {"add": 0x00, "or": 0x40, "and": 0x50, "xor": 0xA0}[m.group(3)] | FETCH
            return Insn(STX | ATOMIC | _SZ[m.group(4)], _r(m, 5), _r(m, 9),
                        _s16(_off(m.group(6), m.group(7)), "offset"), op)
        m = _RE_XCHG_LLVM.fullmatch(t) if "xchg" in t else None
        if m:
            size = DW if m.group(3).endswith("_64") else W
            off = _s16(_off(m.group(5), m.group(6)), "offset")
            if m.group(3).startswith("xchg"):
                return Insn(STX | ATOMIC | size, _r(m, 4), _r(m, 10), off, XCHG)
            return Insn(STX | ATOMIC | size, _r(m, 4), _r(m, 10), off, CMPXCHG)
        m = _RE_XCHG_KERNEL.fullmatch(t) if "xchg" in t else None
        if m:
            off = _s16(_off(m.group(7), m.group(8)), "offset")
            op = XCHG if m.group(4) == "xchg" else CMPXCHG
            return Insn(STX | ATOMIC | _SZ[m.group(5)], _r(m, 6), _r(m, 12), off, op)
        m = _RE_LOAD_ACQ.fullmatch(t) if "load_acquire" in t else None
        if m:
            return Insn(STX | ATOMIC | _SZ[m.group(3)], _r(m, 2), _r(m, 4),
                        _s16(_off(m.group(5), m.group(6)), "offset"), LOAD_ACQ)
        m = _RE_STORE_REL.fullmatch(t) if head.startswith("store_release") else None
        if m:
            return Insn(STX | ATOMIC | _SZ[m.group(1)], _r(m, 2), _r(m, 6),
                        _s16(_off(m.group(3), m.group(4)), "offset"), STORE_REL)
        m = _RE_STORE.fullmatch(t) if t.startswith("*(") else None
        if m:
            sz, off = _SZ[m.group(1)], _s16(_off(m.group(3), m.group(4)), "offset")
            if m.group(5):
                return Insn(STX | MEM | sz, _r(m, 2), _r(m, 6), off, 0)
            return Insn(ST | MEM | sz, _r(m, 2), 0, off, _s32(_n(m.group(7)), "value"))
        m = _RE_LOAD.fullmatch(t) if " = *(" in t else None
        if m:
            mode = MEMSX if m.group(3).startswith("s") else MEM
            return Insn(LDX | mode | _SZ[m.group(3)], _r(m, 2), _r(m, 4),
                        _s16(_off(m.group(5), m.group(6)), "offset"), 0)
        m = _RE_SKB.fullmatch(t) if "skb[" in t else None
        if m:
            sz = _SZ[m.group(1)]
            if m.group(2) is not None:
                return Insn(LD | IND | sz, 0, _r(m, 2), 0, _s32(_off(m.group(3), m.group(4)),
                                                                "offset"))
            return Insn(LD | ABS | sz, 0, 0, 0, _s32(_n(m.group(5)), "offset"))
        m = _RE_LD_PSEUDO.fullmatch(t) if head == "ld_pseudo" else None
        if m:
            v2 = _n(m.group(4)) if m.group(4) else 0
            return Insn(LD | IMM | DW, _r(m, 1), int(m.group(2)), 0, _s32(_n(m.group(3)), "imm"),
                        _s32(v2, "imm"))
        m = _RE_MAPREF.fullmatch(t) if "map[" in t else None
        if m:
            kind, v = m.group(2), int(m.group(3))
            has_off = m.group(4) is not None or "[0]" in t
            off = _off(m.group(4), m.group(5))
            if kind == "idx":
                src = PSEUDO_MAP_IDX_VALUE if has_off else PSEUDO_MAP_IDX
            else:
                src = PSEUDO_MAP_VALUE if has_off else PSEUDO_MAP_FD
            return Insn(LD | IMM | DW, _r(m, 1), src, 0, _s32(v, "map"), _s32(off, "offset"))
        m = _RE_SUBPROG.fullmatch(t) if "subprog[" in t else None
        if m:
            off, tg = self.target(m.group(2))
            return ld_func(Reg(_r(m, 1)), tg if tg is not None else off)
        m = _RE_IMM64.fullmatch(t)
        if m and (m.group(3) or hint == (LD | IMM | DW)):
            return ld_imm64(Reg(_r(m, 1)), _n(m.group(2)))
        m = _RE_ENDIAN.fullmatch(t) if ("be" in t or "le" in t or "bswap" in t) else None
        if m:
            if m.group(1) != m.group(4):
                raise AsmError("a byte swap works in place (rN = be16 rN)")
            swap: Any = {"be": be, "le": le, "bswap": bswap}[m.group(2)]
            return swap(Reg(_r(m, 1)), int(m.group(3)))
        m = _RE_ASCAST.fullmatch(t) if "addr_space_cast" in t else None
        if m:
            return addr_space_cast(Reg(_r(m, 1)), Reg(_r(m, 2)), int(m.group(3)),
                                   int(m.group(4)))
        m = _RE_NEG.fullmatch(t) if " = -" in t else None
        if m:
            if m.group(1) != m.group(3) or m.group(2) != m.group(4):
                raise AsmError("negation works in place (r1 = -r1)")
            return (neg if m.group(1) == "r" else neg32)(Reg(_r(m, 2)))
        m = _RE_MOVSX.fullmatch(t) if " = (s" in t else None
        if m:
            sx: Any = movsx if m.group(1) == "r" else movsx32
            return sx(Reg(_r(m, 2)), Reg(_r(m, 5)), int(m.group(3)[1:]))
        m = _RE_ALU.fullmatch(t)
        if m:
            cls = ALU64 if m.group(1) == "r" else ALU
            sym = m.group(3)
            signed = sym in ("s/=", "s%=")
            op = _ALU_OPS["mov"] if sym == "=" else _ALU_BY_SYM[sym[1:] if signed else sym]
            if m.group(4):
                if m.group(4) != m.group(1):
                    raise AsmError("mixed r and w registers")
                return Insn(cls | op | X, _r(m, 2), _r(m, 5), 1 if signed else 0, 0)
            v = _n(m.group(6))
            if cls == ALU64 and sym == "=" and not -(1 << 31) <= v < (1 << 31):
                raise AsmError(f"{v} does not fit a 32-bit immediate: write '{v} ll'")
            return Insn(cls | op | K, _r(m, 2), 0, 1 if signed else 0, _s32(v, "immediate"))
        raise AsmError("cannot parse instruction")

    def target(self, s: str) -> tuple[int, Optional[str]]:
        if s[0] in "+-":
            return int(s, 10), None
        return 0, s

    def call(self, s: str) -> Insn:
        m = _RE_CALL_PC.fullmatch(s)
        if m:
            c = call_local(int(m.group(1)))
            return c._replace(off=_s16(int(m.group(2) or 0), "offset"))
        m = _RE_CALL_KFUNC.fullmatch(s)
        if m:
            return call_kfunc(int(m.group(1)), int(m.group(2) or 0))
        m = _RE_CALL_HASH.fullmatch(s)
        if m:
            return Insn(JMP | _JMP_OPS["call"], 0, 0, 0, _s32(_n(m.group(1)), "helper id"))
        m = _RE_CALL_NUM.fullmatch(s)
        if m:
            return Insn(JMP | _JMP_OPS["call"], 0, 0, 0, _s32(_n(m.group(1)), "helper id"))
        if _RE_IDENT.fullmatch(s):
            return Insn(JMP | _JMP_OPS["call"], 0, 0, 0, 0, target="call:" + s)
        raise AsmError(f"bad call target {s!r}")


# ---- text snippets --------------------------------------------------------------------------

def _stack(off: int) -> str:
    return f"r10 - {-off}" if off < 0 else f"r10 + {off}"


def count_text(map: Any, key: int, scratch: int, *, label: str = "count") -> str:
    """Assembler text that counts one more event under a key in a hash map: look the key up,
    add 1 to its u64 value atomically, or insert the value 1 when the key is new.

    *map* is the map (or its fd, embedded as for :func:`ld_map_fd`); *key* is the stack
    offset (negative, from r10) where the program has stored the key; *scratch* is a free
    8-byte stack slot (negative offset) for the first value.  The insert uses BPF_NOEXIST so
    that an insert racing on another CPU is counted once, not overwritten.  Clobbers r0-r5,
    falls through at the end and defines the labels ``<label>_new`` and ``<label>_done``
    (pass a different *label* to count twice in one program).  Embed it in a program's
    text::

        text = f\"\"\"
            call bpf_get_current_pid_tgid
            r0 >>= 32
            *(u32 *)(r10 - 4) = r0         ; key: the process id
        {asm.count_text(counts, key=-4, scratch=-16)}
            r0 = 0
            exit
        \"\"\"
    """
    if not (isinstance(key, int) and isinstance(scratch, int)) or key >= 0 or scratch > -8:
        raise AsmError("key and scratch are negative stack offsets (from r10), and scratch "
                       f"needs 8 bytes below r10: got key={key!r}, scratch={scratch!r}")
    fd = _fd(map)
    return f"""\
        r2 = r10
        r2 += {key}
        r1 = map[fd:{fd}]
        call 1                          ; bpf_map_lookup_elem
        if r0 == 0 goto {label}_new
        r1 = 1
        lock *(u64 *)(r0 + 0) += r1
        goto {label}_done
    {label}_new:
        r1 = 1
        *(u64 *)({_stack(scratch)}) = r1
        r2 = r10
        r2 += {key}
        r3 = r10
        r3 += {scratch}
        r1 = map[fd:{fd}]
        r4 = 1                          ; BPF_NOEXIST
        call 2                          ; bpf_map_update_elem
    {label}_done:
"""


def assemble(text: str) -> bytes:
    """Assemble *text* into instruction bytes.

    Reads what ``llvm-objdump -d`` (with or without raw bytes) and ``bpftool prog dump
    xlated`` print, the output of :func:`disassemble`, and hand-written code with ``name:``
    labels, ``goto name``, ``if r1 > 4 goto name`` and ``call name`` (a label defined in the
    text is a BPF-to-BPF call; otherwise *name* is a helper, ``bpf_`` prefix optional).
    ``; …`` and ``// …`` are comments.  Raises :class:`AsmError` naming the line.
    """
    a = _Asm()
    for n, ln in enumerate(text.splitlines(), 1):
        a.line(ln, n)
    defined = {it.name for it in a.items if isinstance(it, Label)}
    items: list[Any] = []
    seen: set[str] = set()
    for it in a.items:
        if isinstance(it, Label):
            # objdump repeats nothing, but a hand-written file might define a label twice
            if it.name in seen:
                raise AsmError(f"label {it.name!r} defined twice")
            seen.add(it.name)
        elif isinstance(it, Insn) and it.target and it.target.startswith("call:"):
            name = it.target[5:]
            it = call_local(name) if name in defined else call(name)
        items.append(it)
    return assemble_insns(items)

"""Proofs that a rewritten AArch64 block computes what the original computes, from *every* state.

Both blocks are lifted to VEX IR by **pyvex** (valgrind's AArch64 front end, the lifter angr
builds on) and run symbolically: every register starts as a bit-vector variable, memory as an
array from 64-bit addresses to bytes, so two accesses alias exactly when their addresses are
equal for the values at hand. The runs build shared terms
(:mod:`~optarena.envs.aarch64_peephole.terms`).

The rewrite is **proved** when no initial registers and memory make any compared register, the
flags or any memory byte differ at the end: at once when both blocks leave them as the same
terms, else when **z3** finds the difference unsatisfiable. It is **refuted** when z3 finds such
a state, returned as a :class:`Counterexample` (registers and initial memory) for the caller to
replay in unicorn; **unknown** when the time limit runs out or the block holds an instruction
outside what the prover models (the reason says which).

**Compared**: X0-X30, SP, Q0-Q31 and NZCV (what the random tester compares), plus FPCR,
FPSR.QC and TPIDR_EL0, and all of memory. Every register is live-out: the corpora record no
liveness, so a rewrite that writes a register dead after the block (LLVM's pass renames
registers so) is refuted.

**Preconditions** (what "every state" leaves out; the random tester assumes the same):

* an access through the stack pointer (an address computed from the initial SP, not loaded
  from memory) never overlaps an access through another register: in C a non-escaped local is
  not reachable through a pointer, and LLVM reorders stack accesses past pointer accesses on
  that ground;
* SP is 16-byte aligned (AAPCS64);
* no access wraps around the end of the address space.

**Why pyvex and z3** (checked against this suite's corpora, tests/test_peephole_prove.py):

* pyvex decodes every instruction form of the shipped corpora. Loads and stores come out exactly
  as the architecture defines them: ``ldp``/``stp``/``ldpsw`` as two accesses at ``base + off``
  and ``base + off + size``, pre- and post-index writeback after the accesses, sign and zero
  extension of narrow loads, writes of W registers clearing the top half, D/S loads clearing the
  rest of the Q register. The differential tests run every corpus form through both pyvex's
  semantics and unicorn from random states and compare every register and byte.
* Two defects turned up and are handled: the fused multiply-adds (:data:`FUSED`: ``fmadd``,
  ``fmla`` ...) are lifted as a multiply and an add, two roundings where the hardware rounds
  once, so within those instructions the multiply and the add (or subtract, and the negation of
  ``fnmadd``/``fnmsub``) are read back as one fused operation of their own; and integer division
  gets a divide-by-zero trap that AArch64 does not have (angr's VEX addition; skipped here, the
  quotient is 0 as AArch64 defines).
* The flags are VEX's lazy thunk (an operation and its operands); the NZCV they stand for is
  computed as VEX's ``arm64g_calculate_flags_nzcv`` defines it, and checked against unicorn.
* z3 directly, not claripy or angr's symbolic memory: angr's memory concretizes a symbolic
  address to a few values, which would prove aliasing only for the addresses it picked, and
  claripy adds nothing z3 lacks here. Building z3 terms through its Python API costs 10-30
  microseconds a node (a 3-instruction block took 14 ms), so the runs build the suite's own
  shared terms (about a microsecond a node) and z3 gets SMT-LIB text for what stays open: pure
  bit-vectors, a read of memory written in the block a chain of ``ite`` over the stores it may
  hit, each byte of the initial memory a constant tied to the others by Ackermann's reduction.
  z3's simple solver answered these queries fastest of the configurations tried (its default
  bit-vector tactic spends tens of milliseconds preprocessing even tiny ones).
* Floating-point arithmetic is an uninterpreted function of its operands' bits and the rounding
  mode, the same function for a scalar and for each lane of a vector operation. A proof then
  holds for the hardware's arithmetic whatever it is (rewrites move FP operations, never change
  them). z3's IEEE theory would be unsound here: it has one NaN where AArch64 propagates NaN
  payloads, so ``fadd d0, d1, d2`` and ``fadd d0, d2, d1`` would be "equal". A counterexample
  that only an uninterpreted function allows (``x * 0`` differing from ``y * 0``) fails its
  unicorn replay; the checker then asks once more for operands that are moderate normal numbers
  (``normal_floats``), where arbitrary values are mostly real ones, and if that one does not
  replay either the rewrite is tested.
* Cost: lifting takes about 0.1 ms an instruction and is kept by instruction word; the original
  block's run is kept, so a rewrite of it costs one run and, when the terms differ, one z3 query
  (the time limit bounds it). On the blocks of the ``peephole-csmith/v1`` split a proof takes
  0.6 ms (median; 10 ms at the 99th percentile, 86 ms at most).

**Coverage** grows with the table of VEX operations below: a new instruction form needs no
change when pyvex lifts it to operations already modelled (most integer and load/store forms),
else one entry per new operation, and a differential test against unicorn for the form.
"""

from __future__ import annotations

import re
import struct
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pyvex
import z3
from pyvex.lifting.libvex import LibVEXLifter
from pyvex.vex_ffi import guest_offsets

from optarena.envs.aarch64_peephole.block import Instruction, parse_block
from optarena.envs.aarch64_peephole.terms import Leaves, Script, Term, Terms, evaluate, smtlib, split
from optarena.envs.lru import LRU

ProofStatus = Literal["proved", "refuted", "unknown"]

DEFAULT_TIME_LIMIT = 0.05
"""Seconds per proof, lifting to answer (the environment's default)."""
FUSED = frozenset({"fmadd", "fmsub", "fnmadd", "fnmsub", "fmla", "fmls"})
"""The fused multiply-adds, which pyvex lifts as a multiply and an add (see the module docstring).
Their results are the functions ``Fma`` (``c + a*b``), ``Fms`` (``c - a*b``), ``Fnma``
(``-c - a*b``) and ``Fnms`` (``a*b - c``), rounded once."""
_FP_MUL = re.compile(r"Iop_Mul(F32|F64|32Fx4|64Fx2|32Fx2)")
_FP_ADD_SUB = re.compile(r"Iop_(Add|Sub)(F32|F64|32Fx4|64Fx2|32Fx2)")
_ARCH = pyvex.ARCH_ARM64_LE
_X = [f"x{i}" for i in range(31)]
_Q = [f"q{i}" for i in range(32)]
COMPARED = (*_X, "xsp", *_Q, "fpcr", "qcflag", "tpidr_el0")
"""VEX's names of the registers compared besides NZCV (``xsp`` is SP, ``qcflag`` FPSR.QC)."""
_SLOTS: dict[str, int] = {**dict.fromkeys(_X, 8), "xsp": 8, "cc_op": 8, "cc_dep1": 8,
                          "cc_dep2": 8, "cc_ndep": 8, "tpidr_el0": 8, **dict.fromkeys(_Q, 16),
                          "qcflag": 16, "fpcr": 4}
"""The guest-state fields a block may read or write, with their sizes (others are not covered)."""
_OFFSET = {name: guest_offsets[("arm64", name)] for name in _SLOTS}
_SLOT_AT = {_OFFSET[name] + i: name for name, size in _SLOTS.items() for i in range(size)}
_PC = guest_offsets[("arm64", "pc")]

# VEX's flag thunk (guest_arm64_defs.h): the operation that set the flags and its operands.
_CC_COPY, _CC_ADD32, _CC_ADD64, _CC_SUB32, _CC_SUB64 = 0, 1, 2, 3, 4
_CC_ADC32, _CC_ADC64, _CC_SBC32, _CC_SBC64, _CC_LOGIC32, _CC_LOGIC64 = 5, 6, 7, 8, 9, 10

class NotCovered(Exception):
    """The block holds something the prover does not model (the message says what)."""


@dataclass(frozen=True)
class Counterexample:
    """An initial state on which two blocks end differently, by the prover's semantics."""

    registers: Mapping[str, int]
    """``x0``-``x30``, ``sp``, ``q0``-``q31``, ``nzcv`` (bits 31:28), ``fpcr``."""
    memory: Mapping[int, int]
    """Initial bytes at every address either block accesses (address -> byte)."""

    def to_json(self) -> dict[str, Any]:
        return {"registers": {name: hex(value) for name, value in self.registers.items()},
                "memory": {hex(address): byte for address, byte in sorted(self.memory.items())}}

    def describe(self, names: Sequence[str] = ()) -> str:
        """The registers ``names`` (default: all) and the memory, in one line."""
        shown = [f"{n}={self.registers[n]:#x}" for n in names or self.registers]
        runs: list[tuple[int, bytearray]] = []
        for address, byte in sorted(self.memory.items()):
            if runs and runs[-1][0] + len(runs[-1][1]) == address:
                runs[-1][1].append(byte)
            else:
                runs.append((address, bytearray([byte])))
        shown += [f"[{start:#x}]={data.hex(' ')}" for start, data in runs]
        return ", ".join(shown)


@dataclass(frozen=True)
class Proof:
    status: ProofStatus
    detail: str = ""
    """Why the status is ``unknown`` (an instruction not covered, the time limit)."""
    counterexample: Counterexample | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class Effect:
    """What a block does, as terms over the initial state."""

    registers: dict[str, Term]
    """The final value of each register of :data:`COMPARED`."""
    nzcv: Term
    """The final flags, 4 bits (N, Z, C, V from the top)."""
    memory: Term
    """The final memory."""
    accesses: list[tuple[Term, int]]
    """Every access: its address and size in bytes."""



# ------------------------------------------------------------------ VEX operations

Meaning = Callable[[Terms, list[Term]], Term]
_SHIFTS = {"Shl": "shl", "Shr": "lshr", "Sar": "ashr"}
_BINARY = {"Add": "add", "Sub": "sub", "Mul": "mul", "And": "and", "Or": "or", "Xor": "xor"}
_VECTOR_SHAPES = {"8x16": 8, "16x8": 16, "32x4": 32, "64x2": 64}
_FP_LANES = re.compile(r"(Add|Sub|Mul|Div|Max|Min)(32|64)Fx(2|4)")
"""Vector FP operations with a rounding mode: each lane is the scalar operation."""


def _lanes(t: Terms, term: Term, width: int) -> list[Term]:
    """The lanes of a vector, lane 0 (the lowest bits) first."""
    return [t.extract(term, width * i + width - 1, width * i) for i in range(term.width // width)]


def _mask(t: Terms, condition: Term, width: int) -> Term:
    """All ones where a 1-bit condition holds, else zero."""
    return t.op("ite", condition, t.const(-1, width), t.const(0, width))


def _shift(kind: str) -> Callable[[Terms, Term, Term], Term]:
    """VEX's shifts; the 8-bit amount is widened (or cut) to the operand's width."""
    def shift(t: Terms, a: Term, amount: Term) -> Term:
        amount = t.zext(amount, a.width - amount.width) if a.width > amount.width \
            else t.extract(amount, a.width - 1, 0)
        return t.op(_SHIFTS[kind], a, amount)
    return shift


def _binary(op: str) -> Callable[[Terms, Term, Term], Term]:
    return lambda t, a, b: t.op(op, a, b)


_LANE_OPS: dict[str, Callable[[Terms, Term, Term], Term]] = {
    **{name: _binary(op) for name, op in _BINARY.items()},
    "CmpEQ": lambda t, a, b: _mask(t, t.op("eq", a, b), a.width),
    "CmpGTS": lambda t, a, b: _mask(t, t.op("slt", b, a), a.width),
    "CmpGTU": lambda t, a, b: _mask(t, t.op("ult", b, a), a.width),
    "MaxS": lambda t, a, b: t.op("ite", t.op("slt", b, a), a, b),
    "MaxU": lambda t, a, b: t.op("ite", t.op("ult", b, a), a, b),
    "MinS": lambda t, a, b: t.op("ite", t.op("slt", a, b), a, b),
    "MinU": lambda t, a, b: t.op("ite", t.op("ult", a, b), a, b),
}
_COMPARE: dict[str, Callable[[Terms, Term, Term], Term]] = {
    "CmpEQ": lambda t, a, b: t.op("eq", a, b),
    "CmpNE": lambda t, a, b: t.op("not", t.op("eq", a, b)),
    "CmpLTS": lambda t, a, b: t.op("slt", a, b), "CmpLTU": lambda t, a, b: t.op("ult", a, b),
    "CmpLES": lambda t, a, b: t.op("sle", a, b), "CmpLEU": lambda t, a, b: t.op("ule", a, b),
}


def _integer_op(op: str, arity: int) -> Meaning | None:
    """What VEX integer or vector operation ``op`` (``Iop_`` dropped) computes, else None."""
    match = re.fullmatch(r"(Add|Sub|Mul|And|Or|Xor)(8|16|32|64|V128)", op)
    if match and arity == 2:
        name = _BINARY[match.group(1)]
        return lambda t, args: t.op(name, *args)
    match = re.fullmatch(r"(Shl|Shr|Sar)(8|16|32|64)", op)
    if match:
        shift = _shift(match.group(1))
        return lambda t, args: shift(t, *args)
    if re.fullmatch(r"Not(1|8|16|32|64|V128)", op):
        return lambda t, args: t.op("not", args[0])
    match = re.fullmatch(r"(?:Cas|Exp)?(CmpEQ|CmpNE|CmpLT|CmpLE)(8|16|32|64)(S|U)?", op)
    if match:
        compare = _COMPARE[match.group(1) + (match.group(3) or "")]
        return lambda t, args: compare(t, *args)
    match = re.fullmatch(r"Div(U|S)(32|64)", op)
    if match:
        name = "sdiv" if match.group(1) == "S" else "udiv"  # by zero: 0, as AArch64
        return lambda t, args: t.op(name, *args)
    match = re.fullmatch(r"Mull(S|U)(8|16|32|64)", op)
    if match:
        signed = match.group(1) == "S"
        return lambda t, args: t.op("mul", *((t.sext if signed else t.zext)(a, a.width)
                                             for a in args))
    match = re.fullmatch(r"(1|8|16|32|64)(U|S)to(8|16|32|64|V128)", op)
    if match:
        signed = match.group(2) == "S"
        target = 128 if match.group(3) == "V128" else int(match.group(3))
        return lambda t, args: (t.sext if signed else t.zext)(args[0], target - args[0].width)
    match = re.fullmatch(r"(8|16|32|64|128|V128)to(1|8|16|32|64)", op)
    if match:
        bits = int(match.group(2))
        return lambda t, args: t.extract(args[0], bits - 1, 0)
    if re.fullmatch(r"(16|32|64|128|V128)HIto(8|16|32|64)", op):
        return lambda t, args: t.extract(args[0], args[0].width - 1, args[0].width // 2)
    if re.fullmatch(r"(8|16|32|64)HLto(16|32|64|128|V128)", op):
        return lambda t, args: t.op("concat", *args)
    match = re.fullmatch(r"ZeroHI(64|96|112|120)ofV128", op)
    if match:
        keep = 128 - int(match.group(1))
        return lambda t, args: t.zext(t.extract(args[0], keep - 1, 0), 128 - keep)
    if re.fullmatch(r"Reinterp(F64asI64|I64asF64|F32asI32|I32asF32)", op):
        return lambda t, args: args[0]
    if re.fullmatch(r"NegF(32|64)", op):  # flips the sign bit, NaNs included
        return lambda t, args: t.op("xor", args[0], t.const(1 << (args[0].width - 1),
                                                            args[0].width))
    if re.fullmatch(r"AbsF(32|64)", op):
        return lambda t, args: t.op("and", args[0], t.const((1 << (args[0].width - 1)) - 1,
                                                            args[0].width))
    match = re.fullmatch(r"(Add|Sub|Mul|CmpEQ|CmpGTS|CmpGTU|MaxS|MaxU|MinS|MinU)"
                         r"(8x16|16x8|32x4|64x2)", op)
    if match:
        width, lane = _VECTOR_SHAPES[match.group(2)], _LANE_OPS[match.group(1)]
        return lambda t, args: t.concat(lane(t, x, y) for x, y in zip(
            _lanes(t, args[0], width), _lanes(t, args[1], width), strict=True))
    match = re.fullmatch(r"(ShlN|ShrN|SarN)(8x16|16x8|32x4|64x2)", op)
    if match:
        width, shift = _VECTOR_SHAPES[match.group(2)], _shift(match.group(1)[:3])
        return lambda t, args: t.concat(shift(t, lane, args[1])
                                        for lane in _lanes(t, args[0], width))
    match = re.fullmatch(r"Interleave(HI|LO)(8x16|16x8|32x4|64x2)", op)
    if match:  # the high (low) halves' lanes of a and b, b's first
        width, high = _VECTOR_SHAPES[match.group(2)], match.group(1) == "HI"
        half = 64 // width
        return lambda t, args: t.concat(
            lane for i in range(half * high, half * high + half)
            for lane in (_lanes(t, args[1], width)[i], _lanes(t, args[0], width)[i]))
    match = re.fullmatch(r"Cat(Even|Odd)Lanes(8x16|16x8|32x4)", op)
    if match:  # b's even (odd) lanes, then a's
        width, pick = _VECTOR_SHAPES[match.group(2)], int(match.group(1) == "Odd")
        return lambda t, args: t.concat(_lanes(t, args[1], width)[pick::2]
                                        + _lanes(t, args[0], width)[pick::2])
    match = re.fullmatch(r"Dup(8x16|16x8|32x4)", op)
    if match:
        count = 128 // _VECTOR_SHAPES[match.group(1)]
        return lambda t, args: t.concat([args[0]] * count)
    return None


def _nzcv(t: Terms, op: int, dep1: Term, dep2: Term, dep3: Term) -> Term:
    """The flags VEX's thunk ``(op, dep1, dep2, dep3)`` stands for (its
    ``arm64g_calculate_flags_nzcv``), 4 bits."""
    if op == _CC_COPY:
        return t.extract(dep1, 31, 28)
    if not _CC_ADD32 <= op <= _CC_LOGIC64:
        raise NotCovered(f"flag operation {op}")
    bits = 32 if op % 2 == 1 else 64
    top = bits - 1
    a, b = t.extract(dep1, top, 0), t.extract(dep2, top, 0)
    carry_in = t.extract(dep3, 0, 0)
    zero = t.const(0, 1)
    if op <= _CC_ADD64 or op in (_CC_ADC32, _CC_ADC64):
        plain = op <= _CC_ADD64
        result = t.op("add", a, b) if plain else t.op("add", t.op("add", a, b),
                                                      t.zext(carry_in, bits - 1))
        carry = t.op("ult", result, a) if plain else t.op(
            "ite", carry_in, t.op("ule", result, a), t.op("ult", result, a))
        overflow = t.extract(t.op("and", t.op("xor", result, a), t.op("xor", result, b)), top, top)
    elif op <= _CC_SBC64:
        plain = op <= _CC_SUB64
        result = t.op("sub", a, b) if plain else t.op(
            "sub", t.op("sub", a, b), t.zext(t.op("not", carry_in), bits - 1))
        carry = t.op("ule", b, a) if plain else t.op(
            "ite", carry_in, t.op("ule", b, a), t.op("ult", b, a))
        overflow = t.extract(t.op("and", t.op("xor", a, b), t.op("xor", a, result)), top, top)
    else:
        result, carry, overflow = a, zero, zero
    return t.concat([overflow, carry, t.op("eq", result, t.const(0, bits)),
                     t.extract(result, top, top)])


def _flags(t: Terms, op: Term, dep1: Term, dep2: Term, dep3: Term) -> Term:
    """:func:`_nzcv` for an operation known only as a term (a conditional compare's)."""
    if op.op == "const":
        return _nzcv(t, op.value, dep1, dep2, dep3)
    result = _nzcv(t, _CC_COPY, dep1, dep2, dep3)
    for code in range(_CC_ADD32, _CC_LOGIC64 + 1):
        result = t.op("ite", t.op("eq", op, t.const(code, op.width)),
                      _nzcv(t, code, dep1, dep2, dep3), result)
    return result


def _condition(t: Terms, cond: int, nzcv: Term) -> Term:
    """Whether AArch64 condition ``cond`` (0 EQ ... 15 NV) holds for 4-bit flags (1 bit)."""
    if cond >= 14:
        return t.const(1, 1)
    n, z, c, v = (t.extract(nzcv, i, i) for i in (3, 2, 1, 0))
    holds = [z, c, n, v, t.op("and", c, t.op("not", z)), t.op("eq", n, v),
             t.op("and", t.op("not", z), t.op("eq", n, v))][cond >> 1]
    return t.op("not", holds) if cond & 1 else holds


# ------------------------------------------------------------------ symbolic execution

class _Machine:
    """The initial state every run of a prover starts from (one variable per register, the
    initial memory), and what it knows of terms: the meaning of each VEX operation seen, how
    addresses split into a base and an offset, which addresses are on the stack."""

    def __init__(self, terms_kept: int) -> None:
        self.terms = t = Terms(terms_kept)
        self.initial: dict[str, Term] = {name: t.var(name, 8 * size) for name, size in _SLOTS.items()}
        # the flags start as a copy of a free NZCV: operation COPY, operand the NZCV variable
        self.initial["cc_dep1"] = t.var("nzcv", 64)
        self.initial.update({name: t.const(0, 64) for name in ("cc_op", "cc_dep2", "cc_ndep")})
        self.sp = self.initial["xsp"]
        self.meanings: dict[str, Meaning] = {}
        self._stack: dict[int, bool] = {}
        self._generation = t.generation

    def meaning(self, op: str, arity: int) -> Meaning:
        """What VEX operation ``op`` computes (``NotCovered`` when it is not modelled)."""
        known = self.meanings.get(op)
        if known is None:
            known = self._meaning(op, arity)
            self.meanings[op] = known
        return known

    def _meaning(self, op: str, arity: int) -> Meaning:
        name = op[4:]  # "Iop_"
        exact = _integer_op(name, arity)
        if exact is not None:
            return exact
        try:
            result, arg_types = pyvex.expr.op_arg_types(op)
        except Exception:  # pyvex knows no signature: not modelled either
            result, arg_types = "", ()
        if any(ty.startswith("Ity_F") for ty in (result, *arg_types)):
            bits = pyvex.const.get_type_size(result)
            return lambda t, args: t.apply(name, args, bits)
        match = _FP_LANES.fullmatch(name)
        if match:  # vector FP with a rounding mode: each lane the scalar operation
            lane, scalar = int(match.group(2)), f"{match.group(1)}F{match.group(2)}"
            return lambda t, args: t.concat(
                t.apply(scalar, [args[0], x, y], lane)
                for x, y in zip(_lanes(t, args[1], lane), _lanes(t, args[2], lane), strict=True))

        def uncovered(t: Terms, args: list[Term]) -> Term:
            raise NotCovered(f"VEX operation {op}")
        return uncovered

    def on_stack(self, term: Term | None) -> bool:
        """Whether an address base is computed from the initial SP (not loaded from memory)."""
        if term is None:
            return False
        if self._generation != self.terms.generation:
            self._stack.clear()
            self._generation = self.terms.generation
        stack, seen = [term], self._stack
        while stack:
            node = stack[-1]
            if node.id in seen:
                stack.pop()
                continue
            children = () if node.op in ("select", "const", "var") else node.args
            waiting = [c for c in children if c.id not in seen]
            if waiting:
                stack.extend(waiting)
                continue
            stack.pop()
            seen[node.id] = node is self.sp or any(seen[c.id] for c in children)
        return seen[term.id]


def _delta(a: int, b: int) -> int:
    """``b - a`` as a signed 64-bit number."""
    return (b - a + 2**63) % 2**64 - 2**63


Write = tuple[Term, int, Term]
"""A store: address, size in bytes, value."""


class _Run:
    """One symbolic run of lifted code from the machine's initial state.

    Memory is the list of stores made so far. A load takes each byte from the last store that
    certainly wrote it, skipping the stores that certainly did not (same base, other bytes; or
    one on the stack and one not, by the precondition), and reads the memory as it was before
    the first store it cannot decide about (a term). The final memory is the stores in a
    canonical order: stores that certainly touch different bytes sorted by base and offset,
    stores overwritten whole dropped, so blocks that store the same bytes end with the same term.
    """

    def __init__(self, machine: _Machine) -> None:
        self.machine = machine
        self.t = machine.terms
        self.registers = dict(machine.initial)
        self.writes: list[Write] = []
        self.accesses: list[tuple[Term, int]] = []
        self.temps: dict[int, Term] = {}
        self._memories: dict[int, Term] = {}
        self._fused = False
        """Whether the current instruction is a fused multiply-add (:data:`FUSED`)."""
        self._products: dict[int, list[Term]] = {}
        """Temps that hold the multiply of a fused multiply-add: its operands."""
        self._sums: dict[int, tuple[str, list[Term]]] = {}
        """Temps that hold a fused multiply-add: its function (``Fma``, ``Fms``), operands."""

    def execute(self, irsb: pyvex.IRSB, mnemonic: str) -> None:
        """Run one instruction's IR."""
        self.temps = {}
        self._fused = mnemonic in FUSED
        self._products, self._sums = {}, {}
        for stmt in irsb.statements:
            tag = stmt.tag
            if tag == "Ist_WrTmp":
                self.temps[stmt.tmp] = self._fuse(stmt.tmp, stmt.data) if self._fused \
                    else self.expr(stmt.data)
            elif tag == "Ist_Put":
                self.put(stmt.offset, self.expr(stmt.data))
            elif tag == "Ist_Store":
                self.store(self.expr(stmt.addr), self.expr(stmt.data), stmt.end)
            elif tag == "Ist_Exit":
                if stmt.jumpkind != "Ijk_SigFPE_IntDiv":  # see the module docstring
                    raise NotCovered(f"a branch ({stmt.jumpkind})")
            elif tag not in ("Ist_IMark", "Ist_NoOp", "Ist_AbiHint"):
                raise NotCovered(f"VEX statement {tag}")
        if self._fused and not self._sums:
            raise NotCovered(f"{mnemonic} (no fused multiply-add in its VEX IR)")

    def _fuse(self, tmp: int, e: pyvex.expr.IRExpr) -> Term:
        """The value of temp ``tmp`` in a fused multiply-add: VEX's multiply, then its add or
        subtract (then negation) read back as one fused function of the multiply's operands."""
        tag, op = e.tag, getattr(e, "op", "")
        args = [self.expr(a) for a in e.args] if hasattr(e, "args") else []
        if tag == "Iex_Triop" and _FP_MUL.fullmatch(op):
            self._products[tmp] = args
        elif tag == "Iex_Triop" and _FP_ADD_SUB.fullmatch(op) and e.args[2].tag == "Iex_RdTmp" \
                and e.args[2].tmp in self._products:
            rounding, a, b = self._products[e.args[2].tmp]
            kind = "Fma" if op.startswith("Iop_Add") else "Fms"
            self._sums[tmp] = (kind, [rounding, a, b, args[1]])
            return self._fused_value(kind, op, self._sums[tmp][1])
        elif tag == "Iex_Unop" and re.fullmatch(r"Iop_NegF(32|64)", op) \
                and e.args[0].tag == "Iex_RdTmp" and e.args[0].tmp in self._sums:
            kind, operands = self._sums[e.args[0].tmp]
            return self._fused_value({"Fma": "Fnma", "Fms": "Fnms"}[kind], op, operands)
        return self.expr(e)

    def _fused_value(self, kind: str, op: str, operands: list[Term]) -> Term:
        """``kind`` applied to ``(rounding, a, b, c)``, lane by lane for a vector operation."""
        t = self.t
        shape = re.search(r"(F32|F64|32Fx4|64Fx2|32Fx2)$", op)
        assert shape is not None
        bits = 32 if "32" in shape.group(1) else 64
        rounding, *vectors = operands
        if vectors[0].width == bits:
            return t.apply(f"{kind}F{bits}", operands, bits)
        lanes = zip(*(_lanes(t, v, bits) for v in vectors), strict=True)
        return t.concat(t.apply(f"{kind}F{bits}", [rounding, *lane], bits) for lane in lanes)

    def expr(self, e: pyvex.expr.IRExpr) -> Term:
        tag = e.tag
        if tag == "Iex_RdTmp":
            return self.temps[e.tmp]
        if tag == "Iex_Get":
            return self.get(e.offset, pyvex.const.get_type_size(e.ty))
        if tag == "Iex_Const":
            value = e.con.value
            if isinstance(value, float):  # an F32/F64 constant: its bits
                value = int.from_bytes(struct.pack("<d" if e.con.size == 64 else "<f", value),
                                       "little")
            return self.t.const(value, e.con.size)
        if tag in ("Iex_Unop", "Iex_Binop", "Iex_Triop", "Iex_Qop"):
            args = [self.expr(a) for a in e.args]
            return self.machine.meaning(e.op, len(args))(self.t, args)
        if tag == "Iex_Load":
            if e.end != "Iend_LE":
                raise NotCovered("a big-endian access")
            return self.load(self.expr(e.addr), pyvex.const.get_type_size(e.ty) // 8)
        if tag == "Iex_ITE":
            return self.t.op("ite", self.expr(e.cond), self.expr(e.iftrue), self.expr(e.iffalse))
        if tag == "Iex_CCall":
            return self.helper(e.cee.name, [self.expr(a) for a in e.args])
        raise NotCovered(f"VEX expression {tag}")

    # registers

    def _slot(self, offset: int, size: int) -> str:
        slot = _SLOT_AT.get(offset)
        if slot is None or _SLOT_AT.get(offset + size - 1) != slot:
            raise NotCovered(f"the guest register {_ARCH.translate_register_name(offset, size)}")
        return slot

    def get(self, offset: int, bits: int) -> Term:
        if offset == _PC:
            raise NotCovered("a read of the program counter")
        slot = self._slot(offset, bits // 8)
        low = 8 * (offset - _OFFSET[slot])
        return self.t.extract(self.registers[slot], low + bits - 1, low)

    def put(self, offset: int, value: Term) -> None:
        if offset == _PC:
            return
        slot = self._slot(offset, value.width // 8)
        if slot == "fpcr":  # its other fields than the rounding mode change FP results too
            raise NotCovered("a write of FPCR")
        old, low = self.registers[slot], 8 * (offset - _OFFSET[slot])
        parts = [self.t.extract(old, low - 1, 0)] if low else []
        parts.append(value)
        if low + value.width < old.width:
            parts.append(self.t.extract(old, old.width - 1, low + value.width))
        self.registers[slot] = self.t.concat(parts)

    # memory

    def _relation(self, a: Term, n: int, b: Term, m: int) -> str:
        """``disjoint``, ``same`` (same bytes), ``overlap`` (same base, some bytes) or ``unknown``
        for the byte ranges ``[a, a + n)`` and ``[b, b + m)``."""
        base_a, offset_a = split(a)
        base_b, offset_b = split(b)
        if base_a is base_b:
            delta = _delta(offset_a, offset_b)
            if delta >= n or -delta >= m:
                return "disjoint"
            return "same" if delta == 0 and n == m else "overlap"
        if self.machine.on_stack(base_a) != self.machine.on_stack(base_b):
            return "disjoint"  # the stack precondition
        return "unknown"

    def _address(self, address: Term, size: int) -> Term:
        self.accesses.append((address, size))
        return address

    def load(self, address: Term, size: int) -> Term:
        t = self.t
        address = self._address(address, size)
        data: list[Term | None] = [None] * size
        before = 0  # the stores a byte not yet found reads through
        for index in range(len(self.writes) - 1, -1, -1):
            target, width, value = self.writes[index]
            relation = self._relation(address, size, target, width)
            if relation == "unknown":
                before = index + 1
                break
            if relation != "disjoint":
                delta = _delta(split(target)[1], split(address)[1])
                for i in range(size):
                    if data[i] is None and 0 <= delta + i < width:
                        byte = delta + i
                        data[i] = t.extract(value, 8 * byte + 7, 8 * byte)
                if all(d is not None for d in data):
                    break
        memory = self.memory(before) if None in data else None
        return t.concat(d if d is not None else t.select(memory, self._byte(address, i))
                        for i, d in enumerate(data))

    def _byte(self, address: Term, i: int) -> Term:
        return self.t.op("add", address, self.t.const(i, 64)) if i else address

    def store(self, address: Term, value: Term, endness: str) -> None:
        if endness != "Iend_LE":
            raise NotCovered("a big-endian access")
        size = value.width // 8
        self.writes.append((self._address(address, size), size, value))

    def memory(self, count: int) -> Term:
        """The memory after the first ``count`` stores, canonical (see the class docstring)."""
        known = self._memories.get(count)
        if known is not None:
            return known
        ordered: list[Write] = []
        for write in self.writes[:count]:
            target, width, _ = write
            ordered = [w for w in ordered if not self._covers(target, width, w[0], w[1])]
            at = len(ordered)
            while at > 0 and self._relation(ordered[at - 1][0], ordered[at - 1][1], target,
                                            width) == "disjoint" \
                    and self._key(ordered[at - 1]) > self._key(write):
                at -= 1
            ordered.insert(at, write)
        t = self.t
        memory = t.memory()
        for target, width, value in ordered:
            for i in range(width):
                memory = t.store(memory, self._byte(target, i), t.extract(value, 8 * i + 7, 8 * i))
        self._memories[count] = memory
        return memory

    def _covers(self, a: Term, n: int, b: Term, m: int) -> bool:
        """Whether ``[a, a + n)`` certainly holds all of ``[b, b + m)``."""
        base_a, offset_a = split(a)
        base_b, offset_b = split(b)
        delta = _delta(offset_a, offset_b)
        return base_a is base_b and delta >= 0 and delta + m <= n

    def _key(self, write: Write) -> tuple[bool, int, int]:
        base, offset = split(write[0])
        return (self.machine.on_stack(base), -1 if base is None else base.id,
                _delta(0, offset))

    # VEX's flag helpers (guest_arm64_helpers.c)

    def helper(self, name: str, args: list[Term]) -> Term:
        t = self.t
        if name == "arm64g_calculate_condition":
            cond_n_op, dep1, dep2, dep3 = args
            cond = t.extract(cond_n_op, 7, 4)
            if cond.op != "const":
                raise NotCovered("a condition that is not a constant")
            nzcv = _flags(t, t.extract(cond_n_op, 3, 0), dep1, dep2, dep3)
            return t.zext(_condition(t, cond.value, nzcv), 63)
        if name == "arm64g_calculate_flags_nzcv":
            return t.zext(t.concat([t.const(0, 28), _flags(t, *args)]), 32)
        if name == "arm64g_calculate_flag_c":
            return t.zext(t.extract(_flags(t, *args), 1, 1), 63)
        raise NotCovered(f"the VEX helper {name}")

    def effect(self) -> Effect:
        r = self.registers
        return Effect({name: r[name] for name in COMPARED},
                      _flags(self.t, r["cc_op"], r["cc_dep1"], r["cc_dep2"], r["cc_ndep"]),
                      self.memory(len(self.writes)), self.accesses)


_ARITHMETIC = re.compile(r"(Add|Sub|Mul|Div|Fma|Fms|Fnma|Fnms)F(32|64)")
"""The floating-point functions whose operands (after the rounding mode) are all numbers."""


def _normal_floats(t: Terms, term: Term) -> list[Term]:
    """For each operand of the floating-point arithmetic ``term`` uses: a normal number of
    moderate size, its biased exponent within half the bias of the bias (1-bit terms), so that
    a product or sum of two neither overflows nor underflows."""
    seen, stack, out = set(), [term], []
    while stack:
        node = stack.pop()
        if node.id in seen:
            continue
        seen.add(node.id)
        stack.extend(node.args)
        if node.op == "uf" and _ARITHMETIC.fullmatch(str(node.params[0])):
            for operand in node.args[1:]:
                top, low = operand.width - 2, 23 if operand.width == 32 else 52
                exponent, bias = t.extract(operand, top, low), (1 << (top - low)) - 1
                out += [t.op("ule", t.const(bias - bias // 2, top - low + 1), exponent),
                        t.op("ule", exponent, t.const(bias + bias // 2, top - low + 1))]
    return out


def lift(word: bytes, address: int) -> pyvex.IRSB:
    """VEX IR of one instruction at ``address``; ``NotCovered`` if pyvex cannot decode it or it
    branches."""
    data = pyvex.ffi.from_buffer(pyvex.ffi.BVoidP, word + b"\0" * 8)
    irsb = LibVEXLifter(_ARCH, address).lift(data, 0, 4, 1, 1, 0, True, True)
    if irsb.size != 4 or irsb.jumpkind == "Ijk_NoDecode":
        raise NotCovered(f"{word[::-1].hex()}, which pyvex cannot decode")
    if irsb.jumpkind != "Ijk_Boring" or not isinstance(irsb.next, pyvex.expr.Const) \
            or irsb.next.con.value != address + 4:
        raise NotCovered(f"a branch ({irsb.jumpkind}) before the end of the block")
    return irsb


def _pc_relative(inst: Instruction) -> bool:
    """Whether an instruction's VEX IR holds its own address (``adr``, a literal load)."""
    return inst.mnemonic in ("adr", "adrp") or (
        inst.access is not None and not any(o.startswith("[") for o in inst.operands))


class Prover:
    """Proves or refutes that rewrites of blocks compute what the blocks compute (see the module
    docstring). The runs of up to ``originals_kept`` original blocks are kept.

    ``code_base`` is where the emulator that replays counterexamples puts the code: a
    counterexample's accesses are kept out of the code's pages so that it replays as found."""

    def __init__(self, time_limit: float = DEFAULT_TIME_LIMIT, *, code_base: int,
                 originals_kept: int = 256, terms_kept: int = 1 << 18) -> None:
        if time_limit <= 0:
            raise ValueError(f"the proof time limit must be positive, not {time_limit}")
        self.time_limit = time_limit
        self.code_base = code_base
        self._machine = _Machine(terms_kept)
        self._ctx = z3.Context()
        self._originals: LRU[bytes, Effect | NotCovered] = LRU(originals_kept)
        self._rewrites: LRU[bytes, Effect | NotCovered] = LRU(16)
        self._lifted: LRU[tuple[bytes, int], pyvex.IRSB | NotCovered] = LRU(1 << 14)
        self._generation = self._machine.terms.generation

    def effect(self, text: str, code: bytes) -> Effect:
        """The symbolic effect of a block (``text`` assembled to ``code``); ``NotCovered`` if it
        holds something the prover does not model."""
        instructions = parse_block(text)
        if 4 * len(instructions) != len(code):
            raise NotCovered(f"{len(instructions)} instructions assembled to {len(code)} bytes")
        run = _Run(self._machine)
        for index, inst in enumerate(instructions):
            run.execute(self._lift(code[4 * index:4 * index + 4], inst, index), inst.mnemonic)
        return run.effect()

    def _lift(self, word: bytes, inst: Instruction, index: int) -> pyvex.IRSB:
        """:func:`lift`, kept by instruction word: at the code's base for every instruction
        that does not read its own address, so a rewrite's instructions are mostly known."""
        address = self.code_base + 4 * index if _pc_relative(inst) else self.code_base
        lifted = self._lifted.get((word, address))
        if lifted is None:
            try:
                lifted = lift(word, address)
            except NotCovered as err:
                lifted = NotCovered(f"instruction {index + 1} ({inst}): {err}".replace("\t", " "))
            self._lifted.put((word, address), lifted)
        if isinstance(lifted, NotCovered):
            raise lifted
        return lifted

    def prove(self, original: str, original_code: bytes, rewritten: str,
              rewritten_code: bytes, *, solve: bool = True, normal_floats: bool = False) -> Proof:
        """Whether ``rewritten`` computes what ``original`` computes from every state.

        ``solve=False`` stops before z3: ``proved`` when the blocks' effects are the same terms,
        else ``unknown`` (the runs are kept for the call that solves).

        ``normal_floats``: look for a counterexample whose floating-point operands are normal
        numbers of moderate size (no zero, subnormal, infinity or NaN, no overflow), where the
        arbitrary values z3 gives the uninterpreted functions are most often the hardware's
        too: for a second try when a counterexample does not replay. Such a search proves nothing
        (unsat is ``unknown``)."""
        start = time.perf_counter()
        try:
            before = self._original(original, original_code)
            after = self._rewritten(rewritten, rewritten_code)
        except NotCovered as err:
            return Proof("unknown", f"not covered: {err}", seconds=time.perf_counter() - start)
        t = self._machine.terms
        pairs = zip([*before.registers.values(), before.nzcv, before.memory],
                    [*after.registers.values(), after.nzcv, after.memory], strict=True)
        differences = [t.op("not", t.op("eq", a, b)) for a, b in pairs if a is not b]
        if not differences:
            return Proof("proved", seconds=time.perf_counter() - start)
        if not solve:
            return Proof("unknown", "the effects differ as terms",
                         seconds=time.perf_counter() - start)
        differ = differences[0]
        for difference in differences[1:]:
            differ = t.op("or", differ, difference)
        accesses = list(dict.fromkeys(before.accesses + after.accesses))
        query = [*self._preconditions(accesses), differ]
        if normal_floats:
            query += _normal_floats(t, differ)
        status, leaves = self._solve(query, start)
        if status == z3.sat and not self._replayable(leaves, accesses, original_code,
                                                     rewritten_code):
            status, leaves = self._solve(
                query + self._replay_constraints(accesses, original_code, rewritten_code), start)
            if status == z3.unsat:
                return Proof("unknown", "the blocks differ only when they access their own code "
                             "(no counterexample to replay)", seconds=time.perf_counter() - start)
        seconds = time.perf_counter() - start
        if status == z3.unsat and normal_floats:
            return Proof("unknown", "no counterexample with moderate floating-point operands",
                         seconds=seconds)
        if status == z3.unsat:
            return Proof("proved", seconds=seconds)
        if status == z3.sat:
            return Proof("refuted", counterexample=self._counterexample(leaves, accesses),
                         seconds=seconds)
        return Proof("unknown", f"no proof within the time limit ({self.time_limit * 1000:.0f} ms)",
                     seconds=seconds)

    def _original(self, text: str, code: bytes) -> Effect:
        if self._generation != self._machine.terms.generation:  # terms started afresh
            self._originals, self._rewrites = LRU(self._originals.size), LRU(self._rewrites.size)
            self._generation = self._machine.terms.generation
        return self._kept(self._originals, text, code)

    def _rewritten(self, text: str, code: bytes) -> Effect:
        return self._kept(self._rewrites, text, code)

    def _kept(self, kept: LRU[bytes, Effect | NotCovered], text: str, code: bytes) -> Effect:
        """:meth:`effect`, kept in ``kept`` (a block not covered too)."""
        effect = kept.get(code)
        if effect is None:
            try:
                effect = self.effect(text, code)
            except NotCovered as err:
                effect = err
            kept.put(code, effect)
        if isinstance(effect, NotCovered):
            raise effect
        return effect

    def _solve(self, query: Sequence[Term], start: float) -> tuple[z3.CheckSatResult, Leaves | None]:
        """z3's answer to ``query`` within what is left of the time limit, and the initial state
        of its model when it found one."""
        script = smtlib(query, self._machine.terms)
        solver = z3.SimpleSolver(ctx=self._ctx)
        left = self.time_limit - (time.perf_counter() - start)
        solver.set("timeout", max(1, int(left * 1000)))
        solver.from_string(script.text)
        status = solver.check()
        return status, self._leaves(solver.model(), script) if status == z3.sat else None

    def _preconditions(self, accesses: Sequence[tuple[Term, int]]) -> list[Term]:
        """The module docstring's preconditions over these accesses (1-bit terms)."""
        t, machine = self._machine.terms, self._machine
        constraints = [t.op("eq", t.extract(machine.sp, 3, 0), t.const(0, 4))]
        stack, other = [], []
        for address, size in accesses:
            constraints.append(t.op("ule", address, t.const(2**64 - size, 64)))
            (stack if machine.on_stack(split(address)[0]) else other).append((address, size))
        for (a, n), (b, m) in ((s, o) for s in stack for o in other):
            constraints.append(t.op("and", t.op("ule", t.const(n, 64), t.op("sub", b, a)),
                                    t.op("ule", t.const(m, 64), t.op("sub", a, b))))
        return [c for c in constraints if c.op != "const" or not c.value]  # true ones go

    def _code_region(self, *codes: bytes) -> tuple[int, int]:
        page = 0x1000
        size = max(len(c) for c in codes)
        return self.code_base, self.code_base + ((size + page - 1) // page * page or page)

    def _replayable(self, leaves: Leaves | None, accesses: Sequence[tuple[Term, int]],
                    *codes: bytes) -> bool:
        assert leaves is not None
        low, high = self._code_region(*codes)
        memo: dict[int, int] = {}
        for address, size in accesses:
            value = evaluate(address, leaves, memo)
            if value < high and value + size > low:
                return False
        return True

    def _replay_constraints(self, accesses: Sequence[tuple[Term, int]],
                            *codes: bytes) -> list[Term]:
        t = self._machine.terms
        low, high = self._code_region(*codes)
        return [t.op("or", t.op("ule", t.op("add", address, t.const(size, 64)), t.const(low, 64)),
                     t.op("ule", t.const(high, 64), address)) for address, size in accesses]

    def _leaves(self, model: z3.ModelRef, script: Script) -> Leaves:
        """The initial state a z3 model of ``script`` describes (memory not read: zeros)."""
        ctx = self._ctx
        values = {d.name(): model[d] for d in model.decls() if d.arity() == 0}
        memo: dict[int, int] = {}

        def var(name: str) -> int:
            value = values.get(name)
            return value.as_long() if isinstance(value, z3.BitVecNumRef) else 0

        def byte(address: int) -> int:
            for read, name in script.reads:
                if evaluate(read, leaves, memo) == address:
                    return var(name)
            return 0

        def apply(name: str, args: Sequence[int], widths: Sequence[int], width: int) -> int:
            function = z3.Function(name, *(z3.BitVecSort(w, ctx) for w in widths),
                                   z3.BitVecSort(width, ctx))
            call = function(*(z3.BitVecVal(a, w, ctx) for a, w in zip(args, widths, strict=True)))
            return model.eval(call, model_completion=True).as_long()

        leaves = Leaves(var, byte, apply)
        return leaves

    def _counterexample(self, leaves: Leaves | None,
                        accesses: Sequence[tuple[Term, int]]) -> Counterexample:
        assert leaves is not None
        memo: dict[int, int] = {}
        registers = {name: leaves.var(name) for name in _X}
        registers["sp"] = leaves.var("xsp")
        registers.update({name: leaves.var(name) for name in _Q})
        registers["nzcv"] = leaves.var("nzcv") & 0xF000_0000
        registers["fpcr"] = leaves.var("fpcr")
        memory = {}
        for address, size in accesses:
            start = evaluate(address, leaves, memo)
            for i in range(size):
                at = (start + i) % 2**64
                memory[at] = leaves.byte(at)
        return Counterexample(registers, memory)

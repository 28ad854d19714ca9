"""Equivalence of two straight-line AArch64 blocks: run both in unicorn and compare.

Both blocks start from the same random machine state: general registers, FP/SIMD registers, NZCV
and SP. Memory is mapped on demand, page by page, with contents that are a deterministic function
of the seed, the state and the page, so both runs see the same memory. This is repeated for
``states`` random states (half draw every pointer near two bases, half spread them over 16 MiB)
plus one *alias state* per pair of memory operands of the original with different base registers,
``[r, #a]`` and ``[s, #b]``, in which ``s + b == r + a``: reordering two accesses that may alias is
caught, not left to chance (at most ``max_alias_states`` of them, drawn with the seed).

After both runs the checker compares every general register, SP, every FP/SIMD register, the
flags and every byte either run wrote. The first difference is reported, classified as in the
peephole study: ``assemble`` (with the assembler's message), ``register``, ``memory`` (address and
bytes), ``flags`` or ``crash`` (the rewrite faults, loops or leaves the block where the
original does not).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Literal

import numpy as np
from unicorn import (
    UC_ARCH_ARM64,
    UC_HOOK_MEM_READ_UNMAPPED,
    UC_HOOK_MEM_WRITE,
    UC_HOOK_MEM_WRITE_UNMAPPED,
    UC_MODE_ARM,
    UC_PROT_ALL,
    Uc,
    UcError,
)
from unicorn import arm64_const as regs

from optarena.envs.aarch64_peephole.toolchain import AssembleError, Toolchain

FailureKind = Literal["assemble", "register", "memory", "flags", "crash"]

PAGE = 0x1000
CODE_BASE = 0x1000_0000
DATA_BASE = 0x1_0000_0000
DATA_SPAN = 1 << 24
X_REGS = [(f"x{i}", getattr(regs, f"UC_ARM64_REG_X{i}")) for i in range(31)]
_MEMORY_OPERAND = re.compile(r"\[\s*(x\d+|sp)\s*(?:,\s*#?(-?(?:0x[0-9a-f]+|\d+)))?\s*\]", re.I)
Alias = tuple[str, str, int]
"""``(r, s, delta)``: register ``s`` is set to ``r + delta``."""


def alias_constraints(asm: str) -> list[Alias]:
    """For each pair of memory operands ``[r, #a]``, ``[s, #b]`` with ``r != s``: ``s = r + a - b``.

    The stack pointer is left out: in C a non-escaped local never aliases a pointer, and LLVM
    reorders stack accesses past pointer accesses on that ground.
    """
    operands = sorted({(m.group(1).lower(), int(m.group(2) or "0", 0))
                       for m in _MEMORY_OPERAND.finditer(asm)})
    return sorted({(r, s, a - b) for (r, a), (s, b) in itertools.permutations(operands, 2)
                   if r != s and "sp" not in (r, s)})
Q_REGS = [(f"q{i}", getattr(regs, f"UC_ARM64_REG_Q{i}")) for i in range(32)]


@dataclass(frozen=True)
class Failure:
    kind: FailureKind
    detail: str
    state: int = -1
    """The random state (0-based) where the difference showed; -1 when not run."""


@dataclass(frozen=True)
class CheckResult:
    equivalent: bool
    failure: Failure | None = None
    states: int = 0


@dataclass(frozen=True)
class _Initial:
    x: list[int]
    q: list[int]
    sp: int
    nzcv: int


class _Run:
    """One emulation of one block from one initial state."""

    def __init__(self, code: bytes, initial: _Initial, memory_seed: tuple[int, ...]) -> None:
        self.memory_seed = memory_seed
        self.written: set[int] = set()
        self.uc = Uc(UC_ARCH_ARM64, UC_MODE_ARM)
        size = (len(code) + PAGE - 1) // PAGE * PAGE or PAGE
        self.uc.mem_map(CODE_BASE, size, UC_PROT_ALL)
        self.uc.mem_write(CODE_BASE, code)
        self.end = CODE_BASE + len(code)
        for (_, reg), value in zip(X_REGS, initial.x, strict=True):
            self.uc.reg_write(reg, value)
        for (_, reg), value in zip(Q_REGS, initial.q, strict=True):
            self.uc.reg_write(reg, value)
        self.uc.reg_write(regs.UC_ARM64_REG_SP, initial.sp)
        self.uc.reg_write(regs.UC_ARM64_REG_NZCV, initial.nzcv)
        self.uc.hook_add(UC_HOOK_MEM_READ_UNMAPPED | UC_HOOK_MEM_WRITE_UNMAPPED, self._map)
        self.uc.hook_add(UC_HOOK_MEM_WRITE, self._record)

    def page_contents(self, page: int) -> bytes:
        return np.random.default_rng([*self.memory_seed, page]).bytes(PAGE)

    def ensure_mapped(self, address: int) -> None:
        page = address & ~(PAGE - 1)
        if not any(start <= page < end + 1 for start, end, _ in self.uc.mem_regions()):
            self.uc.mem_map(page, PAGE, UC_PROT_ALL)
            self.uc.mem_write(page, self.page_contents(page))

    def _map(self, uc: Uc, access: int, address: int, size: int, value: int, data: object) -> bool:
        for byte in (address, address + size - 1):
            self.ensure_mapped(byte)
        return True

    def _record(self, uc: Uc, access: int, address: int, size: int, value: int,
                data: object) -> None:
        self.written.update(range(address, address + size))

    def run(self, max_instructions: int) -> str | None:
        """Emulate; return why it did not run to the end of the block, or None."""
        try:
            self.uc.emu_start(CODE_BASE, self.end, count=max_instructions)
        except UcError as err:
            pc = self.uc.reg_read(regs.UC_ARM64_REG_PC)
            return f"{err} at instruction {(pc - CODE_BASE) // 4}"
        pc = self.uc.reg_read(regs.UC_ARM64_REG_PC)
        if pc != self.end:
            return f"stopped at pc+{pc - CODE_BASE:#x}, not at the end of the block (branch or loop)"
        return None

    def byte(self, address: int) -> int:
        self.ensure_mapped(address)
        return self.uc.mem_read(address, 1)[0]


class EquivalenceChecker:
    """Decides whether a rewritten block behaves like the original on random states."""

    def __init__(self, toolchain: Toolchain | None = None, *, states: int = 8, seed: int = 0,
                 max_alias_states: int = 32, max_instructions: int = 10_000) -> None:
        self.toolchain = toolchain or Toolchain()
        self.states = states
        self.seed = seed
        self.max_alias_states = max_alias_states
        self.max_instructions = max_instructions

    def initial_state(self, index: int, alias: Alias | None = None) -> _Initial:
        rng = np.random.default_rng([self.seed, index])
        if index % 2 == 0:  # aliasing: pointers near two bases
            bases = DATA_BASE + rng.integers(0, DATA_SPAN // 16, size=2) * 16
            x = [int(bases[rng.integers(2)] + 8 * rng.integers(-32, 33)) for _ in X_REGS]
            sp = int(bases[0]) - 1024
        else:
            x = [int(DATA_BASE + 8 * rng.integers(0, DATA_SPAN // 8)) for _ in X_REGS]
            sp = DATA_BASE + DATA_SPAN // 2
        q = [int.from_bytes(rng.bytes(16), "little") for _ in Q_REGS]
        if alias is not None:
            r, s, delta = alias
            x[int(s[1:])] = (x[int(r[1:])] + delta) & (2**64 - 1)
        return _Initial(x, q, sp, int(rng.integers(16)) << 28)

    def check(self, original: str, rewritten: str) -> CheckResult:
        """Compare the rewritten block with the original on ``states`` random states.

        Raises ``ValueError`` when the *original* does not assemble or does not run to its end.
        """
        try:
            code_a = self.toolchain.assemble(original)
        except AssembleError as err:
            raise ValueError(f"the original block does not assemble: {err.message}") from err
        try:
            code_b = self.toolchain.assemble(rewritten)
        except AssembleError as err:
            return CheckResult(False, Failure("assemble", err.message))
        aliases = alias_constraints(original)
        if len(aliases) > self.max_alias_states:
            rng = np.random.default_rng(self.seed)
            picked = rng.choice(len(aliases), self.max_alias_states, replace=False)
            aliases = [aliases[i] for i in sorted(picked)]
        plan: list[Alias | None] = [None] * self.states + list(aliases)
        for index, alias in enumerate(plan):
            failure = self._compare(code_a, code_b, index, alias)
            if failure is not None:
                return CheckResult(False, failure, index + 1)
        return CheckResult(True, None, len(plan))

    def _compare(self, code_a: bytes, code_b: bytes, index: int,
                 alias: Alias | None) -> Failure | None:
        initial = self.initial_state(index, alias)
        memory_seed = (self.seed, index)
        a, b = _Run(code_a, initial, memory_seed), _Run(code_b, initial, memory_seed)
        error_a = a.run(self.max_instructions)
        if error_a is not None:
            raise ValueError(f"the original block does not run to its end: {error_a}")
        error_b = b.run(self.max_instructions)
        if error_b is not None:
            return Failure("crash", error_b, index)
        for name, reg in [*X_REGS, ("sp", regs.UC_ARM64_REG_SP)]:
            va, vb = a.uc.reg_read(reg), b.uc.reg_read(reg)
            if va != vb:
                return Failure("register", f"{name} = {vb:#x}, expected {va:#x}", index)
        for name, reg in Q_REGS:
            va, vb = a.uc.reg_read(reg), b.uc.reg_read(reg)
            if va != vb:
                return Failure("register", f"{name} = {vb:#034x}, expected {va:#034x}", index)
        fa, fb = a.uc.reg_read(regs.UC_ARM64_REG_NZCV), b.uc.reg_read(regs.UC_ARM64_REG_NZCV)
        if fa != fb:
            return Failure("flags", f"NZCV = {fb >> 28:04b}, expected {fa >> 28:04b}", index)
        for address in sorted(a.written | b.written):
            if a.byte(address) != b.byte(address):
                window = range(address, address + 8)
                got = bytes(b.byte(x) for x in window).hex(" ")
                want = bytes(a.byte(x) for x in window).hex(" ")
                return Failure("memory", f"[{address:#x}] = {got}, expected {want}", index)
        return None

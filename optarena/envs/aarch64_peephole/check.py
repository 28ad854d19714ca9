"""Equivalence of two straight-line AArch64 blocks: run both in unicorn and compare.

Both blocks start from the same random machine state: general registers, FP/SIMD registers, NZCV
and SP (every other CPU register as in a new engine). Memory is mapped on demand, page by page,
with contents that are a deterministic function of the seed, the state and the page, so both runs
see the same memory. This is repeated for ``states`` random states (half draw every pointer near
two bases, half spread them over 16 MiB) plus one *alias state* per pair of memory operands of the
original with different base registers, ``[r, #a]`` and ``[s, #b]``, in which ``s + b == r + a``:
reordering two accesses that may alias is caught, not left to chance (at most
``max_alias_states`` of them, drawn with the seed).

After both runs the checker compares every general register, SP, every FP/SIMD register, the
flags and every byte either run wrote. The first difference is reported, classified as in the
peephole study: ``assemble`` (with the assembler's message), ``register``, ``memory`` (address and
bytes), ``flags`` or ``crash`` (the rewrite faults, loops or leaves the block where the
original does not).

**Proofs.** Given a time limit (``proof_time_limit``), the prover
(:mod:`~optarena.envs.aarch64_peephole.prove`) decides rewrites for every state. A rewrite whose
effect is the original's term for term (most legal rewrites) is proved at once, with no random
state; any other first meets the random states, which refute a wrong one faster than z3, and
only a rewrite that passes them goes to z3, as STOKE tests and then verifies. Each result
carries a **verdict**: ``proved``;
``refuted`` (a random state differs, or the prover's counterexample does, replayed here in
unicorn: a counterexample unicorn does not confirm counts for nothing); or ``tested`` (passed
the random states; the prover was off, ran out of time, or does not cover an instruction of the
blocks, as ``note`` says).

**Speed.** One unicorn engine serves every run of a checker: each run restores a saved CPU
context (the state's registers on top of a new engine's), rewrites the code and unmaps the
previous run's data pages, so it starts exactly as in a new engine. The original block's final
states are kept per state (bounded, least recently used first out), so candidate rewrites of the
same block run only themselves; :meth:`EquivalenceChecker.check_many` also assembles a whole batch
with one toolchain call. The compared registers are read with one C call into one buffer and
compared as bytes (the binding's ``reg_read_batch`` builds a Python object per register: two
thirds of a run's time); their values are decoded only to describe a difference.
"""

from __future__ import annotations

import ctypes
import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
from unicorn import (
    UC_ARCH_ARM64,
    UC_ERR_OK,
    UC_HOOK_MEM_READ_UNMAPPED,
    UC_HOOK_MEM_WRITE,
    UC_HOOK_MEM_WRITE_UNMAPPED,
    UC_MODE_ARM,
    UC_PROT_ALL,
    Uc,
    UcError,
)
from unicorn import arm64_const as regs
from unicorn.unicorn import UcContext
from unicorn.unicorn_py3.unicorn import uclib

from optarena.envs.aarch64_peephole.block import canonical, parse_block
from optarena.envs.aarch64_peephole.prove import Counterexample, Prover
from optarena.envs.aarch64_peephole.toolchain import AssembleError, Toolchain
from optarena.envs.lru import LRU

FailureKind = Literal["assemble", "register", "memory", "flags", "crash"]
Verdict = Literal["proved", "refuted", "tested"]

PAGE = 0x1000
CODE_BASE = 0x1000_0000
DATA_BASE = 0x1_0000_0000
DATA_SPAN = 1 << 24
X_REGS = [(f"x{i}", getattr(regs, f"UC_ARM64_REG_X{i}")) for i in range(31)]
Q_REGS = [(f"q{i}", getattr(regs, f"UC_ARM64_REG_Q{i}")) for i in range(32)]
COMPARED = [*X_REGS, ("sp", regs.UC_ARM64_REG_SP), *Q_REGS, ("nzcv", regs.UC_ARM64_REG_NZCV)]
"""The registers compared after a run, in the order differences are looked for."""
REPLAY = -2
"""The state index of a run from the prover's counterexample."""
CONTEXTS_KEPT = 1024
"""Initial CPU contexts kept per checker (about 12 KiB each)."""
PAGES_KEPT = 1024
"""Initial data page contents kept per checker (4 KiB each)."""
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


@dataclass(frozen=True)
class CheckFailure:
    """How a rewritten block differs from the original (``kind``, what, on which state)."""

    kind: FailureKind
    detail: str
    state: int = -1
    """The random state (0-based) where the difference showed; -1 when not run, :data:`REPLAY`
    for the prover's counterexample."""


@dataclass(frozen=True)
class Equivalence:
    """The verdict of an equivalence check: equivalent on ``states`` random states, or the
    first difference found."""

    equivalent: bool
    failure: CheckFailure | None = None
    states: int = 0
    verdict: Verdict | None = None
    """None when the rewrite does not assemble (nothing to decide)."""
    note: str = ""
    """Why a ``tested`` rewrite was not proved."""
    counterexample: Counterexample | None = None
    """The prover's counterexample of a ``refuted`` rewrite (None when a random state refuted it)."""
    proof_seconds: float = field(default=0.0, compare=False)


@dataclass(frozen=True)
class _Initial:
    x: list[int]
    q: list[int]
    sp: int
    nzcv: int
    fpcr: int = 0


@dataclass(frozen=True)
class _Final:
    """Where one run of one block from one state ended."""

    registers: bytes
    """The values of :data:`COMPARED` as :class:`_RegisterFile` reads them."""
    written: dict[int, int]
    """Every byte the run wrote: address -> final value."""
    code: bytes
    """The code the run started with: the code region held it, then zeros to the end of a page."""
    state: int


@dataclass
class _Original:
    """An original block: its code, its states (``None`` or an alias) and its runs so far."""

    code: bytes
    plan: list[Alias | None]
    finals: dict[int, _Final | str] = field(default_factory=dict)
    """By state: the final state, or why the block did not run to its end."""


class _RegisterFile:
    """Reads :data:`COMPARED` from an engine with one ``uc_reg_read_batch`` call into one
    buffer: X registers and SP 8 bytes each, Q registers 16 (low quadword first), NZCV 8."""

    def __init__(self, uc: Uc) -> None:
        self.uc = uc
        sizes = [16 if name.startswith("q") else 8 for name, _ in COMPARED]
        self.slots = list(zip(itertools.accumulate([0, *sizes[:-1]]), sizes, strict=True))
        self.buffer = ctypes.create_string_buffer(sum(sizes))
        base = ctypes.addressof(self.buffer)
        self.ids = (ctypes.c_int * len(COMPARED))(*(reg for _, reg in COMPARED))
        self.pointers = (ctypes.c_void_p * len(COMPARED))(*(base + at for at, _ in self.slots))

    def read(self) -> bytes:
        """The engine's registers now (NZCV is written as 4 bytes; its other 4 stay zero)."""
        status = uclib.uc_reg_read_batch(self.uc._uch, self.ids, self.pointers, len(COMPARED))
        if status != UC_ERR_OK:
            raise UcError(status)
        return self.buffer.raw

    def values(self, raw: bytes) -> tuple[int, ...]:
        """The register values in ``raw`` (as ``Uc.reg_read_batch`` returns them)."""
        return tuple(int.from_bytes(raw[at:at + size], "little") for at, size in self.slots)


def _code_size(code: bytes) -> int:
    """The size of the code region for ``code``: whole pages, at least one."""
    return (len(code) + PAGE - 1) // PAGE * PAGE or PAGE


class _Machine:
    """One unicorn engine for every run: a run starts from a saved CPU context, its code written
    over the code region and no data page mapped (the previous run's are unmapped), so it sees
    what a new engine would."""

    def __init__(self, seed: int, initial_state: Callable[[int, Alias | None], _Initial]) -> None:
        self.seed = seed
        self.initial_state = initial_state
        self.uc = Uc(UC_ARCH_ARM64, UC_MODE_ARM)
        self.uc.hook_add(UC_HOOK_MEM_READ_UNMAPPED | UC_HOOK_MEM_WRITE_UNMAPPED, self._map)
        self.uc.hook_add(UC_HOOK_MEM_WRITE, self._record)
        self.pristine = self.uc.context_save()
        self.registers = _RegisterFile(self.uc)
        self.code_size = 0
        self.pages: set[int] = set()
        self.written: set[int] = set()
        self.state = 0
        self.example: Counterexample | None = None
        """The counterexample a :data:`REPLAY` run starts from."""
        self._contexts: LRU[tuple[int, Alias | None], UcContext] = LRU(CONTEXTS_KEPT)
        self._contents: LRU[tuple[int, int], bytes] = LRU(PAGES_KEPT)

    def context(self, state: int, alias: Alias | None) -> UcContext:
        """A new engine's CPU context with the registers of the state (kept)."""
        context = self._contexts.get((state, alias))
        if context is None:
            context = self._context(self.initial_state(state, alias))
            self._contexts.put((state, alias), context)
        return context

    def _context(self, initial: _Initial) -> UcContext:
        self.uc.context_restore(self.pristine)
        self.uc.reg_write_batch([
            *((reg, value) for (_, reg), value in zip(X_REGS, initial.x, strict=True)),
            *((reg, value) for (_, reg), value in zip(Q_REGS, initial.q, strict=True)),
            (regs.UC_ARM64_REG_SP, initial.sp), (regs.UC_ARM64_REG_NZCV, initial.nzcv),
            (regs.UC_ARM64_REG_FPCR, initial.fpcr),
        ])
        return self.uc.context_save()

    def page_contents(self, state: int, page: int) -> bytes:
        """The initial contents of a data page in a state (in a :data:`REPLAY`, the
        counterexample's bytes, zeros elsewhere)."""
        if state == REPLAY:
            assert self.example is not None
            contents = bytearray(PAGE)
            for address, byte in self.example.memory.items():
                if page <= address < page + PAGE:
                    contents[address - page] = byte
            return bytes(contents)
        contents = self._contents.get((state, page))
        if contents is None:
            contents = np.random.default_rng([self.seed, state, page]).bytes(PAGE)
            self._contents.put((state, page), contents)
        return contents

    def byte(self, final: _Final, address: int) -> int:
        """The byte at ``address`` after the run that ended in ``final``."""
        if address in final.written:
            return final.written[address]
        offset = address - CODE_BASE
        if 0 <= offset < _code_size(final.code):
            return final.code[offset] if offset < len(final.code) else 0
        page = address & ~(PAGE - 1)
        return self.page_contents(final.state, page)[address - page]

    def run(self, code: bytes, state: int, alias: Alias | None,
            max_instructions: int) -> _Final | str:
        """Emulate ``code`` from the state (registers, memory); where it ended, or why it did not
        run to the end of the block."""
        return self._execute(code, self.context(state, alias), state, max_instructions)

    def replay(self, code: bytes, example: Counterexample, max_instructions: int) -> _Final | str:
        """:meth:`run` from a counterexample's registers and memory."""
        self.example = example
        r = example.registers
        initial = _Initial([r[name] for name, _ in X_REGS], [r[name] for name, _ in Q_REGS],
                           r["sp"], r["nzcv"], r["fpcr"])
        return self._execute(code, self._context(initial), REPLAY, max_instructions)

    def _execute(self, code: bytes, context: UcContext, state: int,
                 max_instructions: int) -> _Final | str:
        for page in self.pages:
            self.uc.mem_unmap(page, PAGE)
        self.pages, self.written, self.state = set(), set(), state
        size = _code_size(code)
        if size != self.code_size:
            if self.code_size:
                self.uc.mem_unmap(CODE_BASE, self.code_size)
            self.uc.mem_map(CODE_BASE, size, UC_PROT_ALL)
            self.code_size = size
        self.uc.mem_write(CODE_BASE, code.ljust(size, b"\0"))  # drops the old code's translations
        self.uc.context_restore(context)
        end = CODE_BASE + len(code)
        try:
            self.uc.emu_start(CODE_BASE, end, count=max_instructions)
        except UcError as err:
            pc = self.uc.reg_read(regs.UC_ARM64_REG_PC)
            return f"{err} at instruction {(pc - CODE_BASE) // 4}"
        pc = self.uc.reg_read(regs.UC_ARM64_REG_PC)
        if pc != end:
            return f"stopped at pc+{pc - CODE_BASE:#x}, not at the end of the block (branch or loop)"
        registers = self.registers.read()
        written: dict[int, int] = {}
        for page, addresses in itertools.groupby(sorted(self.written), lambda a: a & ~(PAGE - 1)):
            contents = self.uc.mem_read(page, PAGE)
            written.update((address, contents[address - page]) for address in addresses)
        return _Final(registers, written, code, state)

    def _map(self, uc: Uc, access: int, address: int, size: int, value: int, data: object) -> bool:
        for page in {address & ~(PAGE - 1), (address + size - 1) & ~(PAGE - 1)}:
            if page not in self.pages and not 0 <= page - CODE_BASE < self.code_size:
                uc.mem_map(page, PAGE, UC_PROT_ALL)
                uc.mem_write(page, self.page_contents(self.state, page))
                self.pages.add(page)
        return True

    def _record(self, uc: Uc, access: int, address: int, size: int, value: int,
                data: object) -> None:
        self.written.update(range(address, address + size))


class EquivalenceChecker:
    """Decides whether a rewritten block behaves like the original on random states, then, with
    a ``proof_time_limit`` (seconds), on every state (see the module docstring).

    The settings are fixed at construction: the runs of up to ``originals_kept`` original blocks
    are kept and depend on them.
    """

    def __init__(self, toolchain: Toolchain | None = None, *, states: int = 8, seed: int = 0,
                 max_alias_states: int = 32, max_instructions: int = 10_000,
                 originals_kept: int = 256, proof_time_limit: float | None = None) -> None:
        self.toolchain = toolchain or Toolchain()
        self.states = states
        self.seed = seed
        self.max_alias_states = max_alias_states
        self.max_instructions = max_instructions
        self._machine = _Machine(seed, self.initial_state)
        self._originals: LRU[str, _Original] = LRU(originals_kept)
        self.prover = None if proof_time_limit is None else Prover(
            proof_time_limit, code_base=CODE_BASE, originals_kept=originals_kept)

    def initial_state(self, index: int, alias: Alias | None = None) -> _Initial:
        """The registers of random state ``index`` (a function of the seed and the index), with
        the alias applied."""
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

    def plan(self, original: str) -> list[Alias | None]:
        """The states a check of a rewrite of ``original`` runs: ``states`` random ones (None),
        then the alias states."""
        aliases = alias_constraints(original)
        if len(aliases) > self.max_alias_states:
            rng = np.random.default_rng(self.seed)
            picked = rng.choice(len(aliases), self.max_alias_states, replace=False)
            aliases = [aliases[i] for i in sorted(picked)]
        return [None] * self.states + list(aliases)

    def check(self, original: str, rewritten: str) -> Equivalence:
        """Compare the rewritten block with the original on ``states`` random states and the
        alias states.

        Raises ``ValueError`` when the *original* does not assemble or does not run to its end.
        """
        return self.check_many([(original, rewritten)])[0]

    def check_many(self, pairs: Sequence[tuple[str, str]]) -> list[Equivalence]:
        """:meth:`check` of each ``(original, rewritten)`` pair, the originals possibly different:
        every block assembled in one toolchain call, each original run once per state however
        many rewrites of it are checked (and kept for later batches)."""
        texts = list(dict.fromkeys(text for pair in pairs for text in pair))
        codes = dict(zip(texts, self.toolchain.assemble_many(texts), strict=True))
        results = []
        for original, rewritten in pairs:
            entry = self._original(original, codes[original])
            code = codes[rewritten]
            if isinstance(code, AssembleError):
                results.append(Equivalence(False, CheckFailure("assemble", code.message)))
                continue
            quick = None if self.prover is None else self.prover.prove(
                original, entry.code, rewritten, code, solve=False)
            if quick is not None and quick.status == "proved":
                results.append(Equivalence(True, verdict="proved", proof_seconds=quick.seconds))
                continue
            tested = self._compare(entry, code)
            if not tested.equivalent:
                results.append(replace(tested, verdict="refuted"))
            elif quick is None:
                results.append(replace(tested, verdict="tested", note="no proof asked for"))
            else:
                results.append(self._prove(original, entry, rewritten, code,
                                           replace(tested, proof_seconds=quick.seconds)))
        return results

    def _prove(self, original: str, entry: _Original, rewritten: str, code: bytes,
               tested: Equivalence) -> Equivalence:
        """The prover's verdict on a rewrite that passed the random states, its counterexample
        replayed in unicorn (``tested.proof_seconds``: what the prover spent on it before)."""
        assert self.prover is not None
        proof = self.prover.prove(original, entry.code, rewritten, code)
        seconds = tested.proof_seconds + proof.seconds
        if proof.status == "proved":
            return replace(tested, verdict="proved", proof_seconds=seconds)
        note = f"the prover: {proof.detail}"
        for normal_floats in (False, True):
            if proof.counterexample is None:
                break
            failure = self._replay(entry.code, code, proof.counterexample)
            if failure is not None:
                names = _registers_read(original, rewritten)
                detail = (f"{failure.detail} (from the prover's counterexample, replayed in "
                          f"unicorn: {proof.counterexample.describe(names)})")
                return Equivalence(False, replace(failure, detail=detail), tested.states,
                                   "refuted", counterexample=proof.counterexample,
                                   proof_seconds=seconds)
            note = ("the prover's counterexample does not replay in unicorn (a difference of its "
                    "model of floating-point arithmetic only)")
            if not normal_floats:  # once more, away from the values where that is likely
                proof = self.prover.prove(original, entry.code, rewritten, code,
                                          normal_floats=True)
                seconds += proof.seconds
        return replace(tested, verdict="tested", note=note, proof_seconds=seconds)

    def _replay(self, original: bytes, rewritten: bytes, example: Counterexample
                ) -> CheckFailure | None:
        """How the rewrite ends differently from the original from a counterexample, or None."""
        expected = self._machine.replay(original, example, self.max_instructions)
        if isinstance(expected, str):
            return None
        got = self._machine.replay(rewritten, example, self.max_instructions)
        return CheckFailure("crash", got, REPLAY) if isinstance(got, str) \
            else self._difference(expected, got)

    def _original(self, original: str, code: bytes | AssembleError) -> _Original:
        if isinstance(code, AssembleError):
            raise ValueError(f"the original block does not assemble: {code.message}")
        entry = self._originals.get(original)
        if entry is None:
            entry = _Original(code, self.plan(original))
            self._originals.put(original, entry)
        return entry

    def _compare(self, original: _Original, code: bytes) -> Equivalence:
        """Run ``code`` state after state until it differs from the original."""
        for state, alias in enumerate(original.plan):
            expected = original.finals.get(state)
            if expected is None:
                expected = self._machine.run(original.code, state, alias, self.max_instructions)
                original.finals[state] = expected
            if isinstance(expected, str):
                raise ValueError(f"the original block does not run to its end: {expected}")
            got = self._machine.run(code, state, alias, self.max_instructions)
            failure = (CheckFailure("crash", got, state) if isinstance(got, str)
                       else self._difference(expected, got))
            if failure is not None:
                return Equivalence(False, failure, state + 1)
        return Equivalence(True, None, len(original.plan))

    def _difference(self, a: _Final, b: _Final) -> CheckFailure | None:
        """The first difference of ``b`` from ``a``: registers in :data:`COMPARED` order, then
        the lowest written byte that differs."""
        if a.registers != b.registers:
            values = self._machine.registers.values
            for (name, _), va, vb in zip(COMPARED, values(a.registers), values(b.registers),
                                         strict=True):
                if va == vb:
                    continue
                if name == "nzcv":
                    return CheckFailure("flags", f"NZCV = {vb >> 28:04b}, expected {va >> 28:04b}",
                                   a.state)
                width = "#034x" if name.startswith("q") else "#x"
                return CheckFailure("register", f"{name} = {vb:{width}}, expected {va:{width}}",
                               a.state)
        byte = self._machine.byte
        for address in sorted(a.written.keys() | b.written.keys()):
            if byte(a, address) != byte(b, address):
                window = range(address, address + 8)
                got = bytes(byte(b, x) for x in window).hex(" ")
                want = bytes(byte(a, x) for x in window).hex(" ")
                return CheckFailure("memory", f"[{address:#x}] = {got}, expected {want}", a.state)
        return None


def _registers_read(*blocks: str) -> list[str]:
    """The registers the blocks read, as a counterexample names them (``x3``, ``sp``, ``q1``)."""
    read = {canonical(r) for block in blocks for inst in parse_block(block) for r in inst.reads()}
    names = [f"x{i}" for i in range(31) if f"x{i}" in read] + (["sp"] if "sp" in read else [])
    return names + [f"q{i}" for i in range(32) if f"v{i}" in read]

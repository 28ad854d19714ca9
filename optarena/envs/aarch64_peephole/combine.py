"""Rewrites beyond the load/store optimizer: dead instructions, fused operations, scheduling.

The corpora record no liveness past a block, so every register is live at its end: a value is
*dead* only when a later instruction of the block replaces it whole (:meth:`Instruction.kills
<optarena.envs.aarch64_peephole.block.Instruction.kills>`) before anything reads it.

**Dead definitions** (``dead_def``), after LLVM's ``DeadMachineInstructionElim``: a move,
arithmetic or logical instruction or a plain load (no writeback) whose one destination is dead
goes. Instructions that write the flags, SP, X29 or X30 stay.

**Fused operations** (``fuse``), after the AArch64 ``MachineCombiner`` patterns (``MULADD*``,
``MULSUB*``) and instruction selection's shifted-register operands:

* ``mul d, n, m`` ... ``add e, a, d`` (or ``add e, d, a``) -> ``madd e, n, m, a``;
  ``sub e, a, d`` -> ``msub e, n, m, a``;
* ``lsl|lsr|asr d, n, #s`` ... ``add|sub|and|orr|eor e, a, d`` (or their flag-setting forms,
  or ``cmp|cmn|tst a, d``) -> ``op e, a, n, lsl|lsr|asr #s`` (``d`` the second source; the
  first too for the commutative operations).

The consumer is the first reader of ``d`` after the producer and reads it once; ``d`` is dead
after the consumer (the consumer replaces it, or a later instruction does before any read);
nothing in between writes ``n`` or ``m``; all registers are of one width, none is SP. The fused
instruction takes the consumer's place and the producer goes.

**Scheduling** (``swap``), after LLVM's machine scheduler: two adjacent instructions exchange
places when neither reads or writes a register the other writes, they do not both touch the
flags unless both only read them, and they are not two memory accesses of which one stores and
the two may overlap. Branches, calls and barriers never move.
"""

from __future__ import annotations

from optarena.envs.aarch64_peephole.block import FLAG_FREE, PAIR_ACCESS, Instruction, canonical
from optarena.envs.aarch64_peephole.rules import KNOWN_ACCESSES, Rewrite, may_alias

_PINNED = frozenset({"sp", "x29", "x30", "xzr"})
_SHIFTS = frozenset({"lsl", "lsr", "asr"})
_SHIFTED_OPS = frozenset({"add", "sub", "and", "orr", "eor", "adds", "subs", "ands"})
_COMPARES = frozenset({"cmp", "cmn", "tst"})
_COMMUTATIVE = frozenset({"add", "and", "orr", "eor", "adds", "ands", "cmn", "tst"})


def _dead_after(block: list[Instruction], j: int, register: str) -> bool:
    """Whether ``register``'s value after instruction ``j`` is replaced before anything reads
    it (the end of the block reads everything)."""
    for inst in block[j + 1:]:
        if register in inst.reads():
            return False
        if register in inst.kills():
            return True
    return False


def _single_destination(inst: Instruction) -> str | None:
    """The one register a deletable instruction writes (None when it is not deletable)."""
    if inst.writes_flags() or inst.ends_window or inst.partial_write:
        return None
    if inst.access is not None:
        memory = inst.memory
        if not inst.whole_load or inst.mnemonic in PAIR_ACCESS or memory is None \
                or memory.mode != "offset":
            return None
    elif inst.mnemonic not in FLAG_FREE or inst.mnemonic in ("nop", "prfm"):
        return None
    written = inst.writes()
    if len(written) != 1 or written != inst.kills():
        return None
    (register,) = written
    return None if register in _PINNED else register


def dead_def_sites(block: list[Instruction]) -> list[Rewrite]:
    """Every instruction whose only result is dead."""
    sites = []
    for i, inst in enumerate(block):
        register = _single_destination(inst)
        if register is not None and _dead_after(block, i, register):
            text = f"dead_def: #{i} `{str(inst).strip()}` (its {register} is overwritten " \
                   f"unread) -> (removed)"
            sites.append(Rewrite("dead_def", "dead_def", ((i, None),), text, i))
    return sites


def _plain_registers(operands: tuple[str, ...], width: str) -> bool:
    return all((op[0] == width and op[1:].isdigit()) or op == f"{width}zr" for op in operands)


def _fused(producer: Instruction, consumer: Instruction, register: str) -> Instruction | None:
    """The consumer with the producer folded in, or None when they do not fuse."""
    operands = consumer.operands
    if consumer.mnemonic in _COMPARES and len(operands) == 2:
        dest, (first, second) = (), operands
    elif consumer.mnemonic in _SHIFTED_OPS and len(operands) == 3:
        dest, (first, second) = operands[:1], operands[1:]
    else:
        return None
    width = operands[0][0]
    produced = producer.operands[:-1] if producer.mnemonic in _SHIFTS else producer.operands
    if not _plain_registers(operands, width) or not _plain_registers(produced, width):
        return None
    if [canonical(op) for op in (first, second)].count(register) != 1:
        return None
    if canonical(second) == register:
        other = first
    elif consumer.mnemonic in _COMMUTATIVE:
        other = second
    else:
        return None
    if producer.mnemonic == "mul" and len(producer.operands) == 3:
        fused = {"add": "madd", "sub": "msub"}.get(consumer.mnemonic)
        if fused is None or canonical(other) == "xzr":
            return None
        return Instruction(fused, (*dest, producer.operands[1], producer.operands[2], other))
    if producer.mnemonic in _SHIFTS and len(producer.operands) == 3 \
            and producer.operands[2].startswith("#"):
        return Instruction(consumer.mnemonic,
                           (*dest, other, producer.operands[1],
                            f"{producer.mnemonic} {producer.operands[2]}"))
    return None


def fuse_sites(block: list[Instruction]) -> list[Rewrite]:
    """Every producer that folds into its one consumer."""
    sites = []
    for i, producer in enumerate(block):
        if producer.mnemonic not in _SHIFTS | {"mul"} or producer.access is not None:
            continue
        register = _single_destination(producer)
        if register is None:
            continue
        sources = producer.reads()
        for j in range(i + 1, len(block)):
            consumer = block[j]
            if register in consumer.reads():
                fused = _fused(producer, consumer, register)
                if fused is not None and (register in consumer.kills()
                                          or _dead_after(block, j, register)):
                    text = f"fuse: #{i} `{str(producer).strip()}` into #{j} " \
                           f"`{str(consumer).strip()}` -> `{str(fused).strip()}`"
                    sites.append(Rewrite("fuse", "fuse", ((i, None), (j, fused)), text, i))
                break
            if (sources | {register}) & consumer.writes() or consumer.ends_window:
                break
    return sites


def _independent(a: Instruction, b: Instruction) -> bool:
    if a.ends_window or b.ends_window or a == b:
        return False
    if a.writes() & (b.reads() | b.writes()) or b.writes() & a.reads():
        return False
    if (a.writes_flags() and (b.reads_flags() or b.writes_flags())) \
            or (b.writes_flags() and a.reads_flags()):
        return False
    if a.access is not None and b.access is not None and "store" in (a.access, b.access):
        return (a.mnemonic in KNOWN_ACCESSES and b.mnemonic in KNOWN_ACCESSES
                and not may_alias(a, b))
    return True


def swap_sites(block: list[Instruction]) -> list[Rewrite]:
    """Every pair of adjacent independent instructions, exchanged."""
    sites = []
    for i in range(len(block) - 1):
        a, b = block[i], block[i + 1]
        if _independent(a, b):
            text = f"swap: #{i} `{str(a).strip()}` with #{i + 1} `{str(b).strip()}`"
            sites.append(Rewrite("swap", "swap", ((i, b), (i + 1, a)), text, i))
    return sites

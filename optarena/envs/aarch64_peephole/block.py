"""A basic block of AArch64 assembly as instructions: parsed from text, printed back as valid text.

Only what the peephole rules need is modelled: the mnemonic, the operands (memory operands kept
whole: ``[x0, #8]``, ``[x0, #8]!``, ``[x0], #8``), and for loads and stores the data registers,
the access size and the addressing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

AddressMode = Literal["offset", "pre", "post"]

# mnemonic -> (kind, signed-word load) for the single loads and stores that pair.
SINGLE_ACCESS: dict[str, str] = {
    "ldr": "load", "ldur": "load", "ldrsw": "load", "ldursw": "load",
    "str": "store", "stur": "store",
}
PAIR_ACCESS: dict[str, str] = {"ldp": "load", "ldpsw": "load", "stp": "store"}
NARROW_LOADS = frozenset({"ldrb", "ldrh", "ldrsb", "ldrsh", "ldurb", "ldurh", "ldursb",
                          "ldursh"})
PARTIAL_WRITERS = frozenset({
    "movk", "bfi", "bfxil", "bfm", "bfc", "bif", "bit", "bsl", "ins", "sli", "sri", "mla", "mls",
    "fmla", "fmls", "tbx", "sdot", "udot", "usdot", "sqrdmlah", "sqrdmlsh", "saba", "uaba",
    "sabal", "uabal", "smlal", "umlal", "smlsl", "umlsl", "sqdmlal", "sqdmlsl", "ssra", "usra",
    "srsra", "ursra", "sadalp", "uadalp", "fcmla", "bfdot", "bfmmla", "smmla", "ummla"})
"""Data-processing instructions that read their destination and keep part of it."""
FLAG_WRITERS = frozenset({
    "cmp", "cmn", "tst", "adds", "subs", "ands", "bics", "negs", "ngcs", "adcs", "sbcs", "fcmp",
    "fcmpe", "ccmp", "ccmn", "fccmp", "fccmpe", "setf8", "setf16", "rmif", "cfinv", "msr"})
FLAG_READERS = frozenset({
    "csel", "csinc", "csinv", "csneg", "cset", "csetm", "cinc", "cinv", "cneg", "adc", "adcs",
    "sbc", "sbcs", "ngc", "ngcs", "fcsel", "ccmp", "ccmn", "fccmp", "fccmpe", "mrs", "cfinv",
    "rmif"})
FLAG_FREE = frozenset({
    "mov", "movk", "movz", "movn", "add", "sub", "and", "orr", "eor", "eon", "orn", "bic", "mvn",
    "neg", "lsl", "lsr", "asr", "ror", "lslv", "lsrv", "asrv", "rorv", "mul", "madd", "msub",
    "mneg", "smull", "umull", "smulh", "umulh", "smaddl", "umaddl", "smsubl", "umsubl", "sdiv",
    "udiv", "sxtb", "sxth", "sxtw", "uxtb", "uxth", "sbfx", "ubfx", "sbfiz", "ubfiz", "sbfm",
    "ubfm", "bfi", "bfxil", "bfm", "bfc", "extr", "rbit", "rev", "rev16", "rev32", "clz", "cls",
    "fmov", "fadd", "fsub", "fmul", "fdiv", "fmadd", "fmsub", "fnmadd", "fnmsub", "fneg", "fabs",
    "fsqrt", "fcvt", "fcvtzs", "fcvtzu", "scvtf", "ucvtf", "fmax", "fmin", "fmaxnm", "fminnm",
    "movi", "mvni", "dup", "ins", "umov", "smov", "ext", "ushr", "sshr", "shl", "cmeq", "cmge",
    "cmgt", "cmhi", "cmhs", "cmle", "cmlt", "cmtst", "bif", "bit", "bsl", "addp", "addv",
    "xtn", "uzp1", "uzp2", "zip1", "zip2", "trn1", "trn2", "cnt", "nop", "adr", "adrp", "prfm"})
"""Instructions that neither read nor write NZCV (with :data:`FLAG_READERS` and
:data:`FLAG_WRITERS`, what the scheduling rule knows; any other is assumed to read and write)."""
REGISTER_BYTES: dict[str, int] = {"w": 4, "x": 8, "b": 1, "h": 2, "s": 4, "d": 8, "q": 16}
_MEMORY = re.compile(
    r"^\[\s*(?P<base>x\d+|sp)\s*(?:,\s*#?(?P<imm>-?(?:0x[0-9a-f]+|\d+)))?\s*\](?P<pre>!)?$", re.I)


def split_operands(text: str) -> tuple[str, ...]:
    """Split on commas outside brackets: ``x1, [x0, #8]`` -> ``("x1", "[x0, #8]")``."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current.strip())
    return tuple(parts)


@dataclass(frozen=True)
class Memory:
    base: str
    offset: int
    mode: AddressMode


@dataclass(frozen=True)
class Instruction:
    mnemonic: str
    operands: tuple[str, ...] = ()

    @classmethod
    def parse(cls, line: str) -> Instruction:
        mnemonic, *rest = line.split("//")[0].split(None, 1)
        return cls(mnemonic.lower(), split_operands(rest[0].strip() if rest else ""))

    def __str__(self) -> str:
        return f"\t{self.mnemonic}\t{', '.join(self.operands)}" if self.operands \
            else f"\t{self.mnemonic}"

    # ------------------------------------------------------------------ loads and stores

    @property
    def access(self) -> str | None:
        """``"load"`` or ``"store"`` for memory instructions, else None."""
        return SINGLE_ACCESS.get(self.mnemonic) or PAIR_ACCESS.get(self.mnemonic) or (
            "load" if self.mnemonic.startswith("ld") else
            "store" if self.mnemonic.startswith("st") else None)

    @property
    def memory(self) -> Memory | None:
        """The addressing of a load/store (``None`` for other instructions)."""
        if self.access is None:
            return None
        for index, operand in enumerate(self.operands):
            match = _MEMORY.match(operand)
            if match is None:
                continue
            offset = int(match.group("imm") or "0", 0)
            if match.group("pre"):
                return Memory(match.group("base").lower(), offset, "pre")
            if index + 1 < len(self.operands):  # post-index: [x0], #8
                return Memory(match.group("base").lower(),
                              int(self.operands[index + 1].lstrip("#"), 0), "post")
            return Memory(match.group("base").lower(), offset, "offset")
        return None

    @property
    def data_registers(self) -> tuple[str, ...]:
        """Registers loaded or stored (before the memory operand)."""
        out = []
        for operand in self.operands:
            if operand.startswith("["):
                break
            out.append(operand.lower())
        return tuple(out)

    @property
    def size(self) -> int:
        """Bytes per data register (``ldrsw`` reads 4 bytes into an X register)."""
        if self.mnemonic in ("ldrsw", "ldursw", "ldpsw"):
            return 4
        if self.access and self.mnemonic[-1] in "bh" and self.mnemonic[:2] in ("ld", "st"):
            return 1 if self.mnemonic.endswith("b") else 2
        return REGISTER_BYTES.get(self.data_registers[0][0], 0) if self.data_registers else 0

    # ------------------------------------------------------------------ register effects

    def reads(self) -> set[str]:
        """Architectural registers read (X/W views folded to ``xN``; vector views to ``vN``); the
        destination of an instruction that writes only part of it (``movk``, ``bfi``, a lane) is
        read too."""
        if self.access == "load" and self.whole_load:
            read = self.operands[len(self.data_registers):]
        elif self.writes_first() and not self.partial_write:
            read = self.operands[1:]
        else:
            read = self.operands
        regs = {canonical(r) for r in _registers(read)}
        if self.access == "store":
            regs |= {canonical(r) for r in self.data_registers}
        memory = self.memory
        if memory is not None:
            regs.add(canonical(memory.base))
        return regs - {"xzr"}

    def writes(self) -> set[str]:
        regs: set[str] = set()
        if self.access == "load":
            regs |= {canonical(r) for r in self.data_registers}
        elif self.access is None and self.writes_first() and self.operands:
            regs.add(canonical(self.operands[0]))
        memory = self.memory
        if memory is not None and memory.mode != "offset":
            regs.add(canonical(memory.base))
        if self.mnemonic in ("bl", "blr"):
            regs.add("x30")
        return regs - {"xzr"}

    @property
    def partial_write(self) -> bool:
        """Whether a data-processing instruction keeps part of its destination: ``movk``, the
        bitfield inserts, the accumulating and lane-inserting vector forms, the narrowing ``...2``
        forms (which write the upper half)."""
        if not self.writes_first() or not self.operands:
            return False
        return (self.mnemonic in PARTIAL_WRITERS or "[" in self.operands[0]
                or (self.mnemonic.endswith("2") and "." in self.operands[0]))

    def kills(self) -> set[str]:
        """Registers whose whole value this instruction replaces (a later read sees nothing of
        what they held): the data registers of the plain loads, the destination of a
        data-processing instruction that does not keep part of it (a W or scalar FP write clears
        the rest of the register), the base of a writeback access, X30 for a call."""
        if self.access is not None:
            return self.writes() if self.whole_load or self.access == "store" else set()
        return set() if self.partial_write else self.writes()

    @property
    def whole_load(self) -> bool:
        """A load that replaces its data registers whole (not a lane or structure load)."""
        return self.access == "load" and (self.mnemonic in SINGLE_ACCESS
                                          or self.mnemonic in PAIR_ACCESS
                                          or self.mnemonic in NARROW_LOADS)

    def reads_flags(self) -> bool:
        """Whether NZCV is read (an instruction this module does not know is assumed to)."""
        return self.mnemonic in FLAG_READERS or self.mnemonic.startswith("b.") \
            or not self._flags_known()

    def writes_flags(self) -> bool:
        """Whether NZCV is written (an instruction this module does not know is assumed to)."""
        return self.mnemonic in FLAG_WRITERS or not self._flags_known()

    def _flags_known(self) -> bool:
        return (self.mnemonic in FLAG_FREE or self.mnemonic in FLAG_READERS
                or self.mnemonic in FLAG_WRITERS or self.mnemonic.startswith("b.")
                or self.access is not None)

    def writes_first(self) -> bool:
        """Whether operand 0 is a destination (true for data-processing instructions)."""
        return self.access is None and self.mnemonic not in (
            "cmp", "cmn", "tst", "fcmp", "fcmpe", "ccmp", "ccmn", "b", "br", "ret", "cbz", "cbnz",
            "tbz", "tbnz", "nop", "prfm") and not self.mnemonic.startswith("b.")

    @property
    def ends_window(self) -> bool:
        """Calls, branches and barriers end the pairing scan (LLVM stops at them)."""
        return (self.mnemonic in ("bl", "blr", "b", "br", "ret", "cbz", "cbnz", "tbz", "tbnz",
                                  "dmb", "dsb", "isb", "svc", "hvc")
                or self.mnemonic.startswith(("b.", "ldar", "stlr", "ldax", "stlx", "ldx", "stx")))


def _registers(operands: tuple[str, ...]) -> list[str]:
    found = []
    for operand in operands:
        found += re.findall(r"\b([wx](?:\d+|zr)|sp|[bhsdqv]\d+)\b", operand.lower())
    return found


def canonical(register: str) -> str:
    """``w3``/``x3`` -> ``x3``; ``s1``/``d1``/``q1``/``v1`` -> ``v1``; ``sp`` stays."""
    register = register.lower().split(".")[0]
    if register in ("sp", "wsp"):
        return "sp"
    if register in ("wzr", "xzr"):
        return "xzr"
    kind, number = register[0], register[1:]
    return f"x{number}" if kind in "wx" else f"v{number}"


def parse_block(asm: str) -> list[Instruction]:
    """Instructions of a block; blank lines, comments, labels and directives are skipped."""
    out = []
    for line in asm.splitlines():
        text = line.split("//")[0].strip()
        if not text or text.startswith(".") or text.endswith(":"):
            continue
        out.append(Instruction.parse(text))
    return out


def format_block(instructions: list[Instruction]) -> str:
    return "".join(f"{inst}\n" for inst in instructions)

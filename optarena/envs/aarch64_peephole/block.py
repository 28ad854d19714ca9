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
        """Architectural registers read (X/W views folded to ``xN``; vector views to ``vN``)."""
        regs = {canonical(r) for r in _registers(self.operands[1:] if self.writes_first() else
                                                 self.operands)}
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

"""Peephole rewrites at concrete sites of a block, with their legality conditions.

**Load/store pairing** (``pair``), after LLVM's ``AArch64LoadStoreOptimizer``: two single loads or
two single stores (``ldr``/``ldur``/``str``/``stur`` on W, X, S, D or Q registers; ``ldrsw``/
``ldursw`` into ``ldpsw``) become one ``ldp``/``stp`` when

* both use the same base register with plain offset addressing, their byte offsets differ by the
  access size, and the lower offset is a multiple of the size within the scaled 7-bit range
  (``-64 .. 63`` elements); scaled and unscaled forms pair with each other;
* they are of the same kind and register class; two loads do not target the same register, and
  the first load does not write the base register;
* the second access is at most ``SCAN_LIMIT`` (20) instructions after the first, with no call,
  branch or barrier in between (LLVM stops its scan there);
* one access moves to the other across the instructions in between: the second moves up to the
  first or, when it cannot, the first moves down to the second (LLVM's ``MergeForward``). None of
  the instructions in between writes the base register or the moving access's data register
  (nor, for a load, reads it), and none may alias it: a load may not cross a store, nor a store
  any access, unless both use the same base register and their byte ranges are disjoint
  (different base registers may alias).

**Base-update folding** (``post_index``, ``pre_index``), after the same pass: a single load or
store with plain offset addressing and an ``add``/``sub base, base, #imm`` on its base register
merge into one writeback access:

* ``ldr x1, [x0]`` ... ``add x0, x0, #8`` -> ``ldr x1, [x0], #8`` (post-index; the access's offset
  is 0);
* ``ldr x1, [x0, #8]`` ... ``add x0, x0, #8`` -> ``ldr x1, [x0, #8]!`` (pre-index; the update
  equals the offset);
* ``add x0, x0, #8`` ... ``ldr x1, [x0]`` -> ``ldr x1, [x0, #8]!`` (pre-index, the update
  moving down to the access).

The immediate must fit the 9-bit signed writeback range (``-256 .. 255``); the data register is
not the base; nothing between the two reads or writes the base register, and the instructions
between do not end the scan window.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from optarena.envs.aarch64_peephole.block import (
    NARROW_LOADS,
    PAIR_ACCESS,
    SINGLE_ACCESS,
    Instruction,
    Memory,
    canonical,
)

SCAN_LIMIT = 20
PAIRABLE = {"ldr", "ldur", "str", "stur", "ldrsw", "ldursw"}


@dataclass(frozen=True)
class Rewrite:
    """A rewrite site: ``edits`` maps instruction indices to their replacements (``None``:
    removed); ``anchor`` is the instruction that names the site in the action space."""

    rule: str
    """The rule's name in the rewrite's text (``pair``, ``post_index``, ``forward`` ...)."""
    family: str
    """The action family it belongs to (:data:`~optarena.envs.aarch64_peephole.space.FAMILIES`)."""
    edits: tuple[tuple[int, Instruction | None], ...]
    text: str
    anchor: int

    @property
    def replacement(self) -> Instruction | None:
        """The first instruction the rewrite writes (``None`` when it only removes)."""
        return next((inst for _, inst in self.edits if inst is not None), None)

    def apply(self, block: list[Instruction]) -> list[Instruction]:
        edits = dict(self.edits)
        return [edits.get(i, inst) for i, inst in enumerate(block)
                if edits.get(i, inst) is not None]


def merge_into(rule: str, family: str, kept: int, removed: int, merged: Instruction, text: str,
               anchor: int) -> Rewrite:
    """Instruction ``kept`` becomes ``merged``; ``removed`` goes."""
    return Rewrite(rule, family, ((kept, merged), (removed, None)), text, anchor)


def _base_update(inst: Instruction) -> tuple[str, int] | None:
    """``(base, amount)`` for ``add/sub xN, xN, #imm`` (same register, no shift), else None."""
    if inst.mnemonic not in ("add", "sub") or len(inst.operands) != 3:
        return None
    dst, src, imm = (op.lower() for op in inst.operands)
    if dst != src or not dst.startswith(("x", "sp")) or not imm.startswith("#"):
        return None
    try:
        amount = int(imm[1:], 0)
    except ValueError:
        return None
    return canonical(dst), -amount if inst.mnemonic == "sub" else amount


def _foldable(inst: Instruction) -> bool:
    memory = inst.memory
    return (inst.mnemonic in PAIRABLE | {"ldrb", "ldrh", "strb", "strh", "ldrsb", "ldrsh"}
            and memory is not None and memory.mode == "offset"
            and len(inst.data_registers) == 1
            and canonical(inst.data_registers[0]) != canonical(memory.base))


def _untouched(block: list[Instruction], lo: int, hi: int, base: str) -> bool:
    return all(base not in block[k].reads() | block[k].writes() and not block[k].ends_window
               for k in range(lo + 1, hi))


def fold_sites(block: list[Instruction]) -> list[Rewrite]:
    """Every legal base-update folding in the block (the nearest update of each access)."""
    sites = []
    for i, access in enumerate(block):
        if not _foldable(access):
            continue
        memory = access.memory
        assert memory is not None
        base = canonical(memory.base)
        mnemonic = access.mnemonic.replace("ldur", "ldr").replace("stur", "str")
        data = access.data_registers[0]
        for j in range(i + 1, min(len(block), i + 1 + SCAN_LIMIT)):  # update after the access
            update = _base_update(block[j])
            if update is not None and update[0] == base and _untouched(block, i, j, base):
                amount = update[1]
                if -256 <= amount <= 255 and memory.offset in (0, amount):
                    operands = ((data, f"[{memory.base}]", f"#{amount}") if memory.offset == 0
                                else (data, f"[{memory.base}, #{amount}]!"))
                    rule = "post_index" if memory.offset == 0 else "pre_index"
                    sites.append(_fold(block, rule, i, j, Instruction(mnemonic, operands)))
                break
            if base in block[j].reads() | block[j].writes() or block[j].ends_window:
                break
        for j in range(i - 1, max(-1, i - 1 - SCAN_LIMIT), -1):  # update before the access
            update = _base_update(block[j])
            if update is not None and update[0] == base and _untouched(block, j, i, base):
                if memory.offset == 0 and -256 <= update[1] <= 255 and update[1] != 0:
                    merged = Instruction(mnemonic, (data, f"[{memory.base}, #{update[1]}]!"))
                    sites.append(_fold(block, "pre_index", i, j, merged))
                break
            if base in block[j].reads() | block[j].writes() or block[j].ends_window:
                break
    return sites


def _fold(block: list[Instruction], rule: str, i: int, j: int, merged: Instruction) -> Rewrite:
    text = f"{rule}: fold #{j} `{str(block[j]).strip()}` into #{i} `{str(block[i]).strip()}` " \
           f"-> `{str(merged).strip()}`"
    family = "fold_after" if j > i else "fold_before"
    return merge_into(rule, family, i, j, merged, text, anchor=i)


def _pairable(inst: Instruction) -> bool:
    memory = inst.memory
    return (inst.mnemonic in PAIRABLE and memory is not None and memory.mode == "offset"
            and len(inst.data_registers) == 1 and inst.data_registers[0][0] in "wxsdq"
            and inst.size in (4, 8, 16))


def _pair_opcode(inst: Instruction) -> tuple[str, str]:
    signed = inst.mnemonic in ("ldrsw", "ldursw")
    return (inst.access or "", "sw" if signed else inst.data_registers[0][0])


def may_alias(a: Instruction, b: Instruction) -> bool:
    """Whether two accesses may touch a common byte: unless both use the same base register
    with plain offsets, known sizes and disjoint byte ranges (different bases may alias)."""
    ma, mb = a.memory, b.memory
    if ma is None or mb is None or ma.base != mb.base or (ma.mode, mb.mode) != ("offset", "offset") \
            or not a.size or not b.size:
        return True
    size_a = a.size * max(1, len(a.data_registers))
    size_b = b.size * max(1, len(b.data_registers))
    return ma.offset < mb.offset + size_b and mb.offset < ma.offset + size_a


def _blocked(block: list[Instruction], moving: int, target: int) -> str | None:
    """Why the access at ``moving`` cannot move to ``target`` (None when it can)."""
    moved = block[moving]
    base = canonical(moved.memory.base)  # type: ignore[union-attr]
    data = canonical(moved.data_registers[0])
    for k in range(min(moving, target) + 1, max(moving, target)):
        between = block[k]
        if base in between.writes():
            return f"#{k} writes the base register {base}"
        if data in between.writes():
            return f"#{k} writes {data}, which #{moving} {moved.access}s"
        if moved.access == "load" and data in between.reads():
            return f"#{k} reads {data}, which #{moving} loads"
        if between.access and "store" in (between.access, moved.access) and \
                may_alias(between, moved):
            return f"#{k} is a {between.access} that may alias #{moving}"
    return None


ZERO_STORES = {"strb": 1, "sturb": 1, "strh": 2, "sturh": 2, "str": 4, "stur": 4}
WIDER = {1: ("strh", "sturh"), 2: ("str", "stur"), 4: ("str", "stur")}


def _zero_store(inst: Instruction) -> bool:
    memory = inst.memory
    return (inst.mnemonic in ZERO_STORES and inst.data_registers == ("wzr",)
            and memory is not None and memory.mode == "offset")


def zero_store_sites(block: list[Instruction]) -> list[Rewrite]:
    """Every legal merge of two narrow zero stores into one wider zero store."""
    return _scan(block, _zero_store, lambda a, b: a.size == b.size, _merge_zero)


def _merge_zero(block: list[Instruction], i: int, j: int) -> Rewrite | None:
    first, second = block[i], block[j]
    size = first.size
    fo, so = first.memory.offset, second.memory.offset  # type: ignore[union-attr]
    if abs(fo - so) != size:
        return None
    offset, wide = min(fo, so), 2 * size
    scaled, unscaled = WIDER[size]
    if offset >= 0 and offset % wide == 0 and offset // wide < 4096:
        mnemonic = scaled
    elif -256 <= offset <= 255:
        mnemonic = unscaled
    else:
        return None
    placement = _placement(block, i, j)
    if placement is None:
        return None
    keep, drop = placement
    base = first.memory.base  # type: ignore[union-attr]
    address = f"[{base}, #{offset}]" if offset else f"[{base}]"
    merged = Instruction(mnemonic, ("xzr" if wide == 8 else "wzr", address))
    text = f"zero_store: merge #{i} `{str(first).strip()}` and #{j} `{str(second).strip()}` -> " \
           f"`{str(merged).strip()}`"
    return merge_into("zero_store", "zero_store", keep, drop, merged, text, anchor=i)


def pair_sites(block: list[Instruction]) -> list[Rewrite]:
    """Every legal load/store pairing in the block, the first partner of each access."""
    return _scan(block, _pairable, lambda a, b: _pair_opcode(a) == _pair_opcode(b), _merge)


def _scan(block: list[Instruction], candidate: Callable[[Instruction], bool],
          matches: Callable[[Instruction, Instruction], bool],
          merge: Callable[[list[Instruction], int, int], Rewrite | None]) -> list[Rewrite]:
    """For each candidate access, the first later partner on the same base that merges legally,
    within the scan window (LLVM's forward search)."""
    sites = []
    for i, first in enumerate(block):
        if not candidate(first):
            continue
        base = canonical(first.memory.base)  # type: ignore[union-attr]
        for j in range(i + 1, min(len(block), i + 1 + SCAN_LIMIT)):
            second = block[j]
            if second.ends_window:
                break
            if candidate(second) and matches(first, second) and \
                    canonical(second.memory.base) == base:  # type: ignore[union-attr]
                rewrite = merge(block, i, j)
                if rewrite is not None:
                    sites.append(rewrite)
                    break
            if base in second.writes():
                break
    return sites


def _placement(block: list[Instruction], i: int, j: int) -> tuple[int, int] | None:
    """``(kept, removed)``: the second access moves up to the first or, failing that, the first
    moves down to the second; None when neither can move."""
    if _blocked(block, j, i) is None:
        return i, j
    if _blocked(block, i, j) is None:
        return j, i
    return None


def _merge(block: list[Instruction], i: int, j: int) -> Rewrite | None:
    first, second = block[i], block[j]
    size = first.size
    fo, so = first.memory.offset, second.memory.offset  # type: ignore[union-attr]
    if abs(fo - so) != size:
        return None
    low, high = (first, second) if fo < so else (second, first)
    offset = min(fo, so)
    if offset % size or not -64 <= offset // size <= 63:
        return None
    if first.access == "load" and (
            canonical(first.data_registers[0]) in (canonical(second.data_registers[0]),
                                                   canonical(first.memory.base))):  # type: ignore[union-attr]
        return None  # two loads into one register, or the second would use the loaded base
    placement = _placement(block, i, j)
    if placement is None:
        return None
    keep, drop = placement
    mnemonic = {"load": "ldp", "store": "stp"}[first.access or ""]
    if first.mnemonic in ("ldrsw", "ldursw"):
        mnemonic = "ldpsw"
    base = first.memory.base  # type: ignore[union-attr]
    address = f"[{base}, #{offset}]" if offset else f"[{base}]"
    merged = Instruction(mnemonic, (low.data_registers[0], high.data_registers[0], address))
    text = f"pair #{i} `{str(first).strip()}` with #{j} `{str(second).strip()}` -> " \
           f"`{str(merged).strip()}`"
    return merge_into("pair", "pair", keep, drop, merged, text, anchor=i)


KNOWN_STORES = frozenset({"str", "stur", "strb", "sturb", "strh", "sturh", "stp"})
"""Stores whose bytes :func:`may_alias` can bound (others may write anything)."""
FORWARD_LOADS = frozenset({"ldr", "ldur", "ldrb", "ldurb", "ldrh", "ldurh"})
_FORWARD_STORES = frozenset({"str", "stur", "strb", "sturb", "strh", "sturh"})
KNOWN_ACCESSES = frozenset(SINGLE_ACCESS) | frozenset(PAIR_ACCESS) | NARROW_LOADS | KNOWN_STORES
"""Loads and stores whose bytes :func:`may_alias` can bound."""


def _plain(inst: Instruction, mnemonics: frozenset[str]) -> bool:
    memory = inst.memory
    return (inst.mnemonic in mnemonics and memory is not None and memory.mode == "offset"
            and len(inst.data_registers) == 1 and inst.size > 0)


def _plain_accesses(block: list[Instruction], mnemonics: frozenset[str]
                    ) -> Iterator[tuple[int, Instruction, Memory, str]]:
    """``(index, access, its addressing, its base register)`` of each plain-offset, one-register
    access of the block among ``mnemonics``."""
    for index, inst in enumerate(block):
        memory = inst.memory
        if _plain(inst, mnemonics) and memory is not None:
            yield index, inst, memory, canonical(memory.base)


def _clobbers(inst: Instruction, access: Instruction) -> bool:
    """Whether ``inst`` may write bytes that ``access`` reads or writes."""
    return inst.access == "store" and (inst.mnemonic not in KNOWN_STORES
                                       or may_alias(inst, access))


def forward_sites(block: list[Instruction]) -> list[Rewrite]:
    """Every load of bytes an earlier store of the block wrote from a register that still holds
    them: the load becomes a move (or goes), as LLVM's ``promoteLoadFromStore``."""
    sites = []
    for j, load, memory, base in _plain_accesses(block, FORWARD_LOADS):
        for i in range(j - 1, max(-1, j - 1 - SCAN_LIMIT), -1):
            earlier = block[i]
            if earlier.ends_window:
                break
            em = earlier.memory
            if _plain(earlier, _FORWARD_STORES) and em is not None \
                    and canonical(em.base) == base and em.offset == memory.offset:
                data = canonical(earlier.data_registers[0])
                replacement = _forwarded(block, i, earlier, load)
                if earlier.size == load.size and replacement is not False \
                        and all(data not in block[k].writes() for k in range(i + 1, j)):
                    text = f"forward: #{i} `{str(earlier).strip()}` to #{j} " \
                           f"`{str(load).strip()}` -> " \
                           f"`{str(replacement).strip() if replacement else '(removed)'}`"
                    sites.append(Rewrite("forward", "forward", ((j, replacement),), text, j))
                break
            if base in earlier.writes() or _clobbers(earlier, load):
                break
    return sites


def _forwarded(block: list[Instruction], i: int, store: Instruction, load: Instruction
               ) -> Instruction | bool | None:
    """What replaces ``load`` given the ``store`` at ``i`` of the same bytes: a move, ``None``
    (nothing: the register already holds exactly what the load would leave), ``False`` (no
    forwarding of these register kinds)."""
    source, target = store.data_registers[0], load.data_registers[0]
    kind = target[0]
    if kind != source[0] and not (source in ("wzr", "xzr") and kind in "wx"):
        return False
    if load.size < 4:  # ldrb/ldrh zero-extend the stored low bits
        mask = "#0xff" if load.size == 1 else "#0xffff"
        return Instruction("and", (target, "w" + source[1:] if source[0] == "x" else source,
                                   mask))
    same = canonical(source) == canonical(target)
    if kind == "x" or kind == "q":
        return None if same else Instruction(
            "mov", (target, source) if kind == "x" else (f"v{target[1:]}.16b", f"v{source[1:]}.16b"))
    if kind == "w":
        return None if same and _upper_clear(block, i, canonical(source)) \
            else Instruction("mov", (target, source))
    if kind in "sd":
        return Instruction("fmov", (target, source))
    return False


def _upper_clear(block: list[Instruction], i: int, register: str) -> bool:
    """Whether the last write of ``register`` before ``i`` (in the block) was a whole write
    of its W view, which clears the upper half (a W load, a W data-processing result)."""
    for k in range(i - 1, -1, -1):
        inst = block[k]
        if register in inst.writes():
            if register not in inst.kills():
                return False
            names = inst.data_registers if inst.access == "load" else inst.operands[:1]
            return any(canonical(n) == register and n.startswith("w") for n in names) \
                and inst.mnemonic not in ("ldrsw", "ldursw")
    return False


def dead_store_sites(block: list[Instruction]) -> list[Rewrite]:
    """Every store whose bytes a later store of the block overwrites before anything may read
    them: the first store goes (dead-store elimination)."""
    sites = []
    for i, store, memory, base in _plain_accesses(block, _FORWARD_STORES):
        for j in range(i + 1, min(len(block), i + 1 + SCAN_LIMIT)):
            later = block[j]
            if later.ends_window:
                break
            lm = later.memory
            if later.mnemonic in KNOWN_STORES and lm is not None and lm.mode == "offset" \
                    and canonical(lm.base) == base and lm.offset <= memory.offset \
                    and memory.offset + store.size \
                    <= lm.offset + later.size * len(later.data_registers):
                text = f"dead_store: #{i} `{str(store).strip()}` overwritten by #{j} " \
                       f"`{str(later).strip()}` -> (removed)"
                sites.append(Rewrite("dead_store", "dead_store", ((i, None),), text, i))
                break
            if base in later.writes() or (later.access is not None and (
                    later.mnemonic not in KNOWN_ACCESSES or may_alias(later, store))):
                break
    return sites

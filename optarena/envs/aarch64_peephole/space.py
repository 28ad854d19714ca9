"""States, actions and observations of ``optarena/AArch64Peephole-v0``.

**Problems** are the blocks of a corpus (their ids). **A state** is a block id and the block's
current assembly (:class:`BlockState`, canonical text: one tab-separated instruction per line).

**Actions**: ``Discrete(len(rules) * max_instructions)``; action ``r * max_instructions + i``
applies the ``r``-th rule family of ``rules`` at instruction ``i``. The families
(:data:`FAMILIES`; legality conditions in :mod:`~optarena.envs.aarch64_peephole.rules` and
:mod:`~optarena.envs.aarch64_peephole.combine`):

* ``pair``: the load/store at ``i`` with its partner (``ldp``/``stp``);
* ``fold_after`` / ``fold_before``: the base update after / before access ``i`` into it;
* ``zero_store``: the zero store at ``i`` with its neighbour into one twice as wide;
* ``forward``: the load at ``i`` of bytes a store of the block wrote becomes a move (or goes);
* ``dead_store``: the store at ``i``, overwritten before anything reads it, goes;
* ``dead_def``: instruction ``i``, whose result is overwritten unread, goes;
* ``fuse``: the multiply or shift at ``i`` folds into its one consumer (``madd``, shifted
  operand);
* ``swap``: instructions ``i`` and ``i + 1`` exchange places.

:data:`LOAD_STORE_RULES` (the first four, LLVM's load/store optimizer) are the default and the
rules of the ``v1`` splits; :data:`DEEP_RULES` (all of them) those of the ``v2`` splits.

**Observations**: six features per instruction slot (mnemonic, load/store, access size, offset,
addressing mode, registers), the current cycles over the block's starting cycles, progress.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from optarena.envs.aarch64_peephole.block import Instruction, format_block, parse_block
from optarena.envs.aarch64_peephole.combine import dead_def_sites, fuse_sites, swap_sites
from optarena.envs.aarch64_peephole.corpus import MAX_INSTRUCTIONS, BlockPair, select_blocks
from optarena.envs.aarch64_peephole.rules import (
    Rewrite,
    dead_store_sites,
    fold_sites,
    forward_sites,
    pair_sites,
    zero_store_sites,
)
from optarena.envs.contract import Outcome
from optarena.envs.lru import LRU

FAMILIES: dict[str, Callable[[list[Instruction]], list[Rewrite]]] = {
    "pair": pair_sites, "fold_after": fold_sites, "fold_before": fold_sites,
    "zero_store": zero_store_sites, "forward": forward_sites, "dead_store": dead_store_sites,
    "dead_def": dead_def_sites, "fuse": fuse_sites, "swap": swap_sites,
}
"""Each rule family and the function that finds its sites (both folds are found together)."""
LOAD_STORE_RULES = ("pair", "fold_after", "fold_before", "zero_store")
DEEP_RULES = tuple(FAMILIES)
MNEMONICS = ("ldr", "ldur", "str", "stur", "ldp", "stp", "ldrsw", "ldpsw", "add", "sub", "mov",
             "mul", "madd", "fadd", "fmul", "fmadd", "cmp", "and", "orr", "eor", "lsl", "lsr")
FEATURES = 6


def rule_families(rules: str | Sequence[str]) -> tuple[str, ...]:
    """The families named by ``rules``: ``"load-store"``, ``"deep"`` or a list of names."""
    if isinstance(rules, str):
        named = {"load-store": LOAD_STORE_RULES, "deep": DEEP_RULES}
        if rules not in named:
            raise ValueError(f"unknown rules {rules!r}: 'load-store', 'deep' or a list of "
                             f"{', '.join(FAMILIES)}")
        return named[rules]
    unknown = [r for r in rules if r not in FAMILIES]
    if unknown or not rules or len(set(rules)) != len(rules):
        raise ValueError(f"rules {list(rules)!r}: each of {', '.join(FAMILIES)} at most once, "
                         "at least one")
    return tuple(rules)


def check_blocks(problems: Sequence[str], kwargs: Mapping[str, Any]) -> None:
    """``ValueError`` for a block id the environment made with ``kwargs`` would not have, or for
    rules it does not know."""
    rule_families(kwargs.get("rules", LOAD_STORE_RULES))
    select_blocks(kwargs.get("corpus"), kwargs.get("max_instructions", MAX_INSTRUCTIONS), problems)


@dataclass(frozen=True)
class BlockState:
    """A corpus block (``problem``: its id) with its current assembly."""

    problem: str
    asm: str

    def to_json(self) -> dict[str, Any]:
        return {"problem": self.problem, "asm": self.asm}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BlockState:
        return cls(str(data["problem"]), str(data["asm"]))


class PeepholeSpace:
    """The blocks of a corpus and the peephole rewrites between them."""

    random_start = False

    def __init__(self, blocks: Sequence[BlockPair], max_instructions: int = 64,
                 cache_size: int = 4096, rules: str | Sequence[str] = LOAD_STORE_RULES) -> None:
        self.blocks = {b.id: b for b in blocks}
        self.max_instructions = max_instructions
        self.rules = rule_families(rules)
        self.n_actions = len(self.rules) * max_instructions
        self.observation_space = spaces.Dict({
            "instructions": spaces.Box(-1.0, 1.0, (max_instructions * FEATURES,), np.float32),
            "cycles": spaces.Box(0.0, 2.0, (1,), np.float32),
            "progress": spaces.Box(0.0, 1.0, (1,), np.float32),
        })
        self._sites: LRU[str, dict[int, Rewrite]] = LRU(cache_size)

    def problems(self) -> Sequence[str]:
        return list(self.blocks)

    def initial(self, problem: str, rng: np.random.Generator) -> BlockState:
        return BlockState(problem, format_block(parse_block(self.blocks[problem].input)))

    def canonical(self, state: BlockState) -> BlockState:
        if state.problem not in self.blocks:
            raise ValueError(f"unknown block {state.problem!r}")
        block = parse_block(state.asm)
        if len(block) > self.max_instructions:
            raise ValueError(f"{len(block)} instructions: more than max_instructions="
                             f"{self.max_instructions}")
        return BlockState(state.problem, format_block(block))

    def state_from_json(self, data: Mapping[str, Any]) -> BlockState:
        return BlockState.from_json(data)

    def sites(self, asm: str) -> dict[int, Rewrite]:
        """Legal rewrites of a block by action id (cached by text)."""
        known = self._sites.get(asm)
        if known is None:
            block = parse_block(asm)
            known = {}
            for find in dict.fromkeys(FAMILIES[family] for family in self.rules):
                for site in find(block):
                    if site.family in self.rules and site.anchor < self.max_instructions:
                        action = self.rules.index(site.family) * self.max_instructions \
                            + site.anchor
                        known.setdefault(action, site)
            self._sites.put(asm, known)
        return known

    def legal_mask(self, state: BlockState) -> np.ndarray:
        mask = np.zeros(self.n_actions, dtype=np.int8)
        mask[list(self.sites(state.asm))] = 1
        return mask

    def transition(self, state: BlockState, action: int) -> BlockState | str:
        site = self.sites(state.asm).get(int(action))
        if site is None:
            return f"action {int(action)} is not a legal rewrite here"
        return BlockState(state.problem, format_block(site.apply(parse_block(state.asm))))

    def describe_actions(self, state: BlockState) -> list[dict[str, Any]]:
        return [{"id": a, "rule": s.rule, "text": s.text}
                for a, s in sorted(self.sites(state.asm).items())]

    def observe(self, state: BlockState, outcome: Outcome, reference: float, progress: float
                ) -> dict[str, np.ndarray]:
        features = np.zeros((self.max_instructions, FEATURES), dtype=np.float32)
        for i, inst in enumerate(parse_block(state.asm)[: self.max_instructions]):
            features[i] = instruction_features(inst)
        score = outcome.score if outcome.score is not None else reference
        return {
            "instructions": features.reshape(-1),
            "cycles": np.array([min(score / reference, 2.0)], np.float32),
            "progress": np.array([progress], np.float32),
        }


def instruction_features(inst: Instruction) -> tuple[float, ...]:
    """Six numbers in [-1, 1] describing one instruction for the policy."""
    memory = inst.memory
    return (
        (MNEMONICS.index(inst.mnemonic) + 1) / len(MNEMONICS) if inst.mnemonic in MNEMONICS
        else -1.0,
        {"load": 1.0, "store": -1.0}.get(inst.access or "", 0.0),
        inst.size / 16 if memory else 0.0,
        float(np.clip(memory.offset / 512, -1, 1)) if memory else 0.0,
        {"offset": 0.0, "pre": 0.5, "post": 1.0}[memory.mode] if memory else -1.0,
        len(inst.data_registers) / 2 if memory else 0.0,
    )

"""States, actions and observations of ``optarena/AArch64Peephole-v0``.

**Problems** are the blocks of a corpus (their ids). **A state** is a block id and the block's
current assembly (:class:`BlockState`, canonical text: one tab-separated instruction per line).

**Actions**: ``Discrete(4 * max_instructions)``; action ``r * max_instructions + i`` applies rule
``r`` at instruction ``i``: ``0`` pairs the load/store at ``i`` with its partner (``ldp``/``stp``),
``1`` folds the base update *after* access ``i`` into it, ``2`` folds the base update *before*
it, ``3`` merges the zero store at ``i`` with its neighbour into one twice as wide (the legality
conditions are in :mod:`~optarena.envs.aarch64_peephole.rules`).

**Observations**: six features per instruction slot (mnemonic, load/store, access size, offset,
addressing mode, registers), the current cycles over the block's starting cycles, progress.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from optarena.envs.aarch64_peephole.block import Instruction, format_block, parse_block
from optarena.envs.aarch64_peephole.corpus import BlockPair
from optarena.envs.aarch64_peephole.rules import Rewrite, fold_sites, pair_sites, zero_store_sites
from optarena.envs.contract import Outcome
from optarena.envs.lru import LRU

RULES = ("pair", "fold_after", "fold_before", "zero_store")
MNEMONICS = ("ldr", "ldur", "str", "stur", "ldp", "stp", "ldrsw", "ldpsw", "add", "sub", "mov",
             "mul", "madd", "fadd", "fmul", "fmadd", "cmp", "and", "orr", "eor", "lsl", "lsr")
FEATURES = 6


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
                 cache_size: int = 4096) -> None:
        self.blocks = {b.id: b for b in blocks}
        self.max_instructions = max_instructions
        self.n_actions = len(RULES) * max_instructions
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
            found: dict[int, Rewrite] = {site.anchor: site for site in pair_sites(block)}
            for site in fold_sites(block):
                rule = RULES.index("fold_after" if site.second > site.first else "fold_before")
                found[rule * self.max_instructions + site.anchor] = site
            for site in zero_store_sites(block):
                found[RULES.index("zero_store") * self.max_instructions + site.anchor] = site
            known = {a: s for a, s in found.items() if s.anchor < self.max_instructions}
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

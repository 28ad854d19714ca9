"""``optarena/AArch64Peephole-v0``: apply peephole rewrites to an AArch64 block; cycles are the score.

**State.** One basic block of the corpus, parsed into instructions; ``info["asm"]`` prints it back
as valid assembly. The block is ``reset(options={"block": ID})``, else the environment's
``block=ID`` (one problem for a search agent: every reset starts from it), else drawn with the seed.

**Actions.** ``Discrete(4 * max_instructions)``: action ``r * max_instructions + i`` applies rule
``r`` at instruction ``i``: ``0`` pairs the load/store at ``i`` with its partner (``ldp``/``stp``),
``1`` folds the base update *after* access ``i`` into it, ``2`` folds the base update *before*
it, ``3`` merges the zero store at ``i`` with its neighbour into one twice as wide (see
:mod:`~optarena.envs.aarch64_peephole.rules` for the legality conditions).
``action_masks()`` and ``info["action_mask"]`` mark the legal ones; ``describe_actions()`` lists
them as text. ``rewrite(text)`` takes a whole replacement block (the ``Text`` variant
``optarena/AArch64PeepholeText-v0`` steps with it).

**Reward.** llvm-mca cycles saved by the step (``-mcpu``, ``iterations``), divided by the
block's starting cycles. Every accepted rewrite is first verified against the episode's
original block by the equivalence checker; an unverified rewrite changes nothing and earns 0.

**Episode end.** ``terminated`` when no legal rewrite is left; ``truncated`` after ``max_steps``.

**Measurements.** ``num_measurements`` counts new candidate blocks verified and scored and new
starting blocks scored; repeating one is free. ``info["score"]`` is the current cycles and
``info["improvement"]`` the starting cycles over the current ones.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from optarena.envs.aarch64_peephole.block import Instruction, format_block, parse_block
from optarena.envs.aarch64_peephole.check import CheckResult, EquivalenceChecker
from optarena.envs.aarch64_peephole.corpus import SHIPPED_CORPUS, BlockPair, load_corpus
from optarena.envs.aarch64_peephole.rules import (
    Rewrite,
    fold_sites,
    pair_sites,
    zero_store_sites,
)
from optarena.envs.aarch64_peephole.toolchain import AssembleError, Toolchain
from optarena.envs.outcome import mark_invalid

RULES = ("pair", "fold_after", "fold_before", "zero_store")
MNEMONICS = ("ldr", "ldur", "str", "stur", "ldp", "stp", "ldrsw", "ldpsw", "add", "sub", "mov",
             "mul", "madd", "fadd", "fmul", "fmadd", "cmp", "and", "orr", "eor", "lsl", "lsr")
FEATURES = 6


class AArch64PeepholeEnv(gym.Env[dict[str, np.ndarray], np.int64]):
    """Rewrite one basic block at a time; reward is the normalized llvm-mca cycle saving."""

    metadata = {"render_modes": ["ansi"]}  # noqa: RUF012 - gymnasium convention
    problem_kwargs: tuple[str, ...] = ("mcpu", "iterations")
    """Constructor arguments that define the problem besides the block: llvm-mca's model."""

    @classmethod
    def measures_time(cls, kwargs: dict[str, Any]) -> bool:
        """llvm-mca cycles do not depend on the machine's load."""
        return False

    @classmethod
    def baseline(cls, kwargs: dict[str, Any]) -> str:
        """Reports compare agents with the greedy rule (apply every profitable rewrite)."""
        return "greedy"

    def __init__(
        self,
        corpus: str | Path | None = None,
        mcpu: str = "neoverse-n1",
        *,
        block: str | None = None,
        iterations: int = 100,
        max_steps: int = 32,
        max_instructions: int = 64,
        check_states: int = 8,
        toolchain: Toolchain | None = None,
        render_mode: str | None = None,
    ) -> None:
        self.blocks = [b for b in load_corpus(Path(corpus) if corpus else SHIPPED_CORPUS)
                       if len(parse_block(b.input)) <= max_instructions]
        if not self.blocks:
            raise ValueError(f"no block of at most {max_instructions} instructions in the corpus")
        self.by_id = {b.id: b for b in self.blocks}
        if block is not None and block not in self.by_id:
            raise ValueError(f"unknown block {block!r} (or longer than {max_instructions} instructions)")
        self.fixed_block = block
        self.mcpu, self.iterations, self.max_steps = mcpu, iterations, max_steps
        self.max_instructions = max_instructions
        self.toolchain = toolchain or Toolchain()
        self.checker = EquivalenceChecker(self.toolchain, states=check_states)
        self.render_mode = render_mode
        self.action_space = spaces.Discrete(len(RULES) * max_instructions)
        self.observation_space = spaces.Dict({
            "instructions": spaces.Box(-1.0, 1.0, (max_instructions * FEATURES,), np.float32),
            "cycles": spaces.Box(0.0, 2.0, (1,), np.float32),
            "progress": spaces.Box(0.0, 1.0, (1,), np.float32),
        })
        self.entry: BlockPair | None = None
        self.block: list[Instruction] = []
        self.start_cycles = self.cycles_now = 0
        self._steps = 0
        self._verified: dict[tuple[str, str], CheckResult] = {}
        self._scored_starts: set[str] = set()
        self.num_measurements = 0
        """New candidate blocks verified and scored, plus new starting blocks scored (cache hits
        are free): the unit of sample efficiency, as in the tensor environment."""
        self.failed_verifications = 0
        self.num_cost_model_calls = 0

    # ------------------------------------------------------------------ gymnasium API

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        block = options.get("block", self.fixed_block)
        if block is not None:
            if block not in self.by_id:
                raise ValueError(f"unknown block {block!r}")
            self.entry = self.by_id[block]
        else:
            self.entry = self.blocks[int(self.np_random.integers(len(self.blocks)))]
        self.block = parse_block(self.entry.input)
        start = format_block(self.block)
        if start not in self._scored_starts:
            self._scored_starts.add(start)
            self.num_measurements += 1
        self.start_cycles = self.cycles_now = self.cycles(start)
        self._steps = 0
        return self._observation(), self._info()

    def step(self, action: int | np.integer
             ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        self._steps += 1
        site = self._sites().get(int(action))
        if site is None:
            return self._finish(0.0, f"action {int(action)} is not a legal rewrite here")
        return self._accept(site.apply(self.block), site.text)

    def rewrite(self, text: str) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Replace the whole block by ``text`` (an LLM's answer): verified, then scored."""
        self._steps += 1
        return self._accept(parse_block(text), "free-form rewrite")

    def render(self) -> str | None:
        if self.render_mode != "ansi" or self.entry is None:
            return None
        return f"{self.entry.id}: {self.cycles_now} cycles (start {self.start_cycles})\n" \
               f"{format_block(self.block)}"

    # ------------------------------------------------------------------ actions

    def _sites(self, block: list[Instruction] | None = None) -> dict[int, Rewrite]:
        """Legal rewrites of ``block`` (default: the current one) by action id."""
        block = self.block if block is None else block
        sites: dict[int, Rewrite] = {}
        for site in pair_sites(block):
            sites[site.anchor] = site
        for site in fold_sites(block):
            rule = RULES.index("fold_after" if site.second > site.first else "fold_before")
            sites[rule * self.max_instructions + site.anchor] = site
        for site in zero_store_sites(block):
            sites[RULES.index("zero_store") * self.max_instructions + site.anchor] = site
        return {a: s for a, s in sites.items() if s.anchor < self.max_instructions}

    def action_masks(self) -> np.ndarray:
        return self.legal_mask()

    def legal_mask(self, state: dict[str, str] | None = None) -> np.ndarray:
        """Legal actions of ``state`` (default: the current one), as 0/1 int8."""
        block = None if state is None else parse_block(state["asm"])
        mask = np.zeros(len(RULES) * self.max_instructions, dtype=np.int8)
        mask[list(self._sites(block))] = 1
        return mask

    def describe_actions(self, state: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """The legal rewrites of ``state`` (default: the current one) as ``{"id", "rule", "text"}``."""
        sites = self._sites(None if state is None else parse_block(state["asm"]))
        return [{"id": a, "rule": s.rule, "text": s.text} for a, s in sorted(sites.items())]

    # ------------------------------------------------------------------ prompts

    prompt_family = "aarch64_peephole"
    """Which prompt templates describe this environment to an LLM."""

    @staticmethod
    def program_text(state: dict[str, str], full: bool = False) -> str:
        """The state for a prompt: the block's assembly (already compact)."""
        return state["asm"]

    def target_text(self) -> str:
        return f"AArch64 {self.mcpu} (llvm-mca cycles for {self.iterations} iterations)"

    @staticmethod
    def format_score(score: float) -> str:
        return f"{score:.0f} cycles"

    # ------------------------------------------------------------------ tree search

    def get_state(self) -> dict[str, str]:
        """The current block and its corpus id (JSON-able; give it back to :meth:`set_state`)."""
        assert self.entry is not None, "call reset() first"
        return {"block": self.entry.id, "asm": format_block(self.block)}

    def set_state(self, state: dict[str, str]) -> dict[str, Any]:
        """Jump to a rewrite of a corpus block (e.g. from :meth:`transition`). A block not seen
        before is verified against the original first (one measurement); an inequivalent one
        raises ``ValueError`` and changes nothing."""
        entry = self.by_id.get(state["block"])
        if entry is None:
            raise ValueError(f"unknown block {state['block']!r}")
        block = parse_block(state["asm"])
        asm, start = format_block(block), format_block(parse_block(entry.input))
        if asm != start:
            result = self._verify(entry, asm)
            if not result.equivalent:
                assert result.failure is not None
                raise ValueError(f"not equivalent to block {entry.id} "
                                 f"({result.failure.kind}): {result.failure.detail}")
        self.entry, self.block = entry, block
        self.start_cycles = self.cycles(start)
        self.cycles_now = self.cycles(asm)
        return self._info()

    def transition(self, state: dict[str, str], action: int) -> dict[str, str] | str:
        """The block ``action`` rewrites ``state`` into, or why it is illegal; verifies and
        measures nothing (:meth:`set_state` does)."""
        block = parse_block(state["asm"])
        site = self._sites(block).get(int(action))
        if site is None:
            return f"action {int(action)} is not a legal rewrite here"
        return {"block": state["block"], "asm": format_block(site.apply(block))}

    has_cost_model = True
    """:meth:`estimate` is always available."""

    def estimate(self, states: list[dict[str, str]]) -> np.ndarray:
        """llvm-mca cycles of unverified blocks: the cheap cost model of tree search, counted in
        ``num_cost_model_calls``, not in ``num_measurements``."""
        self.num_cost_model_calls += len(states)
        return np.array([self.cycles(s["asm"]) for s in states], dtype=float)

    # ------------------------------------------------------------------ provenance

    def problem(self, block: str | None = None) -> dict[str, Any]:
        """What scores are measured on, for results and submissions: the block (``block``, else
        the fixed or current one) and the SHA-256 of its text, llvm-mca's CPU, iterations and
        version, and the reference score (the block's starting cycles)."""
        entry = self.by_id[block or self.fixed_block or (self.entry.id if self.entry else "")]
        start = format_block(parse_block(entry.input))
        return {
            "workload": entry.id,
            "workload_hash": hashlib.sha256(entry.input.encode()).hexdigest()[:16],
            "target": {"mcpu": self.mcpu, "iterations": self.iterations,
                       "llvm_mca": self.toolchain.version()},
            "reference_score": self.cycles(start),
        }

    # ------------------------------------------------------------------ scoring

    def cycles(self, asm: str) -> int:
        return self.toolchain.cycles(asm, self.mcpu, self.iterations)

    def _accept(self, candidate: list[Instruction], what: str
                ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        assert self.entry is not None
        text = format_block(candidate)
        result = self._verify(self.entry, text)
        if not result.equivalent:
            failure = result.failure
            assert failure is not None
            return self._finish(0.0, f"{what} not verified ({failure.kind}): {failure.detail}",
                                failure=failure.kind)
        try:
            cycles = self.cycles(text)
        except AssembleError as err:
            return self._finish(0.0, f"llvm-mca rejected the block: {err.message}")
        reward = (self.cycles_now - cycles) / self.start_cycles
        self.block, self.cycles_now = candidate, cycles
        return self._finish(reward, None)

    def _verify(self, entry: BlockPair, asm: str) -> CheckResult:
        """Check ``asm`` against the entry's original block (a measurement unless cached)."""
        key = (entry.input, asm)
        result = self._verified.get(key)
        if result is None:
            result = self._verified[key] = self.checker.check(entry.input, asm)
            self.num_measurements += 1
            self.failed_verifications += not result.equivalent
        return result

    def _finish(self, reward: float, invalid: str | None, failure: str | None = None
                ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        info = mark_invalid(self._info(), invalid, failure)
        terminated = not info["action_mask"].any()
        return self._observation(), reward, terminated, self._steps >= self.max_steps, info

    def _observation(self) -> dict[str, np.ndarray]:
        features = np.zeros((self.max_instructions, FEATURES), dtype=np.float32)
        for i, inst in enumerate(self.block[: self.max_instructions]):
            memory = inst.memory
            features[i] = (
                (MNEMONICS.index(inst.mnemonic) + 1) / len(MNEMONICS)
                if inst.mnemonic in MNEMONICS else -1.0,
                {"load": 1.0, "store": -1.0}.get(inst.access or "", 0.0),
                inst.size / 16 if memory else 0.0,
                np.clip(memory.offset / 512, -1, 1) if memory else 0.0,
                {"offset": 0.0, "pre": 0.5, "post": 1.0}[memory.mode] if memory else -1.0,
                len(inst.data_registers) / 2 if memory else 0.0,
            )
        return {
            "instructions": features.reshape(-1),
            "cycles": np.array([min(self.cycles_now / self.start_cycles, 2.0)], np.float32),
            "progress": np.array([min(self._steps / self.max_steps, 1.0)], np.float32),
        }

    def _info(self) -> dict[str, Any]:
        assert self.entry is not None
        oracle = self.cycles(self.entry.oracle) if self.entry.oracle else None
        return {
            "block": self.entry.id,
            "asm": format_block(self.block),
            "cycles": self.cycles_now,
            "start_cycles": self.start_cycles,
            "oracle_cycles": oracle,
            "action_mask": self.action_masks(),
            "num_measurements": self.num_measurements,
            "score": self.cycles_now,
            "improvement": self.start_cycles / self.cycles_now,
            "state": {"block": self.entry.id, "asm": format_block(self.block)},
        }


class AArch64PeepholeTextEnv(AArch64PeepholeEnv):
    """The same environment with a ``Text`` action: the whole replacement block."""

    def __init__(self, *args: Any, max_text: int = 8192, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.action_space = spaces.Text(max_length=max_text, min_length=0,  # type: ignore[assignment]
                                        charset="".join(chr(c) for c in range(9, 127)))

    def step(self, action: str) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:  # type: ignore[override]
        return self.rewrite(action)

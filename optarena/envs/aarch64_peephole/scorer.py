"""How ``optarena/AArch64Peephole-v0`` scores a block: verified, then llvm-mca cycles.

A candidate block is first checked against its problem's original block by the equivalence
checker (:mod:`~optarena.envs.aarch64_peephole.check`: random states, and a proof for every
state when ``proof_time_limit`` is set); an inequivalent block is a failed measurement whose kind is the
checker's class (``assemble``, ``register``, ``memory``, ``flags``, ``crash``). An equivalent one
scores llvm-mca's total cycles for ``iterations`` repetitions on ``mcpu``. Every checked
outcome's ``extras`` hold the checker's ``verdict`` (``proved``, ``refuted``, ``tested``), the
``verdict_note`` of a tested one and the ``counterexample`` of a refutation the prover found;
``verdicts`` counts the verdicts of the checks this scorer ran. Scores are deterministic, but for
a proof that meets its time limit on one machine and not on another: a rewrite wrong only for
states the random ones miss is then refuted on one and accepted as tested on the other. The
reference is the original block; the anchor ``llvm`` is LLVM's own load/store optimizer's output
(the corpus oracle), where the corpus has one.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from importlib.metadata import version
from typing import Any

import numpy as np

from optarena.envs.aarch64_peephole.block import format_block, parse_block
from optarena.envs.aarch64_peephole.check import Equivalence, EquivalenceChecker
from optarena.envs.aarch64_peephole.corpus import BlockPair
from optarena.envs.aarch64_peephole.space import BlockState
from optarena.envs.aarch64_peephole.toolchain import AssembleError, Toolchain
from optarena.envs.contract import Failure, Outcome, Program

CHECKER_FAILURES = frozenset({"assemble", "register", "memory", "flags", "crash"})


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class PeepholeScorer:
    """Equivalence-checked llvm-mca cycles of blocks of one corpus."""

    deterministic = True
    has_cost_model = True
    """:meth:`estimate` (unverified llvm-mca cycles) is always available."""

    def __init__(self, blocks: Mapping[str, BlockPair], toolchain: Toolchain, mcpu: str,
                 iterations: int, check_states: int, proof_time_limit: float | None = None
                 ) -> None:
        self.blocks = blocks
        self.toolchain = toolchain
        self.mcpu = mcpu
        self.iterations = iterations
        self.checker = EquivalenceChecker(toolchain, states=check_states,
                                          proof_time_limit=proof_time_limit)
        self.num_cost_model_calls = 0
        self.verdicts: Counter[str] = Counter()
        """Verdicts of the checks this scorer ran (programs the store answered are not rechecked)."""

    def original(self, problem: str) -> str:
        """The problem's block as compiled, in canonical text."""
        return format_block(parse_block(self.blocks[problem].input))

    def context(self, problem: str) -> dict[str, Any]:
        checker: dict[str, Any] = {"states": self.checker.states, "seed": self.checker.seed}
        prover = self.checker.prover
        if prover is not None:  # proofs change which rewrites are accepted
            checker["prover"] = {"time_limit": prover.time_limit, "pyvex": version("pyvex"),
                                 "z3": version("z3-solver")}
        return {
            "workload_hash": text_hash(self.blocks[problem].input),
            "target": {"mcpu": self.mcpu, "iterations": self.iterations,
                       "llvm_mca": self.toolchain.version()},
            "checker": checker,
        }

    def anchors(self, problem: str) -> dict[str, Outcome]:
        """``llvm``: the cycles of LLVM's own load/store optimizer's output (if known)."""
        oracle = self.blocks[problem].oracle
        if oracle is None:
            return {}
        cycles = self.cycles([oracle])[0]
        return {} if isinstance(cycles, AssembleError) else {"llvm": Outcome(float(cycles))}

    def compile(self, state: BlockState) -> Program:
        return Program(state.problem, text_hash(state.asm), state.asm)

    def reference(self, problem: str) -> Program:
        original = self.original(problem)
        return Program(problem, text_hash(original), original)

    def score(self, programs: Sequence[Program], bound: Sequence[float | None]) -> list[Outcome]:
        """Verify the batch against the originals (one assembler run, the originals' emulation
        kept), then score the equivalent blocks in one llvm-mca run."""
        outcomes: dict[int, Outcome] = {}
        extras: dict[int, dict[str, Any]] = {}
        candidates = [i for i, p in enumerate(programs) if p.payload != self.original(p.problem)]
        checks = self.checker.check_many([(self.blocks[programs[i].problem].input,
                                           programs[i].payload) for i in candidates])
        for index, result in zip(candidates, checks, strict=True):
            extras[index] = _verdict(result)
            if result.verdict is not None:
                self.verdicts[result.verdict] += 1
            if not result.equivalent:
                assert result.failure is not None
                outcomes[index] = Outcome(None, Failure(result.failure.kind, result.failure.detail),
                                          extras=extras[index])
        verified = [i for i in range(len(programs)) if i not in outcomes]
        for index, cycles in zip(verified, self.cycles([programs[i].payload for i in verified]),
                                 strict=True):
            known = extras.get(index, {"verdict": "proved"})  # the original block itself
            outcomes[index] = (
                Outcome(None, Failure("assemble", f"llvm-mca: {cycles.message}"), extras=known)
                if isinstance(cycles, AssembleError) else Outcome(float(cycles), extras=known))
        return [outcomes[i] for i in range(len(programs))]

    def cycles(self, blocks: Sequence[str]) -> list[int | AssembleError]:
        """llvm-mca cycles of each block (unverified, one llvm-mca run), or why it was rejected."""
        return self.toolchain.cycles_many(blocks, self.mcpu, self.iterations)

    def estimate(self, states: Sequence[BlockState]) -> np.ndarray:
        """llvm-mca cycles of unverified blocks: the cheap cost model of tree search."""
        self.num_cost_model_calls += len(states)
        return np.array([c if isinstance(c, int) else np.inf
                         for c in self.cycles([s.asm for s in states])], dtype=float)

    def close(self) -> None:
        """Nothing runs between calls."""


def _verdict(result: Equivalence) -> dict[str, Any]:
    """The ``extras`` of a checked program: its verdict, and why or against what."""
    if result.verdict is None:  # it did not assemble
        return {}
    extras: dict[str, Any] = {"verdict": result.verdict}
    if result.note:
        extras["verdict_note"] = result.note
    if result.counterexample is not None:
        extras["counterexample"] = result.counterexample.to_json()
    return extras

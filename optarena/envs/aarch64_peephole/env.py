"""``optarena/AArch64Peephole-v0``: apply peephole rewrites to an AArch64 block; cycles are the score.

It implements the contract of :mod:`optarena.envs.contract` (reward, episode end, ``info`` keys,
measurements) over :class:`~optarena.envs.aarch64_peephole.space.PeepholeSpace` (states, actions,
observations) and :class:`~optarena.envs.aarch64_peephole.scorer.PeepholeScorer` (verified
llvm-mca cycles).

**Problems** are the blocks of the corpus (default: the shipped one) with at most
``max_instructions`` instructions: ``block=ID`` fixes one (every reset starts from it), a list
of ids restricts them, ``reset(options={"problem": ID})`` picks one, else a reset draws one with
its seed among those with a legal rewrite (:mod:`optarena.envs.base`): 43 of the shipped
corpus's 93 blocks have none, and a drawn episode never starts with an all-zero action mask. A
block named explicitly is played even without one (its mask is all zeros; ``stop_action=True``
adds an action that is always legal). The starting state is the block as compiled; the
reference score is its cycles.

**Actions** are rewrites at sites (``describe_actions()`` lists them as text) of the rule
families ``rules`` (:mod:`~optarena.envs.aarch64_peephole.space`): LLVM's load/store optimizer's
(``"load-store"``, the default) or ``"deep"`` (with store-to-load forwarding, dead stores and
definitions, multiply-add and shifted-operand fusion and scheduling) or a list of names; ``rewrite(text)``
steps to a whole replacement block instead (an LLM's answer), and the ``Text`` variant
``optarena/AArch64PeepholeText-v0`` takes that text as its action.

**Score**: llvm-mca cycles of the block, after the equivalence checker accepted it against the
original: an unverified rewrite is a failed measurement (``info["failure"]["kind"]`` is the
checker's class) that changes nothing and earns 0. With ``prove`` (the default) the checker
also proves rewrites equivalent for every state, within ``proof_time_limit`` seconds (see
:mod:`~optarena.envs.aarch64_peephole.check`): ``info["verdict"]`` is the checker's verdict on
the program the step moved to or tried (``proved``, ``refuted``, ``tested``;
``info["verdict_note"]`` says why one was only tested, ``info["counterexample"]`` is the
prover's state that refutes one, and ``verdicts`` and ``tested_share`` count them). Anchors
(``problem()["anchors"]``): ``llvm``, the cycles of LLVM's own result for the block.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gymnasium import spaces

from optarena.envs.aarch64_peephole.block import format_block, parse_block
from optarena.envs.aarch64_peephole.corpus import MAX_INSTRUCTIONS, select_blocks
from optarena.envs.aarch64_peephole.prove import DEFAULT_TIME_LIMIT
from optarena.envs.aarch64_peephole.scorer import CHECKER_FAILURES, PeepholeScorer
from optarena.envs.aarch64_peephole.space import LOAD_STORE_RULES, BlockState, PeepholeSpace
from optarena.envs.aarch64_peephole.splits import SPLITS as PEEPHOLE_SPLITS
from optarena.envs.aarch64_peephole.toolchain import Toolchain
from optarena.envs.base import ArenaEnv
from optarena.envs.contract import Outcome
from optarena.envs.episodes import StepResult
from optarena.envs.splits import Split
from optarena.envs.store import Store

CHECK_STATES = 8
"""Random machine states the equivalence checker runs both blocks from (plus alias states)."""
VERDICT_KEYS = ("verdict", "verdict_note", "counterexample")
"""The ``info`` entries of the checker's verdict on a program (from its outcome's extras)."""


class AArch64PeepholeEnv(ArenaEnv[BlockState]):
    """Rewrite one basic block at a time; the score is its verified llvm-mca cycles."""

    prompt_family = "aarch64_peephole"

    def __init__(
        self,
        corpus: str | Path | None = None,
        mcpu: str = "neoverse-n1",
        *,
        block: str | Sequence[str] | None = None,
        iterations: int = 100,
        max_steps: int = 32,
        stop_action: bool = False,
        max_instructions: int = MAX_INSTRUCTIONS,
        rules: str | Sequence[str] = LOAD_STORE_RULES,
        check_states: int = CHECK_STATES,
        prove: bool = True,
        proof_time_limit: float = DEFAULT_TIME_LIMIT,
        toolchain: Toolchain | None = None,
        store: Store | str | Path | None = "default",
        render_mode: str | None = None,
    ) -> None:
        blocks = select_blocks(corpus, max_instructions,
                               [block] if isinstance(block, str) else block)
        toolchain = toolchain or Toolchain()
        toolchain.check_mcpu(mcpu)
        space = PeepholeSpace(blocks, max_instructions, rules=rules)
        scorer = PeepholeScorer(space.blocks, toolchain, mcpu, iterations, check_states,
                                proof_time_limit if prove else None)
        super().__init__(space, scorer, problem=block if isinstance(block, str) else None,
                         max_steps=max_steps, stop_action=stop_action, store=store,
                         render_mode=render_mode, info_extras=_verdict,
                         tried_extras=_verdict)
        self.mcpu, self.iterations, self.max_instructions = mcpu, iterations, max_instructions
        self._verdicts = scorer.verdicts

    @classmethod
    def splits(cls) -> Sequence[Split]:
        """Its train/test splits (:mod:`optarena.envs.aarch64_peephole.splits`)."""
        return PEEPHOLE_SPLITS

    def rewrite(self, text: str) -> StepResult:
        """Step to ``text``, a whole replacement of the current block (verified, then scored)."""
        state = self.get_state()
        successor = BlockState(state.problem, format_block(parse_block(text)))
        return self.runner.advance([self.episode], [successor], [None], ["free-form rewrite"])[0]

    @property
    def verdicts(self) -> Mapping[str, int]:
        """How many checked rewrites were proved, refuted and only tested (a copy)."""
        return dict(self._verdicts)

    @property
    def tested_share(self) -> float:
        """Of the accepted rewrites, the share only tested, not proved (0 when none)."""
        counts = self.verdicts
        accepted = counts.get("proved", 0) + counts.get("tested", 0)
        return counts.get("tested", 0) / accepted if accepted else 0.0

    @property
    def failed_verifications(self) -> int:
        """Candidate blocks the equivalence checker rejected."""
        return sum(self.evaluator.failures[kind] for kind in CHECKER_FAILURES)

    def program_text(self, state: BlockState, full: bool = False) -> str:
        """The block's assembly (already compact)."""
        return state.asm

    def target_text(self) -> str:
        return f"AArch64 {self.mcpu} (llvm-mca cycles for {self.iterations} iterations)"

    def format_score(self, score: float) -> str:
        return f"{score:.0f} cycles"


def _verdict(state: BlockState, outcome: Outcome) -> dict[str, Any]:
    """The checker's verdict on a program, from its outcome (``info`` entries)."""
    return {key: outcome.extras[key] for key in VERDICT_KEYS if key in outcome.extras}


class AArch64PeepholeTextEnv(AArch64PeepholeEnv):
    """The same environment with a ``Text`` action: the whole replacement block."""

    def __init__(self, *args: Any, max_text: int = 8192, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.action_space = spaces.Text(max_length=max_text, min_length=0,  # type: ignore[assignment]
                                        charset="".join(chr(c) for c in range(9, 127)))

    def step(self, action: str) -> StepResult:  # type: ignore[override]
        return self.rewrite(action)


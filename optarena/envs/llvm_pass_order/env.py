"""``optarena/LlvmPassOrder-v0``: order LLVM passes on a program; its cost on a CPU is the score.

A gymnasium environment around CompilerGym's ``llvm-v0`` (run in its own virtual environment:
``optarena setup compiler-gym``; see :mod:`~optarena.envs.llvm_pass_order.session`). It
implements the contract of :mod:`optarena.envs.contract` over
:class:`~optarena.envs.llvm_pass_order.space.PassSpace` and
:class:`~optarena.envs.llvm_pass_order.scorer.PassScorer`.

**Problems**: ``benchmark=`` one spec or a list (``suite:NAME``, ``csmith:SEED``,
``llvm-stress:SEED``, a ``.c``/``.ll``/``.bc`` file; see
:mod:`~optarena.envs.llvm_pass_order.workload`); a reset starts from the unoptimized program of
the one benchmark, of ``options={"problem": SPEC}``, or of one drawn with the seed. The reference
score is the unoptimized program's; with ``start="-Oz"`` episodes start from the program after
LLVM's ``-Oz`` pipeline (as many entries of CompilerGym's leaderboard do), which is then the
reference (an improvement is then ``-Oz``'s score over the agent's).

**Actions**: ``Discrete(124)``, one of CompilerGym's ``opt`` passes; ``action_masks()`` allows
``passes=`` or all but instrumentation and renaming passes.

**Score** (``reward=``, lower is better): ``runtime`` (default: measured seconds; programs with a
``main``), ``cycles`` (llc + llvm-mca for this host's CPU, or ``target="aarch64"``),
``ir_instructions`` or ``code_size`` (CompilerGym's); see
:mod:`~optarena.envs.llvm_pass_order.measure`. Anchors: ``-O3`` and ``-Oz``. With ``check``
(default: on for ``runtime``), every new program with a ``main`` is run and must behave like the
unoptimized one, or the step fails (``info["failure"]["kind"]``: ``output``, ``crash``,
``timeout``).

**Programs** (``identity=``): ``"ir"`` (default), a program is its IR (CompilerGym's ``IrSha1``):
pass sequences that give the same IR are one measurement; hashing the IR costs CompilerGym a few
milliseconds a step on larger programs (most of a step for the IR-count metrics). ``"passes"``:
a program is its pass sequence, no IR is hashed (a step costs what CompilerGym's own ``step``
costs); repeats of a sequence are still free, but two sequences that reach the same IR are two
measurements. Training uses ``"passes"``; races and verification ``"ir"``.

**Services** (``services=``, default 1): CompilerGym services run at once, each holding one
problem. Episodes of different problems stepped together (a vector environment, e.g.
``gym.make_vec(ID, num_envs=8, services=16)``: twice the episodes) each step on in their own
service, the services building a step's programs in parallel; with fewer, a service is reset to
another problem and replays its passes.

**Crossover** (evolutionary search): a prefix of one pass sequence and a suffix of another.

**info extras**: ``ir_instructions``, the current IR's instruction count.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from optarena.envs.base import ArenaEnv
from optarena.envs.contract import Outcome
from optarena.envs.llvm_pass_order.measure import METRICS, BitcodeMeasurer, default_mcpu
from optarena.envs.llvm_pass_order.scorer import IDENTITIES, PassScorer
from optarena.envs.llvm_pass_order.session import Session
from optarena.envs.llvm_pass_order.space import PassSpace, PassState
from optarena.envs.llvm_pass_order.splits import SPLITS as LLVM_SPLITS
from optarena.envs.llvm_pass_order.workload import parse_benchmark
from optarena.envs.splits import Split
from optarena.envs.store import Store


class LlvmPassOrderEnv(ArenaEnv[PassState]):
    """Apply one LLVM pass per step; the score is the program's cost."""

    prompt_family = "llvm_pass_order"

    def __init__(
        self,
        benchmark: str | Sequence[str] = "suite:matmul",
        *,
        reward: str = "runtime",
        target: str = "host",
        mcpu: str | None = None,
        observation: str = "autophase",
        passes: list[str] | None = None,
        max_steps: int = 32,
        stop_action: bool = False,
        identity: str = "ir",
        runs: int = 5,
        check: bool | None = None,
        run_timeout_s: float = 10.0,
        service_timeout_s: float = 120.0,
        services: int = 1,
        home: str | Path | None = None,
        start: str = "unoptimized",
        store: Store | str | Path | None = "default",
        render_mode: str | None = None,
    ) -> None:
        if reward not in METRICS:
            raise ValueError(f"unknown reward {reward!r}; available: {METRICS}")
        if identity not in IDENTITIES:
            raise ValueError(f"unknown identity {identity!r}; use one of {IDENTITIES}")
        if reward == "runtime" and target != "host":
            raise ValueError("reward='runtime' runs the program: it needs target='host'")
        benchmarks = [benchmark] if isinstance(benchmark, str) else list(benchmark)
        measurer = BitcodeMeasurer(target, mcpu or default_mcpu(target), runs=runs,
                            timeout_s=run_timeout_s)
        scorer = PassScorer(functools.partial(Session, Path(home) if home else None,
                                              service_timeout_s), measurer,
                            reward, observation, reward == "runtime" if check is None else check,
                            identity=identity, services=services, start=start)
        for spec in benchmarks:  # every spec is checked now, loaded when first used
            parse_benchmark(spec)
        try:
            scorer.load(benchmarks[0])
            if reward == "runtime" and scorer.reference_run(benchmarks[0]) is None:
                raise ValueError(f"{benchmarks[0]} has no main that runs: use reward='cycles'")
            space = PassSpace(benchmarks, scorer.pass_names, passes, observation)
            super().__init__(space, scorer, problem=benchmarks[0] if len(benchmarks) == 1
                             else None, max_steps=max_steps, stop_action=stop_action,
                             store=store, render_mode=render_mode, info_extras=_ir_instructions)
            self.reference_score(benchmarks[0])  # the unoptimized program must score
        except BaseException:
            scorer.close()  # the service and the scratch folder do not outlive a failed start
            raise
        self.metric, self.measurer, self.pass_names = reward, measurer, space.pass_names
        self.llvm: PassScorer = scorer

    @classmethod
    def splits(cls) -> Sequence[Split]:
        """Its train/test splits (:mod:`optarena.envs.llvm_pass_order.splits`)."""
        return LLVM_SPLITS

    def program_text(self, state: PassState, full: bool = False) -> str:
        """The passes so far and the IR's size and commonest opcodes, or with ``full`` the IR
        itself (``llvm-dis``, cut at 6,000 characters)."""
        head = f"passes applied: {' '.join(state.passes) or '(none)'}"
        if full:
            return head + "\n" + self.llvm.ir_text(state, 6000)
        counts = self.llvm.opcodes(state)
        common = sorted(counts.items(), key=lambda kv: -kv[1])[:8]
        return f"{head}\nIR: {sum(counts.values())} instructions; " + \
            ", ".join(f"{name} {count}" for name, count in common)

    def crossover(self, a: PassState, b: PassState, rng: np.random.Generator) -> PassState | str:
        """One-point crossover of two pass sequences of one program, as genetic algorithms for
        phase ordering recombine them: a prefix of ``a`` (cut uniformly, both ends included)
        followed by a suffix of ``b``, or why there is none (different programs); measures
        nothing."""
        if a.problem != b.problem:
            return f"programs {a.problem} and {b.problem} differ: no crossover"
        head = int(rng.integers(len(a.passes) + 1))
        tail = int(rng.integers(len(b.passes) + 1))
        return PassState(a.problem, (*a.passes[:head], *b.passes[tail:]))

    def target_text(self) -> str:
        return f"{self.measurer.triple} -mcpu={self.measurer.mcpu} ({self.metric})"

    def format_score(self, score: float) -> str:
        units = {"cycles": "cycles", "ir_instructions": "IR instructions", "code_size": "bytes"}
        if self.metric == "runtime":
            return f"{score * 1e3:.2f} ms"
        return f"{score:.0f} {units[self.metric]}"


def _ir_instructions(state: PassState, outcome: Outcome) -> dict[str, Any]:
    """``info["ir_instructions"]``: the IR instruction count of the state's program."""
    return {"ir_instructions": outcome.extras["ir_instructions"]}

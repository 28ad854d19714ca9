"""Stock MetaSchedule: ``tune_tir`` with its evolutionary search and XGB cost model.

The baseline the Reasoning Compiler compares against. It tunes the environment's workload on the
environment's target with MetaSchedule's own builder, runner and database; every trial it runs
is one sample (``usage.measurements``). The budget is the environment's evaluator's, like every
agent's (the :class:`~optarena.agents.base.Tracker` sets it): MetaSchedule is given what is left
as ``max_trials_global`` (its search strategy never measures more), and its trials are charged to
the evaluator (:meth:`~optarena.envs.evaluator.Evaluator.charge`), which refuses more than is
left. Its search
settings are MetaSchedule's defaults and are recorded in ``SearchResult.details``, with two
recorded deviations:

* the runner times with the environment's settings (``number``, ``repeat``, ``min_repeat_ms``)
  and on the environment's threads (the target's ``num-cores``, as the environment's workers), so
  that latencies are comparable with the other agents', and the builder stops at the
  environment's ``build_timeout_s`` (30 s by default, as stock). A stock runner's worker sets no
  thread count, and TVM then takes half the logical CPUs on x86 (it assumes hyper-threading): on
  the 2-core machines without SMT its kernels ran on 1 thread, so MetaSchedule searched on
  single-threaded timings for programs that are then timed, like every agent's, on 2;
* the builder's worker processes import only the CPU tensor intrinsics
  (``cpu_intrinsics_only``): stock workers import every target's intrinsics on start, which
  takes about 44 s on the 2-core reference machine, longer than the builder's 30 s timeout, so
  that stock ``tune_tir`` builds nothing there.

MetaSchedule's runner reports the *mean* of its repeats, which for microsecond kernels includes
the thread pool's start in a fresh process (8x the median for a 64^3 matmul here). So that its
scores compare with the other agents', every successful trial is timed again by the
environment's measurer (not counted again: the charge paid for those programs; MetaSchedule's own
best is in ``details``), in batches of ``num_trials_per_iter`` like any agent's.
The curve follows the trials in the order they were committed to MetaSchedule's JSON database;
a failed trial counts as a sample and improves nothing. MetaSchedule's runner does not check
outputs; the environment's measurer does, so a trial whose program computes a wrong result never
scores: ``details`` counts such trials by failure kind (``rejected_by_the_environment``) and says
whether MetaSchedule's own best was one (``metaschedule_best_rejected``). Each trial's trace is
read back as the environment's state (MetaSchedule searches the same sketches), so
``best_state`` is a state like every other agent's, which a submission replays and verifies.
"""

from __future__ import annotations

import functools
import json
import math
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import gymnasium as gym

from optarena.agents.base import CurvePoint, SearchResult, Tracker
from optarena.envs.contract import Outcome
from optarena.envs.host import usable_cores

if TYPE_CHECKING:
    import tvm
    from tvm.s_tir.meta_schedule.runner import LocalRunner

    from optarena.envs.tensor_schedule.measure import MeasureConfig
    from optarena.envs.tensor_schedule.space import ScheduleState


def stock_runner(timing: MeasureConfig, target: tvm.target.Target | None) -> LocalRunner:
    """MetaSchedule's ``LocalRunner`` timing with ``timing``'s protocol, its kernels on the
    threads the environment's workers use for ``target`` (``None``: TVM's default, as stock;
    see the module docstring)."""
    from tvm.s_tir import meta_schedule as ms

    from optarena.envs.tensor_schedule.target import kernel_threads, set_kernel_threads

    return ms.runner.LocalRunner(
        evaluator_config=ms.runner.EvaluatorConfig(
            number=timing.number, repeat=timing.repeat, min_repeat_ms=timing.min_repeat_ms,
            enable_cpu_cache_flush=False),
        initializer=None if target is None else functools.partial(set_kernel_threads,
                                                                   kernel_threads(target)))


FAILED_RUN_S = 1e9
"""MetaSchedule records failed runs with a huge run time (1e10 s)."""


@dataclass
class MetaScheduleConfig:
    num_trials_per_iter: int = 64
    """Candidates measured per search iteration (stock: 64)."""
    cost_model: str = "xgb"
    strategy: str = "evolutionary"
    cpu_intrinsics_only: bool = True
    """Builder workers import only the CPU tensor intrinsics (see the module docstring)."""
    work_dir: str | None = None
    """Where MetaSchedule writes its logs and database (default: a temporary folder)."""
    prior: bool = False
    """Start the XGB model from the environment's cost-model prior (``surrogate_prior``), as
    ``evolutionary-prior`` does: the like-for-like comparison for an agent with a prior. Not
    stock; recorded in ``details``."""
    runner_threads: Literal["target", "tvm-default"] = "target"
    """The threads the runner's kernels run on: the target's ``num-cores``, as the environment's
    workers (default), or TVM's own default, as a stock runner (half the logical CPUs on x86;
    see the module docstring)."""

    def __post_init__(self) -> None:
        if self.runner_threads not in ("target", "tvm-default"):
            raise ValueError(f"runner_threads {self.runner_threads!r}: 'target' (the target's "
                             "num-cores) or 'tvm-default' (TVM's own thread count)")


class MetaSchedule:
    """``tvm.s_tir.meta_schedule.tune_tir`` as an agent."""

    name = "metaschedule"

    def __init__(self, config: MetaScheduleConfig | None = None) -> None:
        self.config = config or MetaScheduleConfig()

    def run(self, env: gym.Env, budget: int, seed: int) -> SearchResult:
        # TVM loads here, not when the agents are imported (peephole and LLVM users need none)
        from tvm.s_tir import meta_schedule as ms

        from optarena.envs.tensor_schedule.cost_model import xgboost_file_format_quiet
        from optarena.envs.tensor_schedule.env import TensorScheduleEnv
        from optarena.envs.tensor_schedule.space import import_cpu_tensor_intrinsics

        inner = env.unwrapped
        if not isinstance(inner, TensorScheduleEnv):
            raise ValueError("the metaschedule agent tunes tensor-schedule environments only")
        config, timing = self.config, inner.tensor.config
        tracker = Tracker(self.name, env, budget, seed)
        result = tracker.result
        baseline = inner.reference_score()
        builder = ms.builder.LocalBuilder(
            timeout_sec=timing.build_timeout_s,
            initializer=import_cpu_tensor_intrinsics if config.cpu_intrinsics_only else None)
        runner = stock_runner(timing, inner.target if config.runner_threads == "target" else None)
        cost_model: Any = config.cost_model
        if config.prior:
            prior = inner.tensor.surrogate_prior
            if prior is None or config.cost_model != "xgb":
                raise ValueError("metaschedule's prior: true needs cost_model 'xgb' and an "
                                 "environment made with surrogate_prior")
            cost_model = ms.cost_model.XGBModel(num_tuning_cores=usable_cores(),
                                                tree_method="auto")  # tune_tir's, our cores
            with xgboost_file_format_quiet():
                cost_model.load(str(prior))
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="optarena-ms-") as scratch:
            work_dir = Path(config.work_dir or scratch)
            ms.tune_tir(mod=inner.workload.mod, target=inner.target, work_dir=str(work_dir),
                        max_trials_global=tracker.left,
                        num_trials_per_iter=config.num_trials_per_iter,
                        builder=builder, runner=runner, cost_model=cost_model,
                        strategy=config.strategy, seed=seed)
            wall = time.perf_counter() - start
            runner.pool.shutdown()  # its idle worker would disturb the timing below
            records = _records_in_commit_order(work_dir / "database_tuning_record.json")
        ms_best = min((latency for latency, _ in records), default=math.inf)
        states: list[ScheduleState | None] = []  # None: the trial failed or is not a state
        unmapped = 0
        for ms_latency, trace in records:
            state = None
            if ms_latency < math.inf:
                try:
                    state = inner.state_of_trace(trace)
                except ValueError:
                    unmapped += 1
            states.append(state)
        failed = sum(latency == math.inf for latency, _ in records)
        inner.evaluator.charge(len(records), failures={"metaschedule": failed} if failed else {},
                               states=[state for state in states if state is not None])
        outcomes = _timed_again(inner, states, config.num_trials_per_iter)
        rejected: dict[str, int] = {}  # trials MetaSchedule ran that the environment refuses
        ms_best_rejected = False
        for index, ((ms_latency, _), state) in enumerate(zip(records, states, strict=True),
                                                         start=1):
            outcome = outcomes.get(state)
            if outcome is not None and outcome.failure is not None:
                rejected[outcome.failure.kind] = rejected.get(outcome.failure.kind, 0) + 1
                ms_best_rejected |= ms_latency == ms_best
            if outcome is not None and outcome.score is not None \
                    and outcome.score < result.best_score:
                result.best_score = outcome.score
                result.best_improvement = baseline / outcome.score
                result.best_state = state.to_json()  # type: ignore[union-attr]
            # trial times are not recorded; spread them evenly over the run's wall-clock
            result.curve.append(CurvePoint(
                measurements=index, wall_s=wall * index / len(records),
                best_score=result.best_score, best_improvement=result.best_improvement))
        tracker.finish()  # the usage: the trials charged (the timing again was paid for)
        result.wall_s = wall
        result.details = {
            "metaschedule": asdict(config),
            "runner": {"number": timing.number, "repeat": timing.repeat,
                       "min_repeat_ms": timing.min_repeat_ms},
            "builder": {"timeout_s": timing.build_timeout_s},
            "metaschedule_best_latency_s": ms_best,
            "traces_not_in_the_design_space": unmapped,
            "rejected_by_the_environment": rejected,
            "metaschedule_best_rejected": ms_best_rejected,
        }
        if config.prior:
            result.details["prior"] = inner.tensor.prior_description
        return result


def _timed_again(inner: Any, states: list[ScheduleState | None], batch: int
                 ) -> dict[ScheduleState | None, Outcome]:
    """The environment's outcome of each distinct state, measured in batches of ``batch``
    (built in parallel, timed one program at a time, as every agent's batches)."""
    distinct = list(dict.fromkeys(state for state in states if state is not None))
    outcomes: dict[ScheduleState | None, Outcome] = {}
    for start in range(0, len(distinct), batch):
        chunk = distinct[start:start + batch]
        outcomes.update(zip(chunk, inner.evaluate(chunk), strict=True))
    return outcomes


def _records_in_commit_order(path: Path) -> list[tuple[float, object]]:
    """(mean run time or inf if it failed, trace JSON) of every trial, in commit order."""
    records = []
    if not path.exists():
        return records
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        _, record = json.loads(line)
        trace, run_secs = record[0], record[1]
        secs = [float(s) for s in run_secs or []]
        latency = statistics.mean(secs) if secs and max(secs) < FAILED_RUN_S else math.inf
        records.append((latency, trace))
    return records

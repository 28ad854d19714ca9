"""How ``optarena/TensorSchedule-v0`` builds and scores programs: real compilation and timing.

A state's program is its schedule replayed on the workload and postprocessed (MetaSchedule's
postprocessors); its key is TVM's structural hash of the scheduled module, so two states that give
the same program are one measurement. Programs are compiled, checked against the workload's
reference outputs and timed by a :class:`~optarena.envs.tensor_schedule.measure.Measurer` (an
isolated worker process per workload). The reference is the unscheduled program.

With ``surrogate=True`` the scorer is also a cost model: MetaSchedule's XGB model, trained on every
counted measurement (:meth:`TensorScorer.learn`), estimates latencies without measuring.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tvm

from optarena.envs.contract import Failure, Outcome, Program
from optarena.envs.host import cpu_model
from optarena.envs.tensor_schedule.measure import (
    MeasureConfig,
    Measurer,
    MeasureResult,
    RPCConfig,
    Surrogate,
)
from optarena.envs.tensor_schedule.space import InvalidSchedule, ScheduleState, TensorSpace
from optarena.envs.tensor_schedule.workload import tvm_structural_hash


def _outcome(result: MeasureResult) -> Outcome:
    extras: dict[str, Any] = {"runs_s": list(result.runs_s), "build_s": result.build_s,
                              "time_s": result.time_s}
    if result.max_error is not None:
        extras["max_error"] = result.max_error
    if result.ok:
        return Outcome(result.latency_s, censored=result.censored, seconds=result.seconds,
                       extras=extras)
    return Outcome(None, Failure(result.error_kind or "run", result.error or "failed"),
                   seconds=result.seconds, extras=extras)


class TensorScorer:
    """Measured latencies (seconds) of scheduled TensorIR programs."""

    deterministic = False

    def __init__(self, space: TensorSpace, target: tvm.target.Target, config: MeasureConfig,
                 rpc: RPCConfig | None, surrogate: bool, surrogate_warmup: int,
                 store: Path | None = None) -> None:
        self.space = space
        self.target = target
        self.config = config
        self.rpc = rpc
        self.measurers = {name: Measurer(design.workload, target, config, rpc, store)
                          for name, design in space.spaces.items()}
        self.surrogates = {name: Surrogate(design.context, warmup=surrogate_warmup)
                           for name, design in space.spaces.items()} if surrogate else None

    @property
    def has_cost_model(self) -> bool:
        """Whether :meth:`estimate` is available (``surrogate=True``)."""
        return self.surrogates is not None

    @property
    def num_cost_model_calls(self) -> int:
        return sum(s.num_calls for s in (self.surrogates or {}).values())

    def context(self, problem: str) -> dict[str, Any]:
        design = self.space.space(problem)
        where: Mapping[str, Any] = ({"host": platform.node(), "cpu": cpu_model()}
                                    if self.rpc is None else {"rpc_key": self.rpc.key})
        return {
            "workload_hash": design.workload.structural_hash,
            "target": json.loads(str(self.target)),
            "measure": self.config.defining(),
            "where": dict(where),
            "tvm": tvm.__version__,
        }

    def anchors(self, problem: str) -> dict[str, float]:
        return {}

    def compile(self, state: ScheduleState) -> Program | Failure:
        try:
            schedule = self.space.space(state.problem).schedule(state)
        except (InvalidSchedule, ValueError) as err:
            return Failure("build", str(err))
        return Program(state.problem, _hash(schedule.mod), schedule)

    def reference(self, problem: str) -> Program:
        workload = self.space.space(problem).workload
        return Program(problem, _hash(workload.mod), None)

    def score(self, programs: Sequence[Program], bound: Sequence[float | None]) -> list[Outcome]:
        """Measure the batch, each workload's programs together (built in parallel, timed one
        at a time; a candidate clearly slower than ``bound`` is timed briefly, censored)."""
        outcomes: dict[int, Outcome] = {}
        for problem in dict.fromkeys(p.problem for p in programs):
            measurer = self.measurers[problem]
            mine = [i for i, p in enumerate(programs) if p.problem == problem]
            for i in mine:
                if programs[i].payload is None:  # the reference: the unscheduled program
                    outcomes[i] = _outcome(measurer.measure(measurer.workload.mod, baseline=True))
            candidates = [i for i in mine if i not in outcomes]
            results = measurer.measure_many([programs[i].payload.mod for i in candidates],
                                            [bound[i] for i in candidates])
            outcomes.update(zip(candidates, map(_outcome, results), strict=True))
        return [outcomes[i] for i in range(len(programs))]

    def learn(self, programs: Sequence[Program], outcomes: Sequence[Outcome]) -> None:
        """Train the surrogate on every counted measurement that has a latency."""
        if self.surrogates is None:
            return
        for program, outcome in zip(programs, outcomes, strict=True):
            if outcome.ok and program.payload is not None:
                self.surrogates[program.problem].update([program.payload], [outcome.score])

    def estimate(self, states: Sequence[ScheduleState]) -> np.ndarray:
        """Surrogate latency estimates in seconds (``NotImplementedError`` without one)."""
        if self.surrogates is None:
            raise NotImplementedError("TensorSchedule-v0 has no cost model here: make it with "
                                      "surrogate=True")
        estimates = np.empty(len(states))
        for problem in dict.fromkeys(s.problem for s in states):
            indices = [i for i, s in enumerate(states) if s.problem == problem]
            design = self.space.space(problem)
            estimates[indices] = self.surrogates[problem].estimate(
                [design.schedule(states[i]) for i in indices])
        return estimates

    def close(self) -> None:
        for measurer in self.measurers.values():
            measurer.close()


def _hash(mod: tvm.IRModule) -> str:
    return f"{tvm_structural_hash(mod):016x}"

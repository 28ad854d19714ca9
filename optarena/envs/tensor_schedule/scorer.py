"""How ``optarena/TensorSchedule-v0`` builds and scores programs: real compilation and timing.

A state's program is its schedule replayed on the workload and postprocessed (MetaSchedule's
postprocessors); its key is TVM's structural hash of the scheduled module, so two states that give
the same program are one measurement. Programs are compiled, checked against the workload's
reference outputs and timed by a :class:`~optarena.envs.tensor_schedule.measure.Measurer` (an
isolated worker process per workload). The reference is the unscheduled program; its outputs on
the workers' random inputs are computed once and kept by the evaluator
(:class:`~optarena.envs.contract.Prepared`).

The anchors (:mod:`~optarena.envs.tensor_schedule.anchors`: PyTorch eager, OpenBLAS) are what a
user would run instead; they are checked and timed once per workload and settings in the
workload's worker, then kept in the measurement store by the evaluator, like the reference
(:class:`~optarena.envs.contract.StoredAnchors`). The scorer never opens the store.

With ``surrogate=True`` the scorer is also a cost model: MetaSchedule's XGB model
(:mod:`~optarena.envs.tensor_schedule.cost_model`), trained on every counted measurement
(:meth:`TensorScorer.learn`), estimates latencies without measuring.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tvm

from optarena.envs.contract import Failure, Outcome, Program
from optarena.envs.host import cpu_model
from optarena.envs.tensor_schedule.anchors import INSTALL_HINT, library_version
from optarena.envs.tensor_schedule.cost_model import Surrogate, describe
from optarena.envs.tensor_schedule.measure import (
    MeasureConfig,
    Measurer,
    MeasureResult,
    RPCConfig,
    reference_key,
)
from optarena.envs.tensor_schedule.roofline import ROOFLINE
from optarena.envs.tensor_schedule.space import InvalidSchedule, ScheduleState, TensorSpace
from optarena.envs.tensor_schedule.workload import tvm_structural_hash

ANCHOR_ENVIRONMENT = ("OPENBLAS_", "GOTO", "OMP_", "GOMP_", "MKL_")
"""Prefixes of the environment variables that configure the anchors' libraries (the BLAS core
type, thread pools): part of the context the anchors are stored under."""


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


def _anchor_outcome(reply: Mapping[str, Any]) -> Outcome:
    """An anchor's outcome from the worker's reply: its latency with what it was timed with, or
    its failure (failures are not stored: the next run tries again)."""
    if "latency_s" in reply:
        return Outcome(reply["latency_s"], extras={key: value for key, value in reply.items()
                                                   if key != "latency_s"})
    return Outcome.failed(reply["error_kind"], reply["error"])


def anchor_notes(outcomes: Mapping[str, Outcome]) -> dict[str, dict[str, Any]]:
    """Per anchor, what it was timed with (``threads``; ``libraries``: the thread pools
    threadpoolctl reported, the BLAS kernel among them; torch's version, threads and BLAS;
    ``max_error``: its output against the reference), or why it is absent (``absent``)."""
    return {name: {key: value for key, value in outcome.extras.items() if key != "runs_s"}
            if outcome.failure is None
            else {"absent": f"{outcome.failure.kind}: {outcome.failure.detail}"}
            for name, outcome in outcomes.items()}


class TensorScorer:
    """Measured latencies (seconds) of scheduled TensorIR programs."""

    deterministic = False

    def __init__(self, space: TensorSpace, target: tvm.target.Target, config: MeasureConfig,
                 rpc: RPCConfig | None, surrogate: bool, surrogate_warmup: int,
                 surrogate_prior: Path | None = None) -> None:
        self.space = space
        self.target = target
        self.config = config
        self.rpc = rpc
        self.surrogate_prior = surrogate_prior
        # what the prior is and cost, hashed once, as the surrogates load it
        self.prior_description = None if surrogate_prior is None else describe(surrogate_prior)
        self.measurers = {name: Measurer(design.workload, target, config, rpc)
                          for name, design in space.spaces.items()}
        self.surrogates = {name: Surrogate(design.context, warmup=surrogate_warmup,
                                           prior=surrogate_prior)
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

    def anchor_context(self, problem: str) -> dict[str, Any]:
        """What the anchors' latencies depend on besides the kernels' context: the libraries'
        versions and the environment variables that configure them (the BLAS core type,
        thread pools)."""
        anchors = self.space.space(problem).workload.anchors
        return {"libraries": {name: f"{a.library} {a.version()}" for name, a in anchors.items()},
                ROOFLINE: f"torch {library_version('torch')}",
                "environment": {key: value for key, value in os.environ.items()
                                if key.startswith(ANCHOR_ENVIRONMENT)}}

    def anchors(self, problem: str, kept: Mapping[str, Outcome] | None = None
                ) -> dict[str, Outcome]:
        """The outcome of each anchor of the workload, what a user would run instead of a tuned
        schedule (``pytorch``; ``openblas`` for matmuls), and its roofline on this machine
        (:mod:`~optarena.envs.tensor_schedule.roofline`): the ``kept`` ones as they are, the
        others checked and timed in a measurement worker of their own on the inputs and threads
        of every kernel (their outcomes' extras say what they were timed with:
        :func:`anchor_notes`). One whose library is not installed is a failure, not asked for;
        over RPC none is measured (kernels are timed on the devices, anchors would be timed
        here)."""
        # the roofline's rates are measured with torch (roofline.py)
        anchors = {**{name: a.library for name, a in
                      self.space.space(problem).workload.anchors.items()}, ROOFLINE: "torch"}
        if self.rpc is not None:
            return {name: Outcome.failed("rpc", "kernels are timed on RPC devices, anchors "
                                                "would be timed here") for name in anchors}
        found = {name: outcome for name, outcome in (kept or {}).items() if name in anchors}
        for name, library in anchors.items():
            if name not in found and library_version(library) is None:
                found[name] = Outcome.failed("missing", f"{library} is not installed "
                                                        f"({INSTALL_HINT})")
        missing = [name for name in anchors if name not in found]
        if missing:
            replies = self.measurers[problem].measure_anchors(missing)
            found.update((name, _anchor_outcome(replies[name])) for name in missing)
        return {name: found[name] for name in anchors}

    def preparation_key(self, problem: str) -> str:
        """Where the store keeps the workload's reference outputs for the input seed."""
        return reference_key(self.space.space(problem).workload, self.config.input_seed)

    def prepare(self, problem: str, kept: Sequence[np.ndarray] | None) -> list[np.ndarray]:
        """The workload's reference outputs (``kept``, else computed by its first worker):
        what every program's outputs are checked against."""
        return self.measurers[problem].reference_outputs(kept)

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
        measured: dict[str, tuple[list[Any], list[float]]] = {}
        for program, outcome in zip(programs, outcomes, strict=True):
            if outcome.ok and program.payload is not None and outcome.score is not None:
                schedules, latencies = measured.setdefault(program.problem, ([], []))
                schedules.append(program.payload)
                latencies.append(outcome.score)
        for problem, (schedules, latencies) in measured.items():  # one retraining per batch
            self.surrogates[problem].update(schedules, latencies)

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

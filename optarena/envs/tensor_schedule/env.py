"""``optarena/TensorSchedule-v0``: tune a TensorIR program's MetaSchedule decisions; latency is the score.

It implements the contract of :mod:`optarena.envs.contract` over
:class:`~optarena.envs.tensor_schedule.space.TensorSpace` and
:class:`~optarena.envs.tensor_schedule.scorer.TensorScorer`.

**Problems**: ``workload=`` one workload or a list (registered names, ``optarena workloads``, or
TVMScript files). **State**: a point of the workload's MetaSchedule design space on the target
(:mod:`~optarena.envs.tensor_schedule.space`): a sketch of the default CPU rules plus a value for
each of its knobs (tile factors, unroll step, compute locations, parallel extents). States are
canonical: decisions are read back after replay, so one program has one state.

**Start**: ``reset(seed=s)`` draws a sketch and samples its decisions with the environment's RNG,
as MetaSchedule's initial population does, retrying until the program is measured: the first
valid sample for the seed. ``options={"sketch": i}`` fixes the sketch, ``options={"state": S}``
starts from a given state.

**Actions**: ``Discrete(max_knobs * slots)``; each id changes one knob (``describe_actions()``
decodes them).

**Score**: the measured latency in seconds (median of ``repeat`` repeats), after the output was
checked against a NumPy reference; the reference score is the unscheduled program's latency, so
``info["improvement"]`` is the speedup the Reasoning Compiler reports.

**Anchors** (``problem()["anchors"]``): ``pytorch``, PyTorch eager, for every built-in workload
and ``openblas``, NumPy's BLAS, for matmuls: what a user would run instead, checked against the
reference and timed in the workload's worker with the same inputs, threads and protocol
(:mod:`~optarena.envs.tensor_schedule.anchors`); ``problem()["anchor_notes"]`` says what they were
timed with, or why one is absent.

**info extras**: ``trace`` (MetaSchedule trace of the state), ``target``, and with
``info_program=True`` the state's ``tvmscript``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from optarena.envs.base import ArenaEnv
from optarena.envs.contract import Outcome
from optarena.envs.host import cpu_model
from optarena.envs.splits import Split
from optarena.envs.store import Store
from optarena.envs.tensor_schedule.export import export_schedule
from optarena.envs.tensor_schedule.measure import MeasureConfig, RPCConfig
from optarena.envs.tensor_schedule.scorer import TensorScorer, anchor_notes
from optarena.envs.tensor_schedule.space import InvalidSchedule, ScheduleState, TensorSpace
from optarena.envs.tensor_schedule.splits import SPLITS as TENSOR_SPLITS
from optarena.envs.tensor_schedule.target import resolve_target
from optarena.envs.tensor_schedule.workload import get_workload


class TensorScheduleEnv(ArenaEnv[ScheduleState]):
    """Schedule a tensor program; the score is its measured latency."""

    prompt_family = "tensor_schedule"
    """Besides the workload, nothing: the target, the timing and the measuring device are the
    measurer's to choose."""

    def __init__(
        self,
        workload: str | Sequence[str] = "matmul-128",
        target: str | dict[str, Any] | None = None,
        *,
        max_steps: int = 32,
        stop_action: bool = False,
        measure: MeasureConfig | Mapping[str, Any] | None = None,
        rpc: RPCConfig | Mapping[str, Any] | None = None,
        surrogate: bool = False,
        surrogate_warmup: int = 8,
        surrogate_prior: str | Path | None = None,
        max_compute_location: int = 16,
        max_knobs: int | None = None,
        max_sketches: int | None = None,
        store: Store | str | Path | None = "default",
        info_program: bool = True,
        render_mode: str | None = None,
    ) -> None:
        """
        Args:
            workload: a registered name (``optarena workloads``) or a TVMScript file, or a list.
            target: TVM target dict or ``"host"``/``None`` for this machine (safe ``mcpu``).
            max_steps: steps before truncation.
            stop_action: add an action that ends the episode (:class:`~optarena.envs.base.ArenaEnv`).
            measure: timing and checking settings (:class:`MeasureConfig`).
            rpc: measure on a device of a TVM RPC tracker instead of locally.
            surrogate: train MetaSchedule's XGB cost model on measurements for :meth:`estimate`.
            surrogate_warmup: measurements before the surrogate's estimates are informed.
            surrogate_prior: a cost model trained on other workloads (``optarena prior``) that
                the surrogate starts from: informed before the first measurement.
            max_compute_location: compute-location choices offered (loops 0 .. n-1).
            max_knobs: knob slots of the action and observation layout (default: the most any
                of the workloads needs); fix it to run one policy on other workloads.
            max_sketches: sketch flags of the observation (default: the most any has).
            store: the persistent measurement store (path, ``"default"`` or ``None``).
            info_program: put the TVMScript text of the state in ``info["tvmscript"]``.
            render_mode: ``"ansi"`` or ``None``.
        """
        names = [workload] if isinstance(workload, str) else list(workload)
        self.target = resolve_target(target)
        config = measure if isinstance(measure, MeasureConfig) else MeasureConfig(**(measure or {}))
        rpc_config = rpc if isinstance(rpc, RPCConfig) or rpc is None else RPCConfig(**rpc)
        space = TensorSpace([get_workload(name) for name in names], self.target,
                            max_compute_location=max_compute_location, max_knobs=max_knobs,
                            max_sketches=max_sketches)
        self.workloads = {name: design.workload for name, design in space.spaces.items()}
        self.tensor_space = space
        prior = None if surrogate_prior is None else Path(surrogate_prior)
        if prior is not None and not surrogate:
            raise ValueError("surrogate_prior needs surrogate=True")
        if prior is not None and not prior.is_file():
            raise ValueError(f"surrogate_prior {prior}: no such file (make one with "
                             "'optarena prior')")
        self.tensor: TensorScorer = TensorScorer(
            space, self.target, config, rpc_config, surrogate, surrogate_warmup, prior)
        self.info_program = info_program
        super().__init__(space, self.tensor, problem=next(iter(self.workloads))
                         if len(self.workloads) == 1 else None, max_steps=max_steps,
                         stop_action=stop_action, store=store, render_mode=render_mode,
                         info_extras=self._info_extras)

    @classmethod
    def splits(cls) -> Sequence[Split]:
        """Its train/test splits (:mod:`optarena.envs.tensor_schedule.splits`)."""
        return TENSOR_SPLITS

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """See the module docstring; ``options={"sketch": i}`` fixes the starting sketch."""
        options = dict(options or {})
        sketch = options.pop("sketch", None)
        if sketch is None:
            return super().reset(seed=seed, options=options)
        super(ArenaEnv, self).reset(seed=seed)
        problem = self.runner.pick_problem(options.get("problem"), self.episode)
        design = self.tensor_space.space(problem)
        return super().reset(options={"state": design.sample(self.np_random, int(sketch))})

    @property
    def workload(self) -> Any:
        """The workload of the current problem."""
        return self.workloads[self.runner.problem_of(self.episode)]

    def crossover(self, a: ScheduleState, b: ScheduleState,
                  rng: np.random.Generator) -> ScheduleState | str:
        """A child of two states of one sketch, each knob taken from either parent uniformly, or
        why there is none (different sketches or workloads, invalid program); measures nothing."""
        if (a.problem, a.sketch) != (b.problem, b.sketch):
            return f"sketches {a.problem}#{a.sketch} and {b.problem}#{b.sketch} differ: no crossover"
        values = tuple(x if rng.random() < 0.5 else y for x, y in zip(a.values, b.values, strict=True))
        try:
            return self.tensor_space.space(a.problem).canonical(
                ScheduleState(a.problem, a.sketch, values))
        except InvalidSchedule as err:
            return f"crossover gives no valid program: {err}"

    def state_of_trace(self, trace: object, problem: str | None = None) -> ScheduleState:
        """The state of a MetaSchedule trace (JSON, e.g. from a tuning database) of one of the
        sketches (``ValueError`` if it is not one of them)."""
        design = self.tensor_space.space(problem or self.runner.problem_of(self.episode))
        return design.state_of_trace(trace)

    def export(self, state: ScheduleState, directory: str | Path) -> list[Path]:
        """``state.json``, the TVMScript (``best.py``) and a MetaSchedule database that
        ``meta_schedule.tir_integration.compile_tir`` accepts."""
        paths = super().export(state, directory)
        (outcome,) = self.evaluate([state])
        assert outcome.score is not None
        return [*paths, *export_schedule(self.tensor_space.space(state.problem), state,
                                         outcome.score, directory)]

    def program_text(self, state: ScheduleState, full: bool = False) -> str:
        """The state's TVMScript (``full``) or one line per decision (compact)."""
        design = self.tensor_space.space(state.problem)
        return design.schedule(state).mod.script() if full else design.summary(state)

    def target_text(self) -> str:
        return f"{self.target} on {cpu_model()} ({self.runner.problem_of(self.episode)})"

    def format_score(self, score: float) -> str:
        return f"{score * 1e3:.4g} ms"

    def problem(self, anchors: bool = True) -> dict[str, Any]:
        """The contract's problem record, with the CPU, ``anchor_notes``: per anchor what it
        was timed with, or why it is absent (:func:`~.scorer.anchor_notes`; only with the
        ``anchors``), and with a cost-model prior, what it is and cost
        (:func:`~optarena.envs.tensor_schedule.cost_model.describe`)."""
        record = {**super().problem(anchors), "cpu": cpu_model()}
        if anchors:
            record["anchor_notes"] = anchor_notes(
                self.evaluator.anchors(self.runner.problem_of(self.episode)))
        if self.tensor.prior_description is not None:
            record["surrogate_prior"] = self.tensor.prior_description
        return record

    def _info_extras(self, state: ScheduleState, outcome: Outcome) -> dict[str, Any]:
        schedule = self.tensor_space.space(state.problem).schedule(state)
        extras = {"trace": str(schedule.trace), "target": json.dumps(json.loads(str(self.target)))}
        if self.info_program:
            extras["tvmscript"] = schedule.mod.script()
        return extras

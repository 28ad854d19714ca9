"""``optarena/TensorSchedule-v0``: tune a TensorIR program's MetaSchedule decisions; latency is the score.

**State.** A point of the workload's MetaSchedule design space on the target (see
:mod:`~optarena.envs.tensor_schedule.space`): a sketch of the default CPU rules plus a value for each
of its knobs (tile factors, unroll step, compute locations, parallel extents).

**Initial state.** ``reset(seed=s)`` draws a sketch uniformly and samples its decisions with the
environment's RNG, as MetaSchedule's initial population does, retrying until the postprocessors
accept the program and its measurement succeeds: the first valid sample for the seed.
``options={"sketch": i}`` fixes the sketch; ``options={"state": ScheduleState | dict}`` starts from a
given state (e.g. one returned by :meth:`get_state`).

**Actions.** ``Discrete(n_actions)``; each id changes one knob of the current state (decoded by
:meth:`describe_actions`). ``action_masks()`` and ``info["action_mask"]`` mark the legal ones
exactly. A masked or failing action (invalid program, failed build, wrong output, crash, timeout)
changes nothing, gives reward 0 and sets ``info["invalid_action"]`` to the reason.

**Reward.** ``log(previous latency / new latency)``: an episode's return is its log speedup over
the initial state. ``info["speedup"]`` is the speedup over the *unscheduled* program (the workload
compiled with no schedule, measured once per workload, target and timing settings and cached on
disk), the reference of the Reasoning Compiler's speedups.

**Episode end.** ``terminated`` when the state has no legal action left; ``truncated`` after
``max_steps`` steps.

**Measurements.** ``num_measurements`` counts real measurements (cache hits are free): the unit of
sample efficiency. Tree search uses :meth:`get_state` / :meth:`set_state` or the pure
:meth:`transition`, :meth:`evaluate` and (optionally) :meth:`estimate` with the XGB surrogate.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from optarena.envs.host import cache_root, cpu_model
from optarena.envs.tensor_schedule.measure import (
    MeasureConfig,
    Measurer,
    MeasureResult,
    RPCConfig,
    Surrogate,
)
from optarena.envs.tensor_schedule.space import (
    Action,
    DesignSpace,
    InvalidSchedule,
    ScheduleState,
)
from optarena.envs.tensor_schedule.target import resolve_target
from optarena.envs.tensor_schedule.workload import get_workload

FEATURE_BOUND = 64.0
LOG_SPEEDUP_BOUND = 20.0
_RESET_TRIES = 32


class TensorScheduleEnv(gym.Env[dict[str, np.ndarray], np.int64]):
    """Schedule a tensor program; reward is the log latency improvement of each step."""

    metadata = {"render_modes": ["ansi"]}  # noqa: RUF012 - gymnasium convention
    problem_kwargs: tuple[str, ...] = ()
    """Constructor arguments that define the problem besides the workload (none: the target,
    the timing and the measuring device are the measurer's to choose)."""

    @classmethod
    def measures_time(cls, kwargs: dict[str, Any]) -> bool:
        """Scores are timings: runs need a quiet machine."""
        return True

    @classmethod
    def baseline(cls, kwargs: dict[str, Any]) -> str:
        """Reports compare agents with stock MetaSchedule."""
        return "metaschedule"

    def __init__(
        self,
        workload: str = "matmul-128",
        target: str | dict[str, Any] | None = None,
        *,
        max_steps: int = 32,
        measure: MeasureConfig | dict[str, Any] | None = None,
        rpc: RPCConfig | dict[str, Any] | None = None,
        surrogate: bool = False,
        surrogate_warmup: int = 8,
        max_compute_location: int = 16,
        cache_dir: str | Path | None = "default",
        info_program: bool = True,
        render_mode: str | None = None,
    ) -> None:
        """
        Args:
            workload: a registered name (``optarena workloads``) or a TVMScript file.
            target: TVM target dict or ``"host"``/``None`` for this machine (safe ``mcpu``).
            max_steps: steps before truncation.
            measure: timing and checking settings (:class:`MeasureConfig`).
            rpc: measure on a device of a TVM RPC tracker instead of locally.
            surrogate: train MetaSchedule's XGB cost model on measurements for :meth:`estimate`.
            surrogate_warmup: measurements before the surrogate's estimates are informed.
            max_compute_location: compute-location choices offered (loops 0 .. n-1).
            cache_dir: where the unscheduled baseline latency is cached (``None``: nowhere).
            info_program: put the TVMScript text of the state in ``info["tvmscript"]``.
            render_mode: ``"ansi"`` or ``None``.
        """
        self.workload = get_workload(workload)
        self.target = resolve_target(target)
        self.max_steps = max_steps
        self.info_program = info_program
        self.render_mode = render_mode
        config = measure if isinstance(measure, MeasureConfig) else MeasureConfig(**(measure or {}))
        rpc_config = rpc if isinstance(rpc, RPCConfig) or rpc is None else RPCConfig(**rpc)
        self.space = DesignSpace(self.workload, self.target,
                                 max_compute_location=max_compute_location)
        self.measurer = Measurer(self.workload, self.target, config, rpc_config)
        self.surrogate = (Surrogate(self.space.context, warmup=surrogate_warmup)
                          if surrogate else None)
        self.cache_dir = (cache_root() if cache_dir == "default"
                          else Path(cache_dir) if cache_dir else None)
        from tvm.s_tir import meta_schedule as ms

        self._features = ms.feature_extractor.PerStoreFeature()
        k = self.space.max_knobs
        self.action_space = spaces.Discrete(self.space.n_actions)
        self.observation_space = spaces.Dict({
            "decisions": spaces.Box(-2.0, 32.0, (k * 4,), np.float32),
            "knob_kinds": spaces.MultiBinary(k * 4),
            "sketch": spaces.MultiBinary(len(self.space.sketches)),
            "features": spaces.Box(-FEATURE_BOUND, FEATURE_BOUND, (2 * 164,), np.float32),
            "log_speedup": spaces.Box(-LOG_SPEEDUP_BOUND, LOG_SPEEDUP_BOUND, (1,), np.float32),
            "progress": spaces.Box(0.0, 1.0, (1,), np.float32),
        })
        self._state: ScheduleState | None = None
        self._latency = math.nan
        self._steps = 0
        self._failed_moves: dict[ScheduleState, set[int]] = {}
        self._baseline: float | None = None
        self.best_state: ScheduleState | None = None
        self.best_latency = math.inf

    # ------------------------------------------------------------------ gymnasium API

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        self._steps = 0
        if "state" in options:
            given = options["state"]
            state = self._canonical(
                given if isinstance(given, ScheduleState) else ScheduleState.from_json(given))
            result = self.evaluate(state)
            if not result.ok:
                raise ValueError(f"options['state'] cannot be measured: {result.error}")
        else:
            state, result = self._first_valid_sample(options.get("sketch"))
        self._state, self._latency = state, float(result.latency_s)  # type: ignore[arg-type]
        return self._observation(), self._info()

    def step(
        self, action: int | np.integer
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        state = self._require_state()
        self._steps += 1
        successor = self.transition(state, int(action))
        reward, reason = 0.0, None
        if isinstance(successor, str):
            reason = successor
        else:
            result = self.evaluate(successor)
            if result.ok:
                reward = math.log(self._latency / result.latency_s)  # type: ignore[operator]
                self._state, self._latency = successor, float(result.latency_s)  # type: ignore[arg-type]
            else:
                reason = f"measurement failed ({result.error_kind}): {result.error}"
                self._failed_moves.setdefault(state, set()).add(int(action))
        mask = self.action_masks()
        info = self._info(mask)
        if reason is not None:
            info["invalid_action"] = reason
        terminated = not mask.any()
        truncated = self._steps >= self.max_steps
        return self._observation(), reward, terminated, truncated, info

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        state = self._require_state()
        return (f"{self.workload.name}  latency {self._latency * 1e3:.3f} ms  "
                f"speedup {self.speedup(self._latency):.2f}x\n{self.space.summary(state)}")

    def close(self) -> None:
        self.measurer.close()

    # ------------------------------------------------------------------ masks and actions

    def action_masks(self) -> np.ndarray:
        """Legal actions of the current state (MaskablePPO's convention), as 0/1 int8."""
        return self.legal_mask(self._require_state())

    def legal_mask(self, state: ScheduleState) -> np.ndarray:
        mask = self.space.mask(state)
        mask[list(self._failed_moves.get(state, ()))] = 0
        return mask

    def legal_actions(self, state: ScheduleState | None = None) -> list[Action]:
        state = state or self._require_state()
        failed = self._failed_moves.get(state, set())
        return [a for a in self.space.legal_actions(state) if a.id not in failed]

    def describe_actions(self, state: ScheduleState | None = None) -> list[dict[str, Any]]:
        """The legal actions as ``{"id", "knob", "old", "new", "text"}``, for prompts and logs."""
        state = state or self._require_state()
        knobs = self.space.knobs(state.sketch)
        return [{"id": a.id, "knob": knobs[a.knob].label, "old": a.old, "new": a.new,
                 "text": a.text} for a in self.legal_actions(state)]

    # ------------------------------------------------------------------ prompts

    prompt_family = "tensor_schedule"
    """Which prompt templates describe this environment to an LLM."""

    def program_text(self, state: ScheduleState, full: bool = False) -> str:
        """The state for a prompt: its TVMScript (``full``) or one line per decision (compact)."""
        return self.space.schedule(state).mod.script() if full else self.space.summary(state)

    def target_text(self) -> str:
        return f"{self.target} on {cpu_model()} ({self.workload.name})"

    @staticmethod
    def format_score(score: float) -> str:
        return f"{score * 1e3:.4g} ms"

    # ------------------------------------------------------------------ tree search

    def get_state(self) -> ScheduleState:
        """The current state (immutable and hashable: store it, branch from it)."""
        return self._require_state()

    def set_state(self, state: ScheduleState) -> dict[str, Any]:
        """Jump to a state; measures it unless it was measured before. Returns its info."""
        state = self._canonical(state)
        result = self.evaluate(state)
        if not result.ok:
            raise ValueError(f"cannot set an unmeasurable state: {result.error}")
        self._state, self._latency = state, float(result.latency_s)  # type: ignore[arg-type]
        return self._info()

    def transition(self, state: ScheduleState, action: int) -> ScheduleState | str:
        """The successor of ``state`` under ``action`` or why the action is illegal; measures
        nothing."""
        decoded = self.space.decode(state, action)
        if isinstance(decoded, str):
            return decoded
        if action in self._failed_moves.get(state, ()):
            return f"{decoded.text}: its program failed before"
        try:
            successor = self.space.successor(state, decoded)
        except InvalidSchedule as err:
            self._failed_moves.setdefault(state, set()).add(action)
            return f"{decoded.text}: {err}"
        if successor == state:
            return f"{decoded.text}: MetaSchedule applies the same decisions (no change)"
        return successor

    def crossover(self, a: ScheduleState, b: ScheduleState,
                  rng: np.random.Generator) -> ScheduleState | str:
        """A child of two states of one sketch, each knob taken from either parent uniformly, or
        why there is none (different sketches, invalid program); measures nothing."""
        if a.sketch != b.sketch:
            return f"sketches {a.sketch} and {b.sketch} differ: no crossover"
        values = tuple(x if rng.random() < 0.5 else y for x, y in zip(a.values, b.values, strict=True))
        try:
            return self.space.canonical(ScheduleState(a.sketch, values))
        except InvalidSchedule as err:
            return f"crossover gives no valid program: {err}"

    def evaluate(self, state: ScheduleState) -> MeasureResult:
        """Measure a state's program (a cache hit if its program was measured before)."""
        try:
            schedule = self.space.schedule(state)
        except InvalidSchedule as err:
            return MeasureResult(None, error_kind="build", error=str(err))
        before = self.measurer.num_measurements
        result = self.measurer.measure(schedule.mod)
        if not result.ok:
            return result
        latency = float(result.latency_s)  # type: ignore[arg-type]
        if latency < self.best_latency:
            self.best_state, self.best_latency = state, latency
        if self.surrogate is not None and self.measurer.num_measurements > before:
            self.surrogate.update([schedule], [latency])
        return result

    def estimate(self, states: list[ScheduleState]) -> np.ndarray:
        """Surrogate latency estimates (seconds); counted in ``num_cost_model_calls``."""
        if self.surrogate is None:
            raise RuntimeError("the surrogate is off: create the environment with surrogate=True")
        return self.surrogate.estimate([self.space.schedule(s) for s in states])

    @property
    def num_measurements(self) -> int:
        return self.measurer.num_measurements

    @property
    def has_cost_model(self) -> bool:
        """Whether :meth:`estimate` is available (``surrogate=True``)."""
        return self.surrogate is not None

    @property
    def num_cost_model_calls(self) -> int:
        return 0 if self.surrogate is None else self.surrogate.num_calls

    # ------------------------------------------------------------------ provenance

    def problem(self) -> dict[str, Any]:
        """What scores of this environment are measured on, for results and submissions: the
        workload and its structural hash, the target and CPU, the timing settings and the
        reference score (the unscheduled latency)."""
        return {
            "workload": self.workload.name,
            "workload_hash": self.workload.structural_hash,
            "target": json.loads(str(self.target)),
            "cpu": cpu_model(),
            "measure": self.measurer.config.model_dump(),
            "reference_score": self.baseline_latency,
        }

    # ------------------------------------------------------------------ baseline and speedup

    @property
    def baseline_latency(self) -> float:
        """Latency of the unscheduled program (measured once, cached on disk)."""
        if self._baseline is None:
            self._baseline = self._load_baseline()
        return self._baseline

    def speedup(self, latency: float) -> float:
        return self.baseline_latency / latency

    def _baseline_key(self) -> str:
        config = self.measurer.config
        where = "local" if self.measurer.rpc is None else f"rpc:{self.measurer.rpc.key}"
        return "|".join([
            self.workload.structural_hash, str(self.target), where, cpu_model(),
            f"{config.number},{config.repeat},{config.min_repeat_ms}",
        ])

    def _load_baseline(self) -> float:
        path = self.cache_dir / "baselines.json" if self.cache_dir else None
        key = self._baseline_key()
        table: dict[str, float] = {}
        if path is not None and path.exists():
            with contextlib.suppress(json.JSONDecodeError):
                table = json.loads(path.read_text())
            if key in table:
                return float(table[key])
        result = self.measurer.measure(self.workload.mod, baseline=True)
        if not result.ok:
            raise RuntimeError(f"the unscheduled {self.workload.name} failed: {result.error}")
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            table[key] = float(result.latency_s)  # type: ignore[arg-type]
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(table, indent=1))
            tmp.replace(path)
        return float(result.latency_s)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ helpers

    def _first_valid_sample(self, sketch: int | None) -> tuple[ScheduleState, MeasureResult]:
        errors = []
        for _ in range(_RESET_TRIES):
            state = self.space.sample(self.np_random, sketch)
            result = self.evaluate(state)
            if result.ok:
                return state, result
            errors.append(result.error)
        raise RuntimeError(f"no sample of {self.workload.name} measured in {_RESET_TRIES} tries; "
                           f"last errors: {errors[-3:]}")

    def _canonical(self, state: ScheduleState) -> ScheduleState:
        try:
            return self.space.canonical(state)
        except InvalidSchedule as err:
            raise ValueError(f"not a valid state of {self.workload.name}: {err}") from err

    def _require_state(self) -> ScheduleState:
        if self._state is None:
            raise gym.error.ResetNeeded("call reset() before using the environment")
        return self._state

    def _observation(self) -> dict[str, np.ndarray]:
        from tvm.s_tir import meta_schedule as ms

        state = self._require_state()
        schedule = self.space.schedule(state)
        candidate = ms.MeasureCandidate(
            schedule, ms.arg_info.ArgInfo.from_prim_func(schedule.mod["main"]))
        per_store = self._features.extract_from(self.space.context, [candidate])[0].numpy()
        summary = np.concatenate([per_store.mean(axis=0), per_store.max(axis=0)]) \
            if len(per_store) else np.zeros(2 * 164)
        decisions, kinds = self.space.encode(state)
        sketch = np.zeros(len(self.space.sketches), dtype=np.int8)
        sketch[state.sketch] = 1
        log_speedup = math.log(self.speedup(self._latency))
        return {
            "decisions": decisions,
            "knob_kinds": kinds,
            "sketch": sketch,
            "features": np.clip(summary, -FEATURE_BOUND, FEATURE_BOUND).astype(np.float32),
            "log_speedup": np.clip([log_speedup], -LOG_SPEEDUP_BOUND,
                                   LOG_SPEEDUP_BOUND).astype(np.float32),
            "progress": np.array([min(self._steps / self.max_steps, 1.0)], dtype=np.float32),
        }

    def _info(self, mask: np.ndarray | None = None) -> dict[str, Any]:
        state = self._require_state()
        schedule = self.space.schedule(state)
        info: dict[str, Any] = {
            "latency_s": self._latency,
            "speedup": self.speedup(self._latency),
            "score": self._latency,
            "improvement": self.speedup(self._latency),
            "baseline_latency_s": self.baseline_latency,
            "num_measurements": self.num_measurements,
            "action_mask": self.action_masks() if mask is None else mask,
            "state": state.to_json(),
            "trace": str(schedule.trace),
            "target": str(self.target),
        }
        if self.info_program:
            info["tvmscript"] = schedule.mod.script()
        return info

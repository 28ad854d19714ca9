"""``optarena/LlvmPassOrder-v0``: order LLVM passes on a program; its cost on a CPU is the score.

A gymnasium 1.x environment around CompilerGym's ``llvm-v0`` (run in its own virtual environment:
``optarena setup compiler-gym``; see :mod:`~optarena.envs.llvm_pass_order.session`).

**State.** A program (``benchmark=``: ``suite:NAME``, ``csmith:SEED``, ``llvm-stress:SEED``, a
``.c``/``.ll``/``.bc`` file; see :mod:`~optarena.envs.llvm_pass_order.workload`) and the passes
applied to it so far. Every reset starts from the unoptimized program;
``reset(options={"benchmark": SPEC})`` switches programs.

**Actions.** ``Discrete(124)``: apply one of CompilerGym's ``opt`` passes.
``action_masks()`` / ``info["action_mask"]`` mark the allowed ones (``passes=``, else all but
instrumentation and renaming passes); ``describe_actions()`` names them.

**Reward.** The score saved by the step over the unoptimized program's score. The score
(``reward=``, lower is better) is ``cycles`` (llc + llvm-mca for this host's CPU, or
``target="aarch64"``), ``runtime`` (measured seconds; programs with a ``main``), or CompilerGym's
``ir_instructions`` or ``code_size``; see :mod:`~optarena.envs.llvm_pass_order.measure`. A
program with a ``main`` is also run and its output compared with the unoptimized program's
(``check=True``): a pass sequence that miscompiles, crashes or hangs it changes nothing, earns 0
and says why in ``info["invalid_action"]``.

**Episode end.** Never terminated (a pass can always be applied); ``truncated`` after
``max_steps``.

**Measurements.** ``num_measurements`` counts the distinct IR modules scored (different pass
sequences often give the same IR: that one is free), including the ones that failed.
``info["score"]`` is the current score, ``info["improvement"]`` the unoptimized score over it, and
``info["o3_score"]`` the score of ``opt -O3``, the compiler's own pipeline.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from optarena.envs.llvm_pass_order.measure import (
    METRICS,
    SERVICE_METRICS,
    MeasureError,
    Measurer,
    Run,
    default_mcpu,
)
from optarena.envs.llvm_pass_order.session import ServiceError, Session
from optarena.envs.llvm_pass_order.space import (
    FEATURES,
    feature_vector,
    observation_space,
    pass_mask,
)
from optarena.envs.llvm_pass_order.workload import Benchmark, parse_benchmark
from optarena.envs.outcome import mark_invalid

State = dict[str, Any]
"""``{"benchmark": SPEC, "passes": [NAME, ...]}``: JSON-able, for tree search and results."""


@dataclass(frozen=True)
class Evaluated:
    """A scored IR module: the score, the observation features and the service's facts."""

    score: float
    features: np.ndarray
    ir_sha1: str
    ir_instructions: int
    opcodes: dict[str, int]
    bitcode: Path


@dataclass
class Program:
    """What is known of one benchmark: its unoptimized score and output, and ``opt -O3``'s."""

    benchmark: Benchmark
    ir_sha1: str
    reference: Evaluated | None = None
    reference_run: Run | None = None
    o3_score: float | None = None


class LlvmPassOrderEnv(gym.Env[dict[str, np.ndarray], np.int64]):
    """Apply one LLVM pass per step; reward is the normalized score saving."""

    metadata = {"render_modes": ["ansi"]}  # noqa: RUF012 - gymnasium convention
    problem_kwargs: tuple[str, ...] = ("reward", "target", "mcpu")
    """Constructor arguments that define the problem besides the benchmark: the metric and,
    for cycles, the CPU modelled."""

    @classmethod
    def measures_time(cls, kwargs: dict[str, Any]) -> bool:
        """Only the ``runtime`` metric times programs."""
        return kwargs.get("reward", "runtime") == "runtime"

    @classmethod
    def baseline(cls, kwargs: dict[str, Any]) -> str:
        """Reports compare agents with the compiler's own pipeline: ``-Oz`` for code size and
        IR instructions (CompilerGym's leaderboard), ``-O3`` for run time and cycles."""
        return "anchor:-Oz" if kwargs.get("reward") in ("ir_instructions", "code_size") \
            else "anchor:-O3"
    prompt_family = "llvm_pass_order"
    """Which prompt templates describe this environment to an LLM."""
    has_cost_model = False

    def __init__(
        self,
        benchmark: str = "suite:matmul",
        *,
        reward: str = "runtime",
        target: str = "host",
        mcpu: str | None = None,
        observation: str = "autophase",
        passes: list[str] | None = None,
        max_steps: int = 32,
        runs: int = 5,
        check: bool = True,
        run_timeout_s: float = 10.0,
        service_timeout_s: float = 120.0,
        home: str | Path | None = None,
        render_mode: str | None = None,
    ) -> None:
        if reward not in METRICS:
            raise ValueError(f"unknown reward {reward!r}; available: {METRICS}")
        if reward == "runtime" and target != "host":
            raise ValueError("reward='runtime' runs the program: it needs target='host'")
        self.metric, self.check, self.max_steps = reward, check, max_steps
        self.measurer = Measurer(target, mcpu or default_mcpu(target), runs=runs,
                                 timeout_s=run_timeout_s)
        self.session = Session(Path(home) if home else None, service_timeout_s)
        self._tmp = tempfile.TemporaryDirectory(prefix="optarena-llvm-")
        self.observation_name = observation
        self.observation_space = observation_space(observation)
        self.render_mode = render_mode
        self.num_measurements = 0
        """Distinct IR modules scored (failures included): the unit of sample efficiency."""
        self.num_cost_model_calls = 0
        self._programs: dict[str, Program] = {}
        self._evaluated: dict[tuple[str, str], Evaluated | MeasureError] = {}
        self._by_passes: dict[tuple[str, tuple[str, ...]], str] = {}
        self._loaded: str | None = None
        """The benchmark the service is at."""
        self.pass_names: list[str] = []
        self.fixed_benchmark = benchmark
        self.passes: list[str] = []
        self._steps = 0
        try:
            self.program = self._load(benchmark)
            self.mask = pass_mask(self.pass_names, passes)
            self.current: Evaluated = self._reference(self.program)
        except BaseException:
            self.close()  # the service and the scratch folder do not outlive a failed start
            raise
        self.action_space = spaces.Discrete(len(self.pass_names))

    # ------------------------------------------------------------------ gymnasium API

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        spec = (options or {}).get("benchmark", self.fixed_benchmark)
        self.program = self._load(spec)
        self.passes, self.current = [], self._reference(self.program)
        self._steps = 0
        return self._observation(), self._info()

    def step(self, action: int | np.integer
             ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        self._steps += 1
        successor = self.transition(self.get_state(), int(action))
        if isinstance(successor, str):
            return self._finish(0.0, successor)
        try:
            evaluated = self._evaluate(self.program, successor["passes"])
        except ValueError as err:
            return self._finish(0.0, f"{successor['passes'][-1]} failed: {err}",
                                failure=getattr(err, "kind", "service"))
        reward = (self.current.score - evaluated.score) / self._reference(self.program).score
        self.passes, self.current = successor["passes"], evaluated
        return self._finish(reward, None)

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        return (f"{self.program.benchmark.spec}: {self.format_score(self.current.score)} after "
                f"{' '.join(self.passes) or 'no passes'}")

    def close(self) -> None:
        self.session.close()
        self._tmp.cleanup()

    # ------------------------------------------------------------------ actions

    def action_masks(self) -> np.ndarray:
        return self.legal_mask()

    def legal_mask(self, state: State | None = None) -> np.ndarray:
        """Allowed passes (every state allows the same ones), as 0/1 int8."""
        return self.mask.copy()

    def describe_actions(self, state: State | None = None) -> list[dict[str, Any]]:
        """The allowed passes as ``{"id", "rule", "text"}``."""
        return [{"id": int(i), "rule": "pass", "text": self.pass_names[i]}
                for i in np.flatnonzero(self.mask)]

    # ------------------------------------------------------------------ tree search

    def get_state(self) -> State:
        return {"benchmark": self.program.benchmark.spec, "passes": list(self.passes)}

    def set_state(self, state: State) -> dict[str, Any]:
        """Jump to ``state``, scoring it if its IR was not scored before; ``ValueError`` (and no
        change) where the passes fail or miscompile the program."""
        program = self._load(state["benchmark"])
        unknown = sorted(set(state["passes"]) - set(self.pass_names))
        if unknown:
            raise ValueError(f"unknown passes {unknown}")
        evaluated = self._evaluate(program, list(state["passes"]))
        self.program, self.passes, self.current = program, list(state["passes"]), evaluated
        return self._info()

    def transition(self, state: State, action: int) -> State | str:
        """``state`` with pass ``action`` appended, or why it is not allowed; measures nothing."""
        if not 0 <= action < len(self.pass_names) or not self.mask[action]:
            return f"action {action} is not an allowed pass"
        return {"benchmark": state["benchmark"], "passes": [*state["passes"],
                                                            self.pass_names[action]]}

    # ------------------------------------------------------------------ prompts

    def program_text(self, state: State, full: bool = False) -> str:
        """The state for a prompt: the passes so far and the IR's size and commonest opcodes, or
        with ``full`` the IR itself (``llvm-dis``, cut at 6,000 characters)."""
        sha = self._by_passes.get((state["benchmark"], tuple(state["passes"])))
        evaluated = self._evaluated.get((state["benchmark"], sha)) if sha else None
        lines = [f"passes applied: {' '.join(state['passes']) or '(none)'}"]
        if isinstance(evaluated, Evaluated):
            if full:
                return lines[0] + "\n" + self.measurer.disassemble(evaluated.bitcode)[:6000]
            common = sorted(evaluated.opcodes.items(), key=lambda kv: -kv[1])[:8]
            lines.append(f"IR: {evaluated.ir_instructions} instructions; "
                         + ", ".join(f"{name} {count}" for name, count in common))
        return "\n".join(lines)

    def target_text(self) -> str:
        return f"{self.measurer.triple} -mcpu={self.measurer.mcpu} ({self.metric})"

    def format_score(self, score: float) -> str:
        units = {"cycles": "cycles", "ir_instructions": "IR instructions", "code_size": "bytes"}
        if self.metric == "runtime":
            return f"{score * 1e3:.2f} ms"
        return f"{score:.0f} {units[self.metric]}"

    # ------------------------------------------------------------------ provenance

    def problem(self, benchmark: str | None = None) -> dict[str, Any]:
        """What scores are measured on: the benchmark and its unoptimized IR's SHA-1, the target,
        the metric, LLVM's version, and the reference (unoptimized) and ``-O3`` scores."""
        program = self._load(benchmark or self.fixed_benchmark)
        return {
            "workload": program.benchmark.spec,
            "workload_hash": program.ir_sha1[:16],
            "target": {"triple": self.measurer.triple, "mcpu": self.measurer.mcpu,
                       "metric": self.metric, "runs": self.measurer.runs,
                       "llc": _version(self.measurer.llc), "compiler_gym": "0.2.5"},
            "reference_score": self._reference(program).score,
            "o3_score": self._o3_score(program),
        }

    # ------------------------------------------------------------------ scoring

    def _load(self, spec: str) -> Program:
        """The program of ``spec`` (loaded into the service the first time)."""
        program = self._programs.get(spec)
        if program is None:
            benchmark = parse_benchmark(spec)
            reply = self._reset_service(benchmark)
            self.pass_names = reply["actions"]
            program = self._programs[spec] = Program(benchmark, reply["ir_sha1"])
        return program

    def _reset_service(self, benchmark: Benchmark) -> dict[str, Any]:
        try:
            reply = self.session.request("reset", benchmark=benchmark.request)
        except ServiceError as err:
            self._loaded = None
            raise ValueError(f"cannot load {benchmark.spec}: {err}") from None
        self._loaded = benchmark.spec
        return reply

    def _reference(self, program: Program) -> Evaluated:
        """The unoptimized program, scored once (a measurement); its output is the one every
        optimized build must print."""
        if program.reference is None:
            if self.measurer.target == "host" and (self.check or self.metric == "runtime"):
                # no main that links and runs: nothing to check against
                with contextlib.suppress(MeasureError):
                    program.reference_run = self.measurer.run(self._apply(program, [])[1], runs=1)
            if self.metric == "runtime" and program.reference_run is None:
                raise ValueError(f"{program.benchmark.spec} has no main that runs: "
                                 "use reward='cycles'")
            program.reference = self._evaluate(program, [])
        return program.reference

    def _o3_score(self, program: Program) -> float:
        if program.o3_score is None:
            if self.metric in SERVICE_METRICS:
                o3 = SERVICE_METRICS[self.metric][1]
                program.o3_score = float(self._apply(program, [], [o3])[0]["observations"][o3])
            else:
                o3_bitcode = Path(self._tmp.name) / f"o3-{program.ir_sha1}.bc"
                self.measurer.o3(self._reference(program).bitcode, o3_bitcode)
                program.o3_score = self._score(program, o3_bitcode, {})
        return program.o3_score

    def _apply(self, program: Program, passes: list[str], observations: list[str] | None = None
               ) -> tuple[dict[str, Any], Path]:
        """Ask the service for the IR after ``passes`` (and ``observations``, by default the
        ones scoring needs)."""
        if self._loaded != program.benchmark.spec:
            self._reset_service(program.benchmark)
        if observations is None:
            observations = [FEATURES[self.observation_name][0], "IrInstructionCount",
                            "InstCountDict"]
            if self.metric in SERVICE_METRICS:
                observations.append(SERVICE_METRICS[self.metric][0])
        out = Path(self._tmp.name) / "current.bc"
        request = {"passes": passes, "out": str(out), "observations": observations}
        try:
            reply = self.session.request("apply", **request)
        except ServiceError:  # again from a fresh reset: the service may have died or restarted
            try:
                self._reset_service(program.benchmark)
                reply = self.session.request("apply", **request)
            except (ServiceError, ValueError) as err:
                self._loaded = None
                raise ValueError(f"CompilerGym: {err}") from None
        kept = Path(self._tmp.name) / f"{reply['ir_sha1']}.bc"
        out.replace(kept)
        return reply, kept

    def _evaluate(self, program: Program, passes: list[str]) -> Evaluated:
        """The scored IR after ``passes``: a measurement when the IR is new; failures are kept
        and raised again (as :class:`MeasureError`) without measuring."""
        spec = program.benchmark.spec
        sha = self._by_passes.get((spec, tuple(passes)))
        if sha is None:
            reply, bitcode = self._apply(program, passes)
            sha = self._by_passes[(spec, tuple(passes))] = reply["ir_sha1"]
            if (spec, sha) not in self._evaluated:
                self.num_measurements += 1
                try:
                    score = self._score(program, bitcode, reply["observations"])
                    observations = reply["observations"]
                    self._evaluated[(spec, sha)] = Evaluated(
                        score, feature_vector(observations[FEATURES[self.observation_name][0]]),
                        sha, int(observations["IrInstructionCount"]),
                        {k.removesuffix("Count"): int(v) for k, v in
                         observations["InstCountDict"].items()
                         if k.endswith("Count") and not k.startswith("Total") and v},
                        bitcode)
                except MeasureError as err:
                    self._evaluated[(spec, sha)] = err
        result = self._evaluated[(spec, sha)]
        if isinstance(result, MeasureError):
            raise result
        return result

    def _score(self, program: Program, bitcode: Path, observations: dict[str, Any]) -> float:
        run = None
        if program.reference_run is not None and (self.check or self.metric == "runtime"):
            run = self.measurer.run(bitcode, runs=None if self.metric == "runtime" else 1)
            if self.check:
                self.measurer.check(run, program.reference_run)
        if self.metric == "cycles":
            return float(self.measurer.cycles(bitcode))
        if self.metric == "runtime":
            assert run is not None
            return run.seconds
        return float(observations[SERVICE_METRICS[self.metric][0]])

    def _finish(self, reward: float, invalid: str | None, failure: str | None = None
                ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        info = mark_invalid(self._info(), invalid, failure)
        return self._observation(), reward, False, self._steps >= self.max_steps, info

    def _observation(self) -> dict[str, np.ndarray]:
        reference = self._reference(self.program).score
        return {
            "features": self.current.features.copy(),
            "score": np.array([self.current.score / reference], np.float32),
            "progress": np.array([min(self._steps / self.max_steps, 1.0)], np.float32),
        }

    def _info(self) -> dict[str, Any]:
        reference = self._reference(self.program).score
        return {
            "benchmark": self.program.benchmark.spec,
            "passes": list(self.passes),
            "score": self.current.score,
            "reference_score": reference,
            "improvement": reference / self.current.score if self.current.score else np.inf,
            "o3_score": self._o3_score(self.program),
            "ir_instructions": self.current.ir_instructions,
            "action_mask": self.action_masks(),
            "num_measurements": self.num_measurements,
            "state": self.get_state(),
        }


def _version(tool: str) -> str:
    done = subprocess.run([tool, "--version"], capture_output=True, text=True, check=False)
    for line in done.stdout.splitlines():
        if "LLVM version" in line:
            return line.split("LLVM version", 1)[1].strip()
    return "unknown"

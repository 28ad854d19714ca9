"""The contract every optarena environment implements, documented once.

An environment is a *game*: a **problem** (a tensor workload, a basic block, a program) is put into
a starting **state**; each **action** is one transformation; a state's **score** is what running or
simulating its program costs (latency in seconds, llvm-mca cycles, IR instructions, ...; lower is
better). An environment is made of three parts:

* a :class:`Space` -- states, the transitions between them, the legal-action masks and the
  observations; pure, it measures nothing;
* a :class:`Scorer` -- how one program is built (:meth:`Scorer.compile`) and how a batch of built
  programs is scored (:meth:`Scorer.score`);
* the :class:`~optarena.envs.evaluator.Evaluator`, the same for every environment: it owns the
  cache, the definition and count of measurements and the failure records.

:class:`~optarena.envs.base.ArenaEnv` is the gymnasium layer over them, and the only one:

**States** are immutable, hashable and JSON-round-trippable (``to_json``/``from_json``); every
state names its problem (``state.problem``). ``info["state"]`` is the JSON, and
``set_state(info["state"])`` works in every environment.

**Reward** of a step: ``log(previous score / new score)``, so an episode's return is the log of its
improvement over the start, whatever the metric. A step that does not apply (a masked action, a
program that fails to build, run, verify or check) changes nothing and earns 0.

**Episode end**: ``terminated`` when the state has no legal action left; ``truncated`` after
``max_steps`` steps.

**info** carries the same keys in every environment:

=====================  ==========================================================================
``score``              the current state's score (lower is better)
``improvement``        ``reference_score / score``
``reference_score``    the problem's reference: the unscheduled program, the block as compiled,
                       the unoptimized program
``state``              the current state's JSON
``action_mask``        legal actions of the current state (0/1 ``int8``)
``num_measurements``   measurements made by this environment (see below)
``failure``            ``{"kind", "detail"}`` of the program the step tried, when it failed
``invalid_action``     why the step changed nothing, when it did not apply
``censored``           ``True`` when the score is only a lower bound (measurement stopped early)
=====================  ==========================================================================

Environment-specific extras are documented by each environment under their own names.

**A measurement** is a distinct program scored: failures included, the reference excluded,
repeats free (the evaluator's cache). It is the unit of sample efficiency and of agents' budgets.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar, runtime_checkable

import numpy as np
from gymnasium import spaces

SCORE_FLOOR = 1e-12
"""Scores are positive; a scorer's zero (a program with no code left) is raised to this."""


@runtime_checkable
class State(Hashable, Protocol):
    """An immutable, hashable point of an environment's state space."""

    @property
    def problem(self) -> str:
        """The problem the state belongs to."""
        ...

    def to_json(self) -> dict[str, Any]: ...

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self: ...


S = TypeVar("S", bound=State)


@dataclass(frozen=True)
class Failure:
    """Why a program could not be scored: ``kind`` is a short class (``build``, ``run``,
    ``wrong_output``, ``timeout``, ``crash``, ``assemble``, ``register``, ``memory``, ``flags``,
    ``output``, ...) and ``detail`` says what happened."""

    kind: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "detail": self.detail}


def error_summary(err: BaseException | str, limit: int = 300) -> str:
    """The informative line of an error message (tool and compiler errors run to pages): the
    last line that mentions an error, else the last line, at most ``limit`` characters."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    useful = [line for line in lines if "rror" in line] or lines or [
        type(err).__name__ if isinstance(err, BaseException) else "no message"]
    return useful[-1][:limit]


@dataclass(frozen=True)
class Outcome:
    """The result of scoring one program: a score, or a failure."""

    score: float | None
    failure: Failure | None = None
    censored: bool = False
    """The measurement was stopped early: ``score`` is a lower bound, never a best."""
    seconds: float = 0.0
    """Wall-clock the scoring took (build, check, timing)."""
    extras: Mapping[str, Any] = field(default_factory=dict)
    """Scorer-specific facts (JSON-able): timing runs, output error, features..."""

    @property
    def ok(self) -> bool:
        return self.score is not None

    @classmethod
    def failed(cls, kind: str, detail: str, seconds: float = 0.0) -> Outcome:
        return cls(None, Failure(kind, detail), seconds=seconds)


@dataclass(frozen=True)
class Program:
    """A built program, ready to be scored: ``key`` identifies it within its problem (the same
    key is the same program, across processes and machines) and ``payload`` is what the scorer
    needs (an IRModule, assembly text, a bitcode file)."""

    problem: str
    key: str
    payload: Any = None


class Space(Protocol[S]):
    """States, transitions, masks and observations of an environment (measures nothing)."""

    n_actions: int
    observation_space: spaces.Space
    random_start: bool
    """Whether :meth:`initial` draws a random state (a reset then retries one that fails)."""

    def problems(self) -> Sequence[str]:
        """The problems the environment can start on."""
        ...

    def initial(self, problem: str, rng: np.random.Generator) -> S:
        """A starting state of ``problem`` (random where the space has several)."""
        ...

    def canonical(self, state: S) -> S:
        """The state as the space represents it (``ValueError`` if it is not one of its states)."""
        ...

    def state_from_json(self, data: Mapping[str, Any]) -> S: ...

    def legal_mask(self, state: S) -> np.ndarray:
        """0/1 ``int8`` of length ``n_actions``: the actions that change ``state``."""
        ...

    def transition(self, state: S, action: int) -> S | str:
        """The successor of ``state`` under ``action``, or why there is none."""
        ...

    def describe_actions(self, state: S) -> list[dict[str, Any]]:
        """The legal actions as ``{"id", "text", ...}`` (prompts and logs)."""
        ...

    def observe(self, state: S, outcome: Outcome, reference: float, progress: float
                ) -> dict[str, np.ndarray]:
        """The observation of ``state`` scored ``outcome`` (``reference``: the problem's
        reference score; ``progress``: steps taken over the episode's limit)."""
        ...


class Scorer(Protocol[S]):
    """How the programs of an environment are built and scored."""

    deterministic: bool
    """Whether a program's score is a pure function of the program (cycles, counts): verified
    exactly, once. Timings are not (verified with a tolerance, best of several)."""

    def context(self, problem: str) -> dict[str, Any]:
        """Everything besides the program that defines its score (workload hash, target,
        timing settings, tool versions, CPU): the key of stored results. It has at least
        ``workload_hash`` (the problem's content, whatever its name: verifiers check it) and
        ``target`` (where scores are measured), as :class:`optarena.records.Problem` reads."""
        ...

    def anchors(self, problem: str) -> dict[str, float]:
        """Scores of well-known alternatives to searching (``-O3``, LLVM's own peephole, a
        vendor library), by name."""
        ...

    def compile(self, state: S) -> Program | Failure:
        """The program of ``state`` (no measurement), or why it cannot be built."""
        ...

    def reference(self, problem: str) -> Program:
        """The problem's reference program (its score is ``reference_score``)."""
        ...

    def score(self, programs: Sequence[Program], bound: Sequence[float | None]) -> list[Outcome]:
        """Score a batch. ``bound[i]``, where given, lets the scorer stop early once program ``i``
        is surely slower than it (a censored outcome)."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class CostModel(Protocol[S]):
    """A scorer that can also *estimate* scores without measuring."""

    @property
    def has_cost_model(self) -> bool:
        """Whether :meth:`estimate` works with this scorer's settings."""
        ...

    @property
    def num_cost_model_calls(self) -> int: ...

    def estimate(self, states: Sequence[S]) -> np.ndarray: ...


def log_ratio(previous: float, new: float) -> float:
    """The reward of a step from score ``previous`` to ``new``: ``log(previous / new)``."""
    return math.log(max(previous, SCORE_FLOOR) / max(new, SCORE_FLOOR))


@runtime_checkable
class Game(Protocol[S]):
    """What agents and experiments use of an environment (``env.unwrapped``): every optarena
    environment implements it through :class:`~optarena.envs.base.ArenaEnv`."""

    max_steps: int
    prompt_family: str

    @property
    def num_measurements(self) -> int: ...

    @property
    def num_cost_model_calls(self) -> int: ...

    @property
    def num_censored(self) -> int: ...

    @property
    def failures(self) -> Mapping[str, int]: ...

    @property
    def has_cost_model(self) -> bool: ...

    def get_state(self) -> S: ...

    def initial_state(self, rng: np.random.Generator, problem: str | None = None) -> S: ...

    def set_state(self, state: S | Mapping[str, Any]) -> dict[str, Any]: ...

    def transition(self, state: S, action: int) -> S | str: ...

    def legal_mask(self, state: S | None = None) -> np.ndarray: ...

    def evaluate(self, states: Sequence[S], *, fresh: bool = False) -> list[Outcome]: ...

    def unmeasured(self, states: Sequence[S]) -> list[bool]: ...

    def estimate(self, states: Sequence[S]) -> np.ndarray: ...

    def problem(self, anchors: bool = True) -> dict[str, Any]: ...

    def state_from_json(self, data: Mapping[str, Any]) -> S: ...

    def as_state(self, state: S | Mapping[str, Any]) -> S: ...

    def reference_score(self, problem: str | None = None) -> float: ...

    def export(self, state: S, directory: str | Path) -> list[Path]: ...

    def describe_actions(self, state: S | None = None) -> list[dict[str, Any]]: ...

    def program_text(self, state: S, full: bool = False) -> str: ...

    def target_text(self) -> str: ...

    def format_score(self, score: float) -> str: ...

    def close(self) -> None: ...


@runtime_checkable
class Crossover(Protocol[S]):
    """An environment whose states of one problem can be recombined (evolutionary search)."""

    def crossover(self, a: S, b: S, rng: np.random.Generator) -> S | str: ...


@runtime_checkable
class Sketched(Protocol):
    """A state of a space made of structurally different *sketches* (the tensor environment's
    MetaSchedule sketches): ``sketch`` names its structure, which actions never change; random
    starts (``initial_state``) draw it."""

    sketch: int


def game(env: Any) -> Game[Any]:
    """``env.unwrapped`` as a :class:`Game` (``TypeError`` if it is not an optarena game)."""
    inner = getattr(env, "unwrapped", env)
    if not isinstance(inner, Game):
        raise TypeError(f"{type(inner).__name__} does not implement the optarena contract "
                        "(optarena.envs.contract.Game)")
    return inner

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
  cache, the definition and count of measurements, the measurement budget, the failure records
  and the measurement store (the only code that reads or writes it).

:class:`~optarena.envs.base.ArenaEnv` is the gymnasium layer over them, and the only one. What
callers use of it is split by who they are: a search uses the :class:`SearchOracle` (states,
transitions, masks, measurements under a budget, estimates, the problem), a language model's
prompt the :class:`Presentation` (actions, programs and scores in words); :class:`Game` is both,
with what experiments add (``set_state``, ``export``, ``close``). :func:`oracle` and
:func:`game` get them from a wrapped environment.

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

**A measurement** is a distinct program scored: failures included, the reference and the anchors
excluded, repeats free (the evaluator's cache). It is the unit of sample efficiency and of agents'
budgets.

**The budget** is hard, and the evaluator's: whoever runs a search sets it
(``evaluator.set_budget(n)``: at most ``n`` measurements from now on; the agents'
:class:`~optarena.agents.base.Tracker` does), and an evaluation that would measure more than is
left raises :class:`BudgetExceeded` before it measures anything. A search reads what is left
(``evaluator.left``) and asks for no more; nothing is cut silently (the vector environment
leaves a step that would spend past it undone, and says so). What counts is what counts as a
measurement: a result the store knows included, repeats not; measurements a tuner makes with its
own runner (stock MetaSchedule's trials) are charged to the evaluator.
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


class BudgetExceeded(RuntimeError):
    """An evaluation asked for more measurements than the budget has left (nothing of it was
    measured): ``budget`` measurements allowed, ``used`` of them made, ``asked`` more needed."""

    def __init__(self, budget: int, used: int, asked: int) -> None:
        super().__init__(f"the measurement budget is spent: {asked} more measurement"
                         f"{'s' if asked != 1 else ''} asked for, {used} of {budget} used "
                         f"({budget - used} left)")
        self.budget, self.used, self.asked = budget, used, asked


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

    def anchors(self, problem: str) -> dict[str, Outcome]:
        """The outcomes of well-known alternatives to searching (``-O3``, LLVM's own peephole, a
        vendor library), by name; one that cannot be scored is absent or a failed outcome. The
        evaluator asks once per problem (:meth:`~optarena.envs.evaluator.Evaluator.anchors`)."""
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
class StoredAnchors(Protocol):
    """A scorer whose anchors are timed (costly, and the same for every run with the same
    settings on this machine): the evaluator keeps the ones that succeed in the measurement
    store, under the problem's :meth:`Scorer.context` and :meth:`anchor_context`, and hands
    them back the next time (``kept``: the scorer measures only the others)."""

    def anchor_context(self, problem: str) -> dict[str, Any]:
        """What the anchors' scores depend on besides the problem's context (the libraries'
        versions, their settings)."""
        ...

    def anchors(self, problem: str, kept: Mapping[str, Outcome] | None = None
                ) -> dict[str, Outcome]: ...


@runtime_checkable
class Prepared(Protocol):
    """A scorer that needs data computed once per problem before it scores anything (the tensor
    environment's reference outputs, which every program's outputs are checked against), worth
    keeping across runs: the evaluator calls :meth:`prepare` before it asks the scorer for any
    of the problem's scores and keeps the data in the measurement store."""

    def preparation_key(self, problem: str) -> str:
        """The key the data is kept under (the same data, whatever the scorer's other settings)."""
        ...

    def prepare(self, problem: str, kept: Sequence[np.ndarray] | None) -> list[np.ndarray]:
        """Get ready to score ``problem``'s programs with ``kept`` (the data an earlier run
        computed), or compute the data (``kept`` is ``None``); return it."""
        ...


@runtime_checkable
class BuildsTogether(Protocol[S]):
    """A scorer that builds several states' programs at once faster than one after another
    (the pass-ordering scorer: each problem in its own compiler service, the services in
    parallel); the evaluator builds a batch's new states with it."""

    def compile_many(self, states: Sequence[S]) -> list[Program | Failure]:
        """:meth:`Scorer.compile` of each state, in order."""
        ...


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


class Meter(Protocol):
    """The count of an environment's measurements and the hard budget they are held to: its
    :class:`~optarena.envs.evaluator.Evaluator` (the module docstring says what counts)."""

    @property
    def num_measurements(self) -> int: ...

    @property
    def num_censored(self) -> int:
        """Of the measurements, those stopped early (estimates, never bests)."""
        ...

    @property
    def failures(self) -> Mapping[str, int]:
        """Of the measurements, the failed ones by kind."""
        ...

    @property
    def num_cost_model_calls(self) -> int:
        """Estimates asked of the cost model (not measurements)."""
        ...

    @property
    def used(self) -> int:
        """Measurements since a budget was last set."""
        ...

    @property
    def left(self) -> int | None:
        """Measurements the budget has left (``None``: no budget)."""
        ...

    def set_budget(self, measurements: int | None) -> None:
        """At most ``measurements`` measurements from now on (``None`` lifts the limit)."""
        ...


@runtime_checkable
class SearchOracle(Protocol[S]):
    """What a search uses of an environment (``env.unwrapped``; :func:`oracle` gets it): states,
    their transitions and legal actions (measuring nothing), measurements of batches of states
    under the evaluator's hard budget, cost-model estimates and the problem."""

    evaluator: Meter
    """The measurement count and budget (``evaluator.set_budget``, ``evaluator.left``)."""
    has_cost_model: bool
    """Whether :meth:`estimate` works with the environment's settings."""

    def get_state(self) -> S:
        """The current state (after ``reset``: the start)."""
        ...

    def initial_state(self, rng: np.random.Generator, problem: str | None = None) -> S:
        """A starting state of ``problem`` (default: the current one), drawn with ``rng`` where
        starts are random; measures nothing."""
        ...

    def as_state(self, state: S | Mapping[str, Any]) -> S:
        """The canonical state a state or its JSON names (``ValueError`` if it is none)."""
        ...

    def transition(self, state: S, action: int) -> S | str:
        """The successor of ``state`` under ``action``, or why there is none; measures nothing."""
        ...

    def legal_mask(self, state: S | None = None) -> np.ndarray:
        """0/1 ``int8``: the legal actions of ``state`` (default: the current one)."""
        ...

    def evaluate(self, states: Sequence[S], *, fresh: bool = False) -> list[Outcome]:
        """The outcome of each state's program, as one batch (known programs are free);
        :class:`BudgetExceeded`, and nothing measured, if it needs more than is left."""
        ...

    def unmeasured(self, states: Sequence[S]) -> list[bool]:
        """Whether evaluating ``states`` as one batch would measure and count each one."""
        ...

    def estimate(self, states: Sequence[S]) -> np.ndarray:
        """Cost-model estimates of the states' scores (``NotImplementedError`` without one)."""
        ...

    def problem(self, anchors: bool = True) -> dict[str, Any]:
        """What the current problem's scores are measured on (results and submissions)."""
        ...

    def reference_score(self, problem: str | None = None) -> float:
        """The score of the problem's reference program (default: the current problem)."""
        ...


@runtime_checkable
class Presentation(Protocol[S]):
    """An environment in words, for a language model's prompt and for people: its actions, its
    programs, where it measures and its scores."""

    prompt_family: str
    """Which prompt templates (``optarena/llm/prompts/<family>.txt``) describe it."""

    def describe_actions(self, state: S | None = None) -> list[dict[str, Any]]:
        """The legal actions of ``state`` (default: the current one) as ``{"id", "text", ...}``."""
        ...

    def program_text(self, state: S, full: bool = False) -> str:
        """The state's program (``full``: all of it)."""
        ...

    def target_text(self) -> str:
        """Where scores are measured."""
        ...

    def format_score(self, score: float) -> str: ...


@runtime_checkable
class Game(SearchOracle[S], Presentation[S], Protocol[S]):
    """Everything agents and experiments use of an environment (``env.unwrapped``): the search
    oracle, its presentation, and what experiments add. Every optarena environment implements it
    through :class:`~optarena.envs.base.ArenaEnv`."""

    max_steps: int

    def set_state(self, state: S | Mapping[str, Any]) -> dict[str, Any]:
        """Move the episode to ``state`` (measured unless known); its ``info``."""
        ...

    def export(self, state: S, directory: str | Path) -> list[Path]:
        """Write what a user needs to reuse ``state`` into ``directory``."""
        ...

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


def oracle(env: Any) -> SearchOracle[Any]:
    """``env.unwrapped`` as a :class:`SearchOracle`, what a search types against (``TypeError``
    if it is not an optarena game)."""
    return game(env)

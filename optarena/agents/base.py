"""What every agent shares: the result of a search and the measurement budget it is held to.

An agent is run as ``agent.run(env, budget, seed) -> SearchResult``. ``budget`` counts the
environment's measurements (``evaluator.num_measurements``: distinct programs scored; cache hits
are free), and it is hard: the :class:`Tracker` an agent makes sets it on the environment's
evaluator, which refuses (:class:`~optarena.envs.contract.BudgetExceeded`) a batch that needs
more than is left, so an agent reads what is left (``tracker.left``) and asks for no more.
The result, its usage and its curve are defined once, in :mod:`optarena.records`: a run record
stores them as the agent returns them.

Agents use the environment through the search oracle every optarena environment implements,
:class:`optarena.envs.contract.SearchOracle` (:func:`optarena.envs.contract.oracle` gets it from a
wrapped environment): ``info["score"]`` (lower is better), ``info["improvement"]`` and
``info["state"]``; ``get_state()``; ``legal_mask(state)``; ``transition(state, action)``, the
successor or why the action is illegal, measuring nothing; ``evaluate(states)``, a batch;
``unmeasured(states)``; ``estimate(states)`` where ``has_cost_model``. States are hashable. An
agent that prompts a language model also uses the
:class:`~optarena.envs.contract.Presentation`; environments whose states recombine implement
:class:`optarena.envs.contract.Crossover`.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from optarena.envs.contract import Outcome, SearchOracle, oracle
from optarena.records import CurvePoint, SearchResult, Usage

__all__ = ["Agent", "CurvePoint", "SearchResult", "Tracker", "Usage", "log_gain", "random_walk",
           "require_cost_model"]


class Agent(Protocol):
    name: str

    def run(self, env: gym.Env, budget: int, seed: int) -> SearchResult: ...


def random_walk(inner: SearchOracle[Any], state: Any, steps: int, rng: np.random.Generator
                ) -> tuple[Any, list[int]]:
    """Up to ``steps`` uniformly chosen legal actions from ``state`` through ``transition``
    (measures nothing); stops early where no action is legal or one fails. Returns the state
    reached and the actions taken."""
    actions: list[int] = []
    for _ in range(steps):
        legal = np.flatnonzero(inner.legal_mask(state))
        if len(legal) == 0:
            break
        action = int(rng.choice(legal))
        successor = inner.transition(state, action)
        if isinstance(successor, str):
            break
        state = successor
        actions.append(action)
    return state, actions


def require_cost_model(inner: SearchOracle[Any], agent: str, needed: bool,
                       measured: str | None = None) -> None:
    """``ValueError`` when the agent's settings plan on a cost model (``needed``) and the
    environment has none, naming how a tensor environment gets one and, if given, the agent's
    variant that measures every node instead."""
    if needed and not inner.has_cost_model:
        raise ValueError(
            f"{type(inner).__name__} has no cost model with these settings: the agent {agent!r} "
            "plans on one (a tensor-schedule environment needs surrogate=True)"
            + (f"; the agent {measured!r} measures every node and needs none" if measured
               else ""))


def log_gain(reference: float, score: float) -> float:
    """``log(reference / score)``: positive when ``score`` is better (lower) than ``reference``."""
    return math.log(reference / score)


class Tracker:
    """Holds a search to its budget and keeps its best-so-far curve (one point per new
    measurement).

    Made when a search starts, it sets the budget on the environment's evaluator
    (``evaluator.set_budget(budget)``): the evaluator counts every measurement from then on and
    refuses, with :class:`~optarena.envs.contract.BudgetExceeded`, a batch that needs more than
    is left. :attr:`left` and :attr:`used` are the evaluator's; :meth:`finish` lifts the budget.
    """

    def __init__(self, agent: str, env: gym.Env, budget: int, seed: int) -> None:
        self.gym_env = env
        self.env = oracle(env)
        self.starts = 0
        self.meter = self.env.evaluator
        self.meter.set_budget(budget)
        self.began = time.perf_counter()
        self.censored_offset = self.meter.num_censored
        self.cost_offset = self.meter.num_cost_model_calls
        self.failures_offset = Counter(self.meter.failures)
        self.result = SearchResult(agent=agent, seed=seed, budget=budget)

    @property
    def used(self) -> int:
        """Measurements made since the search started."""
        return self.meter.used

    @property
    def left(self) -> int:
        """Measurements the budget has left (the evaluator's)."""
        left = self.meter.left
        assert left is not None, "the search's budget was lifted (finish() was called)"
        return left

    def rounds(self, max_stalls: int) -> Iterator[int]:
        """Yield round numbers until the budget is spent, or until ``max_stalls`` rounds in a row
        measured nothing new (everything reachable is cached: the budget would never fill)."""
        stalls, number = 0, 0
        while self.left > 0 and stalls < max_stalls:
            before = self.used
            yield number
            number += 1
            stalls = stalls + 1 if self.used == before else 0

    def first_sample(self) -> tuple[Any, dict[str, Any]]:
        """Reset the environment with the search's seed, record the start and return what the
        reset returned: every agent of a seed whose algorithm allows it starts from this sample
        (``reset(seed)``), so that paired comparisons compare searches, not first samples."""
        return self.start(None)

    def start(self, rng: np.random.Generator | None) -> tuple[Any, dict[str, Any]]:
        """A start of the search, recorded: the first is :meth:`first_sample`, a later one a
        reset with a seed drawn from ``rng`` (greedy search's restarts, PPO's test episodes)."""
        seed = self.result.seed if self.starts == 0 or rng is None else int(rng.integers(2**31))
        self.starts += 1
        observation, info = self.gym_env.reset(seed=seed)
        self.observe(info, [])
        return observation, info

    def observe(self, info: dict[str, Any], actions: list[int]) -> None:
        """Record the state just reached (its ``info``) and the actions that led to it. A
        censored score (an estimate of a candidate clearly worse than the best) is never a
        best."""
        result = self.result
        score = float(info["score"])
        if score < result.best_score and not info.get("censored"):
            result.best_score = score
            result.best_improvement = float(info["improvement"])
            # through the state type: a vector env's listed info holds NumPy scalars
            result.best_state = self.env.as_state(info["state"]).to_json()
            result.best_actions = [int(a) for a in actions]
        self._point()

    def observe_outcome(self, state: Any, outcome: Outcome, actions: list[int]) -> None:
        """Record a state measured through ``evaluate`` (a failed one adds only the curve's
        point)."""
        if outcome.score is None:
            self.observe_failure()
            return
        reference = self.env.reference_score(state.problem)
        self.observe({"score": outcome.score, "improvement": reference / outcome.score,
                      "state": state.to_json(), "censored": outcome.censored}, actions)

    def observe_failure(self) -> None:
        """A measurement that failed: the curve goes on at the same best."""
        if self.result.curve:
            self._point()

    def _point(self) -> None:
        """The curve's point for the measurements made so far (the states of one batch are
        observed one after another: the batch's point ends with its best)."""
        result, curve = self.result, self.result.curve
        point = CurvePoint(measurements=self.used, wall_s=time.perf_counter() - self.began,
                           best_score=result.best_score, best_improvement=result.best_improvement,
                           censored=self.meter.num_censored - self.censored_offset)
        if curve and curve[-1].measurements == self.used:
            curve[-1] = point
        else:
            curve.append(point)

    def finish(self) -> SearchResult:
        """The search's result, with what it used; the budget is lifted (whatever is measured
        afterwards is not the search's)."""
        result, meter = self.result, self.meter
        result.wall_s = time.perf_counter() - self.began
        result.usage.measurements = self.used
        result.usage.censored = meter.num_censored - self.censored_offset
        result.usage.cost_model_calls = meter.num_cost_model_calls - self.cost_offset
        result.usage.failures = dict(Counter(meter.failures) - self.failures_offset)
        meter.set_budget(None)
        return result

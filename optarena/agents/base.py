"""What every agent shares: the result of a search and the measurement budget it is held to.

An agent is run as ``agent.run(env, budget, seed) -> SearchResult``. ``budget`` counts the
environment's measurements (``num_measurements``: distinct programs scored; cache hits are free).
The result, its usage and its curve are defined once, in :mod:`optarena.records`: a run record
stores them as the agent returns them.

Agents use the environment through the one contract every optarena environment implements,
:class:`optarena.envs.contract.Game` (:func:`optarena.envs.contract.game` gets it from a wrapped
environment): ``info["score"]`` (lower is better), ``info["improvement"]`` and ``info["state"]``;
``get_state()``; ``set_state(state)``, which measures a state not measured before and raises
``ValueError`` for one whose program fails; ``legal_mask(state)``; ``transition(state, action)``,
the successor or why the action is illegal, measuring nothing; ``evaluate(states)``, a batch;
``estimate(states)`` where ``has_cost_model``. States are hashable. Environments whose states
recombine implement :class:`optarena.envs.contract.Crossover`.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from optarena.envs.contract import Game, Outcome, game
from optarena.records import CurvePoint, SearchResult, Usage

__all__ = ["Agent", "CurvePoint", "SearchResult", "Tracker", "Usage", "log_gain", "random_walk"]


class Agent(Protocol):
    name: str

    def run(self, env: gym.Env, budget: int, seed: int) -> SearchResult: ...


def random_walk(inner: Game[Any], state: Any, steps: int, rng: np.random.Generator
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


def log_gain(reference: float, score: float) -> float:
    """``log(reference / score)``: positive when ``score`` is better (lower) than ``reference``."""
    return math.log(reference / score)


class Tracker:
    """Keeps the best-so-far curve of one search (one point per new measurement).

    ``envs`` are more copies of the environment whose measurements count against the same budget
    (vectorized training).
    """

    def __init__(self, agent: str, env: gym.Env, budget: int, seed: int,
                 envs: Sequence[gym.Env] = ()) -> None:
        self.env = game(env)
        self.envs = [self.env, *(game(e) for e in envs)]
        self.start = time.perf_counter()
        self.offset = self._total()
        self.censored_offset = self._censored()
        self.cost_offset = self._cost_model_calls()
        self.failures_offset = self._failures()
        self.result = SearchResult(agent=agent, seed=seed, budget=budget)

    def _total(self) -> int:
        return sum(e.num_measurements for e in self.envs)

    def _censored(self) -> int:
        return sum(e.num_censored for e in self.envs)

    def _cost_model_calls(self) -> int:
        return sum(e.num_cost_model_calls for e in self.envs)

    def _failures(self) -> Counter[str]:
        return sum((Counter(e.failures) for e in self.envs), Counter())

    @property
    def used(self) -> int:
        """Measurements made since the search started."""
        return self._total() - self.offset

    @property
    def left(self) -> int:
        return self.result.budget - self.used

    def rounds(self, max_stalls: int) -> Iterator[int]:
        """Yield round numbers until the budget is spent, or until ``max_stalls`` rounds in a row
        measured nothing new (everything reachable is cached: the budget would never fill)."""
        stalls, number = 0, 0
        while self.used < self.result.budget and stalls < max_stalls:
            before = self.used
            yield number
            number += 1
            stalls = stalls + 1 if self.used == before else 0

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
            result.best_state = self.env.state_from_json(info["state"]).to_json()
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
        point = CurvePoint(measurements=self.used, wall_s=time.perf_counter() - self.start,
                           best_score=result.best_score,
                           best_improvement=result.best_improvement,
                           censored=self._censored() - self.censored_offset)
        if curve and curve[-1].measurements == self.used:
            curve[-1] = point
        else:
            curve.append(point)

    def finish(self) -> SearchResult:
        result = self.result
        result.wall_s = time.perf_counter() - self.start
        result.usage.measurements = self.used
        result.usage.censored = self._censored() - self.censored_offset
        result.usage.cost_model_calls = self._cost_model_calls() - self.cost_offset
        result.usage.failures = dict(self._failures() - self.failures_offset)
        return result

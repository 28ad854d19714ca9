"""Greedy search: always take the legal action with the best immediate reward.

From a start (first ``reset(seed)``, every agent's first sample for the seed, then ``reset``
with a new seed at each restart), the successors of every legal action from the
current state are measured as one batch (as many as the budget allows), the best one is taken,
and the search goes on from there until no action improves the score; then it restarts. It stops
at the budget, or after ``max_stalls`` restarts that measured nothing new. On the peephole
environment this applies the most profitable legal rewrite first until none is left.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from optarena.agents.base import SearchResult, Tracker
from optarena.envs.contract import Outcome, SearchOracle, oracle


@dataclass
class GreedyConfig:
    min_gain: float = 0.0
    """An action must improve the log score by more than this to be taken."""
    max_stalls: int = 3
    """Stop after this many restarts in a row that measured nothing new (all cached)."""


class Greedy:
    """Steepest descent on the score with restarts."""

    name = "greedy"

    def __init__(self, config: GreedyConfig | None = None) -> None:
        self.config = config or GreedyConfig()

    def run(self, env: gym.Env, budget: int, seed: int) -> SearchResult:
        rng = np.random.default_rng(seed)
        inner = oracle(env)
        tracker = Tracker(self.name, env, budget, seed)
        for _ in tracker.rounds(self.config.max_stalls):
            _, info = tracker.start(rng)
            descend(inner, inner.get_state(), float(info["score"]), lambda: tracker.left,
                    tracker.observe_outcome, self.config.min_gain)
        return tracker.finish()


def descend(inner: SearchOracle[Any], state: Any, score: float, left: Callable[[], int],
            observe: Callable[[Any, Outcome, list[int]], None] | None = None,
            min_gain: float = 0.0, max_moves: int | None = None) -> tuple[Any, float, list[int]]:
    """Steepest descent from ``state`` (scored ``score``): measure every legal successor as one
    batch (as many as ``left()`` measurements allow), move to the best if it gains more than
    ``min_gain`` in log score, until none does (or after ``max_moves`` moves). ``observe`` sees
    every successor measured. Returns the state reached, its score and the actions taken."""
    path: list[int] = []
    while left() > 0 and (max_moves is None or len(path) < max_moves):
        moves = [(int(a), inner.transition(state, int(a)))
                 for a in np.flatnonzero(inner.legal_mask(state))]
        moves = [(a, s) for a, s in moves if not isinstance(s, str)][: left()]
        best = None
        for (action, successor), outcome in zip(moves, inner.evaluate([s for _, s in moves]),
                                                strict=True):
            if observe is not None:
                observe(successor, outcome, [*path, action])
            if outcome.score is None or outcome.censored:
                continue
            gain = math.log(score / outcome.score)
            if gain > min_gain and (best is None or gain > best[0]):
                best = (gain, action, successor, outcome.score)
        if best is None:
            break
        _, action, state, score = best
        path.append(action)
    return state, score, path

"""Greedy search: always take the legal action with the best immediate reward.

From a fresh start (``reset`` with a new seed), the successors of every legal action from the
current state are measured as one batch (as many as the budget allows), the best one is taken,
and the search goes on from there until no action improves the score; then it restarts. It stops
at the budget, or after ``max_stalls`` restarts that measured nothing new. On the peephole
environment this applies the most profitable legal rewrite first until none is left.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from optarena.agents.base import SearchResult, Tracker
from optarena.envs.contract import game


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
        inner = game(env)
        tracker = Tracker(self.name, env, budget, seed)
        for _ in tracker.rounds(self.config.max_stalls):
            _, info = env.reset(seed=int(rng.integers(2**31)))
            tracker.observe(info, [])
            here, score, path = inner.get_state(), float(info["score"]), []
            while tracker.left > 0:
                moves = [(int(a), inner.transition(here, int(a)))
                         for a in np.flatnonzero(inner.legal_mask(here))]
                moves = [(a, s) for a, s in moves if not isinstance(s, str)][: tracker.left]
                best = None
                for (action, state), outcome in zip(moves, inner.evaluate([s for _, s in moves]),
                                                    strict=True):
                    tracker.observe_outcome(state, outcome, [*path, action])
                    if outcome.score is None or outcome.censored:
                        continue
                    gain = math.log(score / outcome.score)
                    if gain > self.config.min_gain and (best is None or gain > best[0]):
                        best = (gain, action, state, outcome.score)
                if best is None:
                    break
                _, action, here, score = best
                path.append(action)
        return tracker.finish()

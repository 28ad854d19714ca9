"""Greedy search: always take the legal action with the best immediate reward.

From a fresh start (``reset`` with a new seed), every legal action is tried from the current
state (``set_state`` returns to it; each try may cost a measurement), the best one is taken, and
the search goes on from there until no action improves the score; then it restarts. It stops at
the budget, or after ``max_stalls`` restarts that measured nothing new. On the peephole
environment this applies the most profitable legal rewrite first until none is left.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from optarena.agents.base import SearchResult, Tracker
from optarena.envs.contract import game


@dataclass
class GreedyConfig:
    min_gain: float = 0.0
    """An action must improve the reward by more than this to be taken."""
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
            path: list[int] = []
            while tracker.used < budget:
                here = inner.get_state()
                best: tuple[float, int, object] | None = None
                for action in np.flatnonzero(info["action_mask"]):
                    if tracker.used >= budget:
                        break
                    inner.set_state(here)
                    _, reward, _, _, tried = env.step(int(action))
                    if "invalid_action" in tried:
                        continue
                    tracker.observe(tried, [*path, int(action)])
                    if reward > self.config.min_gain and (best is None or reward > best[0]):
                        best = (reward, int(action), inner.get_state())
                if best is None:
                    break
                _, action, state = best
                path.append(action)
                info = inner.set_state(state)
        return tracker.finish()

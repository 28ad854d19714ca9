"""Random search: the floor every other agent must beat.

Each round resets the environment with a fresh seed (a new random sample of the design space),
then walks ``walk_length`` uniformly chosen legal actions, measuring every program on the way,
until the measurement budget is spent (or ``max_stalls`` rounds in a row measured nothing new).
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from optarena.agents.base import SearchResult, Tracker


@dataclass
class RandomSearchConfig:
    walk_length: int = 4
    """Random legal steps taken from each fresh sample (0: pure sampling)."""
    max_stalls: int = 50
    """Stop after this many rounds in a row that measured nothing new (all cached)."""


class RandomSearch:
    """Uniform random sampling plus short random walks."""

    name = "random"

    def __init__(self, config: RandomSearchConfig | None = None) -> None:
        self.config = config or RandomSearchConfig()

    def run(self, env: gym.Env, budget: int, seed: int) -> SearchResult:
        rng = np.random.default_rng(seed)
        tracker = Tracker(self.name, env, budget, seed)
        for _ in tracker.rounds(self.config.max_stalls):
            _, info = env.reset(seed=int(rng.integers(2**31)))
            tracker.observe(info, [])
            actions: list[int] = []
            for _ in range(self.config.walk_length):
                legal = np.flatnonzero(info["action_mask"])
                if tracker.used >= budget or len(legal) == 0:
                    break
                action = int(rng.choice(legal))
                _, _, terminated, truncated, info = env.step(action)
                if "invalid_action" not in info:
                    actions.append(action)
                tracker.observe(info, actions)
                if terminated or truncated:
                    break
        return tracker.finish()

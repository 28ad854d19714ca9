"""Random search: the floor every other agent must beat.

Its first sample is ``reset(seed)``, every agent's first sample for the seed. Each round draws
``batch`` fresh starting states (random samples of the design space; on an environment with one
fixed start, the start) and walks ``walk_length`` uniformly chosen legal actions from each
(``transition``: measuring nothing); every state on the walks is then measured as one batch
(``evaluate``: the tensor environment builds them in parallel), until the measurement budget is
spent (or ``max_stalls`` rounds in a row measured nothing new)."""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from optarena.agents.base import SearchResult, Tracker, random_walk
from optarena.envs.contract import oracle


@dataclass
class RandomSearchConfig:
    walk_length: int = 4
    """Random legal steps taken from each fresh sample (0: pure sampling)."""
    batch: int = 2
    """Walks measured together per round."""
    max_stalls: int = 50
    """Stop after this many rounds in a row that measured nothing new (all cached)."""


class RandomSearch:
    """Uniform random sampling plus short random walks."""

    name = "random"

    def __init__(self, config: RandomSearchConfig | None = None) -> None:
        self.config = config or RandomSearchConfig()

    def run(self, env: gym.Env, budget: int, seed: int) -> SearchResult:
        config, inner = self.config, oracle(env)
        rng = np.random.default_rng(seed)
        tracker = Tracker(self.name, env, budget, seed)
        tracker.first_sample()
        for _ in tracker.rounds(config.max_stalls):
            walked: dict[object, list[int]] = {}  # state -> the actions from its walk's start
            for _ in range(config.batch):
                state, actions = inner.initial_state(rng), []
                walked.setdefault(state, [])
                for _ in range(config.walk_length):
                    state, step = random_walk(inner, state, 1, rng)
                    if not step:
                        break
                    actions = [*actions, *step]
                    walked.setdefault(state, actions)
            batch = list(walked)[: tracker.left]  # more would raise BudgetExceeded
            for state, outcome in zip(batch, inner.evaluate(batch), strict=True):
                tracker.observe_outcome(state, outcome, walked[state])
        return tracker.finish()

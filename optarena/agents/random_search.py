"""Random search: the floor every other agent must beat.

Its first sample is ``reset(seed)``, every agent's first sample for the seed. Each round draws
``batch`` fresh starting states (random samples of the design space; on an environment with one
fixed start, the start) and walks ``walk_length`` uniformly chosen legal actions from each
(``transition``: measuring nothing); every state on the walks is then measured as one batch
(``evaluate``: the tensor environment builds them in parallel), until the measurement budget is
spent (or ``max_stalls`` rounds in a row measured nothing new).

With ``patience`` (as CompilerGym's random search, whose episodes go on while they keep finding
new bests), each round is one walk from a fresh start whose every step is measured as it is
taken; the walk ends after ``patience`` steps in a row that found no new best of the run (or at a
state with no legal action), whatever ``walk_length`` says. Walks then grow as long as they pay:
pass orders of a hundred passes and more."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from optarena.agents.base import SearchResult, Tracker, random_walk
from optarena.envs.contract import SearchOracle, oracle


@dataclass
class RandomSearchConfig:
    walk_length: int = 4
    """Random legal steps taken from each fresh sample (0: pure sampling)."""
    batch: int = 2
    """Walks measured together per round."""
    max_stalls: int = 50
    """Stop after this many rounds in a row that measured nothing new (all cached)."""
    patience: int = 0
    """Walk on while a new best of the run comes within this many steps (0: walks of
    ``walk_length``, measured in batches)."""


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
        round_ = self._patient_walk if config.patience > 0 else self._walks
        for _ in tracker.rounds(config.max_stalls):
            round_(inner, tracker, rng)
        return tracker.finish()

    def _walks(self, inner: SearchOracle[Any], tracker: Tracker,
               rng: np.random.Generator) -> None:
        """``batch`` walks of ``walk_length`` from fresh starts, every state on them measured as
        one batch."""
        walked: dict[object, list[int]] = {}  # state -> the actions from its walk's start
        for _ in range(self.config.batch):
            state, actions = inner.initial_state(rng), []
            walked.setdefault(state, [])
            for _ in range(self.config.walk_length):
                state, step = random_walk(inner, state, 1, rng)
                if not step:
                    break
                actions = [*actions, *step]
                walked.setdefault(state, actions)
        batch = list(walked)[: tracker.left]  # more would raise BudgetExceeded
        for state, outcome in zip(batch, inner.evaluate(batch), strict=True):
            tracker.observe_outcome(state, outcome, walked[state])

    def _patient_walk(self, inner: SearchOracle[Any], tracker: Tracker,
                      rng: np.random.Generator) -> None:
        """One walk from a fresh start, each step measured, until ``patience`` steps in a row
        find no new best (or the budget ends)."""
        state, actions, waiting = inner.initial_state(rng), [], self.config.patience
        while waiting > 0 and tracker.left > 0:
            state, step = random_walk(inner, state, 1, rng)
            if not step:
                return
            actions = [*actions, *step]
            best = tracker.result.best_score
            (outcome,) = inner.evaluate([state])
            tracker.observe_outcome(state, outcome, actions)
            waiting = self.config.patience if tracker.result.best_score < best else waiting - 1

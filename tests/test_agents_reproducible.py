"""The plain agents stay reproducible: for a fixed seed, ``mcts`` and ``evolutionary`` ask the
environment to evaluate the same states in the same order as when their results were published
(``mcts`` as it was then: the agent ``mcts-measured`` today).

The runs are on the toy environment (tests/toy_env.py; also with random starts, as the tensor
environment has) and on a peephole block. The fixture ``agents_measured.json`` was recorded with
the code of commit 01eb872 (before ``puct`` and ``evolutionary-diverse`` existed), the
``evolutionary`` runs again when every agent of a seed began to start from ``reset(seed)``
(2026-12-07; before, evolutionary search reset with a seed it drew);
``python -m tests.test_agents_reproducible`` records it again (only ever do that for an intended
change of behaviour)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from optarena import agents
from optarena.envs.base import ArenaEnv

from .toy_env import Order, OrderScorer, OrderSpace, ToyEnv

FIXTURE = Path(__file__).parent / "agents_measured.json"
BLOCK = "loads_stores/O1/dot4/0"

RUNS: dict[str, tuple[str, str, dict[str, Any], int, int]] = {
    # label: (agent, environment, agent config, budget, seed)
    "mcts-toy": ("mcts-measured", "toy", {}, 30, 0),
    "mcts-toy-batched": ("mcts-measured", "toy", {"leaves_per_round": 3, "rollout_depth": 1},
                         30, 1),
    "mcts-peephole": ("mcts-measured", "peephole", {}, 12, 5),
    "mcts-shuffled": ("mcts-measured", "shuffled", {}, 30, 2),
    "evolutionary-toy": ("evolutionary", "toy", {}, 30, 0),
    "evolutionary-peephole": ("evolutionary", "peephole",
                              {"init_samples": 2, "measure_per_generation": 4}, 12, 5),
    "evolutionary-shuffled": ("evolutionary", "shuffled", {}, 40, 3),
}


class ShuffledSpace(OrderSpace):
    """The toy space with random starts (a shuffled order), as the tensor space has."""

    random_start = True

    def initial(self, problem: str, rng: np.random.Generator) -> Order:
        return Order(problem, tuple(int(job) for job in rng.permutation(self.n)))


def _make_env(kind: str) -> gym.Env:
    if kind == "toy":
        return ToyEnv("jobs-8", store=None)
    if kind == "shuffled":
        return ArenaEnv(ShuffledSpace("jobs-8"), OrderScorer(), problem="jobs-8", store=None)
    return gym.make("optarena/AArch64Peephole-v0", block=BLOCK, store=None)


def _digest(state: Any) -> str:
    return hashlib.sha256(json.dumps(state.to_json(), sort_keys=True).encode()).hexdigest()[:16]


def measured_sequence(label: str, agent: str | None = None) -> list[list[str]]:
    """Every batch the run of ``label`` (its agent, or ``agent`` in its place) hands to
    ``evaluate`` (its reset's included), as digests of the states' JSON."""
    name, kind, config, budget, seed = RUNS[label]
    env = _make_env(kind)
    inner, calls = env.unwrapped, []
    evaluate = inner.evaluate

    def recording(states: Any, **kwargs: Any) -> Any:
        calls.append([_digest(state) for state in states])
        return evaluate(states, **kwargs)

    inner.evaluate = recording
    try:
        agents.make(agent or name, **config).run(env, budget=budget, seed=seed)
    finally:
        env.close()
    return calls


@pytest.mark.parametrize("label", sorted(RUNS))
def test_plain_agents_measure_what_they_measured_before(label):
    recorded = json.loads(FIXTURE.read_text())[label]
    assert measured_sequence(label) == recorded


if __name__ == "__main__":
    FIXTURE.write_text(json.dumps({label: measured_sequence(label) for label in sorted(RUNS)},
                                  indent=0) + "\n")

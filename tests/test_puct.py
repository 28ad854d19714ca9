"""PUCT measuring every node (``puct-measured``, optarena.agents.puct) and diverse-sketch seeding
(evolutionary-diverse): the prior follows the cost model, widening is bounded, transpositions
share one node, the budget holds; the seeds cover the sketches evenly, and without sketches
nothing changes."""

import json
import math
from collections import Counter

import gymnasium as gym
import numpy as np
import pytest

from optarena import agents
from optarena.agents.evolutionary import EvolutionaryDiverse, EvolutionaryDiverseConfig

from .test_agents_reproducible import FIXTURE, measured_sequence
from .toy_env import ToyEnv

PRIOR_BLOCK = "loads_stores/O2/add_arrays/6"
"""Six legal rewrites at the start whose llvm-mca estimates differ, one lowest."""
PAIRS_BLOCK = "loads_stores/O1/dot4/0"
"""Three independent rewrites: applied in any order, they reach the same blocks."""


def peephole(block):
    return gym.make("optarena/AArch64Peephole-v0", block=block, store=None)


@pytest.mark.parametrize("seed", range(4))
def test_the_first_expansion_is_the_successor_the_cost_model_rates_best(seed):
    env = peephole(PRIOR_BLOCK)
    _, info = env.reset()
    inner, start = env.unwrapped, env.unwrapped.get_state()
    successors = {int(a): inner.transition(start, int(a)) for a in np.flatnonzero(info["action_mask"])}
    estimates = dict(zip(successors, inner.estimate(list(successors.values())), strict=True))
    best = min(estimates, key=estimates.get)
    assert sorted(estimates.values())[1] > estimates[best]  # one lowest
    agent = agents.make("puct-measured", prior_warmup=0)
    agent.run(env, budget=1, seed=seed)
    assert list(agent.tree.root.children) == [best]
    assert max(agent.tree.root.prior, key=agent.tree.root.prior.get) == best


def test_the_prior_is_uniform_before_the_warmup():
    agent = agents.make("puct-measured", prior_warmup=100)
    result = agent.run(peephole(PRIOR_BLOCK), budget=4, seed=0)
    assert len(set(agent.tree.root.prior.values())) == 1
    assert result.usage.cost_model_calls == 0


@pytest.mark.parametrize(("k", "alpha"), [(1.0, 0.5), (2.0, 0.3)])
def test_progressive_widening_bounds_the_children(k, alpha):
    agent = agents.make("puct-measured", widening_k=k, widening_alpha=alpha)
    agent.run(ToyEnv("jobs-8", store=None), budget=20, seed=0)
    for node in agent.tree.table.values():
        assert len(node.children) <= math.ceil(k * node.visits ** alpha)
    root = agent.tree.root
    assert 1 < len(root.children) == math.ceil(k * root.visits ** alpha) < 7  # 7 legal swaps


def test_two_orders_of_the_same_rewrites_are_one_node():
    agent = agents.make("puct-measured", prior_warmup=0, widening_k=3.0)
    agent.run(peephole(PAIRS_BLOCK), budget=12, seed=0)
    tree, inner = agent.tree, agent.tree.inner
    parents = Counter()
    for node in tree.table.values():
        for action, child in node.children.items():
            assert inner.transition(node.state, action) == child.state
            assert tree.table[child.state] is child
            parents[id(child)] += 1
    assert max(parents.values()) >= 2 and tree.transpositions >= 1
    shared = next(n for n in tree.table.values() if parents[id(n)] >= 2)
    assert shared.visits >= 2  # both paths' visits on one node


def test_cycles_are_linked_but_never_descended():
    """Swapping two jobs back returns to the parent's state: an edge to a node on the path."""
    agent = agents.make("puct-measured", widening_k=7.0, widening_alpha=0.0)
    result = agent.run(ToyEnv("jobs-6", store=None), budget=30, seed=0)
    tree = agent.tree
    assert any(tree.root in node.children.values() for node in tree.root.children.values())
    assert result.usage.measurements == 30


@pytest.mark.parametrize("leaves", [1, 3])
def test_the_budget_holds_and_states_reached_again_are_free(leaves):
    env = ToyEnv("jobs-8", store=None)
    agent = agents.make("puct-measured", leaves_per_round=leaves)
    result = agent.run(env, budget=25, seed=1)
    assert result.usage.measurements == 25 == env.evaluator.num_measurements
    details = result.details
    assert details["transpositions"] > 0
    assert details["nodes"] + details["failed"] - 1 == 25  # each state once; the start is free


def test_a_batch_never_exceeds_the_budget():
    result = agents.make("puct-measured", leaves_per_round=4, prior_warmup=0).run(
        peephole(PAIRS_BLOCK), budget=3, seed=0)
    assert result.usage.measurements == 3


# ------------------------------------------------------------------ evolutionary-diverse


@pytest.mark.parametrize("label", ["evolutionary-toy", "evolutionary-shuffled", "evolutionary-peephole"])
def test_diverse_seeding_changes_nothing_without_sketches(label):
    assert measured_sequence(label, agent="evolutionary-diverse") == \
        json.loads(FIXTURE.read_text())[label]


@pytest.mark.parametrize(("init_samples", "budget", "counts"),
                         [(7, 32, [3, 2, 2]), (2, 32, [1, 1, 1]), (2, 4, [1, 1])])
def test_diverse_seeds_cover_the_sketches_evenly(init_samples, budget, counts):
    """matmul-64 has 3 sketches: the seed covers them evenly, with at most half the budget."""
    env = gym.make("optarena/TensorSchedule-v0", workload="matmul-64", store=None)
    try:
        inner, rng = env.unwrapped, np.random.default_rng(0)
        first = inner.initial_state(rng)
        agent = EvolutionaryDiverse(EvolutionaryDiverseConfig(init_samples=init_samples))
        starts = [first, *agent._diverse_starts(inner, first, budget, rng)]
    finally:
        env.close()
    assert len(set(starts)) == sum(counts)
    assert sorted(Counter(s.sketch for s in starts).values(), reverse=True) == counts

"""The planning loop of the model-based tree agents (``mcts``, ``puct``, ``llm-mcts``): rounds of
planning on the cost model, batches of ``k`` measurements, measured values written back."""

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from optarena import agents
from optarena.agents.llm_mcts import LLMMCTS, LLMMCTSConfig
from optarena.agents.mcts import MCTS, MCTSConfig
from optarena.envs.base import ArenaEnv
from optarena.envs.contract import Outcome

from .test_agents import BLOCK, FirstListed
from .test_agents_reproducible import ShuffledSpace
from .toy_env import Order, OrderScorer, OrderSpace, _cost


class ModelScorer(OrderScorer):
    """The toy scorer with a cost model: ``predict(state)`` (default: the true cost)."""

    def __init__(self, predict: Callable[[Order], float] | None = None) -> None:
        self.predict = predict or (lambda state: _cost(state.problem, state.jobs))
        self.num_cost_model_calls = 0

    @property
    def has_cost_model(self) -> bool:
        return True

    def estimate(self, states: Sequence[Order]) -> np.ndarray:
        self.num_cost_model_calls += len(states)
        return np.array([self.predict(s) for s in states], dtype=float)


class Recording(ArenaEnv[Order]):
    """The toy environment that records every batch it is asked to evaluate and the programs
    each batch measured."""

    def __init__(self, scorer: ModelScorer, space: OrderSpace | None = None) -> None:
        super().__init__(space or OrderSpace("jobs-8"), scorer, problem="jobs-8", store=None)
        self.measured_per_batch: list[int] = []
        self.evaluated: list[Order] = []

    def evaluate(self, states: Sequence[Order], *, fresh: bool = False) -> list[Outcome]:
        before = self.evaluator.num_measurements
        outcomes = super().evaluate(states, fresh=fresh)
        self.measured_per_batch.append(self.evaluator.num_measurements - before)
        self.evaluated.extend(states)
        return outcomes


def test_a_round_measures_k_states_or_what_is_left_of_the_budget():
    env = Recording(ModelScorer())
    agent = MCTS(MCTSConfig(measure_per_round=4, expansions_per_round=16))
    result = agent.run(env, budget=11, seed=0)
    assert result.usage.measurements == 11 == env.evaluator.num_measurements
    # the start is the toy's reference (free), then rounds of 4 until 3 are left
    assert [n for n in env.measured_per_batch if n] == [4, 4, 3]
    assert result.usage.cost_model_calls > 11  # it planned on the model between batches
    assert result.usage.planning_s > 0
    assert result.best_improvement > 1.0


def test_a_state_predicted_fast_but_measured_slow_carries_its_measured_value():
    decoy = Order("jobs-8", (1, 0, 2, 3, 4, 5, 6, 7))  # one swap from the start
    true = ModelScorer().predict

    def predict(state: Order) -> float:
        return 1.0 if state == decoy else true(state)

    for in_tree in (True, False):
        env = Recording(ModelScorer(predict))
        agent = MCTS(MCTSConfig(measure_per_round=2, expansions_per_round=32, branching=7,
                                measured_in_tree=in_tree, epsilon=0.0))
        agent.run(env, budget=5, seed=0)
        node = agent.table[decoy]
        # a child of the start (branching 7: all of them), ranked first: in the first batch
        assert env.evaluated.index(decoy) in (1, 2)
        assert node.measured == true(decoy) > 1.0 and node.predicted == 1.0
        measured_gain, predicted_gain = agent.gain(true(decoy)), agent.gain(1.0)
        assert node.own == pytest.approx(measured_gain if in_tree else
                                         max(predicted_gain, node.rollout_gain or -np.inf))
        # the start's W is the sum of its subtree's own values: the decoy's measured one in it
        start = agent.root.children[0]
        subtree = [n for n in agent.table.values() if start in _ancestors(n)]
        assert start.value_sum == pytest.approx(sum(n.own for n in subtree))


def _ancestors(node: Any) -> list[Any]:
    chain = [node]
    while chain[-1].parent is not None:
        chain.append(chain[-1].parent)
    return chain


def test_with_a_constant_cost_model_it_explores_and_respects_the_budget():
    env = Recording(ModelScorer(lambda state: 5.0))
    agent = MCTS(MCTSConfig(measure_per_round=3, expansions_per_round=12, epsilon=0.0))
    result = agent.run(env, budget=13, seed=1)
    assert result.usage.measurements == 13 == env.evaluator.num_measurements
    # every measurement a new state besides the start (the toy's reference: free)
    assert len(env.evaluated) == len(set(env.evaluated)) == 14
    summary = result.details
    assert summary["nodes"] > 13 and summary["depth"] >= 2  # the tree grew beyond what it measured


def test_without_a_cost_model_it_says_so_and_names_the_measured_variant():
    env = ArenaEnv(OrderSpace("jobs-8"), OrderScorer(), problem="jobs-8", store=None)
    for name in ("mcts", "puct", "llm-mcts"):
        with pytest.raises(ValueError, match=f"has no cost model.*'{name}-measured'"):
            agents.make(name).run(env, budget=4, seed=0)
    assert env.evaluator.num_measurements == 0  # nothing measured before it said so


def test_the_root_widens_over_random_starts():
    for name in ("mcts", "puct"):
        env = Recording(ModelScorer(), ShuffledSpace("jobs-8"))
        agent = agents.make(name, measure_per_round=4, expansions_per_round=16)
        result = agent.run(env, budget=16, seed=3)
        assert result.details["starts"] > 1
        assert result.usage.measurements == 16


@pytest.mark.parametrize("name", ["random", "greedy", "evolutionary", "evolutionary-cost-model",
                                  "mcts", "puct", "mcts-measured", "puct-measured"])
def test_every_agent_of_a_seed_starts_from_the_same_first_sample(name):
    """In a space of random starts, the first state every agent measures is ``reset(seed)``'s,
    so that paired comparisons compare searches, not lucky first samples."""
    firsts = set()
    for _ in range(2):  # and again: the same first state
        env = Recording(ModelScorer(), ShuffledSpace("jobs-8"))
        agents.make(name).run(env, budget=6, seed=11)
        firsts.add(env.evaluated[0])
    env.reset(seed=11)
    assert firsts == {env.get_state()}


def test_on_an_exact_model_planning_beats_measuring_every_node_at_equal_measurements():
    totals = {}
    for name in ("mcts", "mcts-measured", "puct", "puct-measured"):
        totals[name] = sum(agents.make(name).run(Recording(ModelScorer()), 24, seed).best_score
                           for seed in range(3))
    assert totals["mcts"] < totals["mcts-measured"]
    # the measured PUCT's prior is the exact model too: its measurements follow it greedily
    assert totals["puct"] <= totals["puct-measured"]


def test_llm_mcts_asks_at_most_its_calls_per_round_and_reports_per_measurement():
    client = FirstListed()
    agent = LLMMCTS(LLMMCTSConfig(llm_calls_per_round=2, measure_per_round=2,
                                  expansions_per_round=8), client=client)
    env = gym.make("optarena/AArch64Peephole-v0", block=BLOCK, store=None)
    result = agent.run(env, budget=7, seed=0)
    usage = result.usage
    rounds = 4  # 2 + 2 + 2 + 1 measurements (the start is the block as compiled: free)
    assert 0 < usage.llm_calls <= 2 * rounds and usage.llm_calls == len(client.prompts)
    assert 0 < usage.planning_s < result.wall_s
    assert usage.proposals_uniform > 0  # the rounds' other expansions
    assert "(predicted by the cost model)" in client.prompts[-1] or \
        "(measured)" in client.prompts[-1]
    assert usage.measurements == 7 and result.best_improvement > 1.0

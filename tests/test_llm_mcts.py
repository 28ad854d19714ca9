"""LLM-MCTS at a fair price: proposals reused across expansions, prompts whose static part comes
first, compact listings, and the paper's sequences applied atomically (a scripted client stands
in for the endpoint; the real server is tested in test_llm_local.py)."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

import optarena.envs  # noqa: F401 - registers the environments
from optarena.agents.base import Usage
from optarena.agents.llm_mcts import (
    MeasuredLLMMCTS,
    MeasuredLLMMCTSConfig,
    action_listing,
    walk,
)
from optarena.agents.mcts import MeasuredNode
from optarena.llm.client import Completion

BLOCK = "loads_stores/O1/dot4/0"


class Ranked:
    """Answers every call with the first ``take`` ids the schema offers, and records the calls."""

    def __init__(self, take: int) -> None:
        self.take = take
        self.messages: list[list[dict[str, str]]] = []

    def complete(self, messages, schema=None, seed=None):
        self.messages.append(messages)
        listed = schema["properties"]["actions"]["items"]["enum"]
        return Completion(json.dumps({"actions": listed[: self.take]}), 100, 10, 0.5, False)

    def cost_usd(self, completion):
        return 0.0


class Script:
    """Answers the calls with the given texts in order."""

    def __init__(self, answers: list[str]) -> None:
        self.answers = list(answers)
        self.schemas: list[dict] = []

    def complete(self, messages, schema=None, seed=None):
        self.schemas.append(schema)
        return Completion(self.answers.pop(0), 100, 10, 0.5, False)

    def cost_usd(self, completion):
        return 0.0


@pytest.fixture
def env():
    made = gym.make("optarena/AArch64Peephole-v0", block=BLOCK, store=None)
    yield made
    made.close()


def test_one_call_serves_several_expansions_and_is_asked_again_when_used_up(env):
    client = Ranked(take=2)
    agent = MeasuredLLMMCTS(MeasuredLLMMCTSConfig(rollout_depth=0, branching=4), client=client)
    usage = agent.run(env, budget=8, seed=0).usage
    assert usage.fallbacks == 0 and usage.proposals_reused >= 2
    assert usage.llm_calls == usage.proposals - usage.proposals_reused == len(client.messages)
    assert usage.llm_calls >= 2  # the root's two proposals were used up: it was asked again


def test_without_reuse_every_expansion_is_a_call(env):
    client = Ranked(take=2)
    agent = MeasuredLLMMCTS(MeasuredLLMMCTSConfig(rollout_depth=0, branching=4, reuse=False), client=client)
    usage = agent.run(env, budget=8, seed=0).usage
    assert usage.proposals_reused == 0 and usage.llm_calls == usage.proposals >= 4


def test_with_reuse_an_answer_must_rank_as_many_moves_as_asked_for(env):
    for reuse, fewest, request in ((True, 3, "Choose 3 of"), (False, 1, "Choose up to 3 of")):
        client = Script(['{"actions": [0]}'] * 8)
        agent = MeasuredLLMMCTS(MeasuredLLMMCTSConfig(rollout_depth=0, proposals=3, reuse=reuse),
                                client=client)
        agent.run(env, budget=2, seed=0)
        assert client.schemas[0]["properties"]["actions"]["minItems"] == fewest
        assert client.schemas[0]["properties"]["actions"]["maxItems"] == 3
        prompt = agent.proposer.messages(env, agent_root(env), [0, 1, 2, 3],
                                         lambda node: str(node.score))[1]["content"]
        assert request in prompt
        assert agent.proposer.fewest([5]) == 1  # never more than are listed


def agent_root(env: gym.Env) -> MeasuredNode:
    """The start of ``env`` as an unexpanded node."""
    _, info = env.reset(seed=0)
    moves = [int(x) for x in np.flatnonzero(info["action_mask"])]
    return MeasuredNode(env.unwrapped.get_state(), info["score"], 0.0, moves)


def test_a_node_is_asked_again_once_its_statistics_changed(env):
    agent = MeasuredLLMMCTS(MeasuredLLMMCTSConfig(requery_visits=1), client=Ranked(take=4))
    _, info = env.reset(seed=0)
    inner = env.unwrapped
    node = MeasuredNode(inner.get_state(), info["score"], 0.0,
                        [int(x) for x in np.flatnonzero(info["action_mask"])])
    agent.prepare(env, 0)
    usage, rng = Usage(), np.random.default_rng(0)
    first = agent.propose_moves(env, node, rng, usage)
    node.untried.remove(first[0])
    agent.propose_moves(env, node, rng, usage)  # same visits: from the queue
    assert (usage.llm_calls, usage.proposals_reused) == (1, 1)
    node.visits += 1
    agent.propose_moves(env, node, rng, usage)
    assert (usage.llm_calls, usage.proposals_reused) == (2, 1)


def test_the_static_part_of_consecutive_prompts_is_byte_identical(env):
    client = Ranked(take=1)
    agent = MeasuredLLMMCTS(MeasuredLLMMCTSConfig(rollout_depth=0, branching=2), client=client)
    agent.run(env, budget=4, seed=0)
    first, second = client.messages[0], client.messages[1]
    assert first[0] == second[0]  # the system message
    head = [m["content"].split("Search path")[0] for m in (first[1], second[1])]
    assert head[0] == head[1] and "neoverse-n1" in head[0] and '{"actions"' in head[0]
    assert first[1]["content"] != second[1]["content"]  # the node part differs


def test_the_v1_prompts_put_the_node_first(env):
    client = Ranked(take=1)
    agent = MeasuredLLMMCTS(MeasuredLLMMCTSConfig(rollout_depth=0, prompts="v1", listing="full", reuse=False,
                                  proposals=3), client=client)
    agent.run(env, budget=3, seed=0)
    prompt = client.messages[0][1]["content"]
    assert prompt.index("Current block") < prompt.index("Choose up to 3")


def test_the_compact_listing_groups_changes_of_one_thing():
    texts = {0: "tile C.v_i: [32, 1, 1, 4] -> [16, 2, 1, 4]",
             9: "tile C.v_i: [32, 1, 1, 4] -> [64, 1, 1, 2]",
             54: "parallel root: 32 -> 2", 7: "pair #0 `ldr x1, [x0]` with #1"}
    compact = action_listing(texts, [0, 7, 9, 54], compact=True)
    assert compact.splitlines() == ["tile C.v_i: 0=[16,2,1,4] 9=[64,1,1,2]",
                                    "7: pair #0 `ldr x1, [x0]` with #1", "parallel root: 54=2"]
    full = action_listing(texts, [0, 7, 9, 54], compact=False)
    assert len(full) > len(compact) and full.splitlines()[0] == f"0: {texts[0]}"


def _legal_pair(env):
    """A root action ``a`` and an action ``b`` legal after it."""
    _, info = env.reset(seed=0)
    inner = env.unwrapped
    root = inner.get_state()
    for a in np.flatnonzero(info["action_mask"]):
        after = inner.transition(root, int(a))
        following = np.flatnonzero(inner.legal_mask(after))
        if len(following):
            return root, int(a), int(following[0])
    raise AssertionError("the block has no two rewrites in a row")


def test_a_sequence_with_an_illegal_step_is_rejected_whole(env):
    root, a, b = _legal_pair(env)
    bad = json.dumps({"rationale": "pair then pair", "sequence": [a, 10_000]})
    agent = MeasuredLLMMCTS(MeasuredLLMMCTSConfig(answer="sequence"), client=Script([bad]))
    agent.prepare(env, 0)
    inner = env.unwrapped
    node = MeasuredNode(root, inner.reference_score(), 0.0,
                        [int(x) for x in np.flatnonzero(inner.legal_mask(root))])
    usage = Usage()
    moves = agent.propose_moves(env, node, np.random.default_rng(0), usage)
    assert usage.fallbacks == 1 and len(moves) == 1  # a uniform action instead, counted
    assert "enum" not in agent.proposer.client.schemas[0]["properties"]["sequence"]["items"]
    assert isinstance(walk(inner, root, [a, 10_000]), str) and not isinstance(
        walk(inner, root, [a, b]), str)


def test_a_legal_sequence_expands_to_its_end_measuring_only_that(env):
    root, a, b = _legal_pair(env)
    inner = env.unwrapped
    good = json.dumps({"rationale": "two pairings", "sequence": [a, b]})
    measured = []
    evaluate = inner.evaluate
    inner.evaluate = lambda states, **kw: measured.extend(states) or evaluate(states, **kw)
    agent = MeasuredLLMMCTS(MeasuredLLMMCTSConfig(answer="sequence", rollout_depth=0), client=Script([good]))
    result = agent.run(env, budget=1, seed=0)
    end = walk(inner, root, [a, b])
    assert [s for s in measured if s != root] == [end]  # not the state after a alone
    assert result.usage.fallbacks == 0 and result.usage.measurements == 1
    assert result.best_actions == [a, b] or result.best_improvement <= 1.0

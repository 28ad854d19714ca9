"""Every agent under the one contract: budget, monotone curve, a speedup found, determinism."""

import math
import tempfile

import gymnasium as gym
import numpy as np
import pytest
import torch

from optarena import agents
from optarena.agents.llm_mcts import (
    LLMMCTS,
    LLMMCTSConfig,
    MeasuredLLMMCTS,
    MeasuredLLMMCTSConfig,
    parse_proposal,
)
from optarena.agents.ppo import PPO, PPOConfig
from optarena.llm.client import Completion, LLMConfig, LLMRequestFailed, LLMUnavailable

from .conftest import FAST_MEASURE

BLOCK = "loads_stores/O1/dot4/0"
"""A corpus block with three profitable rewrites (LLVM's oracle saves 34% of its cycles)."""


class ScriptedClient:
    """Stands in for the endpoint in unit tests: answers from a script, in order, then repeats
    the last answer; an exception in the script is raised instead."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.prompts = []

    def complete(self, messages, schema=None, seed=None):
        self.prompts.append(messages[-1]["content"])
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return Completion(answer, prompt_tokens=100, completion_tokens=10, seconds=0.5, cached=False)

    def cost_usd(self, completion):
        return 1e-6 * completion.prompt_tokens


class FirstListed(ScriptedClient):
    """A client that always proposes the first action id the prompt lists."""

    def __init__(self):
        super().__init__([""])

    def complete(self, messages, schema=None, seed=None):
        self.prompts.append(messages[-1]["content"])
        listed = schema["properties"]["actions"]["items"]["enum"]
        return Completion(f'{{"actions": [{listed[0]}]}}', 100, 10, 0.5, cached=False)


def make_agent(name):
    if name == "llm-mcts":
        return LLMMCTS(LLMMCTSConfig(), client=FirstListed())
    if name == "llm-mcts-measured":
        return MeasuredLLMMCTS(MeasuredLLMMCTSConfig(), client=FirstListed())
    config = {"ppo": {"n_envs": 2, "n_steps": 8, "batch_size": 8, "max_timesteps": 256},
              "evolutionary": {"init_samples": 2, "measure_per_generation": 4}}.get(name, {})
    return agents.make(name, **config)


def assert_contract(result, budget):
    assert 0 < result.usage.measurements <= budget
    measured = [p.measurements for p in result.curve]
    scores = [p.best_score for p in result.curve]
    assert measured == sorted(set(measured)) and measured[-1] <= budget
    assert scores == sorted(scores, reverse=True)
    assert result.best_score == scores[-1] and math.isfinite(result.best_score)
    assert type(result).model_validate_json(result.model_dump_json()) == result  # a record's


PEEPHOLE_AGENTS = ["random", "greedy", "evolutionary", "evolutionary-diverse",
                   "evolutionary-cost-model", "mcts", "puct", "llm-mcts", "ppo"]


@pytest.mark.parametrize("name", PEEPHOLE_AGENTS)
def test_agents_on_a_peephole_block_keep_the_contract_and_are_deterministic(name):
    results = []
    for _ in range(2):
        env = gym.make("optarena/AArch64Peephole-v0", block=BLOCK)
        results.append(make_agent(name).run(env, budget=12, seed=5))
        assert env.unwrapped.failed_verifications == 0
    first, second = results
    assert_contract(first, 12)
    assert first.best_improvement > 1.2  # at least two of the three rewrites
    assert [(p.measurements, p.best_score) for p in first.curve] == \
        [(p.measurements, p.best_score) for p in second.curve]
    assert (first.best_state, first.best_actions) == (second.best_state, second.best_actions)


# All three run with -m slow. Elsewhere: random search's batches and determinism
# (test_random_search_is_deterministic_for_a_seed); greedy's speedup (the slow RC-layer test, where
# its random start is far from the best: on matmul-128 a start better than everything its descents
# reach happened in CI); LLM-MCTS, MCTS's planner with LLM proposals (the determinism test under
# the cost model, and test_llm_local with a real model).
@pytest.mark.slow  # evolutionary's 16 s too: the default selection keeps to its 10 minutes
@pytest.mark.parametrize("name", ["evolutionary", "mcts", "ppo"])
def test_agents_find_a_speedup_on_matmul_within_64_measurements(name, store):
    # Only the speedup over the unscheduled program is asserted: whether 64 measured timings beat
    # the first sample is timing noise where a first sample is already good (matmul-128's first
    # samples measured 34-90x here, and tests run two at a time). That a search improves on its
    # first sample is asserted where scores are exact: the peephole tests above.
    result = run_on_workload(name, "matmul-128", store)
    assert_contract(result, 64)
    assert result.best_improvement > 1.0


MODEL_BASED = ("mcts", "puct", "llm-mcts")
"""The agents that plan on the cost model (the tensor environment's surrogate)."""


def run_on_workload(name, workload, store, budget=64, seed=0):
    env = gym.make("optarena/TensorSchedule-v0", workload=workload, measure=FAST_MEASURE,
                   store=store, info_program=False, surrogate=name in MODEL_BASED)
    try:
        return make_agent(name).run(env, budget=budget, seed=seed)
    finally:
        env.close()


# the default run keeps a population search and a tree search under the model; the others
# (15 s each) run with -m slow
@pytest.mark.parametrize(("name", "config"), [
    pytest.param("evolutionary", {"cost_model": True, "init_samples": 3,
                                  "measure_per_generation": 3}, marks=pytest.mark.slow),
    ("evolutionary-cost-model", {"init_samples": 4, "children": 16, "fresh_samples": 16,
                                 "measure_per_generation": 3}),
    pytest.param("mcts-measured", {"rollout": "cost_model"}, marks=pytest.mark.slow),
    pytest.param("puct-measured", {"prior_warmup": 4}, marks=pytest.mark.slow),
    pytest.param("mcts", {"init_samples": 4, "measure_per_round": 4, "expansions_per_round": 16},
                 marks=pytest.mark.slow),
    ("llm-mcts", {"init_samples": 4, "measure_per_round": 4, "expansions_per_round": 16}),
    pytest.param("random", {}, marks=pytest.mark.slow),
])
def test_same_seed_and_latencies_give_the_same_search_under_the_cost_model(name, config,
                                                                           tmp_path):
    """Run once measuring for real, then again with the latencies the store kept: same
    decisions, and the same measurements counted (stored results count against the budget).
    Nothing is stopped early: a censored estimate is not a latency, and is not stored."""
    runs = []
    for _ in range(2):
        env = gym.make("optarena/TensorSchedule-v0", workload="matmul-64",
                       measure={**FAST_MEASURE, "early_stop": None},
                       store=tmp_path / "store.sqlite", info_program=False, surrogate=True,
                       surrogate_warmup=4)
        agent = (LLMMCTS(LLMMCTSConfig(**config), client=FirstListed())
                 if name == "llm-mcts" else agents.make(name, **config))
        try:
            runs.append(agent.run(env, budget=12, seed=7))
            hits = env.unwrapped.evaluator.store_hits
        finally:
            env.close()
    first, second = runs
    assert hits == second.usage.measurements == first.usage.measurements
    assert_contract(first, 12)
    if config:
        assert first.usage.cost_model_calls > 0
    assert [(p.measurements, p.best_score) for p in first.curve] == \
        [(p.measurements, p.best_score) for p in second.curve]
    assert (first.best_state, first.best_actions) == (second.best_state, second.best_actions)


@pytest.mark.parametrize("fresh_samples", [0, 6])
def test_fresh_samples_join_each_generation(fresh_samples, matmul_env):
    """Without children, a generation has only its fresh samples: none, and the search stalls
    after its first population; six, and it spends the budget on distinct states."""
    agent = agents.make("evolutionary", init_samples=2, children=0, fresh_samples=fresh_samples,
                        measure_per_generation=3, max_stalls=2)
    result = agent.run(matmul_env, budget=11, seed=0)
    if fresh_samples:
        assert result.usage.measurements == 11
    else:
        assert result.usage.measurements <= 2


@pytest.mark.parametrize("name", [pytest.param("evolutionary", marks=pytest.mark.slow),
                                  "evolutionary-cost-model"])
def test_skip_measured_spends_every_slot_on_a_new_program(name, tmp_path, monkeypatch):
    """With skip_measured, every batch the search submits is counted in full: no state in it
    builds a program the run knows or another state of the batch builds."""
    env = gym.make("optarena/TensorSchedule-v0", workload="matmul-64", measure=FAST_MEASURE,
                   store=tmp_path / "store.sqlite", info_program=False,
                   surrogate=name == "evolutionary-cost-model", surrogate_warmup=4)
    inner = env.unwrapped
    evaluate, counted = inner.evaluate, []

    def recording(states, *, fresh=False):
        before = inner.evaluator.num_measurements
        outcomes = evaluate(states, fresh=fresh)
        counted.append((len(states), inner.evaluator.num_measurements - before))
        return outcomes

    monkeypatch.setattr(inner, "evaluate", recording)
    agent = agents.make(name, skip_measured=True, init_samples=4, children=16, fresh_samples=16,
                        measure_per_generation=4)
    try:
        result = agent.run(env, budget=16, seed=3)
    finally:
        env.close()
    assert result.usage.measurements == 16
    assert counted and all(size == count for size, count in counted)


def test_cost_model_settings_need_a_cost_model(matmul_env):
    for name, config in [("mcts-measured", {"rollout": "cost_model"}),
                         ("evolutionary", {"cost_model": True}), ("mcts", {})]:
        with pytest.raises(ValueError, match="surrogate=True"):
            agents.make(name, **config).run(matmul_env, budget=4, seed=0)


# ------------------------------------------------------------------ LLM proposals


@pytest.mark.parametrize(("text", "expected"), [
    ('{"actions": [7, 3, 7, 99]}', [7, 3]),
    ('Sure! ```json\n{"actions": [3]}\n```', [3]),
    ("I would apply [12, 7] first", [12, 7]),
    ('{"actions": ["7", true, 3.0]}', []),
    ('{"actions": [99]} or maybe [7]', []),
    ("apply the tiling to C.i", []),
    ("", []),
])
def test_proposals_are_parsed_strictly_into_legal_ids(text, expected):
    assert parse_proposal(text, {3, 7, 12}) == expected


def test_unusable_answers_fall_back_to_uniform_actions_and_are_counted():
    script = ["no idea", '{"actions": [100000]}', LLMRequestFailed("timed out"), "[-1]"]
    client = ScriptedClient(script)
    agent = MeasuredLLMMCTS(MeasuredLLMMCTSConfig(rollout_depth=0, max_stalls=3), client=client)
    env = gym.make("optarena/AArch64Peephole-v0", block=BLOCK)
    result = agent.run(env, budget=5, seed=0)
    usage = result.usage
    assert usage.proposals == len(client.prompts) >= 4
    assert usage.fallbacks == usage.proposals and usage.fallback_rate == 1.0
    assert usage.llm_calls == usage.proposals - 1  # the failed request is not a call answered
    assert usage.tokens == 110 * usage.llm_calls
    assert usage.llm_cost_usd == pytest.approx(1e-4 * usage.llm_calls)
    assert result.best_improvement > 1.0  # the fallbacks still search


def test_the_prompt_shows_the_program_path_target_and_legal_ids():
    client = FirstListed()
    agent = MeasuredLLMMCTS(MeasuredLLMMCTSConfig(rollout_depth=0, branching=1), client=client)
    env = gym.make("optarena/AArch64Peephole-v0", block=BLOCK)
    agent.run(env, budget=4, seed=0)
    prompt = client.prompts[2]  # the third expansion: current, parent and grandparent exist
    assert "neoverse-n1" in prompt and "grandparent:" in prompt and "parent: after" in prompt
    assert "cycles" in prompt and "ldr" in prompt
    listing = prompt.split("Legal rewrites (")[1].split("):\n", 1)[1].split("\n\n")[0]
    for line in listing.splitlines():  # peephole rewrites have no "from -> to": one per line
        action, text = line.split(": ", 1)
        assert int(action) in range(env.action_space.n) and text


def test_an_unreachable_endpoint_fails_before_the_search_starts(matmul_env):
    before = matmul_env.unwrapped.evaluator.num_measurements
    agent = agents.make("llm-mcts-measured",
                        llm={"base_url": "http://127.0.0.1:9/v1", "max_retries": 0})
    with pytest.raises(LLMUnavailable, match=r"cannot reach the LLM endpoint http://127.0.0.1:9/v1"):
        agent.run(matmul_env, budget=8, seed=0)
    assert matmul_env.unwrapped.evaluator.num_measurements == before


def test_a_missing_api_key_and_a_missing_replay_are_clear_errors(monkeypatch, tmp_path):
    monkeypatch.delenv("OPTARENA_TEST_KEY", raising=False)
    env = gym.make("optarena/AArch64Peephole-v0", block=BLOCK)
    agent = agents.make("llm-mcts", llm={"api_key_env": "OPTARENA_TEST_KEY"})
    with pytest.raises(LLMUnavailable, match=r"\$OPTARENA_TEST_KEY is not set"):
        agent.run(env, budget=4, seed=0)
    replay = agents.make("llm-mcts", llm=LLMConfig(replay_only=True, cache_dir=tmp_path))
    with pytest.raises(LLMUnavailable, match="no cached reply"):
        replay.run(env, budget=4, seed=0)


# ------------------------------------------------------------------ PPO


def test_maskable_ppo_trains_and_saves_and_its_policy_guides_a_search(tmp_path, monkeypatch):
    env = gym.make("optarena/AArch64Peephole-v0", block=BLOCK)
    path = tmp_path / "policy.zip"
    config = PPOConfig(n_envs=2, n_steps=4, batch_size=8, max_timesteps=64, save_path=str(path))
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.delenv("SB3_LOGDIR")  # where SB3's default logger would go instead (conftest)
    trained = PPO(config).run(env, budget=16, seed=0)
    assert_contract(trained, 16)
    assert trained.details["updates"] >= 1 and path.exists()
    assert not list(temp.glob("SB3-*"))  # SB3's default logger leaves a folder per run there
    obs, info = env.reset()
    mask = info["action_mask"].astype(bool)
    legal = np.flatnonzero(mask)
    rng = np.random.default_rng(0)
    guided = agents.make("ppo-guided", policy=str(path))
    model = guided.policy_for(env)
    with torch.no_grad():  # logits 0, 1, 2, ...: the policy prefers later actions
        model.policy.action_net.weight.zero_()
        model.policy.action_net.bias.copy_(torch.arange(len(mask), dtype=torch.float32))
    drawn = {temperature: [guided.draw(model, obs, mask, rng, temperature) for _ in range(1000)]
             for temperature in (0.01, 1000.0)}
    assert set(drawn[0.01]) == {legal[-1]}  # cold: the policy's most likely legal action
    assert set(drawn[1000.0]) == set(legal)  # hot: every legal action, no illegal one
    searched = agents.make("ppo-guided", policy=str(path), patience=3).run(
        gym.make("optarena/AArch64Peephole-v0", block=BLOCK), budget=6, seed=1)
    assert_contract(searched, 6)
    assert searched.best_improvement > 1.0 and searched.details["episodes"] >= 1


def test_a_guided_search_refuses_a_policy_of_other_spaces_or_none(tmp_path):
    env = gym.make("optarena/AArch64Peephole-v0", block=BLOCK)
    path = tmp_path / "policy.zip"
    PPO(PPOConfig(n_envs=1, n_steps=4, batch_size=4, max_timesteps=4, save_path=str(path))).run(
        env, budget=4, seed=0)
    stop = gym.make("optarena/AArch64Peephole-v0", block=BLOCK, stop_action=True)
    with pytest.raises(ValueError, match=r"trained on the action space Discrete\(\d+\), the "
                                         r"environment has Discrete"):
        agents.make("ppo-guided", policy=str(path)).run(stop, budget=4, seed=0)
    with pytest.raises(ValueError, match="no policy at"):
        agents.make("ppo-guided", policy=str(tmp_path / "none.zip")).run(env, budget=4, seed=0)
    (tmp_path / "other.zip").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="is not a MaskablePPO policy"):
        agents.make("ppo-guided", policy=str(tmp_path / "other.zip")).run(env, 4, 0)
    with pytest.raises(ValueError, match="policy is required"):
        agents.make("ppo-guided")
    with pytest.raises(ValueError, match="temperature must be positive"):
        agents.make("ppo-guided", policy=str(path), temperature=0)
    with pytest.raises(ValueError, match="reheat must be at least 1"):
        agents.make("ppo-guided", policy=str(path), reheat=0.5)


def test_ppo_never_exceeds_the_budget_with_several_copies():
    env = gym.make("optarena/AArch64Peephole-v0", block=BLOCK)
    result = PPO(PPOConfig(n_envs=3, n_steps=8, batch_size=8, max_timesteps=512)).run(env, 7, 0)
    assert result.usage.measurements == 7


# ------------------------------------------------------------------ stock MetaSchedule


@pytest.mark.slow  # 30 s: MetaSchedule's builder and runner processes start per batch
def test_stock_metaschedule_counts_its_trials_and_is_timed_like_the_others(matmul_env):
    result = agents.make("metaschedule").run(matmul_env, budget=16, seed=0)
    assert_contract(result, 16)
    assert result.usage.measurements == 16 and result.best_improvement > 1.0
    assert result.details["metaschedule"]["num_trials_per_iter"] == 64
    assert result.details["traces_not_in_the_design_space"] == 0
    # every trial of a matmul computes the right result: none refused, MS's best among them
    assert result.details["rejected_by_the_environment"] == {}
    assert result.details["metaschedule_best_rejected"] is False
    assert matmul_env.unwrapped.as_state(result.best_state).problem == "matmul-64"


def test_metaschedules_runner_runs_kernels_on_the_environments_threads():
    """Stock, TVM runs kernels on half the logical CPUs on x86 (1 thread on 2 cores); the
    runner's worker uses the target's num-cores, as the environment's workers do."""
    import tvm

    from optarena.agents.metaschedule import stock_runner
    from optarena.envs.tensor_schedule.measure import MeasureConfig
    from optarena.envs.tensor_schedule.target import host_target

    target = tvm.target.Target(host_target())
    runner = stock_runner(MeasureConfig(), target)
    try:
        threads = runner.pool.submit(
            lambda: __import__("tvm").get_global_func("runtime.NumThreads")()).result()
    finally:
        runner.pool.shutdown()
    assert threads == int(target.attrs["num-cores"])
    with pytest.raises(ValueError, match="runner_threads 'stock'"):
        agents.make("metaschedule", runner_threads="stock")


def test_metaschedule_refuses_the_peephole_env():
    with pytest.raises(ValueError, match="tensor-schedule"):
        agents.make("metaschedule").run(gym.make("optarena/AArch64Peephole-v0"), budget=4, seed=0)


# ------------------------------------------------------------------ a Reasoning-Compiler layer


# A steepest descent, whose random start is far from the best here, and the model-based tree search
# (two rounds after its seed batch). The other agents' contract on a layer is what the races in
# results/ keep; MetaSchedule's is in test_a_metaschedule_submission_is_verified and
# test_stock_metaschedule_counts_its_trials_and_is_timed_like_the_others.
@pytest.mark.slow
@pytest.mark.parametrize("name", ["greedy", "mcts"])
def test_agents_find_a_speedup_on_a_reasoning_compiler_layer(name, store):
    result = run_on_workload(name, "flux-conv:size=8", store, budget=32)
    assert_contract(result, 32)
    assert result.best_improvement > 1.0
    assert result.best_improvement > result.curve[0].best_improvement


@pytest.mark.parametrize(("patience", "walks"), [(1000, (1, 2)), (1, (6, 10_000))])
def test_random_search_with_patience_walks_on_while_it_finds_new_bests(patience, walks,
                                                                      monkeypatch):
    from .toy_env import ToyEnv

    env = ToyEnv("jobs-8", store=None)
    inner, starts, batches = env.unwrapped, [], []
    start, evaluate = inner.initial_state, inner.evaluate
    monkeypatch.setattr(inner, "initial_state", lambda rng: starts.append(1) or start(rng))
    monkeypatch.setattr(inner, "evaluate",
                        lambda states, **kw: batches.append(len(states)) or evaluate(states, **kw))
    result = agents.make("random", patience=patience).run(env, budget=30, seed=0)
    assert walks[0] <= len(starts) <= walks[1]  # one endless walk, or many short ones
    assert set(batches[1:]) == {1}  # after the first sample, each step is measured as taken
    assert result.usage.measurements <= 30

import json

import gymnasium as gym
import numpy as np
import pytest

from optarena import agents
from optarena.envs.aarch64_peephole.space import BlockState
from optarena.envs.store import Store
from optarena.experiments.cli import main

from .conftest import FAST_MEASURE


def test_workloads_command_lists_every_rc_layer(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")
    assert main(["workloads"]) == 0
    out = capsys.readouterr().out
    for name in ("llama3-8b-attention", "deepseek-r1-moe", "flux-attention", "flux-conv",
                 "llama4-scout-mlp", "matmul-256", "conv2d-56-64"):
        assert name in out
    assert "config.json" in out


def test_unknown_agent_is_a_clear_error():
    names = ("evolutionary, evolutionary-cost-model, evolutionary-diverse, evolutionary-prior, "
             "greedy, llm-mcts, llm-mcts-measured, mcts, mcts-measured, metaschedule, ppo, "
             "ppo-guided, puct, puct-measured, random")
    with pytest.raises(ValueError, match=f"available: {names}"):
        agents.make("alphazero")


def test_random_search_respects_the_budget_and_improves(matmul_env):
    result = agents.make("random", walk_length=3).run(matmul_env, budget=10, seed=0)
    assert result.usage.measurements <= 10
    latencies = [p.best_score for p in result.curve]
    assert latencies == sorted(latencies, reverse=True), "best-so-far never gets worse"
    measured = [p.measurements for p in result.curve]
    assert measured == sorted(measured) and measured[-1] <= 10
    assert result.best_score == latencies[-1] and result.best_improvement > 1
    assert result.best_state is not None


def test_random_search_is_deterministic_for_a_seed(tmp_path):
    """Two fresh environments and stores, one seed: the same programs are measured (timing
    noise aside; nothing stopped early, so that every one is stored)."""
    measured = []
    for run in range(2):
        path = tmp_path / f"{run}.sqlite"
        env = gym.make("optarena/TensorSchedule-v0", workload="matmul-64", store=path,
                       measure={**FAST_MEASURE, "early_stop": None})
        try:
            agents.make("random").run(env, budget=6, seed=3)
            context = env.unwrapped.evaluator.context("matmul-64")
            reference = env.unwrapped.evaluator.scorer.reference("matmul-64").key
        finally:
            env.close()
        measured.append(Store(path).keys(context) - {reference})
    assert measured[0] == measured[1] and len(measured[0]) == 6


def test_tune_command_prints_the_speedup(tmp_path, capsys):
    config = tmp_path / "tune.yaml"
    config.write_text("workload: matmul-64\nbudget: 4\nseeds: [0]\n"
                      "kwargs: {measure: {number: 1, repeat: 3, min_repeat_ms: 5}}\n")
    assert main(["tune", "--config", str(config), "--export-dir", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "the reference" in out and "x" in out
    assert (tmp_path / "out" / "seed0" / "database_tuning_record.json").exists()


def test_tune_runs_any_environment(tmp_path, capsys):
    config = tmp_path / "tune.yaml"
    config.write_text("env: aarch64_peephole\nworkload: loads_stores/O1/dot4/0\nagent: greedy\n"
                      "budget: 12\n")
    assert main(["tune", "--config", str(config), "--export-dir", str(tmp_path / "out")]) == 0
    exported = json.loads((tmp_path / "out" / "seed0" / "state.json").read_text())
    assert exported["score"] < exported["problem"]["reference_score"]
    assert exported["state"]["problem"] == "loads_stores/O1/dot4/0"


def test_random_search_runs_on_the_peephole_env():
    env = gym.make("optarena/AArch64Peephole-v0", block="loads_stores/O1/copy_big/0")
    result = agents.make("random", walk_length=4).run(env, budget=12, seed=0)
    assert 0 < result.usage.measurements <= 12
    scores = [p.best_score for p in result.curve]
    assert scores == sorted(scores, reverse=True)
    assert result.best_improvement >= 1.0 and "asm" in result.best_state


def test_greedy_on_the_peephole_env_matches_the_oracle_on_a_block():
    block = "loads_stores/O1/dot4/0"
    env = gym.make("optarena/AArch64Peephole-v0", block=block)
    inner = env.unwrapped
    result = agents.make("greedy").run(env, budget=40, seed=0)
    assert result.usage.measurements <= 40
    _, info = env.reset(options={"problem": block})
    assert result.best_score <= inner.problem()["anchors"]["llvm"] < info["reference_score"]
    assert inner.failed_verifications == 0


def test_greedy_on_matmul_respects_the_budget_and_improves(matmul_env):
    result = agents.make("greedy").run(matmul_env, budget=12, seed=1)
    assert result.usage.measurements <= 12
    assert result.curve[-1].best_improvement >= result.curve[0].best_improvement
    assert result.best_actions or result.usage.measurements == 12


def test_set_state_verifies_new_blocks_and_refuses_inequivalent_ones():
    env = gym.make("optarena/AArch64Peephole-v0").unwrapped
    env.reset(options={"problem": "loads_stores/O1/dot4/0"})
    before, count = env.get_state(), env.evaluator.num_measurements
    with pytest.raises(ValueError, match="failed: register"):
        env.set_state({"problem": "loads_stores/O1/dot4/0", "asm": "nop\n"})
    assert env.get_state() == before and env.evaluator.num_measurements == count + 1
    action = int(np.flatnonzero(env.action_masks())[0])
    child = env.transition(before, action)
    assert isinstance(child, BlockState) and env.evaluator.num_measurements == count + 1
    info = env.set_state(child)
    assert env.get_state() == child and info["score"] < info["reference_score"]
    assert env.evaluator.num_measurements == count + 2
    env.set_state(before)
    env.set_state(child)
    assert env.evaluator.num_measurements == count + 2

"""Splits and ``optarena train``: disjoint by source, one policy on workloads of different shapes,
training that resumes from its checkpoint after a kill, a report of held-out problems."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import gymnasium as gym
import numpy as np
import pytest
import yaml
from rich.console import Console

from optarena.envs.splits import all_splits, get_split, held_out
from optarena.experiments import train as train_module
from optarena.experiments.train import TrainConfig, episodes

from .conftest import FAST_MEASURE


def test_every_split_is_disjoint_by_source_and_named_with_a_version():
    splits = all_splits()
    assert {"peephole-csmith/v1", "llvm-csmith/v1", "tensor-shapes/v1"} <= set(splits)
    for split in splits.values():
        train, test = split.problems()
        assert train and test and not set(train) & set(test)
        assert not {split.group(p) for p in train} & {split.group(p) for p in test}, split.id
    with pytest.raises(ValueError, match="known: "):
        get_split("peephole-csmith/v9")


def test_the_peephole_split_holds_out_whole_functions_with_llvm_savings():
    split = get_split("peephole-csmith/v1")
    train, test = split.problems()
    functions = {split.group(b) for b in test}
    assert len(functions) > 20 and all(b.rsplit("/", 2)[0] for b in test)
    from optarena.envs.aarch64_peephole.corpus import CSMITH_CORPUS, load_corpus

    changed = {b.id for b in load_corpus(CSMITH_CORPUS) if b.oracle != b.input}
    assert changed & set(test) and changed & set(train)


def test_a_peephole_split_is_found_without_loading_tvm():
    code = ("import sys; from optarena.envs.splits import get_split; "
            "train, test = get_split('peephole-csmith/v1').problems(); "
            "print(len(train), len(test), 'tvm' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.split() == ["1229", "288", "False"]


@pytest.mark.slow  # the rules on the whole corpus: 10 s
def test_the_shipped_peephole_divisions_are_what_the_rules_give(tmp_path):
    from optarena.envs.aarch64_peephole import splits as peephole_splits

    peephole_splits.write_divisions(tmp_path / "splits.jsonl.gz")
    assert (tmp_path / "splits.jsonl.gz").read_bytes() == peephole_splits.DIVISIONS.read_bytes(), \
        "the rules changed which blocks are playable: publish the splits under a new version"


def test_held_out_sources_do_not_depend_on_their_order():
    groups = [f"f{i}" for i in range(50)]
    assert held_out(groups) == held_out(groups[::-1]) and len(held_out(groups)) == 10
    assert held_out(["only"]) == ["only"]


def test_one_policy_acts_on_workloads_of_different_shapes(store):
    from sb3_contrib import MaskablePPO

    split = get_split("tensor-shapes/v1")
    kwargs = {**split.kwargs, "measure": FAST_MEASURE, "store": store, "max_steps": 4}
    small = gym.make("optarena/TensorSchedule-v0", workload="matmul-64", **kwargs)
    other = gym.make("optarena/TensorSchedule-v0", workload="conv2d-6-16", **kwargs)
    try:
        assert small.observation_space == other.observation_space
        assert small.action_space == other.action_space
        own = [env.unwrapped.tensor_space.spaces[env.unwrapped.workload.name].own_layout()
               for env in (small, other)]
        assert own[0] != own[1], "the workloads' own design spaces differ in size"
        model = MaskablePPO("MultiInputPolicy", small, n_steps=16, batch_size=16, n_epochs=1,
                            seed=0, device="cpu")
        model.learn(total_timesteps=16)
        obs, info = other.reset(seed=0)
        for _ in range(4):
            action, _ = model.predict(obs, action_masks=info["action_mask"].astype(bool))
            assert info["action_mask"][int(action)] == 1
            obs, _, terminated, truncated, info = other.step(int(action))
            if terminated or truncated:
                break
    finally:
        small.close()
        other.close()


def test_training_resumes_from_its_checkpoint_after_a_kill(tmp_path):
    config = {"name": "resume", "split": "peephole-csmith/v1", "seeds": [0], "n_envs": 4,
              "total_timesteps": 512, "checkpoint_every": 128, "test_problems": 2,
              "kwargs": {"max_steps": 8, "store": None},
              "ppo": {"n_steps": 32, "batch_size": 64, "n_epochs": 2}}
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "optarena.experiments.cli", "train", "--config",
               str(tmp_path / "train.yaml"), "--out", str(tmp_path / "out")]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=os.environ)
    checkpoints = tmp_path / "out" / "seed0" / "checkpoints"
    deadline = time.monotonic() + 300
    while not list(checkpoints.glob("*.zip")) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)  # let the checkpoint be written whole
    process.send_signal(signal.SIGKILL)
    process.wait()
    kept = sorted(checkpoints.glob("*.zip"))
    assert kept and not (tmp_path / "out" / "seed0" / "model.zip").exists()
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resuming from {kept[-1].name}" in resumed.stdout.replace("\n", " ")

    from sb3_contrib import MaskablePPO

    model = MaskablePPO.load(str(tmp_path / "out" / "seed0" / "model.zip"), device="cpu")
    assert 512 <= model.num_timesteps < 512 + 4 * 32  # trained to the total, not twice
    records = episodes(tmp_path / "out")
    assert {r.policy for r in records} == {"policy", "greedy", "random"}
    assert len({r.problem for r in records}) == 2
    assert all(r.final <= r.reference for r in records if r.policy == "greedy")
    assert all(r.machine is not None and r.versions for r in records)
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| greedy |" in report and (tmp_path / "out" / "curves.png").exists()
    log = tmp_path / "out" / "seed0" / "logs" / "progress.csv"
    assert log.exists() and json.dumps(str(log))
    assert np.isfinite([r.final for r in records]).all()


def test_the_training_speed_is_kept_when_testing_is_interrupted(tmp_path, monkeypatch):
    config = TrainConfig(name="speed", split="peephole-csmith/v1", seeds=[0], n_envs=2,
                         total_timesteps=256, checkpoint_every=256,
                         kwargs={"max_steps": 8, "store": None},
                         ppo={"n_steps": 64, "batch_size": 64, "n_epochs": 1})

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "_test_seed", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_module.train(config, tmp_path, Console(quiet=True))
    speed = json.loads((tmp_path / "seed0" / "speed.json").read_text())
    assert speed["steps"] == 256 and speed["seconds"] > 0 and speed["measurements"] > 0


def test_an_anchor_reward_is_the_step_s_log_gain_over_the_anchor_s_and_one_at_the_anchor():
    from optarena.agents.sb3 import SB3VecEnv
    from optarena.envs.contract import game
    from optarena.envs.vector import ArenaVectorEnv

    split = get_split("peephole-csmith/v1")
    config = TrainConfig(split=split.id, reward="anchor", kwargs={"store": None})
    anchor = train_module._anchor_name(split, config)
    assert anchor is None  # the peephole policy's baseline is the greedy rule, not an anchor
    env = split.make("train", {"store": None})
    inner = game(env)
    try:
        train, _ = split.problems()
        gains: dict[str, tuple[float, float]] = {}
        saving: list[str] = []
        flat: list[str] = []
        for problem in train:  # until three problems of each kind
            reference = inner.reference_score(problem)
            best = next(iter(inner.evaluator.anchors(problem).values())).score  # LLVM's
            gains[problem] = (reference, best)
            (saving if best < reference else flat).append(problem)
            if len(saving) >= 3 and len(flat) >= 3:
                break
        assert len(saving) >= 3 and len(flat) >= 3
        scale = train_module.anchor_scale(inner, anchor)
        for problem in saving:
            assert scale(problem) == pytest.approx(np.log(gains[problem][0] / gains[problem][1]))
        assert all(scale(problem) == 1.0 for problem in flat)  # the environment's reward

        plain = SB3VecEnv(ArenaVectorEnv(env.unwrapped, 2, autoreset_mode="SameStep"))
        halved = SB3VecEnv(ArenaVectorEnv(env.unwrapped, 2, autoreset_mode="SameStep"),
                           reward_scale=lambda problem: 2.0)
        for vec in (plain, halved):
            vec.seed(3)
        rewards = []
        for vec in (plain, halved):
            vec.reset()
            got = []
            for _ in range(6):
                masks = vec.env_method("action_masks")
                vec.step_async(np.array([int(np.flatnonzero(m)[0]) for m in masks]))
                got.append(vec.step_wait()[1])
            rewards.append(np.concatenate(got))
        assert np.abs(rewards[0]).sum() > 0, "the steps changed scores"
        np.testing.assert_allclose(rewards[1], rewards[0] / 2, rtol=1e-6)
    finally:
        env.close()


def test_the_report_pairs_the_policy_with_the_others_by_seed_and_problem(tmp_path):
    from optarena.records import TrainEpisode, append_record

    config = TrainConfig(name="paired", split="llvm-heldout/v1", seeds=[0])
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config.model_dump()))
    finals = {"policy": 50.0, "greedy": 40.0, "random": 100.0}
    for index in range(6):  # the policy halves random's count on every problem, greedy beats it
        for policy, final in finals.items():
            append_record(tmp_path / "episodes.jsonl", TrainEpisode(
                seed=0, problem=f"p{index}", policy=policy, reference=200.0,
                final=final * (1 + index / 10), anchor=45.0, anchor_name="-Oz",
                split=config.split))
    report = train_module.write_train_report(tmp_path).read_text()
    assert "| random | 6 | 2.00x [2.00, 2.00] | 0.0312 |" in report  # Wilcoxon: 2 / 2**6
    assert "| greedy | 6 | 0.80x [0.80, 0.80] | 0.0312 |" in report

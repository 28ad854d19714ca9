"""Vector environments (``gym.make_vec``): gymnasium's vector API, autoreset, the same results as
gymnasium's own SyncVectorEnv over single environments, one batch per step, the budget cap, and
stable-baselines3 training on them."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import SyncVectorEnv
from gymnasium.vector.vector_env import AutoresetMode

import optarena.envs  # noqa: F401 - registers the environments
from optarena.envs.vector import ArenaVectorEnv

from .conftest import FAST_MEASURE

BLOCKS = ["loads_stores/O1/dot4/0", "loads_stores/O1/copy_big/0", "loads_stores/O1/zero4/0"]


def _actions(masks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.array([rng.choice(np.flatnonzero(m)) if m.any() else 0 for m in masks])


@pytest.fixture(params=["peephole", "tensor"])
def vector(request: pytest.FixtureRequest, store):
    if request.param == "peephole":
        envs = gym.make_vec("optarena/AArch64Peephole-v0", num_envs=3, max_steps=4)
    else:
        envs = gym.make_vec("optarena/TensorSchedule-v0", num_envs=3, workload="matmul-64",
                            measure=FAST_MEASURE, store=store, max_steps=3, info_program=False)
    yield envs
    envs.close()


def test_the_vector_api_holds(vector):
    assert isinstance(vector, ArenaVectorEnv) and vector.num_envs == 3
    assert vector.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    observations, infos = vector.reset(seed=5)
    assert vector.observation_space.contains(observations)
    _, again = vector.reset(seed=5)  # seeded: the same starts
    assert list(again["state"]["problem"]) == list(infos["state"]["problem"])
    assert list(again["score"]) == list(infos["score"])
    assert infos["score"].shape == (3,) and infos["_score"].all()
    rng = np.random.default_rng(0)
    ended = np.zeros(3, dtype=bool)
    for _ in range(8):
        measured = vector.unwrapped.num_measurements
        observations, rewards, terminated, truncated, infos = vector.step(
            _actions(vector.action_masks(), rng))
        assert vector.observation_space.contains(observations)
        assert rewards.shape == (3,) and rewards.dtype == np.float64
        assert terminated.dtype == truncated.dtype == np.bool_
        assert vector.unwrapped.num_measurements - measured <= 3  # one batch: at most 3 programs
        reset_now = ended.copy()  # next-step autoreset: an ended copy restarts, reward 0
        assert (rewards[reset_now] == 0).all() and not (terminated | truncated)[reset_now].any()
        ended = terminated | truncated
    assert vector.action_masks().shape == (3, vector.single_action_space.n)


def test_the_same_episodes_as_gymnasiums_sync_vector_env():
    """Peephole scores are deterministic: batched stepping must change nothing."""
    ours = gym.make_vec("optarena/AArch64Peephole-v0", num_envs=3, max_steps=5)
    theirs = SyncVectorEnv([lambda: gym.make("optarena/AArch64Peephole-v0", max_steps=5)
                            for _ in range(3)])
    try:
        _, a = ours.reset(seed=11)
        _, b = theirs.reset(seed=11)
        assert list(a["score"]) == list(b["score"])
        rng = np.random.default_rng(1)
        for _ in range(12):
            masks = ours.action_masks()
            assert np.array_equal(masks, np.stack(b["action_mask"]))
            actions = _actions(masks, rng)
            _, ra, ta, ua, a = ours.step(actions)
            _, rb, tb, ub, b = theirs.step(actions)
            assert np.allclose(ra, rb) and (ta == tb).all() and (ua == ub).all()
            assert list(a["score"]) == list(b["score"])
    finally:
        ours.close()
        theirs.close()


def test_same_step_autoreset_gives_the_final_observation():
    envs = gym.make_vec("optarena/AArch64Peephole-v0", num_envs=2, max_steps=1,
                        autoreset_mode="SameStep")
    try:
        envs.reset(seed=0)
        _, _, terminated, truncated, infos = envs.step(_actions(envs.action_masks(),
                                                                np.random.default_rng(0)))
        assert (terminated | truncated).all() and infos["_final_obs"].all()
        assert infos["final_info"]["num_measurements"].shape == (2,)
    finally:
        envs.close()


def test_gymnasium_vector_wrappers_work_on_it():
    envs = gym.wrappers.vector.RecordEpisodeStatistics(
        gym.make_vec("optarena/AArch64Peephole-v0", num_envs=2, max_steps=2))
    try:
        envs.reset(seed=0)
        finished = 0
        for _ in range(4):
            *_, infos = envs.step(_actions(envs.unwrapped.action_masks(),
                                           np.random.default_rng(0)))
            finished += int(infos.get("_episode", np.zeros(2, bool)).sum())
        assert finished >= 2
    finally:
        envs.close()


def test_the_budget_caps_what_training_measures():
    envs = gym.make_vec("optarena/AArch64Peephole-v0", num_envs=4, max_steps=8,
                        block=BLOCKS[0], store=None)
    try:
        envs.reset(seed=0)
        envs.unwrapped.env.evaluator.set_budget(2)
        rng = np.random.default_rng(0)
        capped = 0
        for _ in range(6):
            *_, infos = envs.step(_actions(envs.action_masks(), rng))
            capped += sum("budget is spent" in str(m) for m in infos.get("invalid_action", []))
        assert envs.unwrapped.num_measurements <= 2 and capped > 0
    finally:
        envs.close()


def test_maskable_ppo_trains_on_the_vector_environment_in_batches():
    from sb3_contrib import MaskablePPO

    from optarena.agents.sb3 import SB3VecEnv

    venv = gym.make_vec("optarena/AArch64Peephole-v0", num_envs=4, max_steps=6, store=None,
                        autoreset_mode="SameStep")
    seen = []
    vec = SB3VecEnv(venv, lambda copy, info, action: seen.append((copy, info["score"], action)))
    model = MaskablePPO("MultiInputPolicy", vec, n_steps=16, batch_size=32, n_epochs=2, seed=0,
                        device="cpu")
    model.learn(total_timesteps=128)
    assert model.num_timesteps >= 128 and {copy for copy, _, _ in seen} == {0, 1, 2, 3}
    assert any(action is None for _, _, action in seen[4:])  # episodes ended and restarted
    vec.close()

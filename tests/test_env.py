import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import tvm_ffi
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from tvm.s_tir import meta_schedule as ms

from optarena.envs.tensor_schedule.export import export_schedule
from optarena.envs.tensor_schedule.measure import MeasureResult
from optarena.envs.tensor_schedule.workload import tvm_structural_hash

from .conftest import FAST_MEASURE
from .test_workload import USER_KERNEL


def _legal(info) -> np.ndarray:
    return np.flatnonzero(info["action_mask"])


def test_gymnasium_and_sb3_check_env(matmul_env):
    gym_check_env(matmul_env.unwrapped, skip_render_check=True)
    sb3_check_env(matmul_env.unwrapped, warn=True)


def test_reset_is_seeded_and_measured(matmul_env):
    _, a = matmul_env.reset(seed=11)
    _, b = matmul_env.reset(seed=11)
    assert a["state"] == b["state"] and a["latency_s"] == b["latency_s"]
    assert a["speedup"] == pytest.approx(a["baseline_latency_s"] / a["latency_s"])
    assert "T.prim_func" in a["tvmscript"] and "sample_perfect_tile" in a["trace"]
    assert matmul_env.action_space.contains(int(_legal(a)[0]))


def test_reward_is_the_log_latency_ratio(matmul_env):
    _, info = matmul_env.reset(seed=3)
    rng = np.random.default_rng(0)
    total = 0.0
    for _ in range(4):
        before = info["latency_s"]
        _, reward, _, _, info = matmul_env.step(int(rng.choice(_legal(info))))
        assert reward == pytest.approx(math.log(before / info["latency_s"]))
        total += reward
    assert info["num_measurements"] >= 2


def test_masked_action_changes_nothing(matmul_env):
    obs, info = matmul_env.reset(seed=4)
    masked = int(np.flatnonzero(info["action_mask"] == 0)[0])
    measurements = matmul_env.unwrapped.num_measurements
    obs2, reward, _terminated, _truncated, info2 = matmul_env.step(masked)
    assert reward == 0.0 and info2["invalid_action"]
    assert info2["state"] == info["state"]
    assert matmul_env.unwrapped.num_measurements == measurements
    for key in obs:
        if key != "progress":
            np.testing.assert_array_equal(obs[key], obs2[key])


def test_out_of_range_action_is_reported_not_raised(matmul_env):
    matmul_env.reset(seed=4)
    _, reward, _, _, info = matmul_env.unwrapped.step(10**6)
    assert reward == 0.0 and "outside" in info["invalid_action"]


def test_failed_measurement_is_not_rewarded_and_is_masked_afterwards(matmul_env):
    env = matmul_env.unwrapped
    _, info = env.reset(seed=5)
    state = env.get_state()
    action = int(_legal(info)[0])
    successor = env.transition(state, action)
    program = env.space.schedule(successor).mod
    env.measurer.cache[tvm_structural_hash(program)] = MeasureResult(
        None, error_kind="crash", error="worker died: SIGSEGV")
    _, reward, _, _, info = env.step(action)
    assert reward == 0.0 and "SIGSEGV" in info["invalid_action"]
    assert env.get_state() == state
    assert info["action_mask"][action] == 0


def test_cache_hits_are_free_and_set_state_restores(matmul_env):
    env = matmul_env.unwrapped
    _, info = env.reset(seed=6)
    start = env.get_state()
    _, _, _, _, info = env.step(int(_legal(info)[0]))
    moved = env.get_state()
    count = env.num_measurements
    env.set_state(start)
    env.set_state(moved)
    assert env.num_measurements == count
    assert env.get_state() == moved


def test_transition_is_pure(matmul_env):
    env = matmul_env.unwrapped
    _, info = env.reset(seed=7)
    state, count = env.get_state(), env.num_measurements
    successors = {env.transition(state, int(a)) for a in _legal(info)}
    assert state not in successors and len(successors) == len(_legal(info))
    assert env.get_state() == state and env.num_measurements == count


def test_describe_actions_matches_the_mask(matmul_env):
    _, info = matmul_env.reset(seed=8)
    described = matmul_env.unwrapped.describe_actions()
    assert [d["id"] for d in described] == list(_legal(info))
    assert all("->" in d["text"] for d in described)


def test_truncation_at_max_steps(matmul_env):
    _, info = matmul_env.reset(seed=9)
    truncated = False
    for _ in range(matmul_env.unwrapped.max_steps):
        _, _, terminated, truncated, info = matmul_env.step(int(_legal(info)[0]))
        assert not terminated
    assert truncated


def test_reset_from_a_given_state(matmul_env):
    _, info = matmul_env.reset(seed=10)
    _, again = matmul_env.reset(options={"state": info["state"]})
    assert again["state"] == info["state"]


def test_export_round_trips_through_metaschedule(matmul_env, tmp_path: Path):
    env = matmul_env.unwrapped
    _, info = env.reset(seed=12)
    exported = export_schedule(env.space, env.get_state(), info["latency_s"], tmp_path)
    assert "T.prim_func" in exported.tvmscript.read_text()
    database = ms.database.JSONDatabase(
        path_workload=str(tmp_path / "database_workload.json"),
        path_tuning_record=str(tmp_path / "database_tuning_record.json"), allow_missing=False)
    rebuilt = ms.tir_integration.compile_tir(database, env.workload.mod, env.target)
    assert tvm_ffi.structural_equal(rebuilt.mod, env.space.schedule(env.get_state()).mod)


def test_surrogate_estimates_without_measuring(cache_dir):
    env = gym.make("optarena/TensorSchedule-v0", workload="matmul-64", measure=FAST_MEASURE,
                   cache_dir=cache_dir, surrogate=True, surrogate_warmup=4).unwrapped
    try:
        _, info = env.reset(seed=0)
        rng = np.random.default_rng(0)
        while env.num_measurements < 6:
            _, _, _, _, info = env.step(int(rng.choice(_legal(info))))
        assert env.surrogate.ready
        candidates = [env.transition(env.get_state(), int(a)) for a in _legal(info)[:5]]
        count = env.num_measurements
        estimates = env.estimate(candidates)
        assert estimates.shape == (5,) and np.all(np.isfinite(estimates)) and np.all(estimates > 0)
        assert env.num_measurements == count and env.num_cost_model_calls == 5
    finally:
        env.close()


def test_user_tvmscript_workload(tmp_path: Path, cache_dir):
    path = tmp_path / "scaled_add.py"
    path.write_text(USER_KERNEL)
    env = gym.make("optarena/TensorSchedule-v0", workload=str(path), measure=FAST_MEASURE,
                   cache_dir=cache_dir)
    try:
        _, info = env.reset(seed=0)
        assert info["latency_s"] > 0 and info["speedup"] > 0
        legal = _legal(info)
        if len(legal):
            _, _, _, _, info = env.step(int(legal[0]))
            assert "invalid_action" not in info
    finally:
        env.close()


def test_unknown_workload_fails_at_make():
    with pytest.raises(ValueError, match="Available"):
        gym.make("optarena/TensorSchedule-v0", workload="nope-1")


def test_baseline_is_measured_once_and_cached_on_disk(matmul_env, cache_dir):
    baseline = matmul_env.unwrapped.baseline_latency
    assert matmul_env.unwrapped.workload.structural_hash in (cache_dir / "baselines.json").read_text()
    again = gym.make("optarena/TensorSchedule-v0", workload="matmul-64", measure=FAST_MEASURE,
                     cache_dir=cache_dir).unwrapped
    try:
        assert again.baseline_latency == baseline and again.num_measurements == 0
    finally:
        again.close()

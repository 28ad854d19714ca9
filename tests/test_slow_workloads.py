"""End-to-end on every built-in workload (minutes: run with ``-m slow``)."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from optarena.envs.tensor_schedule.names import available
from optarena.envs.tensor_schedule.workload import RC_WORKLOADS

pytestmark = pytest.mark.slow
MEASURE = {"number": 1, "repeat": 3, "min_repeat_ms": 10, "timeout_s": 60}


SB3_CHECKED = ("matmul-128", "flux-conv")
"""Where SB3's checker runs too: its checks are of the spaces, their dtypes and a few random
steps, the same for every workload of the one environment class (a GEMM and a convolution layer,
each about a third of this test's time on an RC layer); gymnasium's checker (reset with seeds,
determinism, every observation in its space) runs on every workload."""


@pytest.mark.parametrize("workload", available())
def test_check_env_on_every_builtin_workload(workload, store):
    env = gym.make("optarena/TensorSchedule-v0", workload=workload, measure=MEASURE,
                   store=store, info_program=False)
    try:
        gym_check_env(env.unwrapped, skip_render_check=True)
        if workload in SB3_CHECKED:
            sb3_check_env(env.unwrapped, warn=True)
    finally:
        env.close()


@pytest.mark.parametrize("workload", RC_WORKLOADS)
def test_random_masked_rollouts_on_rc_layers_are_all_checked(workload, store):
    env = gym.make("optarena/TensorSchedule-v0", workload=workload, measure=MEASURE,
                   store=store, info_program=False)
    inner = env.unwrapped
    rng = np.random.default_rng(0)
    try:
        tried = []
        for episode in range(2):  # the second episode: two steps from another start
            _, info = env.reset(seed=episode)
            tried.append(inner.get_state())
            for _ in range(4 - 2 * episode):
                legal = np.flatnonzero(info["action_mask"])
                if len(legal) == 0:
                    break
                action = int(rng.choice(legal))
                tried.append(inner.transition(inner.get_state(), action))
                _, reward, _, _, info = env.step(action)
                assert np.isfinite(reward) and info["improvement"] > 0
        assert inner.evaluator.num_measurements >= 3
        tolerance = inner.tensor.config.tolerance
        for outcome in inner.evaluate([s for s in tried if not isinstance(s, str)]):
            if outcome.ok:
                assert outcome.extras["max_error"] <= tolerance
            else:
                assert outcome.failure.kind in ("timeout", "crash", "build", "run", "wrong_output")
    finally:
        env.close()

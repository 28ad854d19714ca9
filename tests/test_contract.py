"""The environment contract (optarena.envs.contract), checked the same way on every environment:
the three shipped ones (real TVM timing, real llvm-mca and emulation, real CompilerGym) and a toy
environment written against the contract alone (tests/toy_env.py)."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import optarena.envs  # noqa: F401 - registers the environments
from optarena import agents
from optarena.envs.contract import Game, Outcome, game
from optarena.envs.llvm_pass_order.session import compiler_gym_home

from .conftest import FAST_MEASURE

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))  # toy_env is imported by name, as its entry point names it

INFO_KEYS = {"score", "improvement", "reference_score", "state", "action_mask", "num_measurements"}


def _require_compiler_gym() -> None:
    if not (compiler_gym_home() / "venv").exists() \
            and os.environ.get("OPTARENA_REQUIRE_COMPILER_GYM") != "1":
        pytest.skip("CompilerGym is not set up (optarena setup compiler-gym)")


def _make(name: str, store: Path) -> gym.Env:
    if name == "tensor":
        return gym.make("optarena/TensorSchedule-v0", workload="matmul-64", measure=FAST_MEASURE,
                        store=store, max_steps=6, info_program=False)
    if name == "peephole":
        return gym.make("optarena/AArch64Peephole-v0", block="loads_stores/O1/dot4/0",
                        store=store, max_steps=6)
    if name == "llvm":
        _require_compiler_gym()
        return gym.make("optarena/LlvmPassOrder-v0", benchmark="csmith:1",
                        reward="ir_instructions", store=store, max_steps=6)
    import toy_env

    return toy_env.ToyEnv(store=store, max_steps=6)


@pytest.fixture(params=["tensor", "peephole", "llvm", "toy"], scope="module")
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[gym.Env]:
    made = _make(request.param, tmp_path_factory.mktemp(request.param) / "store.sqlite")
    yield made
    made.close()


def _legal(info: dict) -> np.ndarray:
    return np.flatnonzero(info["action_mask"])


def test_it_is_a_game_and_a_valid_gymnasium_env(env):
    assert isinstance(env.unwrapped, Game)
    check_env(env.unwrapped, skip_render_check=True)


def test_info_has_the_same_keys_everywhere(env):
    _, info = env.reset(seed=0)
    assert set(info) >= INFO_KEYS
    assert info["improvement"] == pytest.approx(info["reference_score"] / info["score"])
    assert "failure" not in info and "invalid_action" not in info
    json.dumps(info["state"])  # the state travels as JSON
    problem = game(env).problem()
    assert {"workload", "workload_hash", "reference_score", "anchors", "deterministic"} <= \
        set(problem)
    assert problem["reference_score"] == info["reference_score"]


def test_the_state_round_trips_through_info(env):
    inner = game(env)
    _, info = env.reset(seed=1)
    _, _, _, _, info = env.step(int(_legal(info)[-1]))
    state = inner.get_state()
    assert inner.as_state(info["state"]) == state
    assert hash(inner.as_state(json.loads(json.dumps(info["state"])))) == hash(state)
    env.reset(seed=2)
    again = inner.set_state(info["state"])
    assert inner.get_state() == state and again["score"] == info["score"]


def test_reward_is_the_log_score_ratio_and_returns_add_up(env):
    _, info = env.reset(seed=3)
    start, total = info["score"], 0.0
    rng = np.random.default_rng(0)
    for _ in range(4):
        before = info["score"]
        _, reward, terminated, _, info = env.step(int(rng.choice(_legal(info))))
        if "invalid_action" in info:
            assert reward == 0.0 and info["score"] == before
        else:
            assert reward == pytest.approx(math.log(before / info["score"]))
        total += reward
        if terminated:
            assert not info["action_mask"].any()
            break
    assert total == pytest.approx(math.log(start / info["score"]))


def test_mask_transition_and_evaluate_agree(env):
    inner = game(env)
    _, info = env.reset(seed=4)
    state, count = inner.get_state(), inner.evaluator.num_measurements
    mask = inner.legal_mask(state)
    assert np.array_equal(mask, info["action_mask"]) and mask.dtype == np.int8
    for action in np.flatnonzero(mask)[:3]:
        assert not isinstance(inner.transition(state, int(action)), str)
    for action in np.flatnonzero(mask == 0)[:3]:
        assert isinstance(inner.transition(state, int(action)), str)
    assert inner.get_state() == state and inner.evaluator.num_measurements == count  # pure
    successor = inner.transition(state, int(np.flatnonzero(mask)[0]))
    (outcome,) = inner.evaluate([successor])
    assert isinstance(outcome, Outcome)
    _, _, _, _, stepped = env.step(int(np.flatnonzero(mask)[0]))
    if outcome.ok:
        assert stepped["score"] == outcome.score  # the step used the same measurement
    assert inner.evaluator.num_measurements <= count + 1


def test_a_program_is_measured_once_and_the_reference_is_free(env):
    inner = game(env)
    _, info = env.reset(seed=5)
    start = inner.get_state()
    successors = [inner.transition(start, int(a)) for a in _legal(info)[:3]]
    before = inner.evaluator.num_measurements
    first = inner.evaluate([*successors, *successors])  # a batch with repeats
    programs = len({inner.evaluator.key(s) for s in successors})
    assert inner.evaluator.num_measurements - before <= programs
    assert first[: len(successors)] == first[len(successors):]
    after = inner.evaluator.num_measurements
    assert inner.evaluate(successors) == first[: len(successors)]  # cache hits are free
    inner.set_state(start)
    inner.reference_score()
    assert inner.evaluator.num_measurements == after


def test_unmeasured_names_the_states_a_batch_would_count(env):
    inner = game(env)
    _, info = env.reset(seed=6)
    start = inner.get_state()
    successors = [inner.transition(start, int(a)) for a in _legal(info)[:3]]
    batch = [start, *successors, *successors]
    new = inner.unmeasured(batch)
    assert new[0] is False  # the reset measured it, or it is the reference
    assert not any(new[1 + len(successors):])  # repeats of earlier states
    before = inner.evaluator.num_measurements
    inner.evaluate(batch)
    assert inner.evaluator.num_measurements - before == sum(new)
    assert not any(inner.unmeasured(batch))


def test_bad_actions_change_nothing_and_say_why(env):
    inner = game(env)
    _, info = env.reset(seed=6)
    state, count = inner.get_state(), inner.evaluator.num_measurements
    masked = np.flatnonzero(info["action_mask"] == 0)
    for action in [*masked[:1], env.action_space.n + 5, -1]:
        _, reward, _, _, after = env.step(int(action))
        assert reward == 0.0 and after["invalid_action"] and "failure" not in after
        assert inner.get_state() == state and inner.evaluator.num_measurements == count


def test_bad_states_are_refused_with_the_reason(env):
    inner = game(env)
    env.reset(seed=7)
    state = inner.get_state()
    for bad in ({}, {"problem": "no-such-problem", **{k: v for k, v in state.to_json().items()
                                                      if k != "problem"}}):
        with pytest.raises(ValueError):
            inner.set_state(bad)
    assert inner.get_state() == state


def test_estimate_works_or_names_the_environment(env):
    inner = game(env)
    env.reset(seed=8)
    if inner.has_cost_model:
        estimates = inner.estimate([inner.get_state()])
        assert estimates.shape == (1,) and np.isfinite(estimates).all()
    else:
        with pytest.raises(NotImplementedError, match=type(inner).__name__):
            inner.estimate([inner.get_state()])


def test_episodes_truncate_at_max_steps(env):
    _, info = env.reset(seed=9)
    for step in range(game(env).max_steps):
        legal = _legal(info)
        _, _, terminated, truncated, info = env.step(int(legal[0]) if len(legal) else 0)
        if terminated:
            return
        assert truncated == (step == game(env).max_steps - 1)


def test_the_stop_action_ends_the_episode_where_it_is(tmp_path):
    env = gym.make("optarena/AArch64Peephole-v0", block="loads_stores/O1/dot4/0",
                   store=tmp_path / "s.sqlite", stop_action=True)
    inner = env.unwrapped
    stop = inner.stop_action_id
    assert env.action_space.n == stop + 1 == inner.space.n_actions + 1
    check_env(env.unwrapped, skip_render_check=True)
    _, info = env.reset(seed=0)
    assert info["action_mask"][stop] == 1 and info["action_mask"][:stop].any()
    assert inner.describe_actions()[-1]["id"] == stop
    _, _, terminated, _, moved = env.step(int(_legal(info)[0]))
    measured = moved["num_measurements"]
    _, reward, terminated, truncated, after = env.step(stop)
    assert terminated and not truncated and reward == 0.0 and "invalid_action" not in after
    assert after["state"] == moved["state"] and after["num_measurements"] == measured
    env.close()
    vector = gym.make_vec("optarena/AArch64Peephole-v0", num_envs=2, block="loads_stores/O1/dot4/0",
                          store=tmp_path / "v.sqlite", stop_action=True)
    vector.reset(seed=0)
    _, rewards, terminated, _, _ = vector.step(np.array([stop, stop]))
    assert terminated.all() and not rewards.any()
    vector.close()


@pytest.mark.parametrize("env_id", sorted(i for i in gym.registry if i.startswith("optarena/")))
def test_a_default_reset_always_leaves_a_legal_action(env_id):
    """100 default resets (seeds 0-99) of every registered environment start with a legal action:
    MaskablePPO can sample, and the README's ``np.flatnonzero(info["action_mask"])[0]`` works.
    The shipped peephole corpus has blocks no rule applies to (43 of 93; 52 of these 100 seeds
    started on one before): a drawn problem without a legal action is drawn again. A tensor
    reset measures its start (seconds each), so for it the test takes the starts its reset
    draws (``runner.draw_start``, the code path of ``reset``) without measuring them."""
    if env_id == "optarena/LlvmPassOrder-v0":
        _require_compiler_gym()
    env = gym.make(env_id)
    try:
        inner = env.unwrapped
        if env_id == "optarena/TensorSchedule-v0":
            from optarena.envs.episodes import Episode

            starts = [inner.runner.draw_start(None, Episode(rng=np.random.default_rng(seed)))
                      for seed in range(100)]
            masks = [inner.legal_mask(state) for state in starts]
        else:
            masks = [env.reset(seed=seed)[1]["action_mask"] for seed in range(100)]
        assert all(mask.any() for mask in masks)
        if env_id == "optarena/AArch64Peephole-v0":  # a named start is kept, even without one
            assert not env.reset(options={"problem": "loads_stores/O0/sum4/0"})[1][
                "action_mask"].any()
    finally:
        env.close()


def test_a_search_records_its_failed_measurements_by_kind(tmp_path):
    import toy_env

    class Flaky(toy_env.OrderScorer):
        """Orders whose first two jobs are swapped crash."""

        def score(self, programs, bound):
            return [Outcome.failed("crash", "1 before 0") if p.payload[0] > p.payload[1] else outcome
                    for p, outcome in zip(programs, super().score(programs, bound), strict=True)]

    env = toy_env.ToyEnv(store=tmp_path / "s.sqlite")
    env.scorer = env.evaluator.scorer = Flaky()
    before = env.evaluate([toy_env.Order("jobs-6", (2, 1, 0, 3, 4, 5))])  # not the search's
    assert before[0].failure.kind == "crash" and env.evaluator.failures == {"crash": 1}
    result = agents.make("random").run(env, 12, 0)
    crashed = env.evaluator.failures["crash"] - 1
    assert crashed > 0 and result.usage.failures == {"crash": crashed}
    assert json.loads(result.model_dump_json())["usage"]["failures"] == {"crash": crashed}

"""TensorSchedule-v0 beyond the common contract (tests/test_contract.py): seeded starts, failed
programs, export, the surrogate, users' workload files, the stored baseline, MetaSchedule traces,
one layout over several workloads."""

import tempfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import tvm_ffi
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from tvm.s_tir import meta_schedule as ms

from optarena.envs.contract import Outcome
from optarena.envs.store import Store

from .conftest import FAST_MEASURE
from .test_workload import USER_KERNEL


def _legal(info) -> np.ndarray:
    return np.flatnonzero(info["action_mask"])


def test_sb3_check_env(matmul_env):
    sb3_check_env(matmul_env.unwrapped, warn=True)


def test_reset_is_seeded_and_measured(matmul_env):
    _, a = matmul_env.reset(seed=11)
    _, b = matmul_env.reset(seed=11)
    assert a["state"] == b["state"] and a["score"] == b["score"]
    assert a["improvement"] == pytest.approx(a["reference_score"] / a["score"])
    assert "T.prim_func" in a["tvmscript"] and "sample_perfect_tile" in a["trace"]
    assert matmul_env.action_space.contains(int(_legal(a)[0]))
    sketch = matmul_env.reset(seed=0, options={"sketch": 1})[1]["state"]["sketch"]
    assert sketch == 1


def test_failed_measurement_is_not_rewarded_and_is_masked_afterwards(matmul_env, store):
    env = matmul_env.unwrapped
    _, info = env.reset(seed=5)
    state = env.get_state()
    action = int(_legal(info)[0])
    successor = env.transition(state, action)
    key = env.evaluator.key(successor)
    if env.evaluator.cached(successor) is not None:
        pytest.skip("the successor's program was measured earlier in this session")
    context = env.evaluator.context(state.problem)
    Store(store).put(context, key, Outcome.failed("crash", "worker died: SIGSEGV"))
    _, reward, _, _, info = env.step(action)
    assert reward == 0.0 and "SIGSEGV" in info["invalid_action"]
    assert info["failure"] == {"kind": "crash", "detail": "worker died: SIGSEGV"}
    assert env.get_state() == state
    assert info["action_mask"][action] == 0
    assert "failed before" in env.transition(state, action)


def test_describe_actions_matches_the_mask(matmul_env):
    _, info = matmul_env.reset(seed=8)
    described = matmul_env.unwrapped.describe_actions()
    assert [d["id"] for d in described] == list(_legal(info))
    assert all("->" in d["text"] for d in described)


def test_reset_from_a_given_state(matmul_env):
    _, info = matmul_env.reset(seed=10)
    _, again = matmul_env.reset(options={"state": info["state"]})
    assert again["state"] == info["state"]


def test_export_round_trips_through_metaschedule(matmul_env, tmp_path: Path):
    env = matmul_env.unwrapped
    env.reset(seed=12)
    written = env.export(env.get_state(), tmp_path)
    assert {p.name for p in written} >= {"state.json", "best.py", "database_tuning_record.json"}
    assert "T.prim_func" in (tmp_path / "best.py").read_text()
    database = ms.database.JSONDatabase(
        path_workload=str(tmp_path / "database_workload.json"),
        path_tuning_record=str(tmp_path / "database_tuning_record.json"), allow_missing=False)
    rebuilt = ms.tir_integration.compile_tir(database, env.workload.mod, env.target)
    design = env.tensor_space.space(env.get_state().problem)
    assert tvm_ffi.structural_equal(rebuilt.mod, design.schedule(env.get_state()).mod)


def test_a_metaschedule_trace_reads_back_as_the_state(matmul_env):
    env = matmul_env.unwrapped
    env.reset(seed=13)
    state = env.get_state()
    design = env.tensor_space.space(state.problem)
    trace = design.schedule(state).trace.as_json()
    assert env.state_of_trace(trace) == state
    with pytest.raises(ValueError):
        env.state_of_trace([[], []])  # a trace of no sketch


def test_surrogate_estimates_without_measuring(store):
    env = gym.make("optarena/TensorSchedule-v0", workload="matmul-64", measure=FAST_MEASURE,
                   store=store, surrogate=True, surrogate_warmup=4).unwrapped
    try:
        _, info = env.reset(seed=0)
        rng = np.random.default_rng(0)
        while env.evaluator.num_measurements < 6:
            _, _, _, _, info = env.step(int(rng.choice(_legal(info))))
        candidates = [env.transition(env.get_state(), int(a)) for a in _legal(info)[:5]]
        count = env.evaluator.num_measurements
        estimates = env.estimate(candidates)
        assert estimates.shape == (5,) and np.all(np.isfinite(estimates)) and np.all(estimates > 0)
        assert env.evaluator.num_measurements == count and env.evaluator.num_cost_model_calls == 5
        # features are extracted once per program and predict as freshly extracted ones do
        model = env.scorer.surrogates["matmul-64"].model
        extracted = model.extractor.extracted
        assert np.array_equal(env.estimate(candidates[::-1]), estimates[::-1])
        assert model.extractor.extracted == extracted
        model.extractor = model.extractor.extractor
        assert np.array_equal(env.estimate(candidates), estimates)
    finally:
        env.close()


USER_FILE = '''"""My kernel, as I keep it in my project."""

import numpy as np
from tvm.script import tirx as T

SCALE = 2.0


def expected(a, b):
    """What the kernel computes."""
    return a * SCALE + b
''' + USER_KERNEL.split("\n", 2)[2] + '''

if __name__ == "__main__":
    print(scaled_add.script())
'''


def test_user_workload_file_as_users_write_it(tmp_path: Path, store):
    path = tmp_path / "scaled_add.py"
    path.write_text(USER_FILE)
    env = gym.make("optarena/TensorSchedule-v0", workload=str(path), measure=FAST_MEASURE,
                   store=store)
    try:
        _, info = env.reset(seed=0)
        assert info["score"] > 0 and info["improvement"] > 0
        legal = _legal(info)
        if len(legal):
            _, _, _, _, info = env.step(int(legal[0]))
            assert "invalid_action" not in info
    finally:
        env.close()


def test_unknown_workload_fails_at_make():
    with pytest.raises(ValueError, match="Available"):
        gym.make("optarena/TensorSchedule-v0", workload="nope-1")


def test_an_unknown_mcpu_is_named_with_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown mcpu 'pentium9'.*valid: .*haswell"):
        gym.make("optarena/TensorSchedule-v0", workload="matmul-64",
                 target={"kind": "llvm", "mcpu": "pentium9"})


def test_the_baseline_is_measured_once_and_stored(matmul_env, store):
    baseline = matmul_env.unwrapped.reference_score()
    with tempfile.TemporaryDirectory() as other:
        fresh = gym.make("optarena/TensorSchedule-v0", workload="matmul-64",
                         measure=FAST_MEASURE, store=Path(other) / "s.sqlite").unwrapped
        again = gym.make("optarena/TensorSchedule-v0", workload="matmul-64",
                         measure=FAST_MEASURE, store=store).unwrapped
        try:
            assert again.reference_score() == baseline  # from the store, not measured again
            assert fresh.reference_score() != baseline  # a new store measures it anew
            assert again.evaluator.num_measurements == fresh.evaluator.num_measurements == 0
        finally:
            fresh.close()
            again.close()


def test_one_layout_serves_several_workloads(store):
    env = gym.make("optarena/TensorSchedule-v0", workload=["matmul-64", "conv2d-6-16"],
                   measure=FAST_MEASURE, store=store, max_knobs=32, max_sketches=8).unwrapped
    try:
        shapes = set()
        for problem in ("matmul-64", "conv2d-6-16"):
            obs, info = env.reset(seed=1, options={"problem": problem})
            assert info["state"]["problem"] == problem and env.observation_space.contains(obs)
            shapes.add(tuple(v.shape for v in obs.values()))
            assert len(info["action_mask"]) == env.action_space.n
        assert len(shapes) == 1
        with pytest.raises(ValueError, match="max_knobs"):
            gym.make("optarena/TensorSchedule-v0", workload="conv2d-6-16", max_knobs=2)
    finally:
        env.close()

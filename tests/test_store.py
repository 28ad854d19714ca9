"""The persistent measurement store: shared by processes, whole after a kill mid-write, never
used for other settings or machines, counted against budgets, holding references."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import tvm

from optarena import agents
from optarena.envs.contract import Outcome
from optarena.envs.store import Store, context_hash
from optarena.envs.tensor_schedule.measure import MeasureConfig, Measurer, reference_key
from optarena.envs.tensor_schedule.target import host_target
from optarena.envs.tensor_schedule.workload import get_workload

from .conftest import FAST_MEASURE
from .test_measure import ABORT, SLEEP, WRONG, _mod

WRITER = textwrap.dedent("""
    import sys
    from optarena.envs.contract import Outcome
    from optarena.envs.store import Store
    store, name, count = Store(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    context = store.context({"writer": "test"})
    for i in range(count):
        store.put(context, f"{name}-{i}", Outcome(float(i) + 0.5, extras={"runs_s": [i] * 50}))
        if i == 20:
            print("writing", flush=True)
""")


def _writer(path: Path, name: str, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(path), name, str(count)],
                            stdout=subprocess.PIPE, text=True)


def test_two_processes_share_a_store_and_a_kill_mid_write_tears_no_row(tmp_path):
    path = tmp_path / "store.sqlite"
    steady, killed = _writer(path, "steady", 300), _writer(path, "killed", 100_000)
    assert killed.stdout is not None and killed.stdout.readline().strip() == "writing"
    time.sleep(0.5)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert steady.wait(120) == 0
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    store = Store(path)
    context = context_hash({"writer": "test"})
    keys = store.keys(context)
    assert {f"steady-{i}" for i in range(300)} <= keys  # every row of the other process
    written = sorted(int(k.split("-")[1]) for k in keys if k.startswith("killed-"))
    assert 20 < len(written) < 100_000 and written == list(range(len(written)))
    for key in keys:  # every row whole: a score and all its extras
        outcome = store.get(context, key)
        index = int(key.split("-")[1])
        assert outcome == Outcome(index + 0.5, extras={"runs_s": [index] * 50})
    store.close()


def _env(store: Path, **measure: object) -> gym.Env:
    return gym.make("optarena/TensorSchedule-v0", workload="matmul-64", store=store,
                    measure={**FAST_MEASURE, "early_stop": None, **measure}, info_program=False)


def test_stored_results_count_against_budgets_and_other_settings_see_none(tmp_path):
    path = tmp_path / "store.sqlite"
    runs = []
    for measure in ({}, {}, {"repeat": 4}):
        env = _env(path, **measure)
        try:
            result = agents.make("random").run(env, budget=6, seed=1)
            runs.append((result, env.unwrapped.evaluator.store_hits))
        finally:
            env.close()
    (first, cold), (again, warm), (other, foreign) = runs
    assert cold == 0 and first.usage.measurements == 6
    assert warm == 6 and again.usage.measurements == 6  # known, and still counted
    assert [p.best_score for p in again.curve] == [p.best_score for p in first.curve]
    assert foreign == 0 and other.usage.measurements == 6  # other timing: measured again


def test_a_store_of_another_machine_is_not_used(tmp_path):
    path = tmp_path / "store.sqlite"
    env = _env(path).unwrapped
    try:
        env.reset(seed=0)
        state = env.get_state()
        description = json.loads(sqlite3.connect(path).execute(
            "SELECT description FROM contexts").fetchone()[0])
        assert description["where"]["host"] and description["where"]["cpu"]
        moved = {**description, "where": {**description["where"], "host": "another-machine"}}
        key = env.evaluator.key(state)
        Store(path).put(context_hash(moved), key, Outcome(1e-9))  # a "result" from elsewhere
        fresh = _env(path).unwrapped
        try:
            (outcome,) = fresh.evaluate([state])  # this machine's own result, not the other's
            assert outcome.score != 1e-9 and fresh.evaluator.store_hits == 1
        finally:
            fresh.close()
    finally:
        env.close()


def test_the_reference_and_its_outputs_are_stored_once(tmp_path):
    path = tmp_path / "store.sqlite"
    first = _env(path).unwrapped
    try:
        baseline = first.reference_score()
    finally:
        first.close()
    store = Store(path)
    assert store.get_arrays(reference_key(get_workload("matmul-64"), 0)) is not None
    store.close()
    again = _env(path).unwrapped
    try:
        assert again.reference_score() == baseline and again.evaluator.num_measurements == 0
    finally:
        again.close()


def test_a_censored_result_is_never_a_best(tmp_path):
    env = gym.make("optarena/TensorSchedule-v0", workload="matmul-64", store=tmp_path / "s",
                   measure={**FAST_MEASURE, "early_stop": 1.01}, info_program=False)
    try:
        result = agents.make("random", walk_length=2, batch=4).run(env, budget=24, seed=0)
        inner = env.unwrapped
        assert result.usage.censored > 0, "nothing was stopped early"
        (best,) = inner.evaluate([inner.as_state(result.best_state)])
        assert not best.censored and best.score == result.best_score
        assert inner.evaluator.best["matmul-64"] == result.best_score
        assert [p.censored for p in result.curve] == sorted(p.censored for p in result.curve)
        assert result.curve[-1].censored == result.usage.censored
        store, context = Store(tmp_path / "s"), inner.evaluator.context("matmul-64")
        assert context is not None
        stored = [store.get(context, key) for key in store.keys(context)]
        assert stored and not any(o.censored for o in stored)  # estimates are not kept
    finally:
        env.close()


# 40 s, with two build workers (one build worker is the path of test_measure's crash and hang
# tests, which cover each phase in the default run)
@pytest.mark.slow
def test_a_batch_with_a_crashing_and_a_hanging_kernel_returns_the_others():
    workers = 2
    workload = get_workload("matmul-64")
    measurer = Measurer(workload, tvm.target.Target(host_target()),
                        MeasureConfig(number=1, repeat=3, min_repeat_ms=5, timeout_s=8,
                                      build_workers=workers, quiet=False))
    try:
        results = measurer.measure_many([workload.mod, _mod(ABORT), _mod(SLEEP), _mod(WRONG),
                                         workload.mod])
    finally:
        measurer.close()
    kinds = [r.error_kind for r in results]
    assert kinds == [None, "crash", "timeout", "wrong_output", None]
    assert results[0].ok and results[4].ok and np.isfinite(results[4].latency_s)
    assert "SIGABRT" in results[1].error

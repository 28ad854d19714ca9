"""Cost-model priors (optarena.envs.tensor_schedule.prior): trained on measurements of other
workloads, they inform the tensor environment's surrogate before it measures anything."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from optarena import agents
from optarena.envs.tensor_schedule.cost_model import Surrogate, describe
from optarena.envs.tensor_schedule.prior import collect
from optarena.experiments.cli import main

from .conftest import FAST_MEASURE


@pytest.fixture(scope="module")
def prior(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prior from 10 random schedules of a 64^3 matmul."""
    out = tmp_path_factory.mktemp("prior") / "matmul-64.tar"
    collect(["matmul-64"], out, samples=10, seed=0,
            env_kwargs={"measure": FAST_MEASURE, "store": None}, say=lambda _: None)
    return out


def _env(store: Path, **kwargs) -> gym.Env:
    return gym.make("optarena/TensorSchedule-v0", workload="matmul-128", measure=FAST_MEASURE,
                    store=store, info_program=False, surrogate=True, **kwargs)


def test_the_prior_says_what_it_cost_and_detects_a_changed_file(prior, tmp_path):
    meta = json.loads(prior.with_suffix(".json").read_text())
    measured = meta["workloads"]["matmul-64"]
    assert meta["measurements"] == measured["measurements"] <= 10
    assert 0 < measured["labelled"] <= measured["measurements"]
    assert meta["env_kwargs"]["measure"]["early_stop"] is None  # censored latencies are no labels
    assert describe(prior)["matches_metadata"] is True
    changed = tmp_path / prior.name
    changed.write_bytes(prior.read_bytes() + b"\0")
    changed.with_suffix(".json").write_text(prior.with_suffix(".json").read_text())
    assert describe(changed)["matches_metadata"] is False


def test_a_prior_informs_the_surrogate_before_the_first_measurement(prior, store, monkeypatch):
    updates: list[int] = []
    original = Surrogate.update

    def counting(self: Surrogate, schedules: list, latencies: list[float]) -> None:
        updates.append(len(latencies))
        original(self, schedules, latencies)

    monkeypatch.setattr(Surrogate, "update", counting)
    rng = np.random.default_rng(1)
    estimates = {}
    for name, kwargs in (("cold", {}), ("prior", {"surrogate_prior": prior})):
        env = _env(store, **kwargs).unwrapped
        try:
            states = list(dict.fromkeys(env.initial_state(rng) for _ in range(12)))
            estimates[name] = (env.estimate(states), env.estimate(states))
            assert env.evaluator.num_measurements == 0
            env.evaluate(states[:3])
        finally:
            env.close()
    assert updates == [3, 3]  # one retraining per batch, not one per program
    cold, informed = estimates["cold"], estimates["prior"]
    assert not np.array_equal(*cold)  # an untrained model's scores are random draws
    np.testing.assert_array_equal(*informed)  # the prior's are a function of the program
    assert len(set(np.round(informed[0], 12))) > 1  # and tell the programs apart


def test_a_prior_needs_the_surrogate_and_an_existing_file(prior, store, tmp_path):
    with pytest.raises(ValueError, match="surrogate_prior needs surrogate=True"):
        gym.make("optarena/TensorSchedule-v0", workload="matmul-64", store=store,
                 surrogate_prior=prior)
    missing = tmp_path / "nowhere.tar"
    with pytest.raises(ValueError, match=r"nowhere\.tar: no such file"):
        _env(store, surrogate_prior=missing)
    assert main(["prior", "matmul-64", "--out", str(tmp_path / "p.tar"), "--samples", "0"]) == 2
    assert not (tmp_path / "p.tar").exists()


def test_evolutionary_prior_lets_the_model_pick_every_measurement_after_the_start(prior, store):
    env = _env(store, surrogate_prior=prior)
    try:
        result = agents.make("evolutionary-prior").run(env, budget=9, seed=3)
        recorded = env.unwrapped.problem()["surrogate_prior"]  # in every run's record
    finally:
        env.close()
    assert recorded["sha256"] == describe(prior)["sha256"] and recorded["matches_metadata"]
    assert result.usage.measurements == 9
    assert result.usage.cost_model_calls >= 256  # the first generation was ranked: start + 8
    assert result.best_improvement >= result.curve[0].best_improvement


def test_metaschedule_with_a_prior_needs_an_environment_with_one(store):
    env = _env(store)
    try:
        with pytest.raises(ValueError, match="needs cost_model 'xgb' and an environment made "
                           "with surrogate_prior"):
            agents.make("metaschedule", prior=True).run(env, budget=2, seed=0)
        assert env.unwrapped.evaluator.num_measurements == 0
    finally:
        env.close()

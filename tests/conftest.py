"""Shared fixtures: small real environments (real TVM compilation and timing, no stand-ins)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import pytest

import optarena.envs  # noqa: F401 - registers the environments

FAST_MEASURE = {"number": 1, "repeat": 3, "min_repeat_ms": 5, "timeout_s": 60}


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("optarena-cache")


@pytest.fixture(scope="module")
def matmul_env(cache_dir: Path) -> Iterator[gym.Env]:
    env = gym.make("optarena/TensorSchedule-v0", workload="matmul-64", measure=FAST_MEASURE,
                   cache_dir=cache_dir, max_steps=8)
    yield env
    env.close()

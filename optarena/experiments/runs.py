"""Experiment configs, the runs they expand to, and running one of them.

A config (``configs/*.yaml``, :class:`CompareConfig`) names environments with their workloads,
agents with their settings, seeds and the measurement budget. It expands to one :class:`RunSpec`
per (environment, workload, agent, seed); a run's id is a hash of everything that defines it, so
a results file can say which runs are finished whatever order they ran in.

:func:`execute` runs one spec and returns the line ``results.jsonl`` records: the search result
(curve, usage, best state), the problem it was measured on (workload hash, target, reference
score), software versions and the machine.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

import optarena.envs  # noqa: F401 - registers the environment kinds
from optarena import agents
from optarena.envs.contract import game
from optarena.envs.host import cpu_fingerprint, cpu_model, usable_cores
from optarena.envs.registry import KINDS, kind

RECORD_VERSION = 1
PACKAGES = ("optarena", "apache-tvm", "apache-tvm-ffi", "gymnasium", "numpy", "xgboost",
            "unicorn", "stable-baselines3", "sb3-contrib", "torch", "openai")


class EnvironmentConfig(BaseModel):
    """One environment kind with the problems (tensor workloads, peephole block ids, benchmark
    specs: the kind's problem argument) to race on."""

    model_config = ConfigDict(extra="forbid")

    env: str = Field(description="a registered environment kind (optarena.envs.registry)")
    workloads: list[str] = Field(min_length=1)
    kwargs: dict[str, Any] = Field(default_factory=dict,
                                   description="environment constructor arguments")

    @model_validator(mode="after")
    def _known(self) -> EnvironmentConfig:
        try:
            problem_arg = kind(self.env).problem_arg
        except ValueError:
            raise ValueError(f"unknown env {self.env!r}; available: {sorted(KINDS)}") from None
        if problem_arg in self.kwargs:
            raise ValueError(f"name the {problem_arg} in 'workloads', not kwargs")
        return self


class AgentConfig(BaseModel):
    """An agent by registry name with its settings; ``label`` tells two settings apart."""

    model_config = ConfigDict(extra="forbid")

    agent: str
    label: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    budget: int | None = Field(None, ge=1, description="this agent's measurements per run "
                               "(default: the experiment's budget), e.g. a baseline given more")

    @property
    def name(self) -> str:
        return self.label or self.agent


class RewriteTask(BaseModel):
    """LLM free-form rewrites of peephole corpus blocks, scored with the peephole metrics."""

    model_config = ConfigDict(extra="forbid")

    llm: dict[str, Any] = Field(default_factory=dict, description="the endpoint (LLMConfig)")
    blocks: list[str] | None = Field(None, description="block ids; none: every corpus block "
                                     "that LLVM's pairing changes")
    limit: int | None = Field(None, ge=1, description="at most this many blocks")
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    mcpu: str = "neoverse-n1"


class CompareConfig(BaseModel):
    """A head-to-head experiment, as read from YAML."""

    model_config = ConfigDict(extra="forbid")

    name: str = "experiment"
    description: str = ""
    environments: list[EnvironmentConfig] = Field(min_length=1)
    agents: list[AgentConfig] = Field(min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    budget: int = Field(ge=1, description="real measurements per run")
    checkpoints: list[int] = Field(default_factory=list, description="the report also gives "
                                   "the best found within these numbers of measurements")
    workers: int = Field(1, ge=1, description="runs measured at once (1: timings undisturbed)")
    run_timeout_s: float = Field(3600.0, gt=0, description="a run still going is killed")
    rewrites: RewriteTask | None = None

    @model_validator(mode="after")
    def _unique_labels(self) -> CompareConfig:
        names = [a.name for a in self.agents]
        if len(set(names)) != len(names):
            raise ValueError(f"agent labels must be unique, got {names}")
        return self

    @classmethod
    def load(cls, path: Path) -> CompareConfig:
        return cls(**(yaml.safe_load(path.read_text()) or {}))

    def runs(self) -> list[RunSpec]:
        """Every run, seed-major so that a partial experiment has every agent at low seeds."""
        return [RunSpec(env=e.env, workload=w, env_kwargs=e.kwargs, agent=a.agent, label=a.name,
                        agent_config=a.config, seed=seed, budget=a.budget or self.budget)
                for seed in self.seeds for e in self.environments for w in e.workloads
                for a in self.agents]


class RunSpec(BaseModel):
    """Everything that defines one run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: str
    workload: str
    env_kwargs: dict[str, Any]
    agent: str
    label: str
    agent_config: dict[str, Any]
    seed: int
    budget: int

    @property
    def run_id(self) -> str:
        canonical = json.dumps(self.model_dump(), sort_keys=True)  # key order does not matter
        digest = hashlib.sha256(canonical.encode()).hexdigest()[:10]
        return f"{self.label}-s{self.seed}-{digest}"

    def make_env(self) -> gym.Env:
        return kind(self.env).make(self.workload, self.env_kwargs)


def software_versions() -> dict[str, str | None]:
    """Python and the installed versions of the packages a result depends on."""
    versions: dict[str, str | None] = {"python": sys.version.split()[0]}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def machine_info() -> dict[str, Any]:
    """The CPU model, the fingerprint of its flags, usable cores and platform a result was
    measured on."""
    return {"cpu": cpu_model(), "cpu_flags": cpu_fingerprint(), "cores": usable_cores(),
            "platform": platform.platform(), "hostname": platform.node()}


def execute(spec: RunSpec, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Run ``spec`` to the end and return its ``results.jsonl`` record.

    ``progress`` is called from a helper thread with the measurements made so far (about once a
    second) while the agent runs.
    """

    started = time.time()
    env = spec.make_env()
    stop = threading.Event()
    try:
        inner = game(env)
        problem = inner.problem()
        agent = agents.make(spec.agent, **spec.agent_config)
        offset = inner.evaluator.num_measurements
        if progress is not None:
            def report() -> None:
                while not stop.wait(1.0):
                    progress(inner.evaluator.num_measurements - offset)

            threading.Thread(target=report, daemon=True).start()
        result = agent.run(env, spec.budget, spec.seed)
    finally:
        stop.set()
        env.close()
    return {
        "record_version": RECORD_VERSION,
        "run_id": spec.run_id,
        "spec": spec.model_dump(),
        "env_id": kind(spec.env).env_id,
        "problem": problem,
        "result": result.to_json(),
        "versions": software_versions(),
        "machine": machine_info(),
        "started": started,
        "finished": time.time(),
    }


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file; a torn last line (a killed writer) is skipped."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append one record as a line, flushed to disk (a torn last line is ended first). A record
    JSON cannot hold raises ``TypeError`` before anything is written."""
    line = json.dumps(record).encode() + b"\n"
    with path.open("a+b") as handle:
        handle.seek(0, os.SEEK_END)
        if handle.tell() > 0:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                handle.write(b"\n")
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())

"""Experiment configs, the runs they expand to, and running one of them.

A config (``configs/*.yaml``, :class:`CompareConfig`) names environments with their workloads,
agents with their settings, seeds and the budget (measurements, and wall-clock where given). It
expands to one :class:`RunSpec` per (environment, workload, agent, seed); a run's id is a hash of
everything that defines it, so a results file can say which runs are finished whatever order they
ran in.

:func:`execute` runs one spec and returns the line ``results.jsonl`` records, a
:class:`~optarena.records.RunRecord`: the search result (curve, usage, best state), the problem it
was measured on (workload hash, target, reference score), the environment kind's policy (baseline,
timing, verification), software versions and the machine.
"""

from __future__ import annotations

import importlib.metadata
import platform
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

import optarena.envs  # noqa: F401 - registers the environment kinds
from optarena import agents
from optarena.envs.contract import game
from optarena.envs.host import cpu_fingerprint, cpu_model, usable_cores
from optarena.envs.registry import KINDS, ByArgument, kind
from optarena.experiments.config_file import InvalidValue, load_config
from optarena.records import RECORD_VERSION, Machine, Problem, RunRecord, RunSpec

PACKAGES = ("optarena", "apache-tvm", "apache-tvm-ffi", "gymnasium", "numpy", "xgboost-cpu", "xgboost",
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
            known = kind(self.env)
        except ValueError:
            raise InvalidValue("env", f"unknown env {self.env!r}; available: "
                               f"{', '.join(sorted(KINDS))}") from None
        if known.problem_arg in self.kwargs:
            raise InvalidValue("kwargs", f"name the {known.problem_arg} in 'workloads', not "
                               "kwargs")
        return self


class AgentConfig(BaseModel):
    """An agent by registry name with its settings; ``label`` tells two settings apart."""

    model_config = ConfigDict(extra="forbid")

    agent: str
    label: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    budget: int | None = Field(None, ge=1, description="this agent's measurements per run "
                               "(default: the experiment's budget), e.g. a baseline given more")
    seconds: float | None = Field(None, gt=0, description="this agent's wall-clock per run "
                                  "(default: the experiment's)")

    @property
    def name(self) -> str:
        return self.label or self.agent


def check_agent(name: str, config: Mapping[str, Any], where: tuple[str | int, ...] = (),
                keys: tuple[str, str] = ("agent", "config")) -> None:
    """An unknown agent or setting, or a setting's invalid value, as an
    :class:`~optarena.experiments.config_file.InvalidValue` at ``where`` + the key (of ``keys``)
    that has it."""
    try:
        agents.config_class(name)
    except ValueError as err:
        raise InvalidValue((*where, keys[0]), str(err)) from None
    try:
        agents.make_config(name, **config)
    except ValueError as err:
        raise InvalidValue((*where, keys[1]), str(err)) from None


def check_problems(kind_name: str, problems: list[str], kwargs: Mapping[str, Any],
                   where: tuple[str | int, ...]) -> None:
    """A problem the environment would refuse (the kind's ``problem_check``, no environment
    made), as an :class:`~optarena.experiments.config_file.InvalidValue` at ``where``."""
    try:
        kind(kind_name).check_problems(problems, kwargs)
    except ValueError as err:
        raise InvalidValue(where, str(err)) from None


def check_cost_model(agent: str, config: Mapping[str, Any],
                     envs: Sequence[tuple[str, Mapping[str, Any]]],
                     where: tuple[str | int, ...]) -> None:
    """``agent`` with settings ``config`` plans on a cost model and one of ``envs`` (kind, its
    arguments) has none (the kind's policy says, no environment made): an
    :class:`~optarena.experiments.config_file.InvalidValue` at ``where`` naming how to give it
    one and the agent's variant that measures every node, where either exists."""
    if not agents.needs_cost_model(agent, **config):
        return
    for env, kwargs in envs:
        if not kind(env).policy.has_cost_model(kwargs):
            raise InvalidValue(where, _no_cost_model(agent, env))


def _no_cost_model(agent: str, env: str) -> str:
    switch = kind(env).policy.cost_model
    remedies = [f"set {switch.argument}: true in its kwargs"] if isinstance(
        switch, ByArgument) else []
    if f"{agent}-measured" in agents.available():
        remedies.append(f"race {agent + '-measured'!r}, which measures every node")
    return (f"{agent!r} plans on a cost model and {env} has none with the kwargs given"
            + (f": {' or '.join(remedies)}" if remedies else ""))


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
    seconds: float | None = Field(None, gt=0, description="wall-clock per run besides: once "
                                  "past, the agent asks for no more measurements (a budget in "
                                  "time, as CompilerGym's leaderboard gives its searches, for "
                                  "metrics that cost milliseconds; none: measurements only)")
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
    def load(cls, path: Path, overrides: Mapping[str, Any] | None = None) -> CompareConfig:
        """The config in the YAML file ``path`` (``overrides``: command-line values of its keys);
        :class:`~optarena.experiments.config_file.ConfigError`, one line, if it is wrong."""
        return load_config(cls, path, overrides)

    def check_names(self) -> None:
        """Every agent, agent setting and problem the config names exists, checked without
        making an environment or importing what only that needs (an unknown one would fail in
        its run process). Not part of reading a config: a recorded one (``DIR/config.yaml``)
        stays readable when a name it used is gone. ``InvalidValue`` at the name's key; a
        model-based agent given an environment without a cost model is one too."""
        for index, agent in enumerate(self.agents):
            check_agent(agent.agent, agent.config, ("agents", index))
        for index, env in enumerate(self.environments):
            check_problems(env.env, env.workloads, env.kwargs, ("environments", index, "workloads"))
        envs = [(env.env, env.kwargs) for env in self.environments]
        for index, agent in enumerate(self.agents):
            check_cost_model(agent.agent, agent.config, envs, ("agents", index, "agent"))

    def runs(self) -> list[RunSpec]:
        """Every run, seed-major so that a partial experiment has every agent at low seeds."""
        return [RunSpec(env=e.env, workload=w, env_kwargs=e.kwargs, agent=a.agent, label=a.name,
                        agent_config=a.config, seed=seed, budget=a.budget or self.budget,
                        seconds=a.seconds or self.seconds)
                for seed in self.seeds for e in self.environments for w in e.workloads
                for a in self.agents]


def software_versions() -> dict[str, str | None]:
    """Python and the installed versions of the packages a result depends on."""
    versions: dict[str, str | None] = {"python": sys.version.split()[0]}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def machine_info() -> Machine:
    """The CPU model, the fingerprint of its flags, usable cores and platform a result was
    measured on."""
    return Machine(cpu=cpu_model(), cpu_flags=cpu_fingerprint(), cores=usable_cores(),
                   platform=platform.platform(), hostname=platform.node())


def execute(spec: RunSpec, progress: Callable[[int], None] | None = None) -> RunRecord:
    """Run ``spec`` to the end (its budget spent, its wall-clock passed, or the agent done) and
    return its ``results.jsonl`` record (``ValueError`` if the agent used more measurements than
    its budget).

    ``progress`` is called from a helper thread with the measurements made so far (about once a
    second) while the agent runs.
    """

    started = time.time()
    env_kind = kind(spec.env)
    env = env_kind.make(spec.workload, spec.env_kwargs)
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
        inner.evaluator.set_deadline(spec.seconds)
        result = agent.run(env, spec.budget, spec.seed)
    finally:
        stop.set()
        env.close()
    return RunRecord(record_version=RECORD_VERSION, run_id=spec.run_id, spec=spec,
                     env_id=env_kind.env_id, policy=env_kind.policy_for(spec.env_kwargs),
                     problem=Problem.model_validate(problem), result=result,
                     versions=software_versions(), machine=machine_info(), started=started,
                     finished=time.time())

"""The environment kinds: one registry line each, read by gymnasium, the experiments and the CLI.

Registering a kind registers its gymnasium id, with a vector entry point:
``gym.make_vec(ID, num_envs=N)`` steps ``N`` episodes as one batch (:mod:`optarena.envs.vector`).

An :class:`EnvKind` names an environment for experiment configs (``env: tensor_schedule``), says
which gymnasium id it has, where its class is and which constructor argument names its problem
(the workload, block or benchmark of a config's ``workloads``). Its :class:`KindPolicy` is what the
experiments need of it besides running it, as data: which constructor arguments define the problem
(a submission may set only those), whether scores are timings, which agent or anchor a report
compares with, the checks a verifier forces on, which anchors are what a user would run instead and
what "improvement" means. :meth:`EnvKind.policy_for` resolves it for a run's arguments into the
:class:`Policy` every run record carries (:class:`optarena.records.RunRecord`), so reading or
reporting a result never imports the environment's class (nor TVM).

Other packages add environments through the ``optarena.envs`` entry-point group: an entry point
that loads an :class:`EnvKind` (``toy = "my_package.toy:KIND"`` in ``[project.entry-points.
"optarena.envs"]``) is registered like the built-in ones.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Generic, Literal, TypeVar

import gymnasium
from pydantic import BaseModel, ConfigDict, Field

ENTRY_POINT_GROUP = "optarena.envs"


T = TypeVar("T")


class Forced(BaseModel):
    """A setting a verifier measures with, whatever its own settings say: ``key`` (dotted for a
    nested argument: ``measure.check``) set to ``value`` (``rule="set"``), or kept at least or at
    most ``value`` (a given setting beyond it is left as it is; none given is ``value``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str
    value: Any
    rule: Literal["set", "at_least", "at_most"] = "set"


class Policy(BaseModel):
    """What the experiments need of an environment run with given arguments: the
    :class:`KindPolicy` of its kind resolved for them (:meth:`EnvKind.policy_for`). Every run
    record carries its own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    baseline: str = "random"
    """What reports compare agents with: an agent name, or ``anchor:NAME`` for one of the
    problem's anchors (``problem()["anchors"]``)."""
    measures_time: bool = False
    """Whether runs time programs: they need a quiet machine (a Ray node to themselves) and
    their scores are verified with a tolerance, best of several."""
    problem_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Constructor arguments that define the problem besides its name, with their defaults (a
    submission may set only these; the rest say how to measure, which the verifier decides)."""
    verification: tuple[Forced, ...] = ()
    """The checks a verifier forces on (:meth:`verification_kwargs`)."""
    speed_anchors: dict[str, str] = Field(default_factory=dict)
    """Anchors that are what a user would run instead (latencies in seconds), by name, with the
    label reports give them (``{"pytorch": "PyTorch eager"}``)."""
    roofline: str | None = None
    """The anchor that is the problem's roofline on the machine of the run (a lower bound on its
    score, not an alternative): reports give each best's fraction of it."""
    improvement: str = ""
    """What an improvement is here, for reports (``the speedup over the unscheduled program``)."""
    problems: str = ""
    """What the problems are, for reports (``tensor programs``)."""

    def verification_kwargs(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        """The constructor arguments a verifier measures with, from its own ``settings``: every
        check of :attr:`verification` forced on, whatever the settings say."""
        kwargs = copy.deepcopy(dict(settings))
        for forced in self.verification:
            *parents, last = forced.key.split(".")
            node = kwargs
            for parent in parents:
                node[parent] = dict(node.get(parent) or {})
                node = node[parent]
            given = node.get(last, forced.value)
            node[last] = forced.value if forced.rule == "set" else \
                max(given, forced.value) if forced.rule == "at_least" else min(given, forced.value)
        return kwargs


class ByArgument(BaseModel, Generic[T]):
    """A policy value chosen by one constructor argument: ``cases[str(value)]`` for the value it
    is given, ``unset`` when it is not given (or ``None``), ``otherwise`` for any other value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    argument: str
    cases: dict[str, T] = Field(default_factory=dict)
    unset: T
    otherwise: T

    def value(self, kwargs: Mapping[str, Any]) -> T:
        given = kwargs.get(self.argument)
        return self.unset if given is None else self.cases.get(str(given), self.otherwise)


class KindPolicy(Policy):
    """An environment kind's :class:`Policy`, whose baseline and timing may depend on the
    constructor arguments (:class:`ByArgument`)."""

    baseline: str | ByArgument[str] = "random"  # type: ignore[assignment]
    measures_time: bool | ByArgument[bool] = False  # type: ignore[assignment]
    cost_model: bool | ByArgument[bool] = False
    """Whether the environment has a cost model (``estimate``, ``has_cost_model``) that
    model-based agents plan on: a config giving one of them an environment without is refused
    before any run starts (:meth:`has_cost_model`). Not part of the resolved :class:`Policy`
    (records do not need it)."""

    def resolve(self, kwargs: Mapping[str, Any]) -> Policy:
        """The policy of an environment made with ``kwargs``."""
        chosen = {name: self._value(name, kwargs) for name in ("baseline", "measures_time")}
        return Policy(**{**self.model_dump(exclude={*chosen, "cost_model"}), **chosen})

    def has_cost_model(self, kwargs: Mapping[str, Any]) -> bool:
        """Whether an environment made with ``kwargs`` has a cost model."""
        return bool(self._value("cost_model", kwargs))

    def _value(self, name: str, kwargs: Mapping[str, Any]) -> Any:
        value = getattr(self, name)
        return value.value(kwargs) if isinstance(value, ByArgument) else value


@dataclass(frozen=True)
class EnvKind:
    """One environment, as experiments name it."""

    name: str
    """The name configs use (``env: tensor_schedule``)."""
    env_id: str
    """The gymnasium id (``optarena/TensorSchedule-v0``)."""
    entry_point: str
    """``module:Class`` of the environment."""
    problem_arg: str
    """The constructor argument that names the problem (``workload``, ``block``, ``benchmark``)."""
    policy: KindPolicy = field(default_factory=KindPolicy)
    """What the experiments need of it besides running it (see the module docstring)."""
    problem_check: str | None = None
    """``module:function`` called with the problems and the constructor arguments of a config,
    raising ``ValueError`` (naming the valid ones) for a problem the environment would refuse,
    without making it (nor importing what only making it needs: a config is checked before any
    run starts). ``None``: problems are checked when the environment is made."""

    def env_class(self) -> Any:
        module, _, name = self.entry_point.partition(":")
        return getattr(importlib.import_module(module), name)

    def make(self, problem: str | Sequence[str], kwargs: Mapping[str, Any] | None = None
             ) -> gymnasium.Env:
        """The environment on ``problem`` (one, or several), built with ``kwargs``."""
        kwargs = dict(kwargs or {})
        if self.problem_arg in kwargs:
            raise ValueError(f"name the {self.problem_arg} as the problem, not in kwargs")
        return gymnasium.make(self.env_id, **{self.problem_arg: problem}, **kwargs)

    def check_problems(self, problems: Sequence[str], kwargs: Mapping[str, Any]) -> None:
        """``ValueError`` for a problem the environment would refuse (see ``problem_check``)."""
        if self.problem_check is not None:
            module, _, name = self.problem_check.partition(":")
            getattr(importlib.import_module(module), name)(problems, kwargs)

    def policy_for(self, kwargs: Mapping[str, Any]) -> Policy:
        """The policy of this environment made with ``kwargs`` (its constructor arguments)."""
        return self.policy.resolve(kwargs)


KINDS: dict[str, EnvKind] = {}


def register(kind: EnvKind) -> EnvKind:
    """Add ``kind`` to the registry and to gymnasium (idempotent)."""
    known = KINDS.get(kind.name)
    if known is not None and known != kind:
        raise ValueError(f"environment kind {kind.name!r} is registered already as {known}")
    KINDS[kind.name] = kind
    if kind.env_id not in gymnasium.registry:
        from optarena.envs.vector import vector_entry_point

        gymnasium.register(id=kind.env_id, entry_point=kind.entry_point,
                           vector_entry_point=vector_entry_point(kind.entry_point))
    return kind


def _load_plugins() -> None:
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        loaded = entry.load()
        if not isinstance(loaded, EnvKind):
            raise TypeError(f"entry point {entry.name} = {entry.value} of group "
                            f"{ENTRY_POINT_GROUP} is a {type(loaded).__name__}, not an EnvKind")
        register(loaded)


def improvement_text(problems: bool = False) -> str:
    """What an improvement is, for every registered kind that says (reports and the
    leaderboard): ``A, B, or C``, each with its kind's problems in brackets if ``problems``."""
    said = [f"{k.policy.improvement} ({k.policy.problems})" if problems else k.policy.improvement
            for k in KINDS.values() if k.policy.improvement]
    return ", ".join(said[:-1]) + (", or " if len(said) > 2 else " or ") + said[-1] \
        if len(said) > 1 else "".join(said) or "the reference score over the score"


def kind(name: str) -> EnvKind:
    """The registered kind called ``name`` (``ValueError`` naming the known ones otherwise)."""
    if name not in KINDS:
        _load_plugins()
    if name not in KINDS:
        raise ValueError(f"unknown environment kind {name!r}; known: {', '.join(sorted(KINDS))}")
    return KINDS[name]


def kind_of(env_id: str) -> EnvKind:
    """The registered kind with gymnasium id ``env_id``."""
    _load_plugins()
    for known in KINDS.values():
        if known.env_id == env_id:
            return known
    raise ValueError(f"no registered environment has id {env_id!r}")

"""The environment kinds: one registry line each, read by gymnasium, the experiments and the CLI.

Registering a kind registers its gymnasium id, with a vector entry point:
``gym.make_vec(ID, num_envs=N)`` steps ``N`` episodes as one batch (:mod:`optarena.envs.vector`).

An :class:`EnvKind` names an environment for experiment configs (``env: tensor_schedule``), says
which gymnasium id it has, where its class is and which constructor argument names its problem
(the workload, block or benchmark of a config's ``workloads``). Everything else the experiments need
-- which constructor arguments define the problem (a submission may set only those), whether scores
are timings, which agent or anchor a report compares with -- the environment class says itself
(:class:`~optarena.envs.base.ArenaEnv`).

Other packages add environments through the ``optarena.envs`` entry-point group: an entry point
that loads an :class:`EnvKind` (``toy = "my_package.toy:KIND"`` in ``[project.entry-points.
"optarena.envs"]``) is registered like the built-in ones.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

import gymnasium

ENTRY_POINT_GROUP = "optarena.envs"


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

    def problem_kwargs(self) -> frozenset[str]:
        """Constructor arguments that define the problem (the rest say how to measure it)."""
        return frozenset(self.env_class().problem_kwargs)

    def measures_time(self, kwargs: Mapping[str, Any]) -> bool:
        """Whether runs with these settings time programs (they need a quiet machine)."""
        return bool(self.env_class().measures_time(kwargs))

    def baseline(self, kwargs: Mapping[str, Any]) -> str:
        """What reports compare agents with: an agent name, or ``anchor:NAME`` for one of the
        problem's anchors (``problem()["anchors"]``)."""
        return str(self.env_class().baseline(kwargs))


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

"""optarena agents: one per module, created by name with :func:`make`."""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import ValidationError

from optarena.agents.base import Agent, CurvePoint, SearchResult, Usage
from optarena.agents.evolutionary import (
    Evolutionary,
    EvolutionaryConfig,
    EvolutionaryCostModel,
    EvolutionaryCostModelConfig,
    EvolutionaryDiverse,
    EvolutionaryDiverseConfig,
    EvolutionaryPrior,
    EvolutionaryPriorConfig,
)
from optarena.agents.greedy import Greedy, GreedyConfig
from optarena.agents.guided import PolicyGuided, PolicyGuidedConfig
from optarena.agents.llm_mcts import (
    LLMMCTS,
    LLMMCTSConfig,
    MeasuredLLMMCTS,
    MeasuredLLMMCTSConfig,
)
from optarena.agents.mcts import MCTS, MCTSConfig, MeasuredMCTS, MeasuredMCTSConfig
from optarena.agents.metaschedule import MetaSchedule, MetaScheduleConfig
from optarena.agents.ppo import PPO, PPOConfig
from optarena.agents.puct import PUCT, MeasuredPUCT, MeasuredPUCTConfig, PUCTConfig
from optarena.agents.random_search import RandomSearch, RandomSearchConfig

_REGISTRY: dict[str, tuple[type, type]] = {
    "random": (RandomSearch, RandomSearchConfig),
    "greedy": (Greedy, GreedyConfig),
    "evolutionary": (Evolutionary, EvolutionaryConfig),
    "evolutionary-diverse": (EvolutionaryDiverse, EvolutionaryDiverseConfig),
    "evolutionary-cost-model": (EvolutionaryCostModel, EvolutionaryCostModelConfig),
    "evolutionary-prior": (EvolutionaryPrior, EvolutionaryPriorConfig),
    "mcts": (MCTS, MCTSConfig),
    "puct": (PUCT, PUCTConfig),
    "llm-mcts": (LLMMCTS, LLMMCTSConfig),
    "mcts-measured": (MeasuredMCTS, MeasuredMCTSConfig),
    "puct-measured": (MeasuredPUCT, MeasuredPUCTConfig),
    "llm-mcts-measured": (MeasuredLLMMCTS, MeasuredLLMMCTSConfig),
    "metaschedule": (MetaSchedule, MetaScheduleConfig),
    "ppo": (PPO, PPOConfig),
    "ppo-guided": (PolicyGuided, PolicyGuidedConfig),
}


def available() -> list[str]:
    """The registered agents' names, sorted."""
    return sorted(_REGISTRY)


def make(name: str, **config: Any) -> Agent:
    """An agent by name, its config filled from keyword arguments (e.g. a YAML mapping)."""
    filled = make_config(name, **config)
    return _REGISTRY[name][0](filled)


def config_class(name: str) -> type:
    """The settings class of agent ``name`` (``ValueError`` naming the registered agents)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown agent {name!r}; available: {', '.join(available())}")
    return _REGISTRY[name][1]


def make_config(name: str, **config: Any) -> Any:
    """The config of agent ``name`` filled from keyword arguments, without making the agent (a
    config file is checked with it before any run starts). ``ValueError`` with one line naming
    an unknown agent or setting and the valid ones, or a setting's invalid value."""
    config_cls = config_class(name)
    known = [f.name for f in dataclasses.fields(config_cls)]
    unknown = sorted(set(config) - set(known))
    if unknown:
        raise ValueError(f"agent {name!r} has no setting {', '.join(map(repr, unknown))}; its "
                         f"settings: {', '.join(known)}")
    try:
        return config_cls(**config)
    except ValidationError as err:  # a nested pydantic setting (llm-mcts's llm)
        problem = err.errors()[0]
        place = ".".join(str(part) for part in problem["loc"])
        raise ValueError(f"agent {name!r}: {err.title} {place}: {problem['msg']}") from None
    except TypeError as err:
        raise ValueError(f"agent {name!r}: {err}") from None


def needs_cost_model(name: str, **config: Any) -> bool:
    """Whether agent ``name`` with these settings plans on the environment's cost model and
    refuses an environment without one (its config's ``needs_cost_model``; none: it does not)."""
    return bool(getattr(make_config(name, **config), "needs_cost_model", False))


__all__ = ["Agent", "CurvePoint", "SearchResult", "Usage", "available", "config_class", "make",
           "make_config", "needs_cost_model"]

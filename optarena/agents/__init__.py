"""optarena agents: one per module, created by name with :func:`make`."""

from __future__ import annotations

from typing import Any

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
}


def make(name: str, **config: Any) -> Agent:
    """An agent by name, its config filled from keyword arguments (e.g. a YAML mapping)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown agent {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    agent_cls, config_cls = _REGISTRY[name]
    return agent_cls(config_cls(**config))


__all__ = ["Agent", "CurvePoint", "SearchResult", "Usage", "make"]

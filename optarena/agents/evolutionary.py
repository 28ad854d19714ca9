"""Evolutionary search, after MetaSchedule's ``EvolutionarySearch``.

A population of the best measured states evolves in generations:

1. **Seed.** The start of ``reset(seed)`` (every agent's first sample for the seed) and
   ``init_samples - 1`` more random starting states (samples of the design space; on an environment
   with one fixed start, the start) are measured, as one batch, and form the first population. With
   ``diverse_sketches`` (the agent ``evolutionary-diverse``), on a design space of several sketches
   (states that are :class:`~optarena.envs.contract.Sketched`, such as the tensor environment's),
   the starts cover the sketches evenly: ``sketch_draws`` random starts are drawn and grouped by
   sketch, and the sketches take turns, in a random order beginning with the reset's, until the seed
   is chosen: ``init_samples`` states, or one per sketch if there are more sketches, but no more
   than ``sketch_share`` of the budget (each sketch then has as many states as any other, give or
   take one). Actions never change a sketch, so the seed decides which structures the search
   explores (the Reasoning Compiler's layers have 3 to 81 on a CPU). Elsewhere it seeds as above. 2.
   **Breed.** ``children`` unmeasured candidates are made from parents drawn from the population
   (better parents are drawn more often: weights ``1 / rank``): with probability ``crossover_prob``,
   and where the environment offers ``crossover``, a child of two parents; otherwise up to
   ``mutation_steps`` uniformly chosen legal actions applied to one parent (a walk that reaches a
   dead end early keeps the steps it took). ``fresh_samples`` random starting states join them
   (MetaSchedule samples part of its population afresh every iteration), so that a cost model can
   also rank states far from the population. 3. **Select.** With ``cost_model``, candidates are
   ranked by the environment's ``estimate`` and each of the ``measure_per_generation`` slots takes
   the best remaining one, or with probability ``epsilon`` a random one (MetaSchedule's epsilon-
   greedy); without it, all are taken at random. The agent ``evolutionary-cost-model`` does this
   with a wide first sample (``init_samples`` 16: the surrogate of the tensor environment is
   informed after 8 measurements) and 512 candidates a generation, half of them fresh: where stock
   MetaSchedule measures its first 64 trials before its model is trained, it ranks with the model
   from the 17th measurement on. The agent ``evolutionary-prior`` does the same from the 2nd
   measurement on, on an environment whose model starts from a prior trained on other workloads (it
   seeds with the start alone). With ``skip_measured``, a slot passes over a candidate whose program
   the run has measured or another slot took (``unmeasured``), and so does the seed: distinct states
   can build one program (the tensor environment's decisions that replay alike), such a state is
   free and measures nothing, and a model ranks it as high as the measured original, so that without
   it whole generations can fill no budget (MetaSchedule's evolutionary search skips measured
   programs too). Off by default: the committed races ran without it. 4. **Measure** the selected
   ones as one batch (``evaluate``: the tensor environment builds them in parallel), keep the
   ``population`` best, repeat until the budget is spent or ``max_stalls`` generations in a row
   measured nothing new."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from optarena.agents.base import SearchResult, Tracker, random_walk, require_cost_model
from optarena.envs.contract import Crossover, SearchOracle, Sketched, oracle


@dataclass
class EvolutionaryConfig:
    population: int = 16
    """Measured states kept as parents (the best ones)."""
    init_samples: int = 8
    """Random samples measured to seed the population."""
    children: int = 64
    """Unmeasured candidates bred per generation."""
    mutation_steps: int = 1
    """Legal actions applied by one mutation."""
    crossover_prob: float = 0.2
    """Chance that a child comes from crossover (where the environment supports it)."""
    measure_per_generation: int = 8
    """Candidates measured per generation."""
    cost_model: bool = False
    """Rank candidates with the environment's ``estimate`` (the XGB surrogate; llvm-mca unverified)."""
    epsilon: float = 0.05
    """With ``cost_model``: chance that a slot takes a random candidate instead of the best."""
    fresh_samples: int = 0
    """Random starting states added to each generation's candidates."""
    max_stalls: int = 5
    """Stop after this many generations in a row that measured nothing new."""
    skip_measured: bool = False
    """Select only candidates whose programs the run has not measured (step 3)."""
    diverse_sketches: bool = False
    """Seed with starts spread evenly over the sketches of the design space (module docstring)."""
    sketch_draws: int = 256
    """With ``diverse_sketches``: random starts drawn to find the sketches (with 27 sketches
    drawn uniformly, 256 draws reach every one with probability 0.998)."""
    sketch_share: float = 0.5
    """With ``diverse_sketches``: the largest share of the budget the seed may take to give
    every sketch a state."""

    @property
    def needs_cost_model(self) -> bool:
        """Candidates ranked by the cost model need an environment with one."""
        return self.cost_model


class Evolutionary:
    """Mutation, crossover and (optionally) cost-model-filtered selection of what to measure."""

    name = "evolutionary"

    def __init__(self, config: EvolutionaryConfig | None = None) -> None:
        self.config = config or EvolutionaryConfig()

    def run(self, env: gym.Env, budget: int, seed: int) -> SearchResult:
        config, inner = self.config, oracle(env)
        require_cost_model(inner, self.name, config.needs_cost_model)
        rng = np.random.default_rng(seed)
        tracker = Tracker(self.name, env, budget, seed)
        _, info = tracker.first_sample()
        first = inner.get_state()
        population: list[tuple[float, Any]] = [(float(info["score"]), first)]
        seen: set[Any] = {first}
        if config.diverse_sketches and isinstance(first, Sketched):
            starts = self._diverse_starts(inner, first, budget, rng)
        else:
            starts = list({inner.initial_state(rng): None for _ in range(config.init_samples - 1)})
        starts = [s for s in starts if s not in seen]
        if config.skip_measured:
            starts = [s for s, new in zip(starts, inner.unmeasured(starts), strict=True) if new]
        self._measure(inner, tracker, starts, population, seen)
        for _ in tracker.rounds(config.max_stalls):
            population = _best_unique(population, config.population)
            candidates = self._breed(inner, population, seen, rng)
            candidates += self._fresh(inner, seen, set(candidates), rng)
            self._measure(inner, tracker, self._select(inner, candidates, rng), population, seen)
        return tracker.finish()

    def _diverse_starts(self, inner: SearchOracle[Any], first: Sketched, budget: int,
                        rng: np.random.Generator) -> list[Any]:
        """The starting states that, with ``first``, cover the sketches evenly (the module
        docstring): ``sketch_draws`` random starts grouped by sketch, the sketches taking turns
        (in a random order, ``first``'s first)."""
        groups: dict[int, list[Any]] = {first.sketch: [first]}
        for _ in range(self.config.sketch_draws):
            state = inner.initial_state(rng)
            group = groups.setdefault(state.sketch, [])
            if state not in group:
                group.append(state)
        others = [sketch for sketch in groups if sketch != first.sketch]
        order = [first.sketch, *(others[i] for i in rng.permutation(len(others)))]
        turns = [groups[sketch][turn] for turn in range(max(map(len, groups.values())))
                 for sketch in order if turn < len(groups[sketch])]
        seeds = max(self.config.init_samples,
                    min(len(groups), int(self.config.sketch_share * budget)))
        return turns[1:seeds]

    @staticmethod
    def _measure(inner: SearchOracle[Any], tracker: Tracker, states: list[Any],
                 population: list[tuple[float, Any]], seen: set[Any]) -> None:
        """Measure ``states`` as one batch (as many as the budget has left: the evaluator
        refuses more); the ones whose program works join the population."""
        batch = states[: tracker.left]
        seen.update(batch)
        for state, outcome in zip(batch, inner.evaluate(batch), strict=True):
            tracker.observe_outcome(state, outcome, [])
            if outcome.score is not None:
                population.append((outcome.score, state))

    def _breed(self, inner: SearchOracle[Any], population: list[tuple[float, Any]], seen: set[Any],
               rng: np.random.Generator) -> list[Any]:
        """Up to ``children`` new, distinct, unmeasured candidates."""
        config = self.config
        weights = 1.0 / np.arange(1, len(population) + 1)
        weights /= weights.sum()
        children: dict[Any, Any] = {}
        for _ in range(4 * config.children):
            if len(children) >= config.children:
                break
            parent = population[int(rng.choice(len(population), p=weights))][1]
            if isinstance(inner, Crossover) and len(population) > 1 \
                    and rng.random() < config.crossover_prob:
                other = population[int(rng.choice(len(population), p=weights))][1]
                child = inner.crossover(parent, other, rng)
            else:
                child, walked = random_walk(inner, parent, config.mutation_steps, rng)
                if not walked:
                    continue
            if isinstance(child, str):
                continue
            if child not in seen and child not in children:
                children[child] = child
        return list(children.values())

    def _fresh(self, inner: SearchOracle[Any], seen: set[Any], children: set[Any],
               rng: np.random.Generator) -> list[Any]:
        """Up to ``fresh_samples`` distinct random starting states, neither measured nor bred."""
        fresh = {inner.initial_state(rng): None for _ in range(self.config.fresh_samples)}
        return [state for state in fresh if state not in seen and state not in children]

    def _select(self, inner: SearchOracle[Any], candidates: list[Any], rng: np.random.Generator
                ) -> list[Any]:
        """The candidates to measure this generation, in order."""
        config = self.config
        if not config.cost_model or not candidates:
            return self._fill(inner, [candidates[i] for i in rng.permutation(len(candidates))],
                              lambda left: 0)
        ranked = [candidates[i] for i in np.argsort(inner.estimate(candidates), kind="stable")]
        return self._fill(inner, ranked, lambda left: int(rng.integers(left))
                          if rng.random() < config.epsilon else 0)

    def _fill(self, inner: SearchOracle[Any], ranked: list[Any], pick: Callable[[int], int]
              ) -> list[Any]:
        """The ``measure_per_generation`` slots, each taking the candidate at ``pick(left)``
        of those left (with ``skip_measured``: passing over the ones that measure nothing)."""
        chosen: list[Any] = []
        while ranked and len(chosen) < self.config.measure_per_generation:
            candidate = ranked.pop(pick(len(ranked)))
            if not self.config.skip_measured or inner.unmeasured([*chosen, candidate])[-1]:
                chosen.append(candidate)
        return chosen


@dataclass
class EvolutionaryDiverseConfig(EvolutionaryConfig):
    """``evolutionary-diverse``: seeded over the sketches."""

    diverse_sketches: bool = True


class EvolutionaryDiverse(Evolutionary):
    """Evolutionary search seeded with starts spread evenly over the sketches."""

    name = "evolutionary-diverse"


@dataclass
class EvolutionaryCostModelConfig(EvolutionaryConfig):
    """``evolutionary-cost-model``: every generation's measurements chosen by the cost model
    from 512 candidates, half of them fresh samples (the module docstring)."""

    cost_model: bool = True
    init_samples: int = 16
    children: int = 256
    fresh_samples: int = 256


class EvolutionaryCostModel(Evolutionary):
    """Evolutionary search whose measurements the cost model picks from a wide pool."""

    name = "evolutionary-cost-model"


@dataclass
class EvolutionaryPriorConfig(EvolutionaryCostModelConfig):
    """``evolutionary-prior``: ``evolutionary-cost-model`` for an environment whose cost model
    is informed before it measures anything (a prior trained on other workloads: the tensor
    environment's ``surrogate_prior``): no random seed sample, the model picks every measurement
    after the start's."""

    init_samples: int = 1


class EvolutionaryPrior(Evolutionary):
    """Evolutionary search whose every measurement a pre-trained cost model picks."""

    name = "evolutionary-prior"


def _best_unique(population: list[tuple[float, Any]], size: int) -> list[tuple[float, Any]]:
    """The ``size`` best distinct states, best first."""
    unique: dict[Any, tuple[float, Any]] = {}
    for score, state in sorted(population, key=lambda item: item[0]):
        unique.setdefault(state, (score, state))
    return list(unique.values())[:size]

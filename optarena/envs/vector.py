"""Vector environments: ``gym.make_vec(ID, num_envs=N)`` for every optarena environment.

:class:`ArenaVectorEnv` runs ``N`` episodes of one environment (one evaluator, one scorer, one
measurement store) and steps them together: the ``N`` new programs of a step are *one batch*
(the tensor environment builds them in parallel, the peephole environment scores them in one
llvm-mca run). It follows gymnasium's vector API: batched observations, rewards, ``terminated``
and ``truncated`` arrays, and ``info`` as a dict of arrays with ``_key`` masks; each copy has
its own random generator (``seed + i``), and a copy whose episode ended is reset on the next step
(``autoreset_mode="NextStep"``, gymnasium's default) or at once (``"SameStep"``, with
``final_obs`` and ``final_info``, what stable-baselines3 expects). ``action_masks()`` gives the
legal actions of every copy.

The environment's measurement budget (its evaluator's: ``env.evaluator.set_budget(n)``, which the
PPO agent's :class:`~optarena.agents.base.Tracker` sets) holds here too, without ending training
with :class:`~optarena.envs.contract.BudgetExceeded`: once it is reached, a step that would
measure a new program does not apply and truncates its episode (``info["invalid_action"]`` says
so), and an episode restarts from its previous start (known, free) instead of a new one, so that
training never spends more samples than it was given.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium.vector import VectorEnv
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array
from gymnasium.vector.vector_env import AutoresetMode

from optarena.envs.base import ArenaEnv
from optarena.envs.contract import BudgetExceeded
from optarena.envs.episodes import Episode

BUDGET_SPENT = "the measurement budget is spent"


class ArenaVectorEnv(VectorEnv):
    """``num_envs`` episodes of one :class:`~optarena.envs.base.ArenaEnv`, stepped as a batch."""

    def __init__(self, env: ArenaEnv[Any], num_envs: int,
                 autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be at least 1, not {num_envs}")
        self.env = env
        self.num_envs = num_envs
        self.autoreset_mode = AutoresetMode(autoreset_mode)
        self.metadata = {**env.metadata, "autoreset_mode": self.autoreset_mode}
        self.spec = env.spec
        self.render_mode = None
        self.single_observation_space = env.observation_space
        self.single_action_space = env.action_space
        self.observation_space = batch_space(env.observation_space, num_envs)
        self.action_space = batch_space(env.action_space, num_envs)
        self.episodes: list[Episode[Any]] = [Episode() for _ in range(num_envs)]
        self._done = np.zeros(num_envs, dtype=bool)
        self._starts: list[Any] = [None] * num_envs
        self._observations = create_empty_array(env.observation_space, num_envs)

    def reset(self, *, seed: int | Sequence[int | None] | None = None,
              options: Mapping[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        seeds = list(seed) if isinstance(seed, Sequence) else \
            [None if seed is None else seed + i for i in range(self.num_envs)]
        if len(seeds) != self.num_envs:
            raise ValueError(f"{len(seeds)} seeds for {self.num_envs} environments")
        for episode, copy_seed in zip(self.episodes, seeds, strict=True):
            if copy_seed is not None or episode.state is None:
                episode.rng = np.random.default_rng(copy_seed)
        runner = self.env.runner
        runner.restart(self.episodes, [dict(options or {})] * self.num_envs)
        self._starts = [e.require()[0] for e in self.episodes]
        self._done[:] = False
        infos: dict[str, Any] = {}
        for index, episode in enumerate(self.episodes):
            infos = self._add_info(infos, runner.info(episode), index)
        return self._batch([runner.observe(e) for e in self.episodes]), infos

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        runner = self.env.runner
        actions = np.asarray(actions).reshape(self.num_envs)
        rewards = np.zeros(self.num_envs)
        terminated = np.zeros(self.num_envs, dtype=bool)
        truncated = np.zeros(self.num_envs, dtype=bool)
        observations: list[Any] = [None] * self.num_envs
        infos: dict[str, Any] = {}
        stepping = [i for i in range(self.num_envs) if not self._done[i]]
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            resetting = [i for i in range(self.num_envs) if self._done[i]]
            self._autoreset(resetting)
            for i in resetting:
                observations[i] = runner.observe(self.episodes[i])
                infos = self._add_info(infos, runner.info(self.episodes[i]), i)
        episodes = [self.episodes[i] for i in stepping]
        successors = self._within_budget([self.env.transition(e.require()[0], int(actions[i]))
                                          for e, i in zip(episodes, stepping, strict=True)])
        results = runner.advance(episodes, successors, [int(actions[i]) for i in stepping])
        for i, successor, (observation, reward, done, cut, info) in zip(
                stepping, successors, results, strict=True):
            cut = cut or successor == BUDGET_SPENT
            observations[i], rewards[i], terminated[i], truncated[i] = observation, reward, done, cut
            infos = self._add_info(infos, info, i)
        self._done = terminated | truncated
        if self.autoreset_mode == AutoresetMode.SAME_STEP and self._done.any():
            ended = list(np.flatnonzero(self._done))
            for i in ended:
                infos = self._add_info(infos, {"final_obs": observations[i],
                                               "final_info": runner.info(self.episodes[i])}, i)
            self._autoreset(ended)
            for i in ended:  # as gymnasium's: the info of the new start, the step's in final_info
                observations[i] = runner.observe(self.episodes[i])
                infos = self._add_info(infos, runner.info(self.episodes[i]), i)
            self._done[:] = False
        return self._batch(observations), rewards, terminated, truncated, infos

    def _autoreset(self, indices: Sequence[int]) -> None:
        """Restart the episodes of ``indices``: from new starts while the budget allows one
        each, from their previous starts after that (also those whose new start failed when no
        measurement was left to draw another)."""
        runner, left = self.env.runner, self.env.evaluator.left
        fresh = list(indices if left is None else indices[:left])
        with contextlib.suppress(BudgetExceeded):  # a start failed and none was left to redraw
            runner.restart([self.episodes[i] for i in fresh], [{}] * len(fresh))
        known = [i for i in indices if i not in fresh or self.episodes[i].state is None]
        runner.restart([self.episodes[i] for i in known],
                       [{"state": self._starts[i]} for i in known])
        for i in fresh:
            if i not in known:
                self._starts[i] = self.episodes[i].require()[0]

    def _within_budget(self, successors: list[Any]) -> list[Any]:
        """``successors`` with the ones that would measure a program past the budget replaced
        by :data:`BUDGET_SPENT` (a program several copies reach counts once)."""
        left = self.env.evaluator.left
        if left is None:
            return successors
        self.env.evaluator.build([s for s in successors if not isinstance(s, str)])
        kept: list[Any] = []
        moves: list[Any] = []  # the states kept so far: a program one of them builds is paid for
        for successor in successors:
            if not isinstance(successor, str):
                if self.env.unmeasured([*moves, successor])[-1]:
                    if left == 0:
                        kept.append(BUDGET_SPENT)
                        continue
                    left -= 1
                moves.append(successor)
            kept.append(successor)
        return kept

    def action_masks(self) -> np.ndarray:
        """Legal actions of every copy's current state, ``(num_envs, n)`` 0/1 ``int8``."""
        return np.stack([self.env.legal_mask(e.require()[0]) for e in self.episodes])

    def _batch(self, observations: list[Any]) -> Any:
        self._observations = concatenate(self.single_observation_space, observations,
                                         self._observations)
        return self._observations

    @property
    def num_measurements(self) -> int:
        return self.env.evaluator.num_measurements

    def close_extras(self, **kwargs: Any) -> None:
        self.env.close()


def _load(entry_point: str) -> Callable[..., ArenaEnv[Any]]:
    module, _, name = entry_point.partition(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def make_vector(entry_point: str, num_envs: int = 1,
                autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
                **kwargs: Any) -> ArenaVectorEnv:
    """The vector environment of the environment class at ``entry_point`` made with ``kwargs``
    (what ``gym.make_vec`` calls for an optarena id)."""
    kwargs.pop("max_episode_steps", None)
    return ArenaVectorEnv(_load(entry_point)(**kwargs), num_envs, autoreset_mode)


def vector_entry_point(entry_point: str) -> Callable[..., ArenaVectorEnv]:
    """The ``vector_entry_point`` gymnasium registers for an optarena environment (the class
    is imported when a vector environment is made, not before)."""
    return functools.partial(make_vector, entry_point)


"""Episodes of an environment, restarted and stepped in batches: :class:`EpisodeRunner`.

An :class:`~optarena.envs.base.ArenaEnv` has one episode (``env.episode``); a vector environment
(:mod:`optarena.envs.vector`) has one per copy. Both restart and step their episodes through the
environment's runner (``env.runner``), which measures the new programs of a batch of episodes
together and makes the observations and ``info`` of the contract (:mod:`optarena.envs.contract`).
It also remembers the actions whose programs failed in a step, which the environment's
``transition`` and ``legal_mask`` then refuse.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import gymnasium as gym
import numpy as np

from optarena.envs.contract import SCORE_FLOOR, Failure, Outcome, Space, State, log_ratio
from optarena.envs.lru import LRU

if TYPE_CHECKING:
    from optarena.envs.base import ArenaEnv

S = TypeVar("S", bound=State)
StepResult = tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]
Extras = Callable[[Any, Outcome], dict[str, Any]]
"""Environment-specific ``info`` entries of a state and its outcome."""

START_TRIES = 32
"""Random starting states tried before a reset gives up (spaces with random starts)."""


@dataclass
class Episode(Generic[S]):
    """Where one episode is: its state and that state's outcome, its steps and its random
    generator (an environment has one episode; a vector environment one per copy)."""

    rng: np.random.Generator = field(default_factory=np.random.default_rng)
    state: S | None = None
    outcome: Outcome | None = None
    steps: int = 0

    def require(self) -> tuple[S, Outcome]:
        if self.state is None or self.outcome is None:
            raise gym.error.ResetNeeded("call reset() before using the environment")
        return self.state, self.outcome


class EpisodeRunner(Generic[S]):
    """Restarts and steps the episodes of one environment (see the module docstring)."""

    def __init__(self, env: ArenaEnv[S], *, problem: str | None, extras: Extras | None,
                 cache_size: int, tried_extras: Extras | None = None) -> None:
        """
        Args:
            env: the environment.
            problem: the problem every restart starts on (``None``: drawn with the episode's
                generator).
            extras: the environment's own ``info`` entries (none by default).
            cache_size: states whose failed actions are remembered.
            tried_extras: the environment's own ``info`` entries of a program a step tried
                and could not score, in place of the current state's ``extras`` (the peephole
                checker's verdict on a rejected rewrite).
        """
        self.env = env
        self.fixed_problem = problem
        self.extras = extras
        self.tried_extras = tried_extras
        self._failed: LRU[S, frozenset[int]] = LRU(cache_size)

    def restart(self, episodes: Sequence[Episode[S]], options: Sequence[Mapping[str, Any]]
                ) -> None:
        """Reset ``episodes``: to ``options["state"]``, else to a starting state of
        ``options["problem"]``, the fixed problem or one drawn with the episode's generator;
        the starting states are measured as one batch (random starts that fail are drawn
        again, up to :data:`START_TRIES` times). An episode has no state until its start is
        measured (one whose start the budget cannot pay for is left without:
        :class:`~optarena.envs.contract.BudgetExceeded`)."""
        env = self.env
        chosen: dict[int, S] = {}
        for index, (episode, option) in enumerate(zip(episodes, options, strict=True)):
            episode.steps, episode.state, episode.outcome = 0, None, None
            if "state" in option:
                chosen[index] = env.as_state(option["state"])
        reasons: dict[int, list[str]] = {i: [] for i in range(len(episodes))}
        waiting = list(range(len(episodes)))
        for _ in range(START_TRIES):
            for index in waiting:
                if index not in chosen or reasons[index]:
                    chosen[index] = self.draw_start(options[index].get("problem"),
                                                    episodes[index])
            outcomes = env.evaluate([chosen[i] for i in waiting])
            failed = []
            for index, outcome in zip(waiting, outcomes, strict=True):
                if outcome.ok:
                    episodes[index].state, episodes[index].outcome = chosen[index], outcome
                    continue
                reasons[index].append(_reason(outcome))
                if "state" in options[index]:
                    raise ValueError(f"options['state'] cannot be scored: {_reason(outcome)}")
                if not env.space.random_start:
                    raise RuntimeError(f"the start of {chosen[index].problem} cannot be scored: "
                                       f"{_reason(outcome)}")
                failed.append(index)
            waiting = failed
            if not waiting:
                return
        raise RuntimeError(f"no starting state could be scored in {START_TRIES} tries; last: "
                           f"{reasons[waiting[0]][-3:]}")

    def advance(self, episodes: Sequence[Episode[S]], successors: Sequence[S | str],
                actions: Sequence[int | None], what: Sequence[str | None] | None = None
                ) -> list[StepResult]:
        """One step of each episode to its successor (a string: why the step does not apply),
        the new programs measured as one batch. ``actions[i]``, if given, is masked in the
        episode's state from now on if its program fails; ``what[i]`` names a free-form move
        (a whole rewritten block) in messages."""
        env = self.env
        moves = [i for i, successor in enumerate(successors) if not isinstance(successor, str)]
        outcomes = dict(zip(moves, env.evaluate([successors[i] for i in moves]), strict=True))
        results = []
        for index, (episode, successor, action) in enumerate(
                zip(episodes, successors, actions, strict=True)):
            state, outcome = episode.require()
            episode.steps += 1
            reward, extra, tried = 0.0, {}, None
            new = outcomes.get(index)
            stopped = action is not None and action == env.stop_action_id
            if new is None:
                if not stopped:
                    extra["invalid_action"] = successor
            elif new.ok:
                reward = log_ratio(_score(outcome), _score(new))
                episode.state, episode.outcome = successor, new  # type: ignore[assignment]
            else:
                assert new.failure is not None
                if action is not None:
                    self._failed.put(state, self.failed(state) | {action})
                move = (what[index] if what else None) or action_text(
                    env.space, state, action if action is not None else -1)
                extra["invalid_action"] = f"{move} failed: {_reason(new)}"
                extra["failure"] = new.failure.to_json()
                if self.tried_extras is not None:
                    tried = self.tried_extras(successor, new)
            info = {**self.info(episode, extras=tried is None), **(tried or {}), **extra}
            terminated = stopped or not info["action_mask"][:env.space.n_actions].any()
            truncated = episode.steps >= env.max_steps
            results.append((self.observe(episode), reward, terminated, truncated, info))
        return results

    def failed(self, state: S) -> frozenset[int]:
        """The actions of ``state`` whose programs failed in a step."""
        return self._failed.get(state) or frozenset()

    def observe(self, episode: Episode[S]) -> dict[str, np.ndarray]:
        """The observation of an episode's current state."""
        state, outcome = episode.require()
        reference = self.env.reference_score(state.problem)
        progress = min(episode.steps / self.env.max_steps, 1.0)
        return self.env.space.observe(state, outcome, reference, progress)

    def info(self, episode: Episode[S], extras: bool = True) -> dict[str, Any]:
        """The ``info`` of an episode's current state (the keys of the contract, and the
        environment's ``extras`` unless not ``extras``)."""
        state, outcome = episode.require()
        score, reference = _score(outcome), self.env.reference_score(state.problem)
        info: dict[str, Any] = {
            "score": score,
            "improvement": reference / max(score, SCORE_FLOOR),
            "reference_score": reference,
            "state": state.to_json(),
            "action_mask": self.env.legal_mask(state),
            "num_measurements": self.env.evaluator.num_measurements,
        }
        if outcome.censored:
            info["censored"] = True
        if extras and self.extras is not None:
            info.update(self.extras(state, outcome))
        return info

    def pick_problem(self, problem: str | None, episode: Episode[S]) -> str:
        """``problem`` (checked), else the fixed problem, else one drawn with the episode's
        generator."""
        problems = self.env.space.problems()
        if problem is not None:
            if problem not in problems:
                raise ValueError(f"unknown problem {problem!r}; this environment's: "
                                 f"{list(problems)[:20]}")
            return problem
        if self.fixed_problem is not None:
            return self.fixed_problem
        return problems[int(episode.rng.integers(len(problems)))]

    def draw_start(self, problem: str | None, episode: Episode[S]) -> S:
        """A starting state of ``problem``, else of the fixed problem or one drawn with the
        episode's generator; a drawn problem or random start without a legal action is drawn
        again (see :mod:`optarena.envs.base`)."""
        space = self.env.space
        drawn = problem is None and self.fixed_problem is None
        for _ in range(START_TRIES):
            state = space.initial(self.pick_problem(problem, episode), episode.rng)
            if not (drawn or space.random_start) or space.legal_mask(state).any():
                break
        return state

    def problem_of(self, episode: Episode[S]) -> str:
        """The problem of an episode: its state's, else the fixed one, else the first."""
        if episode.state is not None:
            return episode.state.problem
        if self.fixed_problem is not None:
            return self.fixed_problem
        return self.env.space.problems()[0]


def action_text(space: Space[S], state: S, action: int) -> str:
    """How ``space`` describes ``action`` in ``state`` (``action N`` if it does not)."""
    described = (d["text"] for d in space.describe_actions(state) if d["id"] == action)
    return next(described, f"action {action}")


def _score(outcome: Outcome) -> float:
    assert outcome.score is not None
    return outcome.score


def _reason(outcome: Outcome) -> str:
    failure = outcome.failure or Failure("unknown", "no score")
    return f"{failure.kind}: {failure.detail}"

"""The gymnasium layer every optarena environment shares: :class:`ArenaEnv`.

It implements the contract of :mod:`optarena.envs.contract` once, over a space, a scorer and the
shared :class:`~optarena.envs.evaluator.Evaluator`. An environment subclasses it to build its
space and scorer from its constructor arguments and to add what only it has (the tensor
environment's crossover and export, the peephole environment's free-form rewrite).

``reset(seed=, options=)`` takes ``options={"problem": ID}`` (start on that problem),
``options={"state": STATE_OR_JSON}`` (start from that state); otherwise it starts on the
environment's fixed problem, or on one drawn with the seed.

**Every drawn start has a legal action.** A problem drawn with the seed, and a random start
(tensor schedules), with no legal action is drawn again (up to :data:`START_TRIES` times), so the
first ``action_mask`` of a default reset is never all zeros: MaskablePPO has an action to sample,
and no episode begins terminal (the shipped peephole corpus has blocks no rule applies to). A
start that is not drawn -- a fixed problem's, ``options["problem"]``'s or ``options["state"]`` --
is kept even without one: its mask is all zeros and the first step ends the episode
(``stop_action=True`` keeps the mask non-empty there too). Where the first draw has a legal
action (the splits hold only such problems) the draws are those of before.

``stop_action=True`` adds one action, the last (``stop_action_id``), always legal: it ends the
episode where it is (``terminated``, reward 0, nothing measured). A policy can then keep a good
program instead of being made to apply moves until none is left; search agents ignore it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from optarena.envs.contract import (
    SCORE_FLOOR,
    CostModel,
    Failure,
    Outcome,
    Scorer,
    Space,
    State,
    log_ratio,
)
from optarena.envs.evaluator import Evaluator
from optarena.envs.lru import LRU
from optarena.envs.store import Store, open_store

S = TypeVar("S", bound=State)
StepResult = tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]

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


class ArenaEnv(gym.Env[dict[str, np.ndarray], np.int64], Generic[S]):
    """One optimization game: a problem, its states and their measured scores."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"]}
    prompt_family: ClassVar[str] = "generic"
    """Which prompt templates (``optarena/llm/prompts/<family>.txt``) describe it to an LLM."""

    @classmethod
    def splits(cls) -> Sequence[Any]:
        """Its train/test splits (:class:`~optarena.envs.splits.Split`; none by default)."""
        return ()

    def __init__(self, space: Space[S], scorer: Scorer[S], *, problem: str | None = None,
                 max_steps: int = 32, stop_action: bool = False,
                 store: Store | str | Path | None = "default",
                 render_mode: str | None = None, cache_size: int = 1 << 16) -> None:
        """
        Args:
            space: states, transitions, masks, observations.
            scorer: how programs are built and scored.
            problem: the problem every reset starts on (``None``: drawn with the seed).
            max_steps: steps before an episode is truncated.
            stop_action: add the action that ends the episode (see the module docstring).
            store: the persistent measurement store (:mod:`~optarena.envs.store`): a path,
                ``"default"`` or ``None`` for none.
            render_mode: ``"ansi"`` or ``None``.
            cache_size: programs whose outcomes are kept in memory.
        """
        self.space = space
        self.scorer = scorer
        self.evaluator: Evaluator[S] = Evaluator(scorer, store=open_store(store),
                                                 cache_size=cache_size)
        if problem is not None and problem not in space.problems():
            raise ValueError(f"unknown problem {problem!r} for {type(self).__name__}")
        self.fixed_problem = problem
        self.max_steps = max_steps
        self.render_mode = render_mode
        self.stop_action_id: int | None = space.n_actions if stop_action else None
        self.action_space = spaces.Discrete(space.n_actions + int(stop_action))
        self.observation_space = space.observation_space
        self.episode: Episode[S] = Episode()
        self._failed: LRU[S, frozenset[int]] = LRU(cache_size)

    # ------------------------------------------------------------------ gymnasium API

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        self.episode.rng = self.np_random
        self.restart([self.episode], [options or {}])
        return self.observe(self.episode), self.info(self.episode)

    def step(self, action: int | np.integer) -> StepResult:
        return self.step_to(self.transition(self.get_state(), int(action)), action=int(action))

    def step_to(self, successor: S | str, what: str | None = None, action: int | None = None
                ) -> StepResult:
        """One step to ``successor`` (or, given a string, a step that does not apply for that
        reason). ``action``, if given, is masked in this state from now on if its program
        fails; ``what`` names a free-form move in messages. ``step`` is
        ``step_to(transition(...), action=...)``; environments with free-form moves (a whole
        rewritten block) call it directly."""
        return self.advance([self.episode], [successor], [action], [what])[0]

    # ------------------------------------------------------------------ episodes (batched)

    def restart(self, episodes: Sequence[Episode[S]], options: Sequence[Mapping[str, Any]]
                ) -> None:
        """Reset ``episodes``: to ``options["state"]``, else to a starting state of
        ``options["problem"]``, the fixed problem or one drawn with the episode's generator;
        the starting states are measured as one batch (random starts that fail are drawn
        again, up to :data:`START_TRIES` times)."""
        chosen: dict[int, S] = {}
        for index, (episode, option) in enumerate(zip(episodes, options, strict=True)):
            episode.steps = 0
            if "state" in option:
                chosen[index] = self.as_state(option["state"])
        reasons: dict[int, list[str]] = {i: [] for i in range(len(episodes))}
        waiting = list(range(len(episodes)))
        for _ in range(START_TRIES):
            for index in waiting:
                if index not in chosen or reasons[index]:
                    chosen[index] = self._draw_start(options[index].get("problem"),
                                                     episodes[index])
            outcomes = self.evaluate([chosen[i] for i in waiting])
            failed = []
            for index, outcome in zip(waiting, outcomes, strict=True):
                if outcome.ok:
                    episodes[index].state, episodes[index].outcome = chosen[index], outcome
                    continue
                reasons[index].append(_reason(outcome))
                if "state" in options[index]:
                    raise ValueError(f"options['state'] cannot be scored: {_reason(outcome)}")
                if not self.space.random_start:
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
        the new programs measured as one batch."""
        moves = [i for i, successor in enumerate(successors) if not isinstance(successor, str)]
        outcomes = dict(zip(moves, self.evaluate([successors[i] for i in moves]), strict=True))
        results = []
        for index, (episode, successor, action) in enumerate(
                zip(episodes, successors, actions, strict=True)):
            state, outcome = episode.require()
            episode.steps += 1
            reward, extra = 0.0, {}
            new = outcomes.get(index)
            stopped = action is not None and action == self.stop_action_id
            if new is None:
                if not stopped:
                    extra["invalid_action"] = successor
            elif new.ok:
                reward = log_ratio(_score(outcome), _score(new))
                episode.state, episode.outcome = successor, new  # type: ignore[assignment]
            else:
                assert new.failure is not None
                if action is not None:
                    self._mark_failed(state, action)
                move = (what[index] if what else None) or self._action_text(
                    state, action if action is not None else -1)
                extra["invalid_action"] = f"{move} failed: {_reason(new)}"
                extra["failure"] = new.failure.to_json()
            info = {**self.info(episode), **extra}
            terminated = stopped or not info["action_mask"][:self.space.n_actions].any()
            truncated = episode.steps >= self.max_steps
            results.append((self.observe(episode), reward, terminated, truncated, info))
        return results

    def observe(self, episode: Episode[S]) -> dict[str, np.ndarray]:
        """The observation of an episode's current state."""
        state, outcome = episode.require()
        reference = self.reference_score(state.problem)
        progress = min(episode.steps / self.max_steps, 1.0)
        return self.space.observe(state, outcome, reference, progress)

    def info(self, episode: Episode[S]) -> dict[str, Any]:
        """The ``info`` of an episode's current state (the keys of the contract)."""
        state, outcome = episode.require()
        score, reference = _score(outcome), self.reference_score(state.problem)
        info: dict[str, Any] = {
            "score": score,
            "improvement": reference / max(score, SCORE_FLOOR),
            "reference_score": reference,
            "state": state.to_json(),
            "action_mask": self.legal_mask(state),
            "num_measurements": self.num_measurements,
        }
        if outcome.censored:
            info["censored"] = True
        return {**info, **self._extras(state, outcome)}

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        state, outcome = self.episode.require()
        return f"{state.problem}: {self.format_score(_score(outcome))}\n" \
               f"{self.program_text(state)}"

    def close(self) -> None:
        self.scorer.close()
        if self.evaluator.store is not None:
            self.evaluator.store.close()

    # ------------------------------------------------------------------ the contract

    def get_state(self) -> S:
        """The current state (immutable and hashable: store it, branch from it)."""
        return self.episode.require()[0]

    def set_state(self, state: S | Mapping[str, Any]) -> dict[str, Any]:
        """Jump to ``state`` (a state or its JSON), scoring it unless its program is known;
        returns its ``info``. ``ValueError`` (and no change) if it is not a state of this
        environment or its program fails."""
        target = self.as_state(state)
        (outcome,) = self.evaluate([target])
        if not outcome.ok:
            raise ValueError(f"cannot move to a state whose program failed: {_reason(outcome)}")
        self.episode.state, self.episode.outcome = target, outcome
        return self.info(self.episode)

    def transition(self, state: S, action: int) -> S | str:
        """The successor of ``state`` under ``action``, or why there is none; measures nothing."""
        if action == self.stop_action_id:
            return "stop: the episode ends here"
        if action in (self._failed.get(state) or ()):
            return f"{self._action_text(state, action)}: its program failed before"
        return self.space.transition(state, action)

    def legal_mask(self, state: S | None = None) -> np.ndarray:
        """Legal actions of ``state`` (default: the current one), as 0/1 ``int8``."""
        state = self.get_state() if state is None else state
        mask = self.space.legal_mask(state)
        failed = self._failed.get(state)
        if failed or self.stop_action_id is not None:
            mask = np.append(mask, np.int8(1)) if self.stop_action_id is not None else mask.copy()
            mask[list(failed or ())] = 0
        return mask

    def action_masks(self) -> np.ndarray:
        """Legal actions of the current state (MaskablePPO's name)."""
        return self.legal_mask()

    def evaluate(self, states: Sequence[S], *, fresh: bool = False) -> list[Outcome]:
        """The outcome of each state's program (a batch; known programs are free)."""
        return self.evaluator.evaluate(states, fresh=fresh)

    def unmeasured(self, states: Sequence[S]) -> list[bool]:
        """Whether evaluating ``states`` as one batch would measure each one (a state whose
        program is known, or an earlier state's, is free and fills no budget)."""
        return self.evaluator.unmeasured(states)

    def estimate(self, states: Sequence[S]) -> np.ndarray:
        """Estimated scores from the environment's cost model, counted in
        ``num_cost_model_calls``, not in measurements. ``NotImplementedError`` without one."""
        if not isinstance(self.scorer, CostModel) or not self.scorer.has_cost_model:
            raise NotImplementedError(f"{type(self).__name__} has no cost model with these "
                                      "settings")
        return self.scorer.estimate(states)

    @property
    def has_cost_model(self) -> bool:
        return isinstance(self.scorer, CostModel) and self.scorer.has_cost_model

    @property
    def num_measurements(self) -> int:
        return self.evaluator.num_measurements

    @property
    def num_censored(self) -> int:
        """Measurements stopped early (their scores are estimates, never bests)."""
        return self.evaluator.num_censored

    @property
    def failures(self) -> Mapping[str, int]:
        """Measurements that failed, by kind (a copy)."""
        return dict(self.evaluator.failures)

    def initial_state(self, rng: np.random.Generator, problem: str | None = None) -> S:
        """A starting state of ``problem`` (default: the current one), drawn with ``rng``
        where starts are random; measures nothing (``reset`` is this, measured)."""
        return self.space.initial(problem or self._current_problem(), rng)

    @property
    def num_cost_model_calls(self) -> int:
        return self.scorer.num_cost_model_calls if isinstance(self.scorer, CostModel) else 0

    def state_from_json(self, data: Mapping[str, Any]) -> S:
        return self.space.state_from_json(data)

    def as_state(self, state: S | Mapping[str, Any]) -> S:
        """The canonical state ``state`` (a state or its JSON) names; ``ValueError`` saying why
        when it is not a state of this environment."""
        try:
            given = self.space.state_from_json(state) if isinstance(state, Mapping) else state
            return self.space.canonical(given)
        except (KeyError, TypeError, AttributeError) as err:
            raise ValueError(f"not a state of {type(self).__name__}: {err!r}") from err

    def export(self, state: S, directory: str | Path) -> list[Path]:
        """Write what a user needs to reuse ``state`` into ``directory``: ``state.json`` (the
        state, its score and the problem) and the environment's own forms of the program."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        (outcome,) = self.evaluate([state])
        path = out / "state.json"
        path.write_text(json.dumps({"state": state.to_json(), "score": outcome.score,
                                    "problem": self.problem()}, indent=1, default=str))
        return [path]

    def problem(self, anchors: bool = True) -> dict[str, Any]:
        """What the current problem's scores are measured on (for results and submissions):
        ``workload`` and ``workload_hash``, the scorer's settings, ``reference_score`` and named
        ``anchors`` (scores of well-known alternatives such as ``-O3``; without them if not
        ``anchors``: a verifier needs none, and timing them is most of a tensor problem's cost)."""
        problem = self._current_problem()
        record = {"workload": problem, **self.scorer.context(problem),
                  "reference_score": self.reference_score(problem),
                  "deterministic": self.scorer.deterministic}
        return {**record, "anchors": self.scorer.anchors(problem)} if anchors else record

    def reference_score(self, problem: str | None = None) -> float:
        return _score(self.evaluator.reference(problem or self._current_problem()))

    def describe_actions(self, state: S | None = None) -> list[dict[str, Any]]:
        """The legal actions of ``state`` (default: the current one) as ``{"id", "text", ...}``."""
        state = self.get_state() if state is None else state
        mask = self.legal_mask(state)
        stop = [] if self.stop_action_id is None else \
            [{"id": self.stop_action_id, "text": "stop: keep this program and end the episode"}]
        return [d for d in self.space.describe_actions(state) if mask[d["id"]]] + stop

    def program_text(self, state: S, full: bool = False) -> str:
        """The state's program for a prompt or a log (``full``: the whole program)."""
        return str(state.to_json())

    def target_text(self) -> str:
        """Where scores are measured, in words (for prompts)."""
        return type(self).__name__

    def format_score(self, score: float) -> str:
        return f"{score:.6g}"

    # ------------------------------------------------------------------ helpers


    def _pick_problem(self, problem: str | None, episode: Episode[S]) -> str:
        problems = self.space.problems()
        if problem is not None:
            if problem not in problems:
                raise ValueError(f"unknown problem {problem!r}; this environment's: "
                                 f"{list(problems)[:20]}")
            return problem
        if self.fixed_problem is not None:
            return self.fixed_problem
        return problems[int(episode.rng.integers(len(problems)))]

    def _draw_start(self, problem: str | None, episode: Episode[S]) -> S:
        """A starting state of ``problem``, else of the fixed problem or one drawn with the
        episode's generator; a drawn problem or random start without a legal action is drawn
        again (see the module docstring)."""
        drawn = problem is None and self.fixed_problem is None
        for _ in range(START_TRIES):
            state = self.space.initial(self._pick_problem(problem, episode), episode.rng)
            if not (drawn or self.space.random_start) or self.space.legal_mask(state).any():
                break
        return state

    def _current_problem(self) -> str:
        if self.episode.state is not None:
            return self.episode.state.problem
        if self.fixed_problem is not None:
            return self.fixed_problem
        return self.space.problems()[0]

    def _mark_failed(self, state: S, action: int) -> None:
        self._failed.put(state, frozenset({*(self._failed.get(state) or ()), action}))

    def _action_text(self, state: S, action: int) -> str:
        described = (d["text"] for d in self.space.describe_actions(state) if d["id"] == action)
        return next(described, f"action {action}")

    def _extras(self, state: S, outcome: Outcome) -> dict[str, Any]:
        """Environment-specific ``info`` entries (documented by each environment)."""
        return {}


def _score(outcome: Outcome) -> float:
    assert outcome.score is not None
    return outcome.score


def _reason(outcome: Outcome) -> str:
    failure = outcome.failure or Failure("unknown", "no score")
    return f"{failure.kind}: {failure.detail}"



"""The gymnasium layer every optarena environment shares: :class:`ArenaEnv`.

It implements the contract of :mod:`optarena.envs.contract` once, over a space, a scorer and the
shared :class:`~optarena.envs.evaluator.Evaluator`: the search oracle
(:class:`~optarena.envs.contract.SearchOracle`) and the presentation
(:class:`~optarena.envs.contract.Presentation`), with gymnasium's episodes, which its runner
(:class:`~optarena.envs.episodes.EpisodeRunner`) restarts and steps. An environment subclasses it
to build its space and scorer from its constructor arguments and to add what only it has (the
tensor environment's crossover and export, the peephole environment's free-form rewrite).

``reset(seed=, options=)`` takes ``options={"problem": ID}`` (start on that problem),
``options={"state": STATE_OR_JSON}`` (start from that state); otherwise it starts on the
environment's fixed problem, or on one drawn with the seed.

**Every drawn start has a legal action.** A problem drawn with the seed, and a random start
(tensor schedules), with no legal action is drawn again (up to
:data:`~optarena.envs.episodes.START_TRIES` times), so the first ``action_mask`` of a default
reset is never all zeros: MaskablePPO has an action to sample, and no episode begins terminal
(the shipped peephole corpus has blocks no rule applies to). A start that is not drawn -- a fixed
problem's, ``options["problem"]``'s or ``options["state"]`` -- is kept even without one: its
mask is all zeros and the first step ends the episode (``stop_action=True`` keeps the mask
non-empty there too). Where the first draw has a legal action (the splits hold only such
problems) the draws are those of before.

``stop_action=True`` adds one action, the last (``stop_action_id``), always legal: it ends the
episode where it is (``terminated``, reward 0, nothing measured). A policy can then keep a good
program instead of being made to apply moves until none is left; search agents ignore it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from optarena.envs.contract import CostModel, Outcome, Scorer, Space, State
from optarena.envs.episodes import Episode, EpisodeRunner, Extras, StepResult, action_text
from optarena.envs.evaluator import Evaluator
from optarena.envs.store import Store

S = TypeVar("S", bound=State)


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
                 render_mode: str | None = None, cache_size: int = 1 << 16,
                 info_extras: Extras | None = None, tried_extras: Extras | None = None) -> None:
        """
        Args:
            space: states, transitions, masks, observations.
            scorer: how programs are built and scored.
            problem: the problem every reset starts on (``None``: drawn with the seed).
            max_steps: steps before an episode is truncated.
            stop_action: add the action that ends the episode (see the module docstring).
            store: the persistent measurement store (:mod:`~optarena.envs.store`): a path,
                ``"default"`` or ``None`` for none; the evaluator opens it.
            render_mode: ``"ansi"`` or ``None``.
            cache_size: programs whose outcomes are kept in memory.
            info_extras: the environment's own ``info`` entries of a state and its outcome.
            tried_extras: its ``info`` entries of a program a step tried and could not score,
                in place of the current state's (:class:`~optarena.envs.episodes.EpisodeRunner`).
        """
        if problem is not None and problem not in space.problems():
            raise ValueError(f"unknown problem {problem!r} for {type(self).__name__}")
        self.space = space
        self.scorer = scorer
        self.evaluator: Evaluator[S] = Evaluator(scorer, store=store, cache_size=cache_size)
        self.has_cost_model = isinstance(scorer, CostModel) and scorer.has_cost_model
        """Whether :meth:`estimate` works with these settings (the oracle's)."""
        self.max_steps = max_steps
        self.render_mode = render_mode
        self.stop_action_id: int | None = space.n_actions if stop_action else None
        self.action_space = spaces.Discrete(space.n_actions + int(stop_action))
        self.observation_space = space.observation_space
        self.episode: Episode[S] = Episode()
        self.runner: EpisodeRunner[S] = EpisodeRunner(self, problem=problem, extras=info_extras,
                                                      cache_size=cache_size,
                                                      tried_extras=tried_extras)

    # ------------------------------------------------------------------ gymnasium API

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        self.episode.rng = self.np_random
        self.runner.restart([self.episode], [options or {}])
        return self.runner.observe(self.episode), self.runner.info(self.episode)

    def step(self, action: int | np.integer) -> StepResult:
        successor = self.transition(self.get_state(), int(action))
        return self.runner.advance([self.episode], [successor], [int(action)])[0]

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        state, outcome = self.episode.require()
        assert outcome.score is not None
        return f"{state.problem}: {self.format_score(outcome.score)}\n" \
               f"{self.program_text(state)}"

    def close(self) -> None:
        self.evaluator.close()

    # ------------------------------------------------------------------ the search oracle

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
            assert outcome.failure is not None
            raise ValueError("cannot move to a state whose program failed: "
                             f"{outcome.failure.kind}: {outcome.failure.detail}")
        self.episode.state, self.episode.outcome = target, outcome
        return self.runner.info(self.episode)

    def initial_state(self, rng: np.random.Generator, problem: str | None = None) -> S:
        """A starting state of ``problem`` (default: the current one), drawn with ``rng``
        where starts are random; measures nothing (``reset`` is this, measured)."""
        return self.space.initial(problem or self.runner.problem_of(self.episode), rng)

    def as_state(self, state: S | Mapping[str, Any]) -> S:
        """The canonical state ``state`` (a state or its JSON) names; ``ValueError`` saying why
        when it is not a state of this environment."""
        try:
            given = self.space.state_from_json(state) if isinstance(state, Mapping) else state
            return self.space.canonical(given)
        except (KeyError, TypeError, AttributeError) as err:
            raise ValueError(f"not a state of {type(self).__name__}: {err!r}") from err

    def transition(self, state: S, action: int) -> S | str:
        """The successor of ``state`` under ``action``, or why there is none; measures nothing."""
        if action == self.stop_action_id:
            return "stop: the episode ends here"
        if action in self.runner.failed(state):
            return f"{action_text(self.space, state, action)}: its program failed before"
        return self.space.transition(state, action)

    def legal_mask(self, state: S | None = None) -> np.ndarray:
        """Legal actions of ``state`` (default: the current one), as 0/1 ``int8``."""
        state = self.get_state() if state is None else state
        mask = self.space.legal_mask(state)
        failed = self.runner.failed(state)
        if failed or self.stop_action_id is not None:
            mask = np.append(mask, np.int8(1)) if self.stop_action_id is not None else mask.copy()
            mask[list(failed)] = 0
        return mask

    action_masks = legal_mask
    """``action_masks()``: the legal actions of the current state (MaskablePPO's name)."""

    def evaluate(self, states: Sequence[S], *, fresh: bool = False) -> list[Outcome]:
        """The outcome of each state's program (a batch; known programs are free);
        :class:`~optarena.envs.contract.BudgetExceeded`, and nothing measured, if it needs more
        measurements than the evaluator's budget has left."""
        return self.evaluator.evaluate(states, fresh=fresh)

    def unmeasured(self, states: Sequence[S]) -> list[bool]:
        """Whether evaluating ``states`` as one batch would measure each one (a state whose
        program is known, or an earlier state's, is free and fills no budget)."""
        return self.evaluator.unmeasured(states)

    def estimate(self, states: Sequence[S]) -> np.ndarray:
        """Estimated scores from the environment's cost model, counted in
        ``evaluator.num_cost_model_calls``, not in measurements. ``NotImplementedError``
        without one."""
        if not self.has_cost_model:
            raise NotImplementedError(f"{type(self).__name__} has no cost model with these "
                                      "settings")
        assert isinstance(self.scorer, CostModel)
        return self.scorer.estimate(states)

    def problem(self, anchors: bool = True) -> dict[str, Any]:
        """What the current problem's scores are measured on (for results and submissions):
        ``workload`` and ``workload_hash``, the scorer's settings, ``reference_score`` and named
        ``anchors`` (scores of well-known alternatives such as ``-O3``; without them if not
        ``anchors``: a verifier needs none, and timing them is most of a tensor problem's cost)."""
        problem = self.runner.problem_of(self.episode)
        record = {"workload": problem, **self.scorer.context(problem),
                  "reference_score": self.reference_score(problem),
                  "deterministic": self.scorer.deterministic}
        if not anchors:
            return record
        return {**record, "anchors": {name: outcome.score for name, outcome
                                      in self.evaluator.anchors(problem).items()
                                      if outcome.score is not None}}

    def reference_score(self, problem: str | None = None) -> float:
        outcome = self.evaluator.reference(problem or self.runner.problem_of(self.episode))
        assert outcome.score is not None
        return outcome.score

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

    # ------------------------------------------------------------------ the presentation

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

"""The evaluation engine every environment shares.

An :class:`Evaluator` scores states through an environment's :class:`~optarena.envs.contract.Scorer`
and owns what every environment used to do its own way:

* **the definition and count of a measurement**: a distinct program scored, failures included,
  the reference and the anchors excluded. ``num_measurements`` counts them. A program is
  identified by its problem and its :attr:`~optarena.envs.contract.Program.key`: two states that
  build the same program are one measurement.
* **the budget**: a hard cap on measurements, set by whoever runs a search (:meth:`set_budget`:
  the agents' :class:`~optarena.agents.base.Tracker`, the PPO agent's vector environment through
  it). A batch that would measure more than is :attr:`left` raises
  :class:`~optarena.envs.contract.BudgetExceeded` before anything of it is measured: nothing is
  cut silently, and no search can spend more than it was given. Whatever counts as a measurement
  counts against it (store hits included); what is free is free (repeats, the reference, the
  anchors). Measurements made outside the evaluator, by a tuner's own runner (stock
  MetaSchedule's trials), are counted against it with :meth:`charge`. A run may also be given
  wall-clock (:meth:`set_deadline`, seconds per run, as CompilerGym's leaderboard budgets its
  searches), counted from the search's start (its budget being set, when its ``wall_s`` starts
  too: loading a policy or a model before is not search): once it has passed, :attr:`left` is 0
  and the search stops where it next reads it; a batch asked for before it reads so is still
  measured (the deadline never fails a batch).
* **the cache**: outcomes by program, bounded (least recently used first out); a hit is free. A
  program evicted and asked for again is measured, and counted, again.
* **the store** (optional): results kept across processes and runs (:mod:`~optarena.envs.store`),
  which only the evaluator reads or writes. A program the store knows is not measured again but
  still *counts* (it saves wall-clock, not samples), so budgets mean the same with and without a
  store. The store also keeps the references, a scorer's timed anchors
  (:class:`~optarena.envs.contract.StoredAnchors`) and the data a scorer prepares once per problem
  (:class:`~optarena.envs.contract.Prepared`: the tensor environment's reference outputs), so that
  no scorer or worker process opens it.
* **failure records**: ``failures`` counts failed programs by kind.
* **the bound**: the best score seen of each problem goes to the scorer with every batch, so that
  a scorer that can (the tensor environment) stops timing a clearly slower candidate early. Its
  outcome is *censored*: its score is an estimate, flagged, never a best, not stored.
* **references and anchors**: each problem's reference program is scored once and never counted
  (a state whose program is the reference, such as an unmodified block, is free); its anchors
  (well-known alternatives such as ``-O3``) are asked for once and never counted.

``evaluate(states)`` takes a batch: the misses are handed to the scorer together, which may build
them in parallel (the tensor environment) or score them in one tool call (the peephole
environment).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Generic, Protocol, TypeVar, runtime_checkable

from optarena.envs.contract import (
    BudgetExceeded,
    BuildsTogether,
    CostModel,
    Failure,
    Outcome,
    Prepared,
    Program,
    Scorer,
    State,
    StoredAnchors,
)
from optarena.envs.lru import LRU
from optarena.envs.store import Store, open_store

S = TypeVar("S", bound=State)
ANCHOR = "anchor:"
"""The prefix of an anchor's key in the store (``anchor:NAME``)."""


@runtime_checkable
class Learner(Protocol):
    """A scorer that learns from every counted measurement (a cost model)."""

    def learn(self, programs: Sequence[Program], outcomes: Sequence[Outcome]) -> None: ...


class Evaluator(Generic[S]):
    """Cached, counted, budgeted, batched scoring of states (see the module docstring)."""

    def __init__(self, scorer: Scorer[S], *, store: Store | str | Path | None = None,
                 cache_size: int = 1 << 16, programs_kept: int = 256) -> None:
        """
        Args:
            scorer: how programs are built and scored.
            store: the measurement store: a store, a path, ``"default"`` or ``None`` (none).
            cache_size: programs whose outcomes are kept in memory.
            programs_kept: built programs kept for scoring.
        """
        self.scorer = scorer
        self.store = open_store(store)
        self.num_measurements = 0
        self.store_hits = 0
        """Of the measurements, those the store answered (no program was run for them)."""
        self.num_censored = 0
        """Of the measurements, those stopped early (censored: estimates, never bests)."""
        self.failures: Counter[str] = Counter()
        self.budget: int | None = None
        """Measurements allowed since :meth:`set_budget` (``None``: no limit)."""
        self._budget_start = 0
        self.seconds: float | None = None
        """Wall-clock each search is given (:meth:`set_deadline`)."""
        self.deadline: float | None = None
        """``time.monotonic()`` after which :attr:`left` is 0."""
        self._keys: LRU[S, str | Failure] = LRU(cache_size)
        self._programs: LRU[S, Program] = LRU(programs_kept)
        self._outcomes: LRU[tuple[str, str], Outcome] = LRU(cache_size)
        self._paid: set[tuple[str, str]] = set()
        self._references: dict[str, Outcome] = {}
        self._anchors: dict[str, dict[str, Outcome]] = {}
        self._prepared: set[str] = set()
        self._contexts: dict[str, str] = {}
        self.best: dict[str, float] = {}
        """The best (lowest, uncensored) score seen of each problem: the bound that lets a
        scorer stop measuring a hopeless candidate early."""

    # ------------------------------------------------------------------ the budget

    def set_budget(self, measurements: int | None) -> None:
        """Allow at most ``measurements`` measurements from now on; ``None`` lifts the limit
        (:attr:`used` goes on counting from the last budget set). A budget starts a search: its
        wall-clock (:meth:`set_deadline`) runs from now."""
        if measurements is not None and measurements < 0:
            raise ValueError(f"a budget counts measurements: at least 0, not {measurements}")
        if measurements is not None:
            self._budget_start = self.num_measurements
            self.set_deadline(self.seconds)
        self.budget = measurements

    @property
    def used(self) -> int:
        """Measurements made since a budget was last set (since the start without one)."""
        return self.num_measurements - self._budget_start

    def set_deadline(self, seconds: float | None) -> None:
        """Give searches ``seconds`` of wall-clock (``None``: no limit): from now, and each
        search started later (:meth:`set_budget`) from its start; afterwards :attr:`left` is
        0."""
        if seconds is not None and seconds <= 0:
            raise ValueError(f"a deadline is a positive number of seconds, not {seconds}")
        self.seconds = seconds
        self.deadline = None if seconds is None else time.monotonic() + seconds

    @property
    def left(self) -> int | None:
        """Measurements the search may still ask for: what the budget has left (``None``: no
        budget), 0 once the deadline has passed."""
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return 0
        return self._count_left

    @property
    def _count_left(self) -> int | None:
        return None if self.budget is None else self.budget - self.used

    def _spend(self, asked: int) -> None:
        """Refuse ``asked`` more measurements than the budget has left (the deadline refuses
        nothing: a batch asked for just after it is measured)."""
        left = self._count_left
        if left is not None and asked > left:
            assert self.budget is not None
            raise BudgetExceeded(self.budget, self.used, asked)

    def charge(self, measurements: int, *, failures: Mapping[str, int] | None = None,
               states: Sequence[S] = ()) -> None:
        """Count ``measurements`` made outside the evaluator (a tuner's own builder and runner:
        stock MetaSchedule's trials), ``failures`` among them by kind, against the budget
        (:class:`~optarena.envs.contract.BudgetExceeded`, and nothing counted, if they are more
        than it has left). ``states`` are the states whose programs they measured: evaluating
        one of them afterwards (to score it the evaluator's way) measures it without counting
        it again."""
        self._spend(measurements)
        self.num_measurements += measurements
        self.failures.update(failures or {})
        for state in states:
            key = self.key(state)
            if not isinstance(key, Failure) and self.cached(state) is None:
                self._paid.add((state.problem, key))

    # ------------------------------------------------------------------ scoring

    def key(self, state: S) -> str | Failure:
        """The key of ``state``'s program, or why it cannot be built (cached)."""
        known = self._keys.get(state)
        if known is None:
            built = self._compile(state)
            known = built if isinstance(built, Failure) else built.key
        return known

    def _compile(self, state: S) -> Program | Failure:
        """Build ``state``'s program (the last few built are kept for scoring)."""
        return self._built(state, self._programs.get(state) or self.scorer.compile(state))

    def build(self, states: Sequence[S]) -> None:
        """Build the programs of those ``states`` whose key is not known, together where the
        scorer can (:class:`~optarena.envs.contract.BuildsTogether`); measures nothing. A batch
        is built so before it is evaluated; call it first where the keys of a batch are asked
        one state at a time."""
        new = [s for s in dict.fromkeys(states) if self._keys.get(s) is None]
        if len(new) > 1 and isinstance(self.scorer, BuildsTogether):
            for state, built in zip(new, self.scorer.compile_many(new), strict=True):
                self._built(state, built)

    def _built(self, state: S, built: Program | Failure) -> Program | Failure:
        """Keep what building ``state`` gave: its key, and a program for scoring."""
        if isinstance(built, Program):
            self._programs.put(state, built)
            self._keys.put(state, built.key)
        else:
            self._keys.put(state, built)
        return built

    def cached(self, state: S) -> Outcome | None:
        """The outcome of ``state``'s program if it is known (free), else ``None``. A program
        that cannot be built is known to fail."""
        key = self.key(state)
        if isinstance(key, Failure):
            return Outcome(None, key)
        return self._outcomes.get((state.problem, key))

    def unmeasured(self, states: Sequence[S]) -> list[bool]:
        """Whether evaluating ``states`` as one batch would measure and count each one: its
        program builds, is not known (measured, or the reference), nor paid for (:meth:`charge`)
        and is not an earlier state's in the list. Nothing is measured but the problem's
        reference, which any evaluation measures first."""
        self._references_of(states)
        answers, listed = [], set()
        for state in states:
            program = (state.problem, self.key(state))
            new = self.cached(state) is None and program not in listed \
                and program not in self._paid
            if new:
                listed.add(program)
            answers.append(new)
        return answers

    def evaluate(self, states: Sequence[S], *, fresh: bool = False) -> list[Outcome]:
        """The outcome of each state's program: from the cache, else scored (one batch).
        :class:`~optarena.envs.contract.BudgetExceeded`, and nothing measured, if the batch
        needs more measurements than the budget has left.

        ``fresh``: score every program again, whatever is known (verification); still counted.
        """
        self._references_of(states)
        self.build(states)
        results: list[Outcome | None] = [None] * len(states)
        todo: dict[tuple[str, str], tuple[Program, list[int]]] = {}
        for index, state in enumerate(states):
            known = None if fresh else self.cached(state)
            if known is not None:
                results[index] = known
                continue
            built = self._compile(state)
            if isinstance(built, Failure):
                results[index] = Outcome(None, built)
                continue
            todo.setdefault((state.problem, built.key), (built, []))[1].append(index)
        if todo:
            self._spend(sum(program not in self._paid for program in todo))
            programs = [program for program, _ in todo.values()]
            for (_, indices), outcome in zip(todo.values(), self._measure(programs, fresh),
                                             strict=True):
                for index in indices:
                    results[index] = outcome
        return [r for r in results if r is not None]

    def _references_of(self, states: Sequence[S]) -> None:
        """Score the references of ``states``' problems first: a state whose program is the
        reference is then known, and free."""
        for problem in dict.fromkeys(state.problem for state in states):
            self.reference(problem)

    def context(self, problem: str) -> str | None:
        """The store's hash of ``problem``'s context (``None`` without a store)."""
        if self.store is None:
            return None
        if problem not in self._contexts:
            self._contexts[problem] = self.store.context(
                {"scorer": type(self.scorer).__qualname__, "problem": problem,
                 **self.scorer.context(problem)})
        return self._contexts[problem]

    def _measure(self, programs: list[Program], fresh: bool) -> list[Outcome]:
        """Outcomes of programs not in the cache: from the store, else scored (one batch).
        Every one counts as a measurement, but those paid for already (:meth:`charge`)."""
        found: list[Outcome | None] = [None] * len(programs)
        if self.store is not None and not fresh:
            for index, program in enumerate(programs):
                context = self.context(program.problem)
                assert context is not None
                found[index] = self.store.get(context, program.key)
        missing = [i for i, outcome in enumerate(found) if outcome is None]
        for problem in dict.fromkeys(programs[i].problem for i in missing):
            self._prepare(problem)
        bounds = [None if fresh else self.best.get(programs[i].problem) for i in missing]
        scored = self.scorer.score([programs[i] for i in missing], bounds) if missing else []
        for index, outcome in zip(missing, scored, strict=True):
            found[index] = outcome
            if self.store is not None and not fresh and not outcome.censored:
                context = self.context(programs[index].problem)
                assert context is not None
                self.store.put(context, programs[index].key, outcome)
        outcomes = [o for o in found if o is not None]
        scored_here = set(missing)
        for index, (program, outcome) in enumerate(zip(programs, outcomes, strict=True)):
            self._outcomes.put((program.problem, program.key), outcome)
            self._remember_best(program.problem, outcome)
            if (program.problem, program.key) in self._paid:
                self._paid.discard((program.problem, program.key))
                continue
            self.num_measurements += 1
            self.store_hits += index not in scored_here
            self.num_censored += outcome.censored
            if outcome.failure is not None:
                self.failures[outcome.failure.kind] += 1
        if isinstance(self.scorer, Learner):
            self.scorer.learn(programs, outcomes)
        return outcomes

    def _remember_best(self, problem: str, outcome: Outcome) -> None:
        if outcome.score is not None and not outcome.censored \
                and outcome.score < self.best.get(problem, float("inf")):
            self.best[problem] = outcome.score

    def _prepare(self, problem: str) -> None:
        """Before the scorer scores anything of ``problem``: its data prepared once, from the
        store or computed (and then stored), where the scorer needs some
        (:class:`~optarena.envs.contract.Prepared`)."""
        if problem in self._prepared or not isinstance(self.scorer, Prepared):
            return
        key = self.scorer.preparation_key(problem)
        kept = None if self.store is None else self.store.get_arrays(key)
        data = self.scorer.prepare(problem, kept)
        if kept is None and self.store is not None:
            self.store.put_arrays(key, data)
        self._prepared.add(problem)

    # ------------------------------------------------------------------ what is never counted

    def reference(self, problem: str) -> Outcome:
        """The problem's reference outcome: scored once, never counted; ``RuntimeError`` if it
        fails (the environment cannot score anything relative to it)."""
        known = self._references.get(problem)
        if known is None:
            program = self.scorer.reference(problem)
            context = self.context(problem)
            stored = None if self.store is None or context is None \
                else self.store.get(context, program.key)
            if stored is None:
                self._prepare(problem)
                (known,) = self.scorer.score([program], [None])
                if self.store is not None and context is not None:
                    self.store.put(context, program.key, known)
            else:
                known = stored
            if not known.ok:
                assert known.failure is not None
                raise RuntimeError(f"the reference program of {problem} failed "
                                   f"({known.failure.kind}): {known.failure.detail}")
            self._references[problem] = known
            self._outcomes.put((problem, program.key), known)
        return known

    def anchors(self, problem: str) -> dict[str, Outcome]:
        """The outcomes of ``problem``'s anchors (:meth:`~optarena.envs.contract.Scorer.anchors`):
        asked for once, never counted. A scorer's timed anchors
        (:class:`~optarena.envs.contract.StoredAnchors`) are kept in the store, those that
        succeed (a failure may be the machine's of the moment: the next run tries again)."""
        known = self._anchors.get(problem)
        if known is None:
            self._prepare(problem)
            if not isinstance(self.scorer, StoredAnchors):
                known = self.scorer.anchors(problem)
            elif self.store is None:
                known = self.scorer.anchors(problem, {})
            else:
                context = self.store.context(
                    {"scorer": f"{type(self.scorer).__qualname__}.anchors", "problem": problem,
                     **self.scorer.context(problem), **self.scorer.anchor_context(problem)})
                kept = {key.removeprefix(ANCHOR): outcome for key in self.store.keys(context)
                        if (outcome := self.store.get(context, key)) is not None}
                known = self.scorer.anchors(problem, kept)
                for name, outcome in known.items():
                    if name not in kept and outcome.ok:
                        self.store.put(context, ANCHOR + name, outcome)
            self._anchors[problem] = known
        return known

    # ------------------------------------------------------------------ the cost model

    @property
    def num_cost_model_calls(self) -> int:
        """Estimates asked of the scorer's cost model (not measurements)."""
        return self.scorer.num_cost_model_calls if isinstance(self.scorer, CostModel) else 0

    def close(self) -> None:
        """Close the scorer and the store."""
        self.scorer.close()
        if self.store is not None:
            self.store.close()

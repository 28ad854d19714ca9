"""The evaluation engine every environment shares.

An :class:`Evaluator` scores states through an environment's :class:`~optarena.envs.contract.Scorer`
and owns what every environment used to do its own way:

* **the definition and count of a measurement**: a distinct program scored, failures included,
  the reference excluded. ``num_measurements`` counts them. A program is identified by its problem
  and its :attr:`~optarena.envs.contract.Program.key`: two states that build the same program are
  one measurement.
* **the cache**: outcomes by program, bounded (least recently used first out); a hit is free. A
  program evicted and asked for again is measured, and counted, again.
* **the store** (optional): results kept across processes and runs (:mod:`~optarena.envs.store`).
  A program the store knows is not measured again but still *counts* (it saves wall-clock, not
  samples), so budgets mean the same with and without a store.
* **failure records**: ``failures`` counts failed programs by kind.
* **the bound**: the best score seen of each problem goes to the scorer with every batch, so that
  a scorer that can (the tensor environment) stops timing a clearly slower candidate early. Its
  outcome is *censored*: its score is an estimate, flagged, never a best, not stored.
* **references**: each problem's reference program is scored once and never counted (a state
  whose program is the reference, such as an unmodified block, is free).

``evaluate(states)`` takes a batch: the misses are handed to the scorer together, which may build
them in parallel (the tensor environment) or score them in one tool call (the peephole
environment).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from optarena.envs.contract import Failure, Outcome, Program, Scorer, State
from optarena.envs.lru import LRU
from optarena.envs.store import Store

S = TypeVar("S", bound=State)


@runtime_checkable
class Learner(Protocol):
    """A scorer that learns from every counted measurement (a cost model)."""

    def learn(self, programs: Sequence[Program], outcomes: Sequence[Outcome]) -> None: ...


class Evaluator(Generic[S]):
    """Cached, counted, batched scoring of states (see the module docstring)."""

    def __init__(self, scorer: Scorer[S], *, store: Store | None = None,
                 cache_size: int = 1 << 16, programs_kept: int = 256) -> None:
        self.scorer = scorer
        self.store = store
        self.num_measurements = 0
        self.store_hits = 0
        """Of the measurements, those the store answered (no program was run for them)."""
        self.num_censored = 0
        """Of the measurements, those stopped early (censored: estimates, never bests)."""
        self.failures: Counter[str] = Counter()
        self._keys: LRU[S, str | Failure] = LRU(cache_size)
        self._programs: LRU[S, Program] = LRU(programs_kept)
        self._outcomes: LRU[tuple[str, str], Outcome] = LRU(cache_size)
        self._references: dict[str, Outcome] = {}
        self._contexts: dict[str, str] = {}
        self.best: dict[str, float] = {}
        """The best (lowest, uncensored) score seen of each problem: the bound that lets a
        scorer stop measuring a hopeless candidate early."""

    def key(self, state: S) -> str | Failure:
        """The key of ``state``'s program, or why it cannot be built (cached)."""
        known = self._keys.get(state)
        if known is None:
            built = self._compile(state)
            known = built if isinstance(built, Failure) else built.key
        return known

    def _compile(self, state: S) -> Program | Failure:
        """Build ``state``'s program (the last few built are kept for scoring)."""
        built = self._programs.get(state) or self.scorer.compile(state)
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
        """Whether evaluating ``states`` as one batch would measure (and count) each one: its
        program builds, is not known (measured, or the reference) and is not an earlier state's
        in the list. Nothing is measured but the problem's reference, which any evaluation measures
        first."""
        self._references_of(states)
        answers, listed = [], set()
        for state in states:
            program = (state.problem, self.key(state))
            new = self.cached(state) is None and program not in listed
            if new:
                listed.add(program)
            answers.append(new)
        return answers

    def evaluate(self, states: Sequence[S], *, fresh: bool = False) -> list[Outcome]:
        """The outcome of each state's program: from the cache, else scored (one batch).

        ``fresh``: score every program again, whatever is known (verification); still counted.
        """
        self._references_of(states)
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
        Every one counts as a measurement."""
        found: list[Outcome | None] = [None] * len(programs)
        if self.store is not None and not fresh:
            for index, program in enumerate(programs):
                context = self.context(program.problem)
                assert context is not None
                found[index] = self.store.get(context, program.key)
            self.store_hits += sum(o is not None for o in found)
        missing = [i for i, outcome in enumerate(found) if outcome is None]
        bounds = [None if fresh else self.best.get(programs[i].problem) for i in missing]
        scored = self.scorer.score([programs[i] for i in missing], bounds) if missing else []
        for index, outcome in zip(missing, scored, strict=True):
            found[index] = outcome
            if self.store is not None and not fresh and not outcome.censored:
                context = self.context(programs[index].problem)
                assert context is not None
                self.store.put(context, programs[index].key, outcome)
        outcomes = [o for o in found if o is not None]
        self.num_measurements += len(programs)
        self.num_censored += sum(o.censored for o in outcomes)
        for program, outcome in zip(programs, outcomes, strict=True):
            self._outcomes.put((program.problem, program.key), outcome)
            self._remember_best(program.problem, outcome)
            if outcome.failure is not None:
                self.failures[outcome.failure.kind] += 1
        if isinstance(self.scorer, Learner):
            self.scorer.learn(programs, outcomes)
        return outcomes

    def _remember_best(self, problem: str, outcome: Outcome) -> None:
        if outcome.score is not None and not outcome.censored \
                and outcome.score < self.best.get(problem, float("inf")):
            self.best[problem] = outcome.score

    def reference(self, problem: str) -> Outcome:
        """The problem's reference outcome: scored once, never counted; ``RuntimeError`` if it
        fails (the environment cannot score anything relative to it)."""
        known = self._references.get(problem)
        if known is None:
            program = self.scorer.reference(problem)
            context = self.context(problem)
            stored = None if self.store is None or context is None \
                else self.store.get(context, program.key)
            (known,) = [stored] if stored is not None else self.scorer.score([program], [None])
            if stored is None and self.store is not None and context is not None:
                self.store.put(context, program.key, known)
            if not known.ok:
                assert known.failure is not None
                raise RuntimeError(f"the reference program of {problem} failed "
                                   f"({known.failure.kind}): {known.failure.detail}")
            self._references[problem] = known
            self._outcomes.put((problem, program.key), known)
        return known

    def stats(self) -> dict[str, Any]:
        return {"measurements": self.num_measurements, "failures": dict(self.failures)}

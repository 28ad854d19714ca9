"""The measurement budget is hard and the evaluator's: a search that asks for more than it has
left is refused before anything is measured, whatever the agent counts (tests/toy_env.py: a
formula, no tool)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from optarena import agents
from optarena.agents.base import SearchResult, Tracker
from optarena.envs.contract import BudgetExceeded, oracle

sys.path.insert(0, str(Path(__file__).parent))
import toy_env  # by name, as its entry point names it


class Greedy:
    """A new agent that forgot the budget: it measures every successor of the start at once."""

    name = "careless"

    def run(self, env: toy_env.ToyEnv, budget: int, seed: int) -> SearchResult:
        tracker = Tracker(self.name, env, budget, seed)
        _, info = env.reset(seed=seed)
        tracker.observe(info, [])
        inner = oracle(env)
        start = inner.get_state()
        successors = [inner.transition(start, int(a)) for a in np.flatnonzero(inner.legal_mask())]
        for state, outcome in zip(successors, inner.evaluate(successors), strict=True):
            tracker.observe_outcome(state, outcome, [])
        return tracker.finish()


def test_an_agent_that_asks_for_more_than_its_budget_is_refused_and_measures_nothing():
    env = toy_env.ToyEnv("jobs-6")
    with pytest.raises(BudgetExceeded) as refused:
        Greedy().run(env, 3, 0)
    assert (refused.value.budget, refused.value.used, refused.value.asked) == (3, 0, 5)
    assert "5 more measurements asked for, 0 of 3 used (3 left)" in str(refused.value)
    assert env.evaluator.num_measurements == 0  # the refused batch measured nothing
    result = Greedy().run(env, 5, 0)  # the same search within its budget
    assert result.usage.measurements == 5 == result.curve[-1].measurements


def test_the_shipped_agents_stay_within_the_budget_the_evaluator_holds():
    env = toy_env.ToyEnv("jobs-8")
    for name in ("random", "greedy", "evolutionary"):
        before = env.evaluator.num_measurements
        result = agents.make(name).run(env, 7, 1)
        used = env.evaluator.num_measurements - before
        assert result.usage.measurements == used <= 7, name
        assert env.evaluator.left is None  # the search's budget ends with it


def _started(budget: int) -> tuple[toy_env.ToyEnv, list[toy_env.Order]]:
    """An environment reset on its start (the reference), its budget set, and the start's
    first three successors (nothing measured)."""
    env = toy_env.ToyEnv("jobs-6")
    env.reset(seed=0)
    env.evaluator.set_budget(budget)
    start = env.get_state()
    return env, [start, *(env.transition(start, action) for action in range(3))]


def test_repeats_shared_programs_and_the_reference_are_free_and_a_refusal_is_whole():
    env, (start, a, b, c) = _started(2)
    evaluator = env.evaluator
    assert evaluator.left == 2
    env.evaluate([a, a, b, start])  # two programs; the start is the reference
    assert (evaluator.used, evaluator.left) == (2, 0)
    assert env.evaluate([a])[0].score is not None and env.reference_score() > 0  # known: free
    with pytest.raises(BudgetExceeded):
        env.evaluate([b, c])  # one new program too many: none of the batch is measured
    assert evaluator.cached(c) is None and evaluator.used == 2
    evaluator.set_budget(None)
    env.evaluate([c])
    assert evaluator.left is None and evaluator.used == 3


def test_measurements_made_outside_the_evaluator_are_charged_and_paid_for():
    env, (_, a, b, c) = _started(4)
    evaluator = env.evaluator
    evaluator.charge(3, failures={"metaschedule": 1}, states=[a, b])  # a tuner's own trials
    assert (evaluator.used, evaluator.failures) == (3, {"metaschedule": 1})
    assert env.unmeasured([a, b, c]) == [False, False, True]
    env.evaluate([a, b])  # scored the evaluator's way, not counted again
    assert evaluator.used == 3 and evaluator.cached(a) is not None
    with pytest.raises(BudgetExceeded):
        evaluator.charge(2)
    assert evaluator.used == 3


def test_past_its_deadline_a_search_is_told_nothing_is_left_and_a_batch_asked_is_measured(
        monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("optarena.envs.evaluator.time.monotonic", lambda: clock[0])
    env, (_, a, b, _) = _started(3)
    evaluator = env.evaluator
    evaluator.set_deadline(10.0)
    assert evaluator.left == 3
    clock[0] = 110.0
    assert evaluator.left == 0
    env.evaluate([a, b])  # asked for just after the deadline: measured, not refused
    assert evaluator.used == 2 and evaluator.left == 0
    evaluator.set_deadline(None)
    assert evaluator.left == 1
    with pytest.raises(ValueError, match="positive number of seconds"):
        evaluator.set_deadline(0)


@pytest.mark.parametrize("name", ["random", "greedy", "evolutionary", "mcts-measured"])
def test_a_search_s_wall_clock_runs_from_its_start_and_nothing_is_asked_after_it(
        name, monkeypatch):
    env = toy_env.ToyEnv("jobs-8")
    full = agents.make(name).run(env, 12, 0)
    assert full.usage.measurements > 2
    env = toy_env.ToyEnv("jobs-8")
    clock = [0.0]
    monkeypatch.setattr("optarena.envs.evaluator.time.monotonic", lambda: clock[0])
    env.evaluator.set_deadline(1.5)
    clock[0] = 5.0  # setting up before the search does not count: its clock starts with it
    evaluate, calls = env.evaluator.evaluate, []

    def slow(*args: Any, **kwargs: Any) -> Any:  # each batch takes a second
        calls.append(clock[0])
        clock[0] += 1.0
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(env.evaluator, "evaluate", slow)
    stopped = agents.make(name).run(env, 12, 0)
    # the start (free) and one batch, asked for within the 1.5 s; nothing asked after
    assert calls == [5.0, 6.0] and stopped.usage.measurements < full.usage.measurements

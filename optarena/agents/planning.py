"""Model-based tree search: plan on the cost model, measure only the most promising states.

This is how MetaSchedule's evolutionary search and the Reasoning Compiler's published search
(``mcts_search.py`` of its repository) spend measurements: a round of planning uses the
environment's cost model only (``transition`` and ``estimate``: nothing is measured), then the
``measure_per_round`` most promising unmeasured states of the tree are measured as one batch, the
cost model learns from them (the evaluator trains a learning scorer on every measurement) and
their measured scores are written back into the tree. :class:`Planner` runs this loop; the agents
``mcts``, ``puct`` and ``llm-mcts`` differ only in how a node is selected and expanded
(:class:`~optarena.agents.mcts.MCTS`, :class:`~optarena.agents.puct.PUCT`,
:class:`~optarena.agents.llm_mcts.LLMMCTS`). It needs an environment with a cost model
(``has_cost_model``: the tensor environment with ``surrogate: true``, with or without a prior;
the peephole environment's llvm-mca cycles of the unverified block); the measure-every-node
variants (``mcts-measured``, ``puct-measured``, ``llm-mcts-measured``) need none.

**The tree.** Its root is *virtual*: its children are starting states. The first is the start of
``reset(seed)``, measured: every agent of a seed starts there. In a space that draws random starts
(the tensor environment's design space, whose sketches no action changes) ``init_samples - 1``
more random starts are measured with it as the first batch, before any planning (the cost model
learns from a spread of the design space, as MetaSchedule's search seeds its population), and
each round adds ``fresh_starts`` new ones drawn with ``initial_state``, as MetaSchedule's evolutionary search
samples part of each generation afresh and the published search seeds its tree from
MetaSchedule's population: the search is not confined to the first sample's sketch, and the cost
model ranks new regions beside the tree's. After ``max_start_repeats`` draws in a row that were
states of the tree, the root stops drawing (a space with one fixed start). A node below is the
state its edge's moves lead to from its parent; a state already in the tree is not added again
(one node per state, as the paper's code keeps one per structural hash): the parent tries
another action.

**Values.** A node has a predicted score (``estimate``) and, once measured, a measured one; its
*gain* is ``log(first sample's score / score)``, from the measured score when there is one and
``measured_in_tree`` is on (the default), else from the prediction. Its *own value* is its gain,
or ``max(gain, rollout gain)`` where a rollout was made and the node is not measured: the rollout
applies ``rollout_depth`` uniformly chosen legal actions and its end state is estimated. A
node's *value* is the best own value in its subtree (``backup="max"``, the default: what an
optimizer wants of a subtree is its best program) or their mean (``"mean"``, UCT's textbook
backup: each own value is backed up once to the node and every ancestor, ``N += 1``, ``W +=
value``, and a change is added to the ``W`` of the node and its ancestors, so ``W / N`` stays
the subtree's mean). Own values change when a measurement arrives or a re-ranking re-estimates
the node, and the values above it follow. Where values are compared they are scaled to [0, 1]
by the lowest and highest own values of the tree, as MuZero does. A node whose program fails is
never selected again and takes the tree's lowest value.

**A round.**

1. **Plan.** The round's fresh starts, then ``expansions_per_round`` expansions, in groups of
   ``parallel_expansions``: each selects a node from the root down (:meth:`Planner.choose`; UCT
   for ``mcts``) with a virtual loss on its path until the group is backed up, and grows it by
   one child (:meth:`Planner.propose`: a uniformly chosen untried legal action for ``mcts``,
   found by trying the node's actions in a seeded random order until a transition gives a new
   state, which spares enumerating its legal actions);
   the group's new states and rollout ends are estimated in one ``estimate`` call.
2. **Re-rank**: the ``rerank`` best unmeasured nodes (by their last estimates) and their
   rollout ends are estimated again, as the cost model has learned from the last batch, and
   their values corrected.
3. **Measure** the ``measure_per_round`` unmeasured nodes of lowest predicted score as one batch,
   each slot taking a uniformly drawn unmeasured node instead with probability ``epsilon``
   (MetaSchedule's epsilon-greedy). A node whose program is known already (distinct states can
   build one program; a program that cannot be built) is evaluated with the batch for free and
   takes no slot. The batch never exceeds what is left of the budget.
4. **Write back** the outcomes (step 4 of the description above) and go on.

It stops at the budget, or after ``max_stalls`` rounds in a row that measured nothing new.

**Why measured values are in the tree by default.** A learned cost model is uninformed before its
first measurements (the tensor surrogate draws random estimates for its first 8) and wrong
wherever it has not been trained; a measurement is the truth about its state. Planning that
keeps the prediction of a state it has measured slow (the published code never writes
measurements into the tree: ``measured_in_tree: false`` reproduces that) goes on expanding around
it. With a constant cost model every prediction ties: ranking follows the tree's order and
selection its exploration term, so the planner degrades to UCT's exploration rule with uniform
expansions, within the same budget.

**Cost.** ``usage.cost_model_calls`` counts the states estimated and ``usage.planning_s`` the
seconds spent planning (steps 1-2 and choosing the batch), LLM replies excluded; both are reported
per measurement, beside ``details["measure_s"]``, the seconds its batches took to measure.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import gymnasium as gym
import numpy as np

from optarena.agents.base import (
    SearchResult,
    Tracker,
    Usage,
    log_gain,
    random_walk,
    require_cost_model,
)
from optarena.envs.contract import SCORE_FLOOR, SearchOracle, oracle


@dataclass
class PlanningConfig:
    """Settings of the planning loop every model-based tree agent shares."""

    exploration: float = 0.05
    """Exploration constant of the selection rule (values are scaled to [0, 1]). Small: the
    fresh starts and the epsilon share of each batch explore, and expansions pay off around the
    best states found (2026-12-07, 2-core AMD EPYC, flux-conv:size=8 seed 0, paired with
    evolutionary-cost-model's 290x at 64 measurements: 166x with 1.0, 231x with 0.2, 334x with
    0.05; llama3-8b-attention:seq_len=32: 5.5x, 8.0x, 10.0x against its 10.0x)."""
    branching: int = 4
    """Children of a node at most (the root's: see ``fresh_starts``)."""
    expansions_per_round: int = 64
    """Expansions planned on the cost model per round (per measured batch)."""
    init_samples: int = 16
    """Starting states measured before planning begins, the first sample included, where the
    space draws random starts: the cost model learns from a spread of the design space, as
    MetaSchedule's search and ``evolutionary-cost-model`` seed theirs (an uninformed model
    would rank at random, and a first batch drawn from the tree would be mostly neighbours of the
    first sample)."""
    fresh_starts: int = 32
    """New starting states drawn for the root each round, where the space draws random starts
    (MetaSchedule's evolutionary search samples part of each generation afresh)."""
    backup: Literal["max", "mean"] = "max"
    """A node's value: the best own value in its subtree (``max``: what an optimizer wants of a
    subtree is its best program), or their mean (``mean``: UCT's textbook backup)."""
    parallel_expansions: int = 16
    """Expansions selected together (virtual losses), their states estimated in one call."""
    rollout_depth: int = 0
    """Random legal actions applied after an expansion, the end state estimated (0: the new
    state's own estimate is its value). Off by default: each step of a rollout enumerates the
    legal actions of a state used once (on the tensor environment, replays of its trace: three
    times the cost of an expansion), and the batch is chosen from the tree's nodes, not from
    rollout ends; the expansions a rollout would cost estimate more nodes instead."""
    measure_per_round: int = 8
    """States measured per round (``k``), as one batch."""
    epsilon: float = 0.05
    """Chance that a slot of the batch takes a random unmeasured node instead of the best."""
    measured_in_tree: bool = True
    """Measured scores replace predictions in the tree (module docstring)."""
    rerank: int = 256
    """Before each batch is chosen, estimate again this many unmeasured nodes, the best by
    their last estimates (0: none): the cost model has learned from the last batch."""
    max_start_repeats: int = 8
    """Draws of a start already in the tree in a row after which the root stops drawing (a
    space with one fixed start)."""
    max_stalls: int = 5
    """Stop after this many rounds in a row that measured nothing new."""

    @property
    def needs_cost_model(self) -> bool:
        """Planning estimates every node: an environment without a cost model is refused."""
        return True


@dataclass(eq=False)
class PlanNode:
    """A state of the planning tree (the virtual root has none)."""

    state: Any
    parent: PlanNode | None
    """The node above; ``None`` for the root and for the starting states (the root's
    children), whose paths begin with them."""
    action: int | None = None
    """The first move of the edge from the parent."""
    moves: tuple[int, ...] = ()
    """The edge's moves when it is a sequence (the LLM's), else empty."""
    legal: list[int] | None = None
    """Its legal actions, where they were enumerated (an LLM is shown them): on the tensor
    environment an enumeration replays the trace for every compute location (a third of a
    second on an attention layer), so uniform expansions go without (:meth:`Planner.propose`)."""
    tried: set[int] = field(default_factory=set)
    """Actions its expansions have tried."""
    order: np.ndarray | None = None
    """Its actions in a seeded random order, the uniform expansions' (drawn on first use)."""
    cursor: int = 0
    """How far :attr:`order` has been read."""
    exhausted: bool = False
    """Every action was tried: it grows no more."""
    children: list[PlanNode] = field(default_factory=list)
    predicted: float = math.nan
    """The cost model's latest estimate of the state's score."""
    measured: float | None = None
    failed: bool = False
    """Its program failed when measured."""
    rollout_state: Any = None
    rollout_gain: float | None = None
    own: float = 0.0
    """The node's own value (module docstring); backed up to its ancestors."""
    visits: int = 0
    value_sum: float = 0.0
    best: float = -math.inf
    """The highest own value in its subtree."""
    virtual: int = 0
    """Selections of the current group through this node (virtual losses)."""
    pending: int = 0
    """Children being made for it in the current group."""
    closed: bool = False
    """Nothing more can grow below it."""

    @property
    def untried(self) -> list[int]:
        """Its legal actions not tried yet (the enumerated ones: :attr:`legal`)."""
        return [a for a in self.legal or () if a not in self.tried]

    @property
    def score(self) -> float:
        """The measured score where there is one, else the predicted."""
        return self.measured if self.measured is not None else self.predicted

    def actions(self) -> list[int]:
        """The actions from its starting state to it."""
        node: PlanNode | None = self
        path: list[int] = []
        while node is not None and node.action is not None:
            path.extend(reversed(node.moves or (node.action,)))
            node = node.parent
        return path[::-1]


class Planner:
    """The planning loop (module docstring) with UCT selection and uniform expansion; the other
    model-based agents override :meth:`choose`, :meth:`room` and :meth:`propose`."""

    name = "planner"

    def __init__(self, config: PlanningConfig) -> None:
        self.config = config
        self.inner: SearchOracle[Any] | None = None
        self.env: gym.Env | None = None
        self.rng = np.random.default_rng(0)
        self.root = PlanNode(None, None)
        self.table: dict[Any, PlanNode] = {}
        self.first_score = 1.0
        self.n_actions = 0
        self.low = self.high = 0.0
        self.start_repeats = 0
        self.usage = Usage()
        self.waiting_s = 0.0
        """Seconds of the search spent waiting for an LLM (not planning)."""

    # ------------------------------------------------------------------ the loop

    def run(self, env: gym.Env, budget: int, seed: int) -> SearchResult:
        config, inner = self.config, oracle(env)
        require_cost_model(inner, self.name, config.needs_cost_model, f"{self.name}-measured")
        self.env, self.inner = env, inner
        self.rng = np.random.default_rng(seed)
        self.prepare(env, seed)
        tracker = Tracker(self.name, env, budget, seed)
        self.usage = tracker.result.usage
        _, info = tracker.first_sample()
        self.first_score = float(info["score"])
        self.n_actions = len(info["action_mask"])
        self.root = PlanNode(None, None)
        self.table = {}
        self.low = self.high = 0.0
        self.start_repeats = 0
        first = self._add(self.root, inner.get_state(), None, ())
        first.predicted = first.measured = self.first_score
        self._back_up(first, 0.0)
        began = time.perf_counter()
        self._seed(tracker)
        planning, measuring = 0.0, time.perf_counter() - began
        self.waiting_s = 0.0
        for _ in tracker.rounds(config.max_stalls):
            began, waited = time.perf_counter(), self.waiting_s
            self._draw_starts()
            self.plan()
            self._rerank()
            batch, free = self._choose_batch(tracker.left)
            planned = time.perf_counter()
            planning += planned - began - (self.waiting_s - waited)
            self._measure(batch, free, tracker)
            measuring += time.perf_counter() - planned
        result = tracker.finish()
        result.usage.planning_s = planning
        result.details = {**self.summary(), "measure_s": measuring}
        return result

    def prepare(self, env: gym.Env, seed: int) -> None:
        """Called once before a search (the LLM variant connects here)."""

    def summary(self) -> dict[str, Any]:
        """What the search built (``SearchResult.details``)."""
        nodes = list(self.table.values())
        return {"nodes": len(nodes), "measured": sum(n.measured is not None for n in nodes),
                "failed": sum(n.failed for n in nodes), "starts": len(self.root.children),
                "depth": max((len(n.actions()) for n in nodes), default=0)}

    # ------------------------------------------------------------------ 1. plan

    def plan(self) -> None:
        """``expansions_per_round`` expansions, in groups estimated together."""
        config, left = self.config, self.config.expansions_per_round
        while left > 0 and not self.root.closed:
            group, busy = [], set()
            for _ in range(min(config.parallel_expansions, left)):
                path = self._select(busy)
                if path is None:
                    break
                group.append(path)
            left -= max(len(group), 1)
            grown = [(path, self._grow(path[-1])) for path in group]
            for path in group:
                for node in path:
                    node.virtual -= 1
                path[-1].pending -= 1
            self._estimate_new([(path[-1], new) for path, new in grown if new is not None])
            if not group:
                break

    def _select(self, busy: set[PlanNode]) -> list[PlanNode] | None:
        """A path from the root to a node that can grow, its virtual losses taken (``None``
        when nothing can grow in this group). ``busy``: the group's nodes below which nothing
        can grow until the group's new children are added."""
        while not self.root.closed and self.root not in busy:
            path, node = [self.root], self.root
            while not self._can_grow(node):
                children = [c for c in node.children
                            if not c.closed and not c.failed and c not in busy]
                if not children:  # a dead end: for good, or until the group's children come
                    if node.pending or any(c in busy for c in node.children):
                        busy.add(node)
                    else:
                        node.closed = True
                    break
                node = self.choose(node, children)
                path.append(node)
            else:
                for member in path:
                    member.virtual += 1
                node.pending += 1
                return path
        return None

    def _can_grow(self, node: PlanNode) -> bool:
        if node.failed:
            return False
        if node is self.root:  # grows by the fresh starts of each round
            return False
        return not node.exhausted and len(node.children) + node.pending < self.room(node)

    def enumerate_legal(self, node: PlanNode) -> list[int]:
        """``node``'s untried legal actions, enumerating them once (:attr:`PlanNode.legal`)."""
        if node.legal is None:
            assert self.inner is not None
            node.legal = [int(a) for a in np.flatnonzero(self.inner.legal_mask(node.state))]
        return node.untried

    def next_action(self, node: PlanNode) -> int | None:
        """``node``'s next untried action in its seeded random order, legal or not (``None``:
        none left). A uniform expansion tries actions in this order and keeps the first whose
        transition gives a state: uniform over the legal ones, without enumerating them."""
        if node.order is None:
            node.order = self.rng.permutation(self.n_actions)
        while node.cursor < len(node.order):
            action = int(node.order[node.cursor])
            node.cursor += 1
            if action not in node.tried:
                return action
        return None

    def room(self, node: PlanNode) -> int:
        """Children ``node`` may have: ``branching``."""
        return self.config.branching

    def choose(self, node: PlanNode, children: list[PlanNode]) -> PlanNode:
        """The child to descend to: UCT on scaled values."""
        log_n = math.log(max(node.visits + node.virtual, 1))
        return max(children, key=lambda c: self.value(c) + self.config.exploration
                   * math.sqrt(log_n / max(c.visits + c.virtual, 1)))

    def value(self, node: PlanNode) -> float:
        """The node's value (``backup``) with its virtual losses counted as visits valued at
        the tree's lowest value, scaled to [0, 1]."""
        visits = node.visits + node.virtual
        if visits == 0:
            return 0.0
        total = node.best * node.visits if self.config.backup == "max" else node.value_sum
        mean = (total + node.virtual * self.low) / visits
        span = self.high - self.low
        return (mean - self.low) / span if span > 0 else 0.0

    def _grow(self, node: PlanNode) -> PlanNode | None:
        """A new child of ``node`` (its score not estimated yet), or ``None`` where its untried
        actions make none (each state is one node)."""
        assert self.inner is not None
        while (moves := self.propose(node)) is not None:
            node.tried.add(moves[0])
            state = self.inner.transition(node.state, moves[0]) if len(moves) == 1 \
                else walk(self.inner, node.state, moves)
            if not isinstance(state, str) and state not in self.table:
                return self._add(node, state, moves[0], tuple(moves) if len(moves) > 1 else ())
        node.exhausted = True
        return None

    def _seed(self, tracker: Tracker) -> None:
        """Measure ``init_samples - 1`` new starting states as one batch (as many as the
        budget allows; none in a space with one fixed start)."""
        assert self.inner is not None
        drawn = {self.inner.initial_state(self.rng): None
                 for _ in range(self.config.init_samples - 1)}
        seeds = [self._add(self.root, state, None, ()) for state in drawn
                 if state not in self.table][: tracker.left]
        for node in seeds:
            self._back_up(node, 0.0)
        self._measure(seeds, [], tracker)

    def _draw_starts(self) -> None:
        """The round's fresh starts: new starting states as children of the root, estimated
        in one call (none once ``max_start_repeats`` draws in a row were known states)."""
        assert self.inner is not None
        new: list[tuple[PlanNode, PlanNode]] = []
        for _ in range(self.config.fresh_starts):
            if self.start_repeats >= self.config.max_start_repeats:
                break
            state = self.inner.initial_state(self.rng)
            if state in self.table:
                self.start_repeats += 1
                continue
            self.start_repeats = 0
            new.append((self.root, self._add(self.root, state, None, ())))
        if new:
            self.root.closed = False
            self._estimate_new(new)

    def propose(self, node: PlanNode) -> list[int] | None:
        """The moves of ``node``'s next child (``None``: none left): a uniformly chosen untried
        action, from its legal ones where they were enumerated, else the next of its random
        order (the transition tells whether it is legal)."""
        if node.legal is not None:
            untried = node.untried
            return [int(self.rng.choice(untried))] if untried else None
        action = self.next_action(node)
        return None if action is None else [action]

    def _add(self, parent: PlanNode, state: Any, action: int | None, moves: tuple[int, ...]
             ) -> PlanNode:
        node = PlanNode(state, None if parent is self.root else parent, action, moves)
        parent.children.append(node)
        self.table[state] = node
        return node

    def _estimate_new(self, grown: list[tuple[PlanNode, PlanNode]]) -> None:
        """Roll out from the new nodes, estimate them and their rollout ends in one call and
        back up their values."""
        if not grown:
            return
        assert self.inner is not None
        depth = self.config.rollout_depth
        for _, node in grown:
            if depth > 0:
                end, walked = random_walk(self.inner, node.state, depth, self.rng)
                node.rollout_state = end if walked else None
        self._estimate([node for _, node in grown])
        for _, node in grown:
            self._back_up(node, self._own(node))

    def _estimate(self, nodes: list[PlanNode]) -> None:
        """Set the predictions of ``nodes`` and of their rollout ends (one ``estimate``)."""
        assert self.inner is not None
        states = [n.state for n in nodes]
        ends = [n for n in nodes if n.rollout_state is not None]
        estimates = self.inner.estimate([*states, *(n.rollout_state for n in ends)])
        for node, estimate in zip(nodes, estimates[: len(nodes)], strict=True):
            node.predicted = float(estimate)
        for node, estimate in zip(ends, estimates[len(nodes):], strict=True):
            node.rollout_gain = self.gain(float(estimate))

    def gain(self, score: float) -> float:
        return log_gain(self.first_score, max(score, SCORE_FLOOR))

    def _own(self, node: PlanNode) -> float:
        """The node's own value (module docstring)."""
        if node.failed:
            return self.low
        if node.measured is not None and self.config.measured_in_tree:
            return self.gain(node.measured)
        own = self.gain(node.predicted)
        return own if node.rollout_gain is None else max(own, node.rollout_gain)

    def _ancestors(self, node: PlanNode) -> list[PlanNode]:
        """``node``, the nodes above it and the root."""
        chain = [node]
        while chain[-1].parent is not None:
            chain.append(chain[-1].parent)
        return [*chain, self.root]

    def _back_up(self, node: PlanNode, value: float) -> None:
        """Back ``node``'s first own value up (one visit)."""
        node.own = value
        self.low, self.high = min(self.low, value), max(self.high, value)
        for member in self._ancestors(node):
            member.visits += 1
            member.value_sum += value
            member.best = max(member.best, value)

    def _revalue(self, node: PlanNode) -> None:
        """Correct ``node``'s own value in it and its ancestors."""
        value = self._own(node)
        delta, node.own = value - node.own, value
        self.low, self.high = min(self.low, value), max(self.high, value)
        if not delta:
            return
        for member in self._ancestors(node):
            member.value_sum += delta
            own = [member.own] if member is not self.root else []
            member.best = max([*own, *(c.best for c in member.children)], default=-math.inf)

    # ------------------------------------------------------------------ 2. re-rank

    def _candidates(self) -> list[PlanNode]:
        return [n for n in self.table.values() if n.measured is None and not n.failed]

    def _rerank(self) -> None:
        """Estimate again the ``rerank`` best unmeasured nodes and correct their values."""
        candidates = sorted(self._candidates(), key=lambda n: n.predicted)[: self.config.rerank]
        if candidates:
            self._estimate(candidates)
            for node in candidates:
                self._revalue(node)

    # ------------------------------------------------------------------ 3. measure, 4. write back

    def _choose_batch(self, left: int) -> tuple[list[PlanNode], list[PlanNode]]:
        """The nodes to measure (at most ``measure_per_round`` and ``left``) and the nodes met
        on the way whose programs are known (free)."""
        assert self.inner is not None
        ranked = sorted(self._candidates(), key=lambda n: n.predicted)
        chosen: list[PlanNode] = []
        free: list[PlanNode] = []
        while ranked and len(chosen) < min(self.config.measure_per_round, left):
            explore = self.rng.random() < self.config.epsilon
            node = ranked.pop(int(self.rng.integers(len(ranked))) if explore else 0)
            new = self.inner.unmeasured([*(c.state for c in chosen), node.state])[-1]
            (chosen if new else free).append(node)
        return chosen, free

    def _measure(self, chosen: list[PlanNode], free: list[PlanNode], tracker: Tracker) -> None:
        """Measure ``chosen`` (and evaluate ``free``) as one batch and write the outcomes back."""
        assert self.inner is not None
        nodes = [*chosen, *free]
        if not nodes:
            return
        outcomes = self.inner.evaluate([n.state for n in nodes])
        for index, (node, outcome) in enumerate(zip(nodes, outcomes, strict=True)):
            if index < len(chosen):
                tracker.observe_outcome(node.state, outcome, node.actions())
            if outcome.score is None:
                node.failed = True
            else:
                node.measured = outcome.score
            self._revalue(node)


def walk(inner: SearchOracle[Any], state: Any, moves: list[int]) -> Any:
    """The state ``moves`` lead to from ``state`` (pure transitions, nothing measured), or why
    one of them does not apply."""
    for move in moves:
        mask = inner.legal_mask(state)
        if not (0 <= move < len(mask) and mask[move]):
            return f"move {move} is not legal here"
        state = inner.transition(state, move)
        if isinstance(state, str):
            return state
    return state

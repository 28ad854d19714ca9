"""PUCT tree search: a prior from the cost model and progressive widening, planned on the cost
model (``puct``) or measuring every node (``puct-measured``).

:class:`PUCT` (the agent ``puct``) runs the planning loop of :mod:`~optarena.agents.planning`
(expansions and rollouts scored by the cost model, the best unmeasured states measured as one
batch per round) with PUCT's selection and expansion: every node below the root widens
progressively
(``ceil(widening_k * N ** widening_alpha)`` children), taking its untried action of highest prior
first, and selection descends to the child of highest ``Q + exploration * P(a) * sqrt(N(x)) /
(1 + N(child))`` (``Q`` scaled to [0, 1]; a starting state's ``P`` is uniform over the root's
children). ``P`` over a node's legal actions (``prior_actions`` of them at most: the first legal
ones of its seeded random order) is the softmax of ``-log(estimated score of the action's successor) /
prior_temperature``, the successors estimated in one ``estimate`` call when the node first widens
in a round (the cost model learns between rounds). It needs an environment with a cost model.

:class:`MeasuredPUCT` (the agent ``puct-measured``) measures every node; the committed races
before the planning loop ran it under the name ``puct``. Its algorithm:

The root is ``reset(seed=seed)``. Every node is a measured state; its *gain* is
``log(root score / its score)`` (positive when faster than the root). States are canonical, so
the nodes are kept in a **transposition table** keyed by state: a state reached by two paths (two
changes applied in either order) is one node, measured once, whose visit count ``N`` and value sum
``W`` all its paths share. One round:

1. **Select** ``leaves_per_round`` paths, each from the root down. At a node ``x``:

   * **Widen** while ``x`` has an untried legal action and fewer children than
     ``ceil(widening_k * N(x) ** widening_alpha)`` (*progressive widening*): its untried action
     of highest prior is tried. The successor (``transition``, measuring nothing) is either
     already a node -- it becomes a child of ``x`` at no cost (a transposition) and selection goes
     on into it, unless it is on the current path (a cycle, such as undoing a change: the next
     action is tried) -- or new: the path ends there and the new state is measured.
   * **Descend** otherwise to the child of ``x`` off the current path with the highest
     ``Q + exploration * P(a) * sqrt(N(x)) / (1 + N(child))``. ``Q = W / N`` is the child's mean
     value scaled to [0, 1] by the lowest and highest gains in the tree (as MuZero does), and
     ``P`` is the prior of the child's action renormalized over the children of ``x``. A node with
     no such child and no room to widen ends the path (a dead end: its own gain is backed up, so
     its ``N`` grows and it widens).

   Until the round backs up, every node on a selected path carries a *virtual loss*: a visit
   valued at the tree's lowest gain, which counts in ``N`` (widening included) and steers the
   round's next paths elsewhere. One path per round (``leaves_per_round = 1``) is plain PUCT.
2. **Prior.** ``P`` over a node's legal actions is the softmax of ``-log(estimated score of the
   action's successor) / prior_temperature``, the successors estimated in one ``estimate`` batch
   each time the node widens (a learned cost model improves with every measurement). The cost
   models: llvm-mca cycles of the unverified block (peephole; exact, so ``prior_warmup: 0``) and
   MetaSchedule's XGB surrogate trained on the measurements (tensor schedules: configs set
   ``surrogate: true`` in the environment's ``kwargs``; the surrogate is uninformed until its
   ``surrogate_warmup`` measurements, 8 by default, which the default ``prior_warmup`` matches).
   Without a cost model (LLVM pass ordering, a tensor environment without the surrogate) and
   during the first ``prior_warmup`` measurements the prior is uniform. Ties are broken in a
   seeded random order, so a uniform prior widens uniformly at random.
3. **Measure** the round's new states as one batch (``evaluate``: the tensor environment builds
   them in parallel). A state whose program fails is counted and never tried again.
4. **Back up** each new node's gain (a dead end's own) to every node on its path: ``N += 1``,
   ``W += gain``.

It stops at the budget, or after ``max_stalls`` rounds in a row that measured nothing new.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from optarena.agents.base import SearchResult, Tracker, log_gain
from optarena.agents.planning import Planner, PlanningConfig, PlanNode
from optarena.envs.contract import SCORE_FLOOR, Outcome, SearchOracle, oracle


def softmax_prior(estimates: np.ndarray, temperature: float) -> np.ndarray:
    """The prior of successors estimated ``estimates``: the softmax of ``-log(estimate) /
    temperature``."""
    logits = -np.log(np.maximum(estimates, SCORE_FLOOR)) / temperature
    weights = np.exp(logits - logits.max())
    return weights / weights.sum()


@dataclass
class PUCTConfig(PlanningConfig):
    """``puct``: the planning loop's settings with PUCT's widening (every node) and prior."""

    prior_temperature: float = 0.1
    """Softmax temperature of the prior, in log score."""
    prior_actions: int = 16
    """Legal actions of a node whose successors the prior estimates (a seeded random subset
    where there are more; the others have prior 0 and are tried after them, in a random order):
    a successor costs a transition and an estimate, and a tensor state has 50-100 legal actions."""
    widening_k: float = 1.0
    """Progressive widening: a node has at most ``ceil(widening_k * N ** widening_alpha)``
    children."""
    widening_alpha: float = 0.5


class PUCT(Planner):
    """PUCT planned on the cost model, measuring the states it ranks best (``puct``)."""

    name = "puct"
    config: PUCTConfig

    def __init__(self, config: PUCTConfig | None = None) -> None:
        super().__init__(config or PUCTConfig())
        self.priors: dict[PlanNode, tuple[int, dict[int, float]]] = {}
        """Each widened node's prior and the measurements it was computed at."""
        self.successors: dict[PlanNode, dict[int, Any]] = {}
        """Each widened node's legal successors by action."""

    def run(self, env: gym.Env, budget: int, seed: int) -> SearchResult:
        self.priors, self.successors = {}, {}
        return super().run(env, budget, seed)

    def room(self, node: PlanNode) -> int:
        visits = node.visits + node.virtual
        return math.ceil(self.config.widening_k * max(visits, 1) ** self.config.widening_alpha)

    def choose(self, node: PlanNode, children: list[PlanNode]) -> PlanNode:
        prior = self.priors.get(node, (0, {}))[1]
        total = sum(prior.get(c.action, 0.0) for c in children if c.action is not None)
        root_share = 1 / len(children)
        sqrt_n = math.sqrt(node.visits + node.virtual)

        def puct(child: PlanNode) -> float:
            p = prior.get(child.action, 0.0) / total if child.action is not None and total \
                else root_share
            return self.value(child) + self.config.exploration * p * sqrt_n \
                / (1 + child.visits + child.virtual)
        return max(children, key=puct)

    def propose(self, node: PlanNode) -> list[int] | None:
        """The untried action of highest prior (ties: a seeded random one); once the prior's
        actions are tried, uniform ones (:meth:`~optarena.agents.planning.Planner.propose`)."""
        prior = self._prior(node)
        candidates = [a for a in prior if a not in node.tried]
        if not candidates:
            return super().propose(node)
        best = max(prior[a] for a in candidates)
        return [int(self.rng.choice([a for a in candidates if prior[a] == best]))]

    def _prior(self, node: PlanNode) -> dict[int, float]:
        """``P`` of ``node``, estimated again when the cost model has learned since (the
        successors are made once)."""
        assert self.inner is not None
        measured = self.inner.evaluator.num_measurements
        known = self.priors.get(node)
        if known is not None and known[0] == measured:
            return known[1]
        if node not in self.successors:
            made: dict[int, Any] = {}
            while len(made) < self.config.prior_actions \
                    and (action := self.next_action(node)) is not None:
                successor = self.inner.transition(node.state, action)
                if not isinstance(successor, str):
                    made[action] = successor
            self.successors[node] = made
        successors = self.successors[node]
        prior: dict[int, float] = {}
        if successors:
            estimates = self.inner.estimate(list(successors.values()))
            weights = softmax_prior(estimates, self.config.prior_temperature)
            prior = dict(zip(successors, weights.tolist(), strict=True))
        self.priors[node] = (measured, prior)
        return prior


@dataclass
class MeasuredPUCTConfig:
    exploration: float = 1.0
    """PUCT's exploration constant (``Q`` is scaled to [0, 1])."""
    widening_k: float = 1.0
    """Progressive widening: a node has at most ``ceil(widening_k * N ** widening_alpha)``
    children."""
    widening_alpha: float = 0.5
    prior_temperature: float = 0.1
    """Softmax temperature of the prior, in log score: a successor estimated 10% slower than
    the best gets about ``1 / e`` of its weight."""
    prior_warmup: int = 8
    """Measurements before the cost model's estimates shape the prior (uniform until then)."""
    leaves_per_round: int = 1
    """Paths selected per round, their new states measured as one batch (1: plain PUCT)."""
    max_stalls: int = 20
    """Stop after this many rounds in a row that measured nothing new."""


@dataclass(eq=False)
class PUCTNode:
    """A measured state: the one node of its state (the transposition table)."""

    state: Any
    gain: float
    actions: list[int]
    """The actions of the first path that reached it."""
    untried: list[int]
    """Legal actions not tried yet, in a seeded random order (the prior's tie-break)."""
    prior: dict[int, float]
    """``P`` over the legal actions."""
    children: dict[int, PUCTNode] = field(default_factory=dict)
    successors: dict[int, Any] = field(default_factory=dict)
    """``transition(state, action)`` of the actions asked so far (a state, or why none)."""
    visits: int = 0
    value_sum: float = 0.0
    virtual: int = 0
    """Paths of the current round through this node (virtual losses)."""
    pending: int = 0
    """New states this node's widening sent to be measured this round (they count as children)."""


@dataclass
class SelectedPath:
    """A selected path from the root, and the new state it ends with (``(action, state)``
    from its last node), if any."""

    nodes: list[PUCTNode]
    new: tuple[int, Any] | None = None


class Tree:
    """The search's nodes, in a transposition table, and one round's selection and growth."""

    def __init__(self, inner: SearchOracle[Any], config: MeasuredPUCTConfig, tracker: Tracker,
                 rng: np.random.Generator, root_state: Any, root_score: float) -> None:
        self.inner, self.config, self.tracker, self.rng = inner, config, tracker, rng
        self.root_score = root_score
        self.table: dict[Any, PUCTNode] = {}
        """The node of every state measured whose program works."""
        self.failed: set[Any] = set()
        """The states measured whose program failed."""
        self.transpositions = 0
        """Edges that reached an existing node (no measurement)."""
        self.low = self.high = 0.0
        self.root = self._add(root_state, [], 0.0)
        self._backup([self.root], 0.0)

    def _add(self, state: Any, actions: list[int], gain: float) -> PUCTNode:
        legal = [int(a) for a in np.flatnonzero(self.inner.legal_mask(state))]
        node = PUCTNode(state, gain, actions, [legal[i] for i in self.rng.permutation(len(legal))],
                    {a: 1 / len(legal) for a in legal})
        self.table[state] = node
        self.low, self.high = min(self.low, gain), max(self.high, gain)
        return node

    # ------------------------------------------------------------------ 1. select

    def select(self) -> SelectedPath:
        """One path from the root (see the module docstring), its virtual losses taken."""
        path, on_path = SelectedPath([self.root]), {self.root.state}
        while path.new is None:
            node = path.nodes[-1]
            step = self._widen(node, on_path)  # a transposition is a step too
            if isinstance(step, tuple):
                path.new = step
                break
            if step is None:
                children = [(a, c) for a, c in node.children.items() if c.state not in on_path]
                if not children:
                    break  # a dead end
                step = max(children, key=lambda ac: self._puct(node, *ac))[1]
            path.nodes.append(step)
            on_path.add(step.state)
        for node in path.nodes:
            node.virtual += 1
        return path

    def _widen(self, node: PUCTNode, on_path: set[Any]) -> PUCTNode | tuple[int, Any] | None:
        """While ``node`` has room, try its untried actions, highest prior first: the first
        successor off the path that is a node (now a child), or a new state (to measure), or
        ``None`` when there is no room or no action left."""
        refreshed = False
        while node.untried and len(node.children) + node.pending < self._room(node):
            if not refreshed:
                self._update_prior(node)
                refreshed = True
            action = max(node.untried, key=lambda a: node.prior.get(a, 0.0))
            node.untried.remove(action)
            successor = self._successor(node, action)
            if isinstance(successor, str) or successor in self.failed:
                continue
            known = self.table.get(successor)
            if known is None:
                node.pending += 1
                return action, successor
            node.children[action] = known
            self.transpositions += 1
            if successor not in on_path:
                return known
        return None

    def _room(self, node: PUCTNode) -> int:
        """Children ``node`` may have (progressive widening)."""
        visits = node.visits + node.virtual
        return math.ceil(self.config.widening_k * visits ** self.config.widening_alpha)

    def _puct(self, node: PUCTNode, action: int, child: PUCTNode) -> float:
        prior = node.prior.get(action, 0.0) / (sum(node.prior.get(a, 0.0) for a in node.children)
                                               or 1.0)
        bonus = math.sqrt(node.visits + node.virtual) / (1 + child.visits + child.virtual)
        return self._value(child) + self.config.exploration * prior * bonus

    def _value(self, node: PUCTNode) -> float:
        """``Q``: the mean value (virtual losses at the lowest gain) scaled to [0, 1]."""
        mean = (node.value_sum + node.virtual * self.low) / (node.visits + node.virtual)
        span = self.high - self.low
        return (mean - self.low) / span if span > 0 else 0.0

    def _successor(self, node: PUCTNode, action: int) -> Any:
        if action not in node.successors:
            node.successors[action] = self.inner.transition(node.state, action)
        return node.successors[action]

    # ------------------------------------------------------------------ 2. prior

    def _update_prior(self, node: PUCTNode) -> None:
        """``P`` of ``node`` from the cost model's estimates of its legal successors (left
        uniform without a cost model, or before ``prior_warmup`` measurements)."""
        if not self.inner.has_cost_model or self.tracker.used < self.config.prior_warmup:
            return
        actions = [a for a in node.prior if not isinstance(self._successor(node, a), str)]
        if not actions:
            return
        estimates = self.inner.estimate([node.successors[a] for a in actions])
        weights = softmax_prior(estimates, self.config.prior_temperature)
        node.prior = dict(zip(actions, weights.tolist(), strict=True))

    # ------------------------------------------------------------------ 3. measure, 4. back up

    def grow(self, paths: list[SelectedPath]) -> None:
        """Measure the new states of ``paths`` as one batch, add their nodes and back up."""
        batch = list(dict.fromkeys(path.new[1] for path in paths if path.new is not None))
        outcomes = dict(zip(batch, self.inner.evaluate(batch), strict=True))
        for path in paths:
            for node in path.nodes:
                node.virtual -= 1
            path.nodes[-1].pending = 0
        for path in paths:
            if path.new is None:  # a dead end
                self._backup(path.nodes, path.nodes[-1].gain)
                continue
            parent, (action, state) = path.nodes[-1], path.new
            # a state already known was measured for an earlier path of this round
            first = state not in self.table and state not in self.failed
            if first:
                self._measured(state, outcomes[state], [*parent.actions, action])
            child = self.table.get(state)
            if child is None:  # its program failed
                continue
            self.transpositions += not first
            parent.children[action] = child
            self._backup([*path.nodes, child], child.gain)

    def _measured(self, state: Any, outcome: Outcome, actions: list[int]) -> None:
        """Record a measured state: a node, or a failed state."""
        self.tracker.observe_outcome(state, outcome, actions)
        if outcome.score is None:
            self.failed.add(state)
        else:
            self._add(state, actions, log_gain(self.root_score, outcome.score))

    @staticmethod
    def _backup(nodes: list[PUCTNode], value: float) -> None:
        for node in nodes:
            node.visits += 1
            node.value_sum += value

    def summary(self) -> dict[str, Any]:
        """What the search built (``SearchResult.details``)."""
        return {"nodes": len(self.table), "failed": len(self.failed),
                "transpositions": self.transpositions,
                "cost_model_prior": self.inner.has_cost_model}


class MeasuredPUCT:
    """PUCT with a cost-model prior, progressive widening, transpositions and batches, every
    node measured (``puct-measured``)."""

    name = "puct-measured"

    def __init__(self, config: MeasuredPUCTConfig | None = None) -> None:
        self.config = config or MeasuredPUCTConfig()
        self.tree: Tree | None = None
        """The tree of the last search."""

    def run(self, env: gym.Env, budget: int, seed: int) -> SearchResult:
        config, inner = self.config, oracle(env)
        tracker = Tracker(self.name, env, budget, seed)
        _, info = tracker.first_sample()
        self.tree = tree = Tree(inner, config, tracker, np.random.default_rng(seed),
                                inner.get_state(), float(info["score"]))
        for _ in tracker.rounds(config.max_stalls):
            tree.grow([tree.select() for _ in range(min(config.leaves_per_round, tracker.left))])
        result = tracker.finish()
        result.details = tree.summary()
        return result

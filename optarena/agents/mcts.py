"""Monte Carlo tree search (UCT) over the environment's actions: planned on the cost model
(``mcts``), or measuring every node (``mcts-measured``).

:class:`MCTS` (the agent ``mcts``) is UCT inside the planning loop of
:mod:`~optarena.agents.planning`: it expands and rolls out on the environment's cost model and
measures only the states the model ranks best, a batch per round, as the Reasoning Compiler's
published search does. It needs an environment with a cost model.

:class:`MeasuredMCTS` (the agent ``mcts-measured``) measures every node it expands, so ``n``
measurements buy an ``n``-node tree; it needs no cost model. The committed races before the
planning loop ran it under the name ``mcts``. Its algorithm:

The root is ``reset(seed=seed)``. Every node is a measured state; its *gain* is
``log(root score / its score)`` (positive when faster than the root). One iteration:

1. **Select.** From the root, while the node is fully expanded (``branching`` children, or no
   untried legal action left), go to the child with the highest UCT score
   ``Q / N + exploration * sqrt(ln N_parent / N_child)``, where ``Q`` sums the values
   backpropagated through the child and ``N`` counts them.
2. **Expand.** :meth:`MCTS.propose` picks an untried legal action (uniformly here; the LLM in
   :mod:`~optarena.agents.llm_mcts`); the child state (``transition``) is measured
   (``set_state``). An action that is illegal or whose program fails is dropped and another one
   is tried.
3. **Roll out.** ``rollout_depth`` uniformly chosen legal actions from the child; the state reached
   is scored by a real measurement (``rollout="measure"``) or by the environment's cost model
   (``rollout="cost_model"``: the XGB surrogate, or llvm-mca on the unverified block).
4. **Backpropagate** ``value = max(child gain, rollout gain)`` to every node on the path: the
   measured latencies steer later selections (the Reasoning Compiler's published code never
   backpropagates measurements).

It stops at the budget, or after ``max_stalls`` iterations in a row that measured nothing new
(the tree is exhausted or everything reachable is cached).

**Batches.** With ``leaves_per_round = k > 1``, each iteration selects ``k`` leaves, a *virtual
loss* along each chosen path steering the next selection elsewhere, and measures their children
as one batch, then their rollouts as one batch (the tensor environment builds a batch in parallel).
``k = 1`` is the plain algorithm above.
"""

from __future__ import annotations

import math
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
from optarena.agents.planning import Planner, PlanningConfig
from optarena.envs.contract import oracle


@dataclass
class MCTSConfig(PlanningConfig):
    """``mcts``: the planning loop's settings (:class:`~optarena.agents.planning.PlanningConfig`)."""


class MCTS(Planner):
    """UCT planned on the cost model, measuring the states it ranks best (``mcts``)."""

    name = "mcts"
    config: MCTSConfig

    def __init__(self, config: MCTSConfig | None = None) -> None:
        super().__init__(config or MCTSConfig())


@dataclass
class MeasuredMCTSConfig:
    exploration: float = math.sqrt(2)
    """UCT exploration constant."""
    branching: int = 4
    """Children expanded per node at most."""
    rollout: Literal["measure", "cost_model"] = "measure"
    """How the end state of a rollout is scored."""
    rollout_depth: int = 2
    """Random legal actions applied after an expansion (0: no rollout)."""
    max_stalls: int = 20
    """Stop after this many iterations in a row that measured nothing new."""
    leaves_per_round: int = 1
    """Leaves expanded per iteration, their measurements one batch (1: plain UCT)."""
    virtual_loss: float = 1.0
    """Value taken from each node on a path selected this iteration, until it is backed up."""

    @property
    def needs_cost_model(self) -> bool:
        """Rollouts scored by the cost model need an environment with one."""
        return self.rollout == "cost_model"


@dataclass(eq=False)
class MeasuredNode:
    """A measured state of the tree."""

    state: Any
    score: float
    gain: float
    untried: list[int]
    """Legal actions not expanded yet."""
    parent: MeasuredNode | None = None
    action: int | None = None
    moves: tuple[int, ...] = ()
    """The actions from the parent when the edge is a sequence (its first is ``action``)."""
    children: list[MeasuredNode] = field(default_factory=list)
    visits: int = 0
    value_sum: float = 0.0
    pending: int = 0
    """Expansions of this node selected in the current iteration."""

    def actions(self) -> list[int]:
        """The actions from the root to this node."""
        node, path = self, []
        while node.parent is not None:
            path.extend(reversed(node.moves or (node.action,)))
            node = node.parent
        return path[::-1]  # type: ignore[return-value]


class MeasuredMCTS:
    """UCT with uniform expansion, configurable rollouts and measured-reward backpropagation,
    every node measured (``mcts-measured``)."""

    name = "mcts-measured"

    def __init__(self, config: MeasuredMCTSConfig | None = None) -> None:
        self.config = config or MeasuredMCTSConfig()

    def run(self, env: gym.Env, budget: int, seed: int) -> SearchResult:
        config, inner = self.config, oracle(env)
        require_cost_model(inner, self.name, config.needs_cost_model)
        self.prepare(env, seed)
        rng = np.random.default_rng(seed)
        tracker = Tracker(self.name, env, budget, seed)
        _, info = tracker.first_sample()
        root = MeasuredNode(inner.get_state(), float(info["score"]), 0.0,
                    [int(a) for a in np.flatnonzero(info["action_mask"])])

        for _ in tracker.rounds(config.max_stalls):
            leaves = [self._select(root) for _ in range(config.leaves_per_round)]
            for leaf in leaves:  # undo the virtual losses: the measured values replace them
                self._visit(leaf, -1, config.virtual_loss)
            children = self._expand(env, leaves, root, rng, tracker)
            values = [(child or leaf).gain for leaf, child in zip(leaves, children, strict=True)]
            grown = [i for i, child in enumerate(children) if child is not None]
            if grown and config.rollout_depth > 0 and tracker.used < budget:
                rolled = self._rollout(env, [children[i] for i in grown], root, rng, tracker)
                for i, value in zip(grown, rolled, strict=True):
                    values[i] = max(values[i], value)
            for leaf, child, value in zip(leaves, children, values, strict=True):
                self._visit(child or leaf, 1, value)
        return tracker.finish()

    @staticmethod
    def _visit(node: MeasuredNode | None, visits: int, value: float) -> None:
        """Add ``visits`` and ``value`` to ``node`` and every node above it."""
        while node is not None:
            node.visits += visits
            node.value_sum += value
            node = node.parent

    def prepare(self, env: gym.Env, seed: int) -> None:
        """Called once before a search (the LLM variant checks its endpoint here)."""

    def propose(self, env: gym.Env, node: MeasuredNode, rng: np.random.Generator,
                usage: Usage) -> int:
        """The untried action to expand ``node`` with: uniform."""
        return int(rng.choice(node.untried))

    def propose_moves(self, env: gym.Env, node: MeasuredNode, rng: np.random.Generator,
                      usage: Usage) -> list[int]:
        """The moves of ``node``'s next expansion: an untried action, possibly followed by more
        actions applied after it (the LLM's sequences); here :meth:`propose`'s one action."""
        return [self.propose(env, node, rng, usage)]

    def _select(self, node: MeasuredNode) -> MeasuredNode:
        """The node to expand: down the tree by UCT while the node is fully expanded (its
        children and the expansions selected this iteration fill ``branching``). The path gets
        a virtual loss (a visit worth ``-virtual_loss``) until the iteration backs up."""
        while node.children and not (len(node.untried) > node.pending
                                     and len(node.children) + node.pending < self.config.branching):
            log_n = math.log(max(node.visits, 1))
            node = max(node.children, key=lambda c: c.value_sum / max(c.visits, 1)
                       + self.config.exploration * math.sqrt(log_n / max(c.visits, 1)))
        node.pending += 1
        self._visit(node, 1, -self.config.virtual_loss)
        return node

    def _expand(self, env: gym.Env, leaves: list[MeasuredNode], root: MeasuredNode,
                rng: np.random.Generator, tracker: Tracker) -> list[MeasuredNode | None]:
        """One new measured child of each leaf (``None`` where no untried action works): the
        actions are proposed and their successors measured as one batch, again for the leaves
        whose child failed."""
        inner = oracle(env)
        children: list[MeasuredNode | None] = [None] * len(leaves)
        waiting = list(range(len(leaves)))
        while waiting and tracker.left > 0:
            tries: list[tuple[int, list[int], object]] = []
            for i in waiting:
                leaf = leaves[i]
                while leaf.untried and len(leaf.children) < self.config.branching:
                    moves = self.propose_moves(env, leaf, rng, tracker.result.usage)
                    leaf.untried.remove(moves[0])
                    state = inner.transition(leaf.state, moves[0])
                    for move in moves[1:]:
                        state = state if isinstance(state, str) else inner.transition(state, move)
                    if not isinstance(state, str):
                        tries.append((i, moves, state))
                        break
            tries = tries[: tracker.left]
            outcomes = inner.evaluate([state for _, _, state in tries])
            waiting = []
            for (i, moves, state), outcome in zip(tries, outcomes, strict=True):
                leaf = leaves[i]
                tracker.observe_outcome(state, outcome, [*leaf.actions(), *moves])
                if outcome.score is None:  # its program failed: counted, dropped, try another
                    waiting.append(i)
                    continue
                child = MeasuredNode(state, outcome.score, log_gain(root.score, outcome.score),
                             [int(a) for a in np.flatnonzero(inner.legal_mask(state))], leaf,
                             moves[0], tuple(moves) if len(moves) > 1 else ())
                leaf.children.append(child)
                children[i] = child
        for leaf in leaves:
            leaf.pending = 0
        return children

    def _rollout(self, env: gym.Env, children: list[MeasuredNode], root: MeasuredNode,
                 rng: np.random.Generator, tracker: Tracker) -> list[float]:
        """The gain of each random walk's end state from each child (the child's own where the
        walk goes nowhere or its end fails), the end states measured as one batch."""
        inner = oracle(env)
        gains = [child.gain for child in children]
        walks = [(i, *random_walk(inner, child.state, self.config.rollout_depth, rng))
                 for i, child in enumerate(children)]
        walks = [(i, state, walked) for i, state, walked in walks if walked][: tracker.left]
        if not walks:
            return gains
        states = [state for _, state, _ in walks]
        if self.config.rollout == "cost_model":
            for (i, _, _), estimate in zip(walks, inner.estimate(states), strict=True):
                gains[i] = log_gain(root.score, float(estimate))
            return gains
        for (i, state, walked), outcome in zip(walks, inner.evaluate(states), strict=True):
            tracker.observe_outcome(state, outcome, [*children[i].actions(), *walked])
            if outcome.score is not None:
                gains[i] = log_gain(root.score, outcome.score)
        return gains

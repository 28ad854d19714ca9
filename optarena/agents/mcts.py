"""Monte Carlo tree search (UCT) over the environment's actions, with measured rewards.

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
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import gymnasium as gym
import numpy as np

from optarena.agents.base import SearchResult, Tracker, Usage, log_gain, random_walk
from optarena.envs.contract import game


@dataclass
class MCTSConfig:
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


@dataclass(eq=False)
class Node:
    """A measured state of the tree."""

    state: Any
    score: float
    gain: float
    untried: list[int]
    """Legal actions not expanded yet."""
    parent: Node | None = None
    action: int | None = None
    children: list[Node] = field(default_factory=list)
    visits: int = 0
    value_sum: float = 0.0

    def actions(self) -> list[int]:
        """The actions from the root to this node."""
        node, path = self, []
        while node.parent is not None:
            path.append(node.action)
            node = node.parent
        return path[::-1]  # type: ignore[return-value]


class MCTS:
    """UCT with uniform expansion, configurable rollouts and measured-reward backpropagation."""

    name = "mcts"

    def __init__(self, config: MCTSConfig | None = None) -> None:
        self.config = config or MCTSConfig()

    def run(self, env: gym.Env, budget: int, seed: int) -> SearchResult:
        config, inner = self.config, game(env)
        if config.rollout == "cost_model" and not inner.has_cost_model:
            raise ValueError(f"{type(inner).__name__} has no cost model here "
                             "(a tensor-schedule environment needs surrogate=True)")
        self.prepare(env, seed)
        rng = np.random.default_rng(seed)
        tracker = Tracker(self.name, env, budget, seed)
        _, info = env.reset(seed=seed)
        tracker.observe(info, [])
        root = Node(inner.get_state(), float(info["score"]), 0.0,
                    [int(a) for a in np.flatnonzero(info["action_mask"])])

        for _ in tracker.rounds(config.max_stalls):
            node = self._select(root)
            child = self._expand(env, node, root, rng, tracker)
            leaf = child or node
            value = leaf.gain
            if child is not None and config.rollout_depth > 0 and tracker.used < budget:
                value = max(value, self._rollout(env, child, root, rng, tracker))
            while leaf is not None:
                leaf.visits += 1
                leaf.value_sum += value
                leaf = leaf.parent
        return tracker.finish()

    def prepare(self, env: gym.Env, seed: int) -> None:
        """Called once before a search (the LLM variant checks its endpoint here)."""

    def propose(self, env: gym.Env, node: Node, rng: np.random.Generator, usage: Usage) -> int:
        """The untried action to expand ``node`` with: uniform."""
        return int(rng.choice(node.untried))

    def _select(self, node: Node) -> Node:
        while node.children and not (node.untried and len(node.children) < self.config.branching):
            log_n = math.log(max(node.visits, 1))
            node = max(node.children, key=lambda c: c.value_sum / max(c.visits, 1)
                       + self.config.exploration * math.sqrt(log_n / max(c.visits, 1)))
        return node

    def _expand(self, env: gym.Env, node: Node, root: Node, rng: np.random.Generator,
                tracker: Tracker) -> Node | None:
        """Measure one new child of ``node``; ``None`` if no untried action works."""
        inner = game(env)
        while node.untried and len(node.children) < self.config.branching and tracker.left > 0:
            action = self.propose(env, node, rng, tracker.result.usage)
            node.untried.remove(action)
            state = inner.transition(node.state, action)
            if isinstance(state, str):
                continue
            try:
                info = inner.set_state(state)
            except ValueError:  # its program failed: counted, dropped
                continue
            tracker.observe(info, [*node.actions(), action])
            child = Node(inner.get_state(), float(info["score"]),
                         log_gain(root.score, float(info["score"])),
                         [int(a) for a in np.flatnonzero(info["action_mask"])], node, action)
            node.children.append(child)
            return child
        return None

    def _rollout(self, env: gym.Env, child: Node, root: Node, rng: np.random.Generator,
                 tracker: Tracker) -> float:
        """The gain of a random walk's end state from ``child`` (the child's own if it fails)."""
        inner = game(env)
        state, walked = random_walk(inner, child.state, self.config.rollout_depth, rng)
        actions = [*child.actions(), *walked]
        if not walked:
            return child.gain
        if self.config.rollout == "cost_model":
            return log_gain(root.score, float(inner.estimate([state])[0]))
        try:
            info = inner.set_state(state)
        except ValueError:
            return child.gain
        tracker.observe(info, actions)
        return log_gain(root.score, float(info["score"]))

"""A fourth environment against the contract alone: order jobs to minimize their weighted completion
time. Its registry line: the entry point ``toy = toy_env:KIND`` (group ``optarena.envs``)."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from optarena.envs.base import ArenaEnv
from optarena.envs.contract import Outcome, Program
from optarena.envs.registry import EnvKind

KIND = EnvKind("toy_permutation", "optarena-test/ToyPermutation-v0", "toy_env:ToyEnv", "problem")


def weights(problem: str) -> np.ndarray:
    """``jobs-N``: N jobs with weights drawn from N (the formula's only data)."""
    return np.random.default_rng(int(problem.split("-")[1])).integers(1, 10, int(problem[5:]))


@dataclass(frozen=True)
class Order:
    problem: str
    jobs: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {"problem": self.problem, "jobs": list(self.jobs)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Order":
        return cls(str(data["problem"]), tuple(int(j) for j in data["jobs"]))


class OrderSpace:
    random_start = False

    def __init__(self, problem: str) -> None:
        self.problem, self.n = problem, len(weights(problem))
        self.n_actions = self.n - 1  # action i swaps positions i and i + 1
        self.observation_space = spaces.Box(0.0, 1.0, (self.n,), np.float32)

    def problems(self) -> Sequence[str]:
        return [self.problem]
    def initial(self, problem: str, rng: np.random.Generator) -> Order:
        return Order(problem, tuple(range(self.n)))

    def canonical(self, state: Order) -> Order:
        if state.problem != self.problem or sorted(state.jobs) != list(range(self.n)):
            raise ValueError(f"not an order of the jobs of {self.problem}: {state}")
        return state

    def state_from_json(self, data: Mapping[str, Any]) -> Order:
        return Order.from_json(data)
    def legal_mask(self, state: Order) -> np.ndarray:
        return np.ones(self.n_actions, dtype=np.int8)
    def transition(self, state: Order, action: int) -> Order | str:
        if not 0 <= action < self.n_actions:
            return f"action {action} is outside [0, {self.n_actions})"
        jobs = list(state.jobs)
        jobs[action], jobs[action + 1] = jobs[action + 1], jobs[action]
        return Order(state.problem, tuple(jobs))

    def describe_actions(self, state: Order) -> list[dict[str, Any]]:
        return [{"id": i, "text": f"swap positions {i} and {i + 1}"} for i in range(self.n_actions)]

    def observe(self, state: Order, outcome: Outcome, reference: float, progress: float
                ) -> np.ndarray:
        return np.array(state.jobs, np.float32) / self.n


class OrderScorer:
    deterministic = True

    def context(self, problem: str) -> dict[str, Any]:
        return {"workload_hash": ",".join(map(str, weights(problem))), "target": "formula"}

    def anchors(self, problem: str) -> dict[str, Outcome]:
        return {"smith": Outcome(_cost(problem, np.argsort(-weights(problem), kind="stable")))}
    def compile(self, state: Order) -> Program:
        return Program(state.problem, ",".join(map(str, state.jobs)), state.jobs)
    def reference(self, problem: str) -> Program:
        return self.compile(Order(problem, tuple(range(len(weights(problem))))))
    def score(self, programs: Sequence[Program], bound: Sequence[float | None]) -> list[Outcome]:
        return [Outcome(_cost(p.problem, p.payload)) for p in programs]

    def close(self) -> None:
        pass


def _cost(problem: str, jobs: Sequence[int]) -> float:  # each job takes one unit of time
    return float(sum(weights(problem)[job] * (i + 1) for i, job in enumerate(jobs)))


class ToyEnv(ArenaEnv[Order]):
    def __init__(self, problem: str = "jobs-6", max_steps: int = 16, store: Any = None) -> None:
        super().__init__(OrderSpace(problem), OrderScorer(), problem=problem,
                         max_steps=max_steps, store=store)

"""Actions and observations of ``optarena/LlvmPassOrder-v0``.

**Actions** are CompilerGym's 124 ``opt`` passes (``llvm-v0``'s ``PassesAll`` list, in its order),
``Discrete(124)``. The mask allows a configurable subset: by default every pass except those that
instrument the program (they add calls to profiling or sanitizer runtimes, which changes what the
program does and how it links) and those that only rename or strip it.

**Observations** are CompilerGym's Autophase (56 counts) or InstCount (70 counts) features of the
current IR, as ``log1p`` of the counts, with the current score over the reference score and the
episode's progress.

**States** are a benchmark spec and the passes applied to it (:class:`PassState`); every pass can
follow every state, so an episode never terminates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from optarena.envs.contract import Outcome

EXCLUDED_BY_DEFAULT = (
    "-insert-gcov-profiling", "-ee-instrument", "-post-inline-ee-instrument", "-sancov",
    "-cross-dso-cfi", "-pgo-memop-opt", "-instnamer", "-strip", "-strip-nondebug",
    "-strip-debug-declare", "-name-anon-globals", "-add-discriminators",
)
"""Passes the default mask leaves out (instrumentation, renaming, stripping)."""

FEATURES = {"autophase": ("Autophase", 56), "instcount": ("InstCount", 70)}
"""Observation name -> (CompilerGym observation, length)."""
FEATURE_BOUND = 32.0
"""``log1p`` of a count is at most this (a count of 7.9e13)."""
SCORE_BOUND = 16.0
"""The score over the reference is observed up to this (clipped above)."""


def pass_mask(names: Sequence[str], allowed: Sequence[str] | None) -> np.ndarray:
    """0/1 ``int8`` over ``names``: ``allowed`` (every one must be a pass), else the default."""
    if allowed is not None:
        unknown = sorted(set(allowed) - set(names))
        if unknown:
            raise ValueError(f"unknown passes {unknown}; the passes are CompilerGym's llvm-v0 "
                             f"list, e.g. {list(names[:3])}")
        chosen = set(allowed)
    else:
        chosen = set(names) - set(EXCLUDED_BY_DEFAULT)
    return np.array([name in chosen for name in names], dtype=np.int8)


def observation_space(features: str) -> spaces.Dict:
    if features not in FEATURES:
        raise ValueError(f"unknown observation {features!r}; available: {sorted(FEATURES)}")
    return spaces.Dict({
        "features": spaces.Box(0.0, FEATURE_BOUND, (FEATURES[features][1],), np.float32),
        "score": spaces.Box(0.0, SCORE_BOUND, (1,), np.float32),
        "progress": spaces.Box(0.0, 1.0, (1,), np.float32),
    })


def feature_vector(counts: Sequence[int]) -> np.ndarray:
    counts = np.maximum(np.asarray(counts, dtype=np.float64), 0.0)
    return np.minimum(np.log1p(counts), FEATURE_BOUND).astype(np.float32)


@dataclass(frozen=True)
class PassState:
    """A benchmark (``problem``: its spec) and the passes applied to it, in order."""

    problem: str
    passes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"problem": self.problem, "passes": list(self.passes)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PassState:
        passes = data["passes"]
        if isinstance(passes, str) or not all(isinstance(p, str) for p in passes):
            raise TypeError(f"passes must be a list of pass names, not {passes!r}")
        return cls(str(data["problem"]), tuple(passes))


class PassSpace:
    """Pass sequences over a set of benchmarks (the pass list is CompilerGym's)."""

    random_start = False

    def __init__(self, benchmarks: Sequence[str], pass_names: Sequence[str],
                 allowed: Sequence[str] | None, observation: str) -> None:
        self.benchmarks = list(benchmarks)
        self.pass_names = list(pass_names)
        self.mask = pass_mask(self.pass_names, allowed)
        self.n_actions = len(self.pass_names)
        self.observation = observation
        self.observation_space = observation_space(observation)

    def problems(self) -> Sequence[str]:
        return self.benchmarks

    def initial(self, problem: str, rng: np.random.Generator) -> PassState:
        return PassState(problem)

    def canonical(self, state: PassState) -> PassState:
        if state.problem not in self.benchmarks:
            raise ValueError(f"unknown benchmark {state.problem!r}; this environment's: "
                             f"{self.benchmarks}")
        unknown = sorted(set(state.passes) - set(self.pass_names))
        if unknown:
            raise ValueError(f"unknown passes {unknown}")
        return state

    def state_from_json(self, data: Mapping[str, Any]) -> PassState:
        return PassState.from_json(data)

    def legal_mask(self, state: PassState) -> np.ndarray:
        return self.mask.copy()

    def transition(self, state: PassState, action: int) -> PassState | str:
        if not 0 <= action < self.n_actions or not self.mask[action]:
            return f"action {action} is not an allowed pass"
        return PassState(state.problem, (*state.passes, self.pass_names[action]))

    def describe_actions(self, state: PassState) -> list[dict[str, Any]]:
        return [{"id": int(i), "rule": "pass", "text": self.pass_names[i]}
                for i in np.flatnonzero(self.mask)]

    def observe(self, state: PassState, outcome: Outcome, reference: float, progress: float
                ) -> dict[str, np.ndarray]:
        score = outcome.score if outcome.score is not None else reference
        return {
            "features": feature_vector(outcome.extras["features"]),
            "score": np.array([min(score / reference, SCORE_BOUND)], np.float32),
            "progress": np.array([progress], np.float32),
        }

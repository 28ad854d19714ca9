"""Actions and observations of ``optarena/LlvmPassOrder-v0``.

**Actions** are CompilerGym's 124 ``opt`` passes (``llvm-v0``'s ``PassesAll`` list, in its order),
``Discrete(124)``. The mask allows a configurable subset: by default every pass except those that
instrument the program (they add calls to profiling or sanitizer runtimes, which changes what the
program does and how it links) and those that only rename or strip it.

**Observations** are CompilerGym's Autophase (56 counts) or InstCount (70 counts) features of the
current IR, as ``log1p`` of the counts, with the current score over the reference score and the
episode's progress.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from gymnasium import spaces

EXCLUDED_BY_DEFAULT = (
    "-insert-gcov-profiling", "-ee-instrument", "-post-inline-ee-instrument", "-sancov",
    "-cross-dso-cfi", "-pgo-memop-opt", "-instnamer", "-strip", "-strip-nondebug",
    "-strip-debug-declare", "-name-anon-globals", "-add-discriminators",
)
"""Passes the default mask leaves out (instrumentation, renaming, stripping)."""

FEATURES = {"autophase": ("Autophase", 56), "instcount": ("InstCount", 70)}
"""Observation name -> (CompilerGym observation, length)."""


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
        "features": spaces.Box(0.0, np.inf, (FEATURES[features][1],), np.float32),
        "score": spaces.Box(0.0, np.inf, (1,), np.float32),
        "progress": spaces.Box(0.0, 1.0, (1,), np.float32),
    })


def feature_vector(counts: Sequence[int]) -> np.ndarray:
    return np.log1p(np.maximum(np.asarray(counts, dtype=np.float64), 0.0)).astype(np.float32)

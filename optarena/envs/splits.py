"""Train/test splits: named, versioned divisions of an environment's problems, so that a policy
trained on some programs is tested on programs it never saw.

Each environment ships its splits (:meth:`~optarena.envs.base.ArenaEnv.splits`); ``optarena
splits`` lists them. A split divides problems by their *source* (:attr:`Split.group`): the
peephole corpus by source function (never by block), LLVM benchmarks by generator seed and suite
program, tensor workloads by family and shape; no source has problems on both sides. A split's
``kwargs`` are the environment arguments its problems need (the corpus, the metric, a layout of
fixed size), the same for training and testing.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optarena.envs  # noqa: F401 - registers the environment kinds
from optarena.envs.registry import KINDS, kind


@dataclass(frozen=True)
class Split:
    """A named, versioned train/test division of one environment's problems."""

    name: str
    version: int
    env: str
    """The environment kind (``aarch64_peephole``, ...)."""
    description: str
    divide: Callable[[], tuple[Sequence[str], Sequence[str]]] = field(repr=False)
    """Returns ``(train, test)`` problems (computed when asked: a corpus is read then)."""
    group: Callable[[str], str] = field(repr=False)
    """The source a problem comes from: no source is on both sides."""
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.name}/v{self.version}"

    def problems(self) -> tuple[list[str], list[str]]:
        train, test = self.divide()
        return list(train), list(test)

    def make(self, side: str, extra: Mapping[str, Any] | None = None) -> Any:
        """The environment over the ``train`` or ``test`` problems."""
        train, test = self.problems()
        problems = {"train": train, "test": test}[side]
        return kind(self.env).make(problems, {**self.kwargs, **(extra or {})})


def held_out(groups: Sequence[str], share: float = 0.2, salt: str = "") -> list[str]:
    """The sources held out for testing: ``ceil(share * n)`` of ``groups`` (at least one of a
    non-empty list), the first by a fixed hash of each (the same sources whatever their order)."""
    ranked = sorted(groups, key=lambda g: hashlib.sha256(f"{salt}{g}".encode()).digest())
    return ranked[: math.ceil(share * len(ranked))]


def _splits() -> Iterator[Split]:
    """Every registered environment's splits, one environment's module imported at a time."""
    for name in sorted(KINDS):
        yield from KINDS[name].env_class().splits()


def all_splits() -> dict[str, Split]:
    """Every registered environment's splits, by id."""
    return {item.id: item for item in _splits()}


def get_split(split_id: str) -> Split:
    """The split called ``name/vN`` (``ValueError`` listing the known ones otherwise). Only the
    environments up to the one that has it are imported: a peephole split does not load TVM
    (several seconds)."""
    found = next((item for item in _splits() if item.id == split_id), None)
    if found is None:
        raise ValueError(f"unknown split {split_id!r}; known: {', '.join(all_splits())}")
    return found

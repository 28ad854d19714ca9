"""Workload names: what ``optarena workloads`` lists and a config may name, read without TVM.

A workload is ``NAME`` or ``NAME:knob=value,...`` (``llama3-8b-attention:seq_len=128``) of a
registered family, or the path of a user's TVMScript file. :func:`parse_workload` reads a name
into its family and knobs; :mod:`~optarena.envs.tensor_schedule.workload` builds the program.
Kept apart so that a config's workloads are checked before any run starts, without the seconds
importing TVM takes (:func:`check_workloads`, the registry's ``problem_check``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class WorkloadFamily:
    """A registry entry: a name pattern with named integer knobs and their defaults."""

    pattern: str
    """Regex on the name; its named groups are knobs too (``matmul-(?P<n>\\d+)``)."""
    defaults: dict[str, int]
    examples: tuple[str, ...]
    knob_doc: str = ""


FAMILIES: dict[str, WorkloadFamily] = {
    "matmul": WorkloadFamily(
        pattern=r"matmul-(?P<n>\d+)(?:x(?P<m>\d+)x(?P<k>\d+))?",
        defaults={},
        examples=("matmul-128", "matmul-256", "matmul-512"),
        knob_doc="matmul-N (square) or matmul-NxMxK",
    ),
    "conv2d": WorkloadFamily(
        pattern=r"conv2d-(?P<size>\d+)-(?P<channels>\d+)",
        defaults={},
        examples=("conv2d-56-64", "conv2d-28-128", "conv2d-14-256"),
        knob_doc="conv2d-SIZE-CHANNELS: 3x3 same conv, SIZExSIZE, CHANNELS in and out (ResNet stages)",
    ),
    **{name: WorkloadFamily(pattern=re.escape(name), defaults={knob: default}, examples=(name,),
                            knob_doc=f"{knob}: {doc}")
       for name, knob, default, doc in (
           ("llama3-8b-attention", "seq_len", 64, "sequence length"),
           ("deepseek-r1-moe", "tokens", 16, "tokens routed to the expert"),
           ("flux-attention", "seq_len", 64, "image+text tokens"),
           ("flux-conv", "size", 8, "spatial height = width"),
           ("llama4-scout-mlp", "tokens", 4, "tokens in the batch"),
       )},
}


def available() -> list[str]:
    """Example names of every registered workload (families accept other sizes too)."""
    return [name for family in FAMILIES.values() for name in family.examples]


def _parse_knobs(text: str, name: str) -> dict[str, int]:
    knobs: dict[str, int] = {}
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not value.strip().isdigit():
            raise ValueError(f"workload {name!r}: knob {item!r} is not KEY=INTEGER")
        knobs[key.strip()] = int(value)
    return knobs


def parse_workload(spec: str) -> tuple[str, dict[str, int]] | Path:
    """The family and knobs a registered name gives, or the path of a TVMScript file;
    ``ValueError`` naming the registered ones otherwise (``FileNotFoundError`` for a missing
    ``.py`` file)."""
    base, _, knob_text = spec.partition(":")
    for name, family in FAMILIES.items():
        match = re.fullmatch(family.pattern, base)
        if match:
            knobs = {**family.defaults, **_parse_knobs(knob_text, spec)}
            knobs.update({k: int(v) for k, v in match.groupdict().items() if v is not None})
            unknown = set(knobs) - set(family.defaults) - set(match.groupdict())
            if unknown:
                raise ValueError(
                    f"workload {spec!r}: unknown knob(s) {sorted(unknown)}; "
                    f"knobs: {family.knob_doc}"
                )
            return name, knobs
    path = Path(spec)
    if path.suffix == ".py" or path.exists():
        if not path.exists():
            raise FileNotFoundError(f"workload file {spec!r} does not exist")
        return path
    raise ValueError(
        f"unknown workload {spec!r}. Available: {', '.join(available())} "
        "(families take other sizes: matmul-N, matmul-NxMxK, conv2d-SIZE-CHANNELS; "
        "RC layers take NAME:knob=value), or a path to a TVMScript file."
    )


def check_workloads(problems: Sequence[str], kwargs: Mapping[str, Any]) -> None:
    """``ValueError`` for a name that is no workload (a TVMScript file's content is checked
    when the environment loads it)."""
    for spec in problems:
        try:
            parse_workload(spec)
        except FileNotFoundError as err:
            raise ValueError(str(err)) from None

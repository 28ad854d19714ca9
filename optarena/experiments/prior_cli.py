"""``optarena prior``: train a cost-model prior on measurements of other workloads
(:mod:`optarena.envs.tensor_schedule.prior`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console


def add_commands(commands: Any) -> None:
    prior = commands.add_parser(
        "prior", help="measure random schedules of some workloads on this machine and train a "
        "cost-model prior on them (TensorSchedule-v0's surrogate_prior)")
    prior.add_argument("workloads", nargs="+", help="workloads to measure (not the ones you "
                       "will race on)")
    prior.add_argument("--out", type=Path, required=True, help="the prior's file (.tar); its "
                       "metadata goes beside it (.json)")
    prior.add_argument("--samples", type=int, default=200, help="random schedules per workload")
    prior.add_argument("--seed", type=int, default=0)
    prior.add_argument("--measure", type=json.loads, default=None,
                       help='timing settings as JSON, e.g. \'{"repeat": 3}\' (early stopping '
                       "is always off)")


def run(args: argparse.Namespace, console: Console) -> int:
    from optarena.envs.tensor_schedule.prior import collect

    if args.samples < 1:
        console.print("[red]--samples must be at least 1[/red]")
        return 2
    meta = collect(args.workloads, args.out, samples=args.samples, seed=args.seed,
                   env_kwargs={"measure": args.measure} if args.measure else None,
                   say=console.print)
    console.print(f"{args.out}: {meta['measurements']} measurements on {meta['cpu']} in "
                  f"{meta['wall_s']} s (SHA-256 {meta['sha256'][:16]}...)")
    return 0

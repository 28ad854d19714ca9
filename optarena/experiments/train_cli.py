"""``optarena splits`` and ``optarena train``: train/test splits and policies trained on them."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table


def add_commands(commands: argparse._SubParsersAction) -> None:
    commands.add_parser("splits", help="the train/test splits each environment ships")
    train = commands.add_parser("train", help="train MaskablePPO on a split, test it on the "
                                "held-out problems (resumable)")
    train.add_argument("--config", type=Path, required=True, help="YAML TrainConfig")
    train.add_argument("--out", type=Path, required=True, help="output directory")
    train.add_argument("--seeds", help="overrides the config's seeds, e.g. 0,1")
    train.add_argument("--steps", type=int, help="overrides total_timesteps")


def run(args: argparse.Namespace, console: Console) -> int:
    """Execute ``splits`` or ``train``."""
    if args.command == "splits":
        from optarena.envs.splits import all_splits

        table = Table(title="train/test splits")
        for column in ("split", "environment", "train", "test", "held-out sources",
                       "description"):
            table.add_column(column, overflow="fold")
        for split in all_splits().values():
            train, test = split.problems()
            table.add_row(split.id, split.env, str(len(train)), str(len(test)),
                          str(len({split.group(p) for p in test})), split.description)
        console.print(table)
        return 0
    from optarena.experiments.train import TrainConfig, train

    config = TrainConfig.load(args.config)
    if args.seeds:
        config.seeds = [int(s) for s in args.seeds.split(",")]
    if args.steps is not None:
        config.total_timesteps = args.steps
    console.print(f"report: {train(config, args.out, console)}")
    return 0

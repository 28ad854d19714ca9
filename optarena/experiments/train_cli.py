"""``optarena splits`` and ``optarena train``: train/test splits and policies trained on them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from optarena.experiments.config_file import ConfigError, integers, load_config


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
    from optarena.envs.splits import get_split
    from optarena.experiments.train import TrainConfig, train

    overrides: dict[str, Any] = {}
    if args.seeds:
        overrides["seeds"] = integers(args.seeds, "--seeds")
    if args.steps is not None:
        overrides["total_timesteps"] = args.steps
    config = load_config(TrainConfig, args.config, overrides)
    try:
        get_split(config.split)
    except ValueError as err:
        raise ConfigError(f"{args.config}: split: {err}") from None
    console.print(f"report: {train(config, args.out, console)}")
    return 0

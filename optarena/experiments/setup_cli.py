"""``optarena setup compiler-gym``: install and provision the optional parts that live outside
the suite's own Python environment."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console


def add_commands(commands: Any) -> None:
    setup = commands.add_parser("setup", help="install optional parts (compiler-gym)")
    parts = setup.add_subparsers(dest="part", required=True)
    gym = parts.add_parser("compiler-gym", help="CompilerGym 0.2.5 in its own virtual "
                           "environment, offline (LlvmPassOrder-v0)")
    gym.add_argument("--home", type=Path, help="where to install it (default: "
                     "$OPTARENA_COMPILER_GYM_HOME, else <cache>/compiler-gym)")


def run(args: argparse.Namespace, console: Console) -> int:
    from optarena.envs.llvm_pass_order.provision import SetupError, setup

    try:
        home = setup(args.home, say=console.print)
    except SetupError as err:
        console.print(f"[red]setup failed[/red]: {err}")
        return 1
    console.print(f"CompilerGym is ready in {home}")
    return 0

"""``optarena store info | clear``: the persistent measurement store (:mod:`optarena.envs.store`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console


def add_commands(commands: argparse._SubParsersAction) -> None:
    store = commands.add_parser("store", help="the persistent measurement store")
    sub = store.add_subparsers(dest="store_command", required=True)
    for name, text in (("info", "where the store is and what it holds"),
                       ("clear", "delete every stored measurement")):
        command = sub.add_parser(name, help=text)
        command.add_argument("--path", type=Path, help="the store (default: $OPTARENA_STORE, "
                             "else <cache>/measurements.sqlite)")


def run(args: argparse.Namespace, console: Console) -> int:
    from optarena.envs.store import Store

    store = Store(args.path)
    try:
        if args.store_command == "clear":
            console.print(f"cleared {store.clear()} measurements from {store.path}")
            return 0
        info = store.info()
        console.print(f"{info.path}: {info.outcomes} measurements of {info.contexts} contexts "
                      f"(workload, target, settings, machine), {info.bytes / 1e6:.1f} MB")
        return 0
    finally:
        store.close()

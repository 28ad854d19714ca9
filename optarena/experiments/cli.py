"""The ``optarena`` command.

* ``optarena workloads`` -- the registered workloads with their shapes, FLOPs and sources.
* ``optarena tune --config configs/tune.yaml`` -- one agent on one problem of any environment for
  a budget of measurements; prints the improvement found and exports the best state (for tensor
  programs: TVMScript + MetaSchedule database).
* ``optarena compare --config configs/quickstart.yaml --out DIR`` -- race agents (resumable), then
  ``optarena report DIR``; ``optarena submit``, ``verify`` and ``leaderboard`` for verified results.
* ``optarena peephole build-corpus SRC... --out DIR`` and ``optarena peephole score PRED.jsonl``.
* ``optarena llm models | serve --model NAME | check --base-url URL --model NAME``.
* ``optarena setup compiler-gym`` -- CompilerGym for ``optarena/LlvmPassOrder-v0``, offline.
* ``optarena store info | clear`` -- the persistent measurement store.
* ``optarena splits`` and ``optarena train --config configs/train-peephole.yaml --out DIR`` --
  train/test splits, and MaskablePPO trained on one and tested on its held-out problems.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console
from rich.table import Table

from optarena.experiments import (
    arena_cli,
    llm_cli,
    peephole_cli,
    prior_cli,
    setup_cli,
    store_cli,
    train_cli,
)


class TuneConfig(BaseModel):
    """A tuning run, as read from YAML."""

    model_config = ConfigDict(extra="forbid")

    env: str = Field("tensor_schedule", description="a registered environment kind")
    workload: str = Field("matmul-256", description="the problem: workload, block or benchmark")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="environment arguments")
    agent: str = "random"
    agent_config: dict[str, Any] = Field(default_factory=dict)
    budget: int = Field(32, ge=1, description="measurements per seed")
    seeds: list[int] = Field(default_factory=lambda: [0])
    export_dir: Path | None = None


def _workloads(console: Console) -> int:
    from optarena.envs.tensor_schedule.workload import FAMILIES, get_workload

    table = Table(title="optarena workloads (TensorSchedule-v0)")
    for column in ("name", "parameters (shape)", "GFLOP", "knobs", "source"):
        table.add_column(column, overflow="fold")
    for family in FAMILIES.values():
        for name in family.examples:
            workload = get_workload(name)
            shapes = ", ".join(f"{n} {'x'.join(map(str, s))}" for n, s, _ in workload.params)
            table.add_row(workload.name, shapes, f"{workload.flops / 1e9:.3f}",
                          family.knob_doc, workload.source)
    console.print(table)
    console.print("Families take other sizes (matmul-N, matmul-NxMxK, conv2d-SIZE-CHANNELS); "
                  "RC layers take NAME:knob=value; a TVMScript file path is a workload too.")
    return 0


def _tune(config: TuneConfig, console: Console) -> int:
    from optarena import agents
    from optarena.envs.contract import game
    from optarena.envs.registry import kind

    env = kind(config.env).make(config.workload, config.kwargs)
    inner = game(env)
    try:
        console.print(f"[bold]{config.workload}[/bold]: {inner.target_text()}")
        console.print(f"reference: {inner.format_score(inner.reference_score())} "
                      "(measured once, stored)")
        improvements = []
        for seed in config.seeds:
            agent = agents.make(config.agent, **config.agent_config)
            result = agent.run(env, config.budget, seed)
            improvements.append(result.best_improvement)
            console.print(
                f"{config.agent} seed {seed}: best {inner.format_score(result.best_score)} = "
                f"[bold green]{result.best_improvement:.2f}x[/bold green] the reference, "
                f"{result.usage.measurements} measurements, {result.wall_s:.1f} s")
            if config.export_dir is not None and result.best_state is not None:
                written = inner.export(inner.as_state(result.best_state),
                                       config.export_dir / f"seed{seed}")
                console.print(f"  exported {', '.join(p.name for p in written)} to "
                              f"{config.export_dir / f'seed{seed}'}")
    finally:
        env.close()
    if len(improvements) > 1:
        console.print(f"improvement over {len(improvements)} seeds: geometric mean "
                      f"{statistics.geometric_mean(improvements):.2f}x")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="optarena", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("workloads", help="list the registered workloads")
    arena_cli.add_commands(commands)
    llm_cli.add_commands(commands)
    tune = commands.add_parser("tune", help="run one agent on one problem")
    tune.add_argument("--config", type=Path, help="YAML file with TuneConfig fields")
    tune.add_argument("--workload", help="overrides the config")
    tune.add_argument("--agent", help="overrides the config")
    tune.add_argument("--budget", type=int, help="overrides the config")
    tune.add_argument("--seed", type=int, action="append", dest="seeds",
                      help="overrides the config's seeds (repeatable)")
    tune.add_argument("--export-dir", type=Path, help="overrides the config")
    peephole_cli.add_commands(commands)
    setup_cli.add_commands(commands)
    store_cli.add_commands(commands)
    prior_cli.add_commands(commands)
    train_cli.add_commands(commands)
    args = parser.parse_args(argv)
    console = Console()
    if args.command == "workloads":
        return _workloads(console)
    if args.command == "peephole":
        return peephole_cli.run(args, console)
    if args.command == "llm":
        return llm_cli.run(args, console)
    if args.command == "setup":
        return setup_cli.run(args, console)
    if args.command == "store":
        return store_cli.run(args, console)
    if args.command == "prior":
        return prior_cli.run(args, console)
    if args.command in ("splits", "train"):
        return train_cli.run(args, console)
    if args.command != "tune":
        return arena_cli.run(args, console)
    values: dict[str, Any] = yaml.safe_load(args.config.read_text()) if args.config else {}
    for key in ("workload", "agent", "budget", "seeds", "export_dir"):
        if getattr(args, key) is not None:
            values[key] = getattr(args, key)
    return _tune(TuneConfig(**(values or {})), console)


if __name__ == "__main__":
    sys.exit(main())

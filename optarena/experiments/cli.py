"""optarena: compiler optimization as a Gymnasium game, and races of agents that play it.

Commands:
  workloads                   the registered tensor workloads: shapes, FLOPs, sources
  tune --config FILE          one agent on one problem of any environment for a budget of
                              measurements: prints the improvement found and exports the best
                              state (tensor programs: TVMScript and a MetaSchedule database)
  compare --config FILE --out DIR
                              race agents on workloads (resumable: run it again after a stop)
  report DIR                  the race's report: report.md, report.html, curves
  submit, verify, leaderboard verified results and their leaderboard
  peephole build-corpus SRC... --out DIR, peephole score PRED.jsonl
                              the AArch64 peephole corpus and its metrics
  llm models | serve | check  local models and OpenAI-compatible endpoints
  setup compiler-gym          CompilerGym for optarena/LlvmPassOrder-v0, offline
  store info | clear          the persistent measurement store
  prior WORKLOAD... --out FILE
                              a cost-model prior trained on other workloads
  splits, train --config FILE --out DIR
                              train/test splits; MaskablePPO trained on one, tested on the rest

Examples: optarena compare --config configs/quickstart.yaml --out runs/quickstart
          optarena tune --config configs/tune.yaml
"optarena COMMAND --help" describes a command. A config, file or name that is wrong is one line
on stderr and exit code 2, before anything runs.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import statistics
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
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
from optarena.experiments.config_file import ConfigError, InvalidValue, load_config, validated


class TuneConfig(BaseModel):
    """A tuning run, as read from YAML. The environment kind, the problem and the agent with its
    settings are checked when it is read, before the environment is made."""

    model_config = ConfigDict(extra="forbid")

    env: str = Field("tensor_schedule", description="a registered environment kind")
    workload: str = Field("matmul-256", description="the problem: workload, block or benchmark")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="environment arguments")
    agent: str = "random"
    agent_config: dict[str, Any] = Field(default_factory=dict)
    budget: int = Field(32, ge=1, description="measurements per seed")
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    export_dir: Path | None = Field(None, description="the best state of each seed goes to "
                                    "export_dir/seedN (none: not exported)")

    @model_validator(mode="after")
    def _known(self) -> TuneConfig:
        from optarena.envs.registry import kind
        from optarena.experiments.runs import check_agent, check_cost_model, check_problems

        try:
            known = kind(self.env)
        except ValueError as err:
            raise InvalidValue("env", str(err)) from None
        if known.problem_arg in self.kwargs:
            raise InvalidValue("kwargs", f"name the {known.problem_arg} in 'workload', not "
                               "kwargs")
        check_problems(self.env, [self.workload], self.kwargs, ("workload",))
        check_agent(self.agent, self.agent_config, keys=("agent", "agent_config"))
        check_cost_model(self.agent, self.agent_config, [(self.env, self.kwargs)], ("agent",))
        return self


def _workloads(console: Console) -> int:
    from optarena.envs.tensor_schedule.names import FAMILIES
    from optarena.envs.tensor_schedule.workload import get_workload

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
        if config.export_dir is None:
            console.print("not exported: set export_dir in the config, or --export-dir")
    finally:
        env.close()
    if len(improvements) > 1:
        console.print(f"improvement over {len(improvements)} seeds: geometric mean "
                      f"{statistics.geometric_mean(improvements):.2f}x")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="optarena", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version",
                        version=f"optarena {importlib.metadata.version('optarena')}")
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
    try:
        return _run(args, Console())
    except ConfigError as err:
        print(f"optarena {args.command}: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"optarena {args.command}: interrupted", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace, console: Console) -> int:
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
    overrides = {key: getattr(args, key) for key in ("workload", "agent", "budget", "seeds",
                                                     "export_dir") if getattr(args, key) is not None}
    config = load_config(TuneConfig, args.config, overrides) if args.config else \
        validated(TuneConfig, overrides)
    return _tune(config, console)


if __name__ == "__main__":
    sys.exit(main())

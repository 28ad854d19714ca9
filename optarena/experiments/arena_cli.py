"""``optarena compare | report | submit | verify | leaderboard``: the race and its verified results."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console


def add_commands(commands: argparse._SubParsersAction) -> None:
    compare = commands.add_parser("compare", help="race agents on workloads (resumable)")
    compare.add_argument("--config", type=Path, required=True, help="YAML CompareConfig")
    compare.add_argument("--out", type=Path, required=True, help="results directory")
    compare.add_argument("--workers", type=int, help="runs at once (default: the config's, 1)")
    compare.add_argument("--budget", type=int, help="overrides the config's budget")
    compare.add_argument("--seeds", help="overrides the config's seeds, e.g. 0,1,2")
    compare.add_argument("--agents", help="only these agent labels, comma-separated")
    compare.add_argument("--workloads", help="only these workloads, comma-separated")
    compare.add_argument("--force", action="store_true", help="add to a DIR of another config")
    report = commands.add_parser("report", help="write DIR/report.md and DIR/curves_*.png")
    report.add_argument("out", type=Path)
    report.add_argument("--checkpoints", help="e.g. 16,32,64 (default: the config's)")
    submit = commands.add_parser("submit", help="a run's best result as a submission file")
    submit.add_argument("out", type=Path, help="results directory")
    submit.add_argument("--run", required=True, help="run_id of a results.jsonl line")
    submit.add_argument("-o", "--output", type=Path, required=True)
    submit.add_argument("--submitter", help="name to show on the leaderboard")
    verify = commands.add_parser("verify", help="re-apply and re-measure a submission")
    verify.add_argument("submission", type=Path)
    verify.add_argument("--tolerance", type=float,
                        help="relative slack on the score (default 0.25 latency, 0 cycles)")
    board = commands.add_parser("leaderboard", help="verify submissions and rank them")
    board.add_argument("submissions", type=Path, nargs="+")
    board.add_argument("-o", "--output", type=Path, required=True)
    board.add_argument("--tolerance", type=float)


def _compare(args: argparse.Namespace, console: Console) -> int:
    from optarena.experiments.compare import compare
    from optarena.experiments.report import write_report
    from optarena.experiments.runs import CompareConfig

    config = CompareConfig.load(args.config)
    if args.workers is not None:
        config.workers = args.workers
    if args.budget is not None:
        config.budget = args.budget
    whole = CompareConfig.model_validate(config.model_dump())  # what DIR records; the rest selects
    if args.seeds:
        config.seeds = [int(s) for s in args.seeds.split(",")]
    if args.agents:
        wanted = args.agents.split(",")
        unknown = set(wanted) - {a.name for a in config.agents}
        if unknown:
            raise SystemExit(f"no agent labelled {sorted(unknown)} in {args.config}")
        config.agents = [a for a in config.agents if a.name in wanted]
    if args.workloads:
        wanted = args.workloads.split(",")
        for env in config.environments:
            env.workloads = [w for w in env.workloads if w in wanted]
        config.environments = [e for e in config.environments if e.workloads]
        if not config.environments:
            raise SystemExit(f"none of {wanted} is a workload of {args.config}")
    config = CompareConfig.model_validate(config.model_dump())
    try:
        outcome = compare(config, args.out, console, force=args.force, recorded=whole)
    except ValueError as err:
        console.print(f"[red]compare[/red]: {err}", highlight=False)
        return 2
    console.print(f"{len(outcome.finished)} runs finished, {len(outcome.skipped)} were already "
                  f"done, {len(outcome.failed)} failed")
    if (args.out / "results.jsonl").exists():
        console.print(f"report: {write_report(args.out)}")
    return 1 if outcome.failed else 0


def run(args: argparse.Namespace, console: Console) -> int:
    """Execute one of this module's commands."""
    from optarena.experiments import submission
    from optarena.experiments.report import write_report

    if args.command == "compare":
        return _compare(args, console)
    if args.command == "report":
        marks = [int(m) for m in args.checkpoints.split(",")] if args.checkpoints else None
        console.print(f"report: {write_report(args.out, marks)}")
        return 0
    if args.command == "submit":
        data = submission.make_submission(args.out, args.run, args.submitter)
        args.output.write_text(json.dumps(data, indent=1))
        console.print(f"{args.output}: {data['label']} on {data['workload']}, "
                      f"{data['claimed']['improvement']:.3f}x claimed")
        return 0
    if args.command == "verify":
        verdict = submission.verify(json.loads(args.submission.read_text()), args.tolerance)
        console.print(verdict.text(), markup=False)
        return 0 if verdict.accepted else 1
    text = submission.leaderboard(args.submissions, args.tolerance)
    args.output.write_text(text)
    console.print(f"leaderboard: {args.output}")
    return 0

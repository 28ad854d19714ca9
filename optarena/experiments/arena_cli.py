"""``optarena compare | report | submit | verify | leaderboard``: the race and its verified results."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from optarena.experiments.config_file import ConfigError, check_config, integers


def add_commands(commands: argparse._SubParsersAction) -> None:
    compare = commands.add_parser("compare", help="race agents on workloads (resumable)")
    compare.add_argument("--config", type=Path, required=True, help="YAML CompareConfig")
    compare.add_argument("--out", type=Path, required=True, help="results directory")
    compare.add_argument("--workers", type=int, help="runs at once (default: the config's, 1)")
    compare.add_argument("--budget", type=int, help="overrides the config's budget (not an "
                         "agent's own)")
    compare.add_argument("--seeds", help="overrides the config's seeds, e.g. 0,1,2")
    compare.add_argument("--agents", help="only these agent labels, comma-separated")
    compare.add_argument("--workloads", help="only these workloads, comma-separated")
    compare.add_argument("--force", action="store_true", help="add to a DIR of another config")
    compare.add_argument("--backend", choices=("local", "ray"), default="local",
                         help="local: processes on this machine (default); ray: Ray tasks")
    compare.add_argument("--address", help="with --backend ray: the cluster, HOST:PORT or auto "
                         "(default: start a local Ray instance)")
    report = commands.add_parser("report", help="write DIR/report.md, DIR/report.html and "
                                 "DIR/curves_*.png")
    report.add_argument("out", type=Path)
    report.add_argument("--checkpoints", help="e.g. 16,32,64 (default: the config's)")
    report.add_argument("--baseline", help="compare with this agent label or anchor:NAME "
                        "(default: the environment's baseline)")
    submit = commands.add_parser("submit", help="a run's best result as a submission file")
    submit.add_argument("out", type=Path, help="results directory")
    submit.add_argument("--run", required=True, help="run_id of a results.jsonl line")
    submit.add_argument("-o", "--output", type=Path, required=True)
    submit.add_argument("--submitter", help="name to show on the leaderboard")
    verify = commands.add_parser("verify", help="re-apply and re-measure a submission")
    verify.add_argument("submission", type=Path)
    board = commands.add_parser("leaderboard", help="verify submissions and rank them in tracks")
    board.add_argument("submissions", type=Path, nargs="+")
    board.add_argument("-o", "--output", type=Path, required=True,
                       help="LEADERBOARD.md; LEADERBOARD.html is written beside it")
    for command in (verify, board):
        command.add_argument("--tolerance", type=float, help="relative slack on the score "
                             "(default 0.25 for timings, 0 for deterministic scores)")
        command.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                             help="how this verifier measures: an environment argument that "
                             "does not define the problem, e.g. measure.repeat=10, "
                             "rpc.tracker_host=HOST, check_states=32 (VALUE is YAML; repeatable)")


def _compare(args: argparse.Namespace, console: Console) -> int:
    from optarena.experiments.runs import CompareConfig

    if args.address is not None and args.backend != "ray":
        raise ConfigError("--address needs --backend ray")
    # everything the user gave is checked here, before a directory or a process is made
    overrides = {key: getattr(args, key) for key in ("workers", "budget")
                 if getattr(args, key) is not None}
    whole = CompareConfig.load(args.config, overrides)  # what DIR records; the rest selects
    check_config(whole.check_names, args.config, overrides)
    config = whole.model_copy(deep=True)
    if args.seeds:
        config.seeds = integers(args.seeds, "--seeds")
    if args.agents:
        wanted = args.agents.split(",")
        unknown = set(wanted) - {a.name for a in config.agents}
        if unknown:
            raise ConfigError(f"--agents: no agent labelled {', '.join(sorted(unknown))} in "
                              f"{args.config}; its agents: "
                              f"{', '.join(a.name for a in config.agents)}")
        config.agents = [a for a in config.agents if a.name in wanted]
    if args.workloads:
        wanted = args.workloads.split(",")
        for env in config.environments:
            env.workloads = [w for w in env.workloads if w in wanted]
        config.environments = [e for e in config.environments if e.workloads]
        if not config.environments:
            raise ConfigError(f"--workloads: none of {', '.join(wanted)} is a workload of "
                              f"{args.config}")
    from optarena.experiments.backends import Backend
    from optarena.experiments.compare import compare
    from optarena.experiments.report import write_report

    backend: Backend | None = None
    if args.backend == "ray":
        try:
            from optarena.experiments.ray_backend import RayBackend
        except ModuleNotFoundError as err:
            if err.name != "ray":
                raise
            raise SystemExit("--backend ray needs Ray: pip install 'optarena[ray]'") from err
        backend = RayBackend(args.address)
    try:
        outcome = compare(config, args.out, console, force=args.force, recorded=whole,
                          backend=backend)
    except (ValueError, ConnectionError) as err:
        raise ConfigError(str(err)) from None
    except KeyboardInterrupt:
        print(f"optarena compare: interrupted; the finished runs are in "
              f"{args.out / 'results.jsonl'}: run the same command again to resume",
              file=sys.stderr)
        return 130
    console.print(f"{len(outcome.finished)} runs finished, {len(outcome.skipped)} were already "
                  f"done, {len(outcome.failed)} failed")
    if (args.out / "results.jsonl").exists():
        console.print(f"report: {write_report(args.out)}")
    return 1 if outcome.failed else 0


def run(args: argparse.Namespace, console: Console) -> int:
    """Execute one of this module's commands."""
    if args.command == "compare":  # first: a config it rejects costs no other import
        return _compare(args, console)
    if args.command in ("report", "submit") and not (args.out / "results.jsonl").is_file():
        raise ConfigError(f"{args.out}: no results.jsonl (not a directory `optarena compare` "
                          "wrote runs to)")
    from optarena.experiments import submission
    from optarena.experiments.leaderboard import write_leaderboard
    from optarena.experiments.report import write_report

    if args.command == "report":
        marks = integers(args.checkpoints, "--checkpoints") if args.checkpoints else None
        try:
            written = write_report(args.out, marks, args.baseline)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        console.print(f"report: {written} and {args.out / 'report.html'}")
        return 0
    if args.command == "submit":
        try:
            data = submission.make_submission(args.out, args.run, args.submitter)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        args.output.write_text(json.dumps(data, indent=1))
        console.print(f"{args.output}: {data['label']} on {data['workload']}, "
                      f"{data['claimed']['improvement']:.3f}x claimed")
        return 0
    settings = _settings(args.set)

    def verify(claim: dict[str, Any], tolerance: float | None) -> submission.Verdict:
        try:
            submission.check_settings(str(claim.get("env")), settings)
        except ValueError as err:
            raise ConfigError(f"--set: {err}") from None
        return submission.verify(claim, tolerance, settings=settings)

    if args.command == "verify":
        try:
            claim = json.loads(args.submission.read_text())
        except (OSError, json.JSONDecodeError) as err:
            console.print(f"REJECT: {args.submission} is unreadable: {err}", markup=False)
            return 1
        verdict = verify(claim, args.tolerance) if isinstance(claim, dict) else \
            submission.Verdict(False, "a submission is a JSON object")
        console.print(verdict.text(), markup=False)
        return 0 if verdict.accepted else 1
    if args.output.suffix == ".html":
        raise ConfigError("-o names the Markdown file; the HTML page is written beside it")
    missing = [str(path) for path in args.submissions if not path.is_file()]
    if missing:
        raise ConfigError(f"no such file: {', '.join(missing)}")
    html = args.output.with_suffix(".html")
    board = write_leaderboard(args.submissions, args.output, html, args.tolerance, verify=verify)
    console.print(f"leaderboard: {args.output}, {html} ({len(board.entries)} accepted, "
                  f"{len(board.refused)} refused, {len(board.rejected)} rejected)")
    return 0


def _settings(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs (dotted keys nest, values are YAML) as environment arguments."""
    settings: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE")
        *parents, last = key.split(".")
        node = settings
        for parent in parents:
            node = node.setdefault(parent, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {pair!r}: {parent} is not a mapping")
        node[last] = yaml.safe_load(value)
    return settings

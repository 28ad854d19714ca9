"""``optarena compare``: run every (workload, agent, seed) of a config, resumably.

Each run executes in its own process (a crash, a hang or a leak in one run cannot take the others
down; a run past ``run_timeout_s`` is killed). Finished runs are appended to ``DIR/results.jsonl``
the moment they end; runs that fail go to ``DIR/failures.jsonl`` with the reason and are tried
again next time. Each run's own output (TVM and MetaSchedule logs) is kept in
``DIR/logs/RUN_ID.log``. Starting again on the same ``DIR`` skips the runs already in
``results.jsonl``, so a killed experiment resumes where it stopped.

Where the processes run is the backend's choice (:mod:`optarena.experiments.backends`): by default
on this machine, ``workers`` runs at once (default 1; on a small machine, parallel runs disturb
each other's timings: keep 1 for numbers you publish); or as Ray tasks on a cluster
(:mod:`optarena.experiments.ray_backend`). Whichever it is, this process records the results.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from optarena.envs.contract import error_summary
from optarena.experiments.backends import Attempt, Backend, LocalBackend
from optarena.experiments.rewrites import run_rewrites
from optarena.experiments.runs import CompareConfig
from optarena.records import RunRecord, RunSpec, append_record, read_runs

RESULTS = "results.jsonl"
FAILURES = "failures.jsonl"
CONFIG = "config.yaml"
LOGS = "logs"


@dataclass
class RaceSummary:
    """What one invocation of :func:`compare` did."""

    finished: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def finished_ids(out: Path) -> set[str]:
    return {r.run_id for r in read_runs(out / RESULTS)}


def _check_config(config: CompareConfig, out: Path, force: bool) -> None:
    """``DIR/config.yaml`` records what the directory holds; a different config is refused."""
    path = out / CONFIG
    text = yaml.safe_dump(config.model_dump(), sort_keys=False)
    previous = CompareConfig(**yaml.safe_load(path.read_text())) if path.exists() else None
    scheduling = {"workers", "run_timeout_s", "checkpoints"}  # not what the runs are
    if (previous is not None and not force
            and previous.model_dump(exclude=scheduling) != config.model_dump(exclude=scheduling)):
        raise ValueError(f"{out} holds results of another config ({path}); use another --out, "
                         "or --force to add these runs to it")
    path.write_text(text)


def compare(config: CompareConfig, out: Path, console: Console | None = None,
            force: bool = False, recorded: CompareConfig | None = None,
            backend: Backend | None = None) -> RaceSummary:
    """Run the config's unfinished runs into ``out`` (see the module docstring). ``recorded`` is
    the config ``DIR/config.yaml`` records and checks, when ``config`` selects part of it (the
    command's ``--seeds``, ``--agents`` and ``--workloads``); default ``config``. ``backend``
    executes the runs (default: processes on this machine, ``config.workers`` at a time)."""
    config.check_names()  # before anything is written or started
    console = console or Console()
    backend = backend or LocalBackend(config.workers)
    (out / LOGS).mkdir(parents=True, exist_ok=True)
    _check_config(recorded or config, out, force)
    done = finished_ids(out)
    specs = config.runs()
    outcome = RaceSummary(skipped=[s.run_id for s in specs if s.run_id in done])
    pending = [s for s in specs if s.run_id not in done]
    console.print(f"[bold]{config.name}[/bold]: {len(specs)} runs, {len(outcome.skipped)} already "
                  f"in {out / RESULTS}, {len(pending)} to go, {backend.describe()}")
    if pending:
        with backend:
            _race(config, out, pending, outcome, console, backend)
    if config.rewrites is not None:
        failure = run_rewrites(config.rewrites, out, console)
        if failure is not None:
            outcome.failed["rewrites"] = failure
    return outcome


def _race(config: CompareConfig, out: Path, pending: list[RunSpec], outcome: RaceSummary,
          console: Console, backend: Backend) -> None:
    """Run ``pending`` on ``backend``, recording each run as it ends. A run's clock starts when
    its attempt starts (a retried run's again); past ``config.run_timeout_s`` it is killed."""
    running: dict[str, RunSpec] = {}
    attempts: dict[str, tuple[Attempt, float]] = {}  # the current attempt, since (monotonic)
    measured: dict[str, int] = {}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        runs_task = bar.add_task("runs", total=len(pending))
        samples_task = bar.add_task("measurements", total=sum(spec.budget for spec in pending))

        def settle(run_id: str, failure: str | None, record: RunRecord | None) -> None:
            spec = running.pop(run_id)
            attempt = attempts.pop(run_id, None)
            if record is not None:
                try:
                    append_record(out / RESULTS, record)
                    outcome.finished.append(run_id)
                except (TypeError, ValueError) as err:  # the race goes on without this run
                    failure, record = f"its record cannot be written: {error_summary(err)}", None
            if record is None:
                assert failure is not None
                append_record(out / FAILURES, {"run_id": run_id, "spec": spec.model_dump(),
                                               "error": failure, "time": time.time(),
                                               "log": attempt[0].where if attempt else None})
                outcome.failed[run_id] = failure
                console.print(f"[red]run {run_id} failed[/red]: {failure.splitlines()[0]}")
            measured[run_id] = spec.budget
            bar.advance(runs_task)

        while pending or running:
            while pending and (backend.capacity is None or len(running) < backend.capacity):
                spec = pending.pop(0)
                backend.submit(spec, out / LOGS / f"{spec.run_id}.log")
                running[spec.run_id] = spec
                measured[spec.run_id] = 0
            for kind, run_id, payload in backend.receive():
                if run_id not in running:
                    continue
                if kind == "started":
                    if run_id in attempts:
                        console.print(f"[yellow]run {run_id} lost its worker[/yellow] "
                                      f"({attempts[run_id][0].where}); again on {payload.host}")
                    attempts[run_id] = (payload, time.monotonic())
                    measured[run_id] = 0
                elif kind == "progress":
                    measured[run_id] = min(payload, running[run_id].budget)
                else:
                    settle(run_id, payload if kind == "failed" else None,
                           payload if kind == "done" else None)
            for run_id, (_, since) in list(attempts.items()):
                if time.monotonic() - since > config.run_timeout_s:
                    backend.kill(run_id)
                    settle(run_id, f"killed after run_timeout_s={config.run_timeout_s:g} s", None)
            bar.update(samples_task, completed=sum(measured.values()))

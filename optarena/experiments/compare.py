"""``optarena compare``: run every (workload, agent, seed) of a config, resumably.

Each run executes in its own spawned process (a crash, a hang or a leak in one run cannot take
the others down; a run past ``run_timeout_s`` is killed). Finished runs are appended to
``DIR/results.jsonl`` the moment they end; runs that fail go to ``DIR/failures.jsonl`` with the
reason and are tried again next time. Each run's own output (TVM and MetaSchedule logs) is kept in
``DIR/logs/RUN_ID.log``. Starting again on the same ``DIR`` skips the runs already
in ``results.jsonl``, so a killed experiment resumes where it stopped.

``workers`` runs go at once (default 1). On a small machine, parallel runs disturb each other's
timings: keep 1 for numbers you publish.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from optarena.experiments.rewrites import run_rewrites
from optarena.experiments.runs import CompareConfig, RunSpec, append_record, execute, read_records

RESULTS = "results.jsonl"
FAILURES = "failures.jsonl"
CONFIG = "config.yaml"
LOGS = "logs"


@dataclass
class Outcome:
    """What one invocation of :func:`compare` did."""

    finished: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def finished_ids(out: Path) -> set[str]:
    return {r["run_id"] for r in read_records(out / RESULTS) if "run_id" in r}


def _child(spec_json: str, messages: Any, parent: int, log: str) -> None:
    """Entry point of a run's process: reports progress, then the record or the error. Its
    output (TVM's and MetaSchedule's logs) goes to ``log``."""
    spec = RunSpec.model_validate_json(spec_json)
    with open(log, "ab") as handle:
        os.dup2(handle.fileno(), 1)
        os.dup2(handle.fileno(), 2)

    def progress(measurements: int) -> None:
        if os.getppid() != parent:  # the experiment was killed: do not run on as an orphan
            os._exit(1)
        messages.put(("progress", spec.run_id, measurements))

    try:
        messages.put(("done", spec.run_id, execute(spec, progress)))
    except BaseException as err:  # reported to the parent, which records it
        messages.put(("failed", spec.run_id,
                      f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=8)}"))


def _receive(messages: Any) -> list[tuple[str, str, Any]]:
    """The messages waiting (up to a second for the first)."""
    received = []
    try:
        received.append(messages.get(timeout=1.0))
        while True:
            received.append(messages.get_nowait())
    except queue.Empty:
        return received


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
            force: bool = False, recorded: CompareConfig | None = None) -> Outcome:
    """Run the config's unfinished runs into ``out`` (see the module docstring). ``recorded`` is
    the config ``DIR/config.yaml`` records and checks, when ``config`` selects part of it (the
    command's ``--seeds``, ``--agents`` and ``--workloads``); default ``config``."""
    console = console or Console()
    (out / LOGS).mkdir(parents=True, exist_ok=True)
    _check_config(recorded or config, out, force)
    done = finished_ids(out)
    specs = config.runs()
    outcome = Outcome(skipped=[s.run_id for s in specs if s.run_id in done])
    pending = [s for s in specs if s.run_id not in done]
    console.print(f"[bold]{config.name}[/bold]: {len(specs)} runs, {len(outcome.skipped)} already "
                  f"in {out / RESULTS}, {len(pending)} to go, {config.workers} at a time")
    if pending:
        _race(config, out, pending, outcome, console)
    if config.rewrites is not None:
        failure = run_rewrites(config.rewrites, out, console)
        if failure is not None:
            outcome.failed["rewrites"] = failure
    return outcome


def _race(config: CompareConfig, out: Path, pending: list[RunSpec], outcome: Outcome,
          console: Console) -> None:
    """Run ``pending`` in worker processes, ``config.workers`` at a time, recording each."""
    context = mp.get_context("spawn")
    messages = context.Queue()
    running: dict[str, tuple[BaseProcess, float, RunSpec]] = {}
    measured: dict[str, int] = {}
    dead_polls: dict[str, int] = {}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        runs_task = bar.add_task("runs", total=len(pending))
        samples_task = bar.add_task("measurements", total=len(pending) * config.budget)

        def settle(run_id: str, failure: str | None, record: dict[str, Any] | None) -> None:
            process, _, spec = running.pop(run_id)
            process.join(timeout=30)
            if record is not None:
                append_record(out / RESULTS, record)
                outcome.finished.append(run_id)
            else:
                assert failure is not None
                append_record(out / FAILURES, {"run_id": run_id, "spec": spec.model_dump(),
                                               "error": failure, "time": time.time()})
                outcome.failed[run_id] = failure
                console.print(f"[red]run {run_id} failed[/red]: {failure.splitlines()[0]}")
            measured[run_id] = spec.budget
            bar.advance(runs_task)

        while pending or running:
            while pending and len(running) < config.workers:
                spec = pending.pop(0)
                process = context.Process(target=_child, name=f"optarena-{spec.run_id}",
                                          args=(spec.model_dump_json(), messages, os.getpid(),
                                                str(out / LOGS / f"{spec.run_id}.log")))
                process.start()
                running[spec.run_id] = (process, time.monotonic(), spec)
                measured[spec.run_id] = 0
            for kind, run_id, payload in _receive(messages):
                if run_id not in running:
                    continue
                if kind == "progress":
                    measured[run_id] = min(payload, running[run_id][2].budget)
                else:
                    settle(run_id, payload if kind == "failed" else None,
                           payload if kind == "done" else None)
            for run_id, (process, _, _) in list(running.items()):
                if process.is_alive():
                    continue
                # its last message may still be in the pipe: give it a few polls to arrive
                dead_polls[run_id] = dead_polls.get(run_id, 0) + 1
                if dead_polls[run_id] > 5:
                    settle(run_id, f"the run's process died (exit code {process.exitcode})", None)
            for run_id, (process, started, _) in list(running.items()):
                if time.monotonic() - started > config.run_timeout_s:
                    process.kill()
                    settle(run_id, f"killed after run_timeout_s={config.run_timeout_s:g} s", None)
            bar.update(samples_task, completed=sum(measured.values()))


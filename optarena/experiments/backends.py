"""Where ``optarena compare`` executes its runs: what every backend shares, and the local one.

A backend starts runs (:meth:`Backend.submit`) and reports what they do as :class:`Message`\\ s
(:meth:`Backend.receive`): ``started`` when an attempt at a run begins (again when the run is
retried after its worker was lost), ``progress`` with the measurements made so far, and the end,
``done`` with the ``results.jsonl`` record (a :class:`~optarena.records.RunRecord`) or ``failed``
with the reason.
:func:`optarena.experiments.compare.compare` drives any backend the same way: it records the ends,
shows the progress bar and kills a run whose attempt is past ``run_timeout_s``.

Every run executes :func:`attempt` in a process of its own, which appends the run's output (TVM's
and MetaSchedule's logs) to its log file under a line saying where and when the attempt started.

:class:`LocalBackend` (the default) spawns that process on this machine, ``workers`` at a time;
:mod:`optarena.experiments.ray_backend` makes it a Ray task on a cluster.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import platform
import queue
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol, Self

from optarena.experiments.runs import execute
from optarena.records import RunSpec


@dataclass(frozen=True)
class Attempt:
    """Where an attempt at a run executes."""

    host: str
    log: str
    """The run's log file on ``host``."""

    @property
    def where(self) -> str:
        return f"{self.host}:{self.log}"


class Message(NamedTuple):
    """What a backend reports about a run."""

    kind: Literal["started", "progress", "done", "failed"]
    run_id: str
    payload: Any
    """started: the :class:`Attempt`; progress: measurements so far; done: the record; failed:
    the reason."""


class Backend(Protocol):
    """Executes runs and reports on them (see the module docstring). Entering it makes it ready
    (a Ray backend connects); leaving it ends whatever still runs."""

    capacity: int | None
    """Runs submitted at once (``None``: all; the backend queues them itself)."""

    def describe(self) -> str:
        """How runs execute, for the header line of ``optarena compare``."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...

    def submit(self, spec: RunSpec, log: Path) -> None:
        """Start ``spec``; its output goes to ``log``."""
        ...

    def receive(self) -> list[Message]:
        """The messages that came (waits up to about a second for one)."""
        ...

    def kill(self, run_id: str) -> None:
        """End a submitted run that has not ended; it sends nothing more."""
        ...


@contextmanager
def output_to(log: Path) -> Iterator[None]:
    """Append this process's standard output and error (file descriptors 1 and 2, which TVM and
    MetaSchedule write to) to ``log`` until the block ends."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with log.open("ab") as handle:
        os.dup2(handle.fileno(), 1)
        os.dup2(handle.fileno(), 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in enumerate(saved, start=1):
            os.dup2(copy, fd)
            os.close(copy)


def attempt(spec: RunSpec, log: Path, progress: Callable[[int], None]) -> Message:
    """Execute ``spec`` in this process, its output appended to ``log``: ``done`` with the record,
    or ``failed`` with the error and its traceback. ``progress`` receives the measurements made so
    far (about once a second)."""
    with log.open("a") as handle:
        handle.write(f"optarena: run {spec.run_id} on {platform.node()}, process {os.getpid()}, "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    with output_to(log):
        try:
            return Message("done", spec.run_id, execute(spec, progress))
        except BaseException as err:  # reported to the experiment, which records it
            return Message("failed", spec.run_id,
                           f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=8)}")


def _child(spec_json: str, messages: Any, parent: int, log: str) -> None:
    """Entry point of a run's process: reports progress, then the end."""
    spec = RunSpec.model_validate_json(spec_json)

    def progress(measurements: int) -> None:
        if os.getppid() != parent:  # the experiment was killed: do not run on as an orphan
            os._exit(1)
        messages.put(Message("progress", spec.run_id, measurements))

    messages.put(attempt(spec, Path(log), progress))


class LocalBackend:
    """Each run in its own spawned process on this machine, ``workers`` at a time: a crash, a
    hang or a leak in one run cannot take the others down. A process that dies without a word
    ends its run as failed."""

    DEAD_POLLS = 5
    """Polls a dead process's last message may take to arrive before its run is failed."""

    def __init__(self, workers: int) -> None:
        self.capacity: int | None = workers
        self._context = mp.get_context("spawn")
        self._messages = self._context.Queue()
        self._processes: dict[str, BaseProcess] = {}
        self._dead_polls: dict[str, int] = {}
        self._started: list[Message] = []

    def describe(self) -> str:
        return f"{self.capacity} at a time"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        for run_id in list(self._processes):
            self.kill(run_id)

    def submit(self, spec: RunSpec, log: Path) -> None:
        process = self._context.Process(target=_child, name=f"optarena-{spec.run_id}",
                                        args=(spec.model_dump_json(), self._messages, os.getpid(),
                                              str(log)))
        with _sigint_ignored():
            process.start()
        self._processes[spec.run_id] = process
        self._started.append(Message("started", spec.run_id, Attempt(platform.node(), str(log))))

    def receive(self) -> list[Message]:
        received, self._started = self._started, []
        received += _receive(self._messages, wait=not received)
        for message in received:
            if message.kind in ("done", "failed"):
                self._join(message.run_id)
        for run_id, process in list(self._processes.items()):
            if process.is_alive():
                continue
            # its last message may still be in the pipe: give it a few polls to arrive
            self._dead_polls[run_id] = self._dead_polls.get(run_id, 0) + 1
            if self._dead_polls[run_id] > self.DEAD_POLLS:
                self._join(run_id)
                received.append(Message("failed", run_id, "the run's process died (exit code "
                                        f"{process.exitcode})"))
        return received

    def kill(self, run_id: str) -> None:
        self._processes[run_id].kill()
        self._join(run_id)

    def _join(self, run_id: str) -> None:
        process = self._processes.pop(run_id, None)
        if process is not None:
            process.join(timeout=30)


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Processes started in the block ignore SIGINT (a spawned Python keeps an ignored SIGINT
    ignored): Ctrl-C in the terminal interrupts the experiment alone, which ends its runs
    (:meth:`LocalBackend.__exit__`) and says how to resume, instead of every run printing a
    traceback. Off the main thread, where signals cannot be set, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _receive(messages: Any, wait: bool) -> list[Message]:
    """The messages waiting (up to a second for the first if ``wait``)."""
    received = []
    try:
        received.append(messages.get(timeout=1.0) if wait else messages.get_nowait())
        while True:
            received.append(messages.get_nowait())
    except queue.Empty:
        return received

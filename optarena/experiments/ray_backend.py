"""Runs as Ray tasks: ``optarena compare --backend ray [--address HOST:PORT|auto]``.

Each run is one Ray task executing :func:`optarena.experiments.runs.execute` in a fresh worker
process (``max_calls=1``: a crash or a leak in one run cannot reach the next). This process, the
driver, records each run in ``DIR/results.jsonl`` as its task ends, exactly as the local backend
does, so a killed driver resumes the same way: Ray ends the tasks of a driver that is gone, and
the next ``optarena compare`` on ``DIR`` submits what is not in ``results.jsonl``.

* **Retries.** A run whose worker process or node is lost is run again by Ray, up to
  :data:`RETRIES` times (a Ray task retry); its log gets a line per attempt. A run that raises is
  not retried: it is recorded in ``failures.jsonl`` and tried again by the next ``compare``.
* **Timeouts.** A run's clock starts when its task starts on a worker (not while it waits for a
  node); past ``run_timeout_s`` the task is cancelled and its worker killed.
* **Timing exclusivity.** Every node offers the custom resource :data:`TIMING_RESOURCE`, 1 of it.
  A run that times programs (as its kind's policy says,
  :attr:`optarena.envs.registry.Policy.measures_time`: tensor programs, LLVM ``runtime``) holds
  all of it, a run scored by cycles or counts holds :data:`SHARE`: a timing run has its node to
  itself (no other optarena run), while cycle-scored runs share nodes, one per CPU.
* **Logs.** A run's output goes to ``DIR/logs/RUN_ID.log`` on the node that runs it, ``DIR``
  being the driver's absolute path (on a shared file system, the driver's own directory); a node
  that cannot create that directory writes to ``optarena-logs/RUN_ID.log`` in its temporary
  directory. ``failures.jsonl`` says which node and file.
* **Working directory.** A task works in the driver's working directory when the node has it
  (relative paths in a config then mean the same), else in Ray's default.

Without ``--address`` the driver starts a private local Ray instance offering the timing
resource (Ray gives the node the machine's routable address even when asked for 127.0.0.1). A
cluster's nodes must all have optarena installed (the same version, with its data) and be
started offering the resource::

    ray start --head --port=6379 --resources='{"optarena_timing": 1}'
    ray start --address=HEAD:6379 --resources='{"optarena_timing": 1}'   # on every other node

Tensor programs can instead be timed on a TVM RPC device farm (the ``rpc`` argument of
``tensor_schedule``), leaving the nodes to search and compile.
"""

from __future__ import annotations

import logging
import os
import platform
import tempfile
from pathlib import Path
from typing import Self

import ray
from ray.util.queue import Queue

from optarena.envs.registry import kind
from optarena.experiments.backends import Attempt, Message, attempt
from optarena.records import RunSpec

TIMING_RESOURCE = "optarena_timing"
"""The custom resource each node offers 1 of; a timing run holds all of it."""
SHARE = 0.001
"""What a run that does not time programs holds of :data:`TIMING_RESOURCE`."""
RETRIES = 3
"""Times Ray runs a task again after its worker or node was lost."""


def _node_log(log: Path) -> Path:
    """Where the run's output goes on this node: ``log`` if its directory can be made here,
    else a file of the same name in this node's temporary directory."""
    for candidate in (log, Path(tempfile.gettempdir()) / "optarena-logs" / log.name):
        try:
            candidate.parent.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        return candidate
    raise OSError(f"no directory for the log of {log.stem} on {platform.node()}")


def _run_task(spec_json: str, log: str, cwd: str, board: Queue) -> Message:
    """A run on a Ray worker (a process of its own, which ends with the run): announces the
    attempt and its progress on ``board``, returns the end (:func:`attempt`)."""
    spec = RunSpec.model_validate_json(spec_json)
    if os.path.isdir(cwd):
        os.chdir(cwd)
    path = _node_log(Path(log))
    board.put_nowait(Message("started", spec.run_id, Attempt(platform.node(), str(path))))
    return attempt(spec, path,
                   lambda measured: board.put_nowait(Message("progress", spec.run_id, measured)))


_task = ray.remote(num_cpus=1, max_calls=1, max_retries=RETRIES, retry_exceptions=False)(_run_task)


class RayBackend:
    """Runs as Ray tasks on the cluster at ``address`` (``auto``: the one started on this
    machine), or on a local instance started for the experiment (``None``). Every run is
    submitted at once; Ray starts each when a node has room."""

    capacity: int | None = None

    def __init__(self, address: str | None = None) -> None:
        self.address = address
        self._runs: dict[str, ray.ObjectRef] = {}
        self._board: Queue | None = None

    def describe(self) -> str:
        return f"Ray tasks on {self.address or 'a local Ray instance'}"

    def __enter__(self) -> Self:
        quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
        if self.address is None:
            ray.init(address="local", resources={TIMING_RESOURCE: 1}, include_dashboard=False,
                     **quiet)
        else:
            ray.init(address=self.address, **quiet)
        try:
            if ray.cluster_resources().get(TIMING_RESOURCE, 0) < 1:
                raise ValueError(
                    f"the Ray cluster at {self.address} offers no {TIMING_RESOURCE!r} resource: "
                    f"start its nodes with --resources='{{\"{TIMING_RESOURCE}\": 1}}'")
            self._board = Queue(actor_options={"num_cpus": 0})
        except BaseException:
            ray.shutdown()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        ray.shutdown()  # the driver's job ends, and with it the tasks still running

    def submit(self, spec: RunSpec, log: Path) -> None:
        timing = kind(spec.env).policy_for(spec.env_kwargs).measures_time
        self._runs[spec.run_id] = _task.options(
            name=f"optarena {spec.run_id}",
            resources={TIMING_RESOURCE: 1 if timing else SHARE},
        ).remote(spec.model_dump_json(), str(log.resolve()), os.getcwd(), self._board)

    def receive(self) -> list[Message]:
        assert self._board is not None, "enter the backend first"
        refs = list(self._runs.values())
        ready, _ = ray.wait(refs, num_returns=1, timeout=1.0)
        if ready:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        waiting = self._board.qsize()
        received: list[Message] = self._board.get_nowait_batch(waiting) if waiting else []
        ended = set(ready)
        for run_id, ref in list(self._runs.items()):
            if ref in ended:
                del self._runs[run_id]
                received.append(_end(run_id, ref))
        return received

    def kill(self, run_id: str) -> None:
        ray.cancel(self._runs.pop(run_id), force=True)


def _end(run_id: str, ref: ray.ObjectRef) -> Message:
    """The end of a task: its :func:`attempt`'s message, or why Ray could not finish it."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as err:
        return Message("failed", run_id, f"Ray could not finish the run (a lost worker is retried "
                       f"{RETRIES} times): {type(err).__name__}: {err}")

"""Measuring scheduled programs: real compilation and timing, isolated and checked.

Every program is compiled with ``tvm.compile`` and timed with ``time_evaluator`` in a *worker
process* (:class:`~optarena.envs.isolation.Child`); the parent never runs generated code. The
worker is started once, generates the workload's random inputs, takes its reference outputs
(:meth:`Measurer.reference_outputs`: computed by the first worker, or given) and serves
measurements:

* a build that fails, a kernel that raises, returns a wrong result (compared with the reference on
  the same random inputs) or crashes the worker (SIGSEGV, SIGILL, abort) is a *failed measurement*
  with the reason; a kernel that runs past the timeout has its worker killed. The next measurement
  starts a fresh worker; the environment lives on.
* with an :class:`RPCConfig`, the worker exports the compiled library and runs it on a device
  obtained from a TVM RPC tracker (``tracker host:port``, ``key``) instead of locally.

The reported latency is the median over ``repeat`` repeats of ``number`` calls each (each repeat
lasting at least ``min_repeat_ms``). A workload's anchors (PyTorch eager, OpenBLAS:
:mod:`~optarena.envs.tensor_schedule.anchors`) are checked and timed the same way in a worker.

Nothing here opens the measurement store: what is kept across runs (outcomes, anchors, reference
outputs) is the evaluator's to keep (:class:`~optarena.envs.evaluator.Evaluator`). The cost model
is :mod:`~optarena.envs.tensor_schedule.cost_model`'s.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import tvm
from pydantic import BaseModel, ConfigDict, Field

from optarena.envs.host import replacing, usable_cores, wait_until_idle
from optarena.envs.isolation import Child, ChildFailed, close_all, ready
from optarena.envs.store import pack_arrays, unpack_arrays
from optarena.envs.tensor_schedule.workload import Workload

WORKER_MODULE = "optarena.envs.tensor_schedule.worker"
"""Run as ``python -m WORKER_MODULE SETUP``; named, not imported, so ``runpy`` executes it fresh."""


def worker_argv(setup: Mapping[str, Any], *, torch: bool = False) -> list[str]:
    """The command of a measurement worker. TVM's FFI imports PyTorch whenever it is installed
    (``tvm_ffi/__init__.py``; 3 s of CPU per process on these machines, and 1 s more to exit),
    and only the PyTorch anchors need it, so a worker starts with ``torch`` blocked (its import
    fails, as if it were not installed) unless ``torch``."""
    if torch:
        return [sys.executable, "-m", WORKER_MODULE, json.dumps(setup)]
    launch = ("import runpy, sys; sys.modules['torch'] = None; "
              f"runpy.run_module({WORKER_MODULE!r}, run_name='__main__', alter_sys=True)")
    return [sys.executable, "-c", launch, json.dumps(setup)]

ErrorKind = Literal["build", "run", "wrong_output", "timeout", "crash"]


class MeasureConfig(BaseModel):
    """How programs are timed and checked."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    number: int = Field(1, ge=1, description="calls per repeat (raised to fill min_repeat_ms)")
    repeat: int = Field(5, ge=1, description="repeats; the median is reported")
    min_repeat_ms: int = Field(20, ge=0, description="each repeat lasts at least this long")
    build_timeout_s: float = Field(30.0, gt=0, description="compiling, loading and checking "
                                   "one program (MetaSchedule's builder stops at 30 s too)")
    timeout_s: float = Field(60.0, gt=0, description="timing one program")
    baseline_timeout_s: float = Field(900.0, gt=0, description="each of the two, for the "
                                      "unscheduled program")
    startup_timeout_s: float = Field(900.0, gt=0, description="worker start: inputs, reference")
    check: bool = Field(True, description="compare outputs with the reference before timing")
    tolerance: float = Field(1e-3, gt=0, description="max |out - ref| / max |ref| accepted")
    input_seed: int = Field(0, description="seed of the random inputs")
    build_workers: int | None = Field(None, ge=1, description="processes that build and check a "
                                      "batch in parallel (default: the usable cores)")
    early_stop: float | None = Field(1.5, gt=1, description="stop timing a candidate whose first "
                                     "pass is this many times slower than the best so far (a "
                                     "censored result); None: off")
    spread: float | None = Field(0.02, gt=0, description="adaptive repeats: stop once the "
                                 "repeats' (max - min) / median is at most this; None: all "
                                 "`repeat` repeats")
    min_repeats: int = Field(3, ge=1, description="adaptive repeats: at least this many")
    first_pass_ms: int = Field(2, ge=0, description="adaptive timing: the first pass lasts "
                                 "at least this long")
    quiet: bool = Field(True, description="time a program only once the other workers use no "
                        "CPU (TVM's idle thread pool spins after every kernel call, 0.2-2 s; "
                        "kernels timed meanwhile in another worker were up to 3x slower)")
    spin_count: int | None = Field(10_000, ge=0, description="times the workers' idle TVM pool "
                                   "threads yield before they sleep (TVM_THREAD_POOL_SPIN_COUNT; "
                                   "None: TVM's 300,000, a core busy 0.2-2 s after every kernel "
                                   "call, which the other worker's builds and the quiet wait "
                                   "paid for); the calls of one timing follow each other sooner")

    def protocol(self, bound: float | None, full: bool = False) -> dict[str, Any]:
        """The timing protocol of one program (``full``: MetaSchedule's, nothing adaptive)."""
        adaptive = not full and (self.early_stop is not None or self.spread is not None)
        return {"number": self.number, "repeat": self.repeat, "min_repeat_ms": self.min_repeat_ms,
                "bound": (None if full or bound is None or self.early_stop is None
                          else bound * self.early_stop),
                "spread": self.spread if adaptive else None, "min_repeats": self.min_repeats,
                "first_pass_ms": self.first_pass_ms}

    def defining(self) -> dict[str, Any]:
        """The settings that define a latency (what the measurement store keys on)."""
        return self.model_dump(include={"number", "repeat", "min_repeat_ms", "check",
                                         "tolerance", "input_seed", "spread", "min_repeats",
                                         "first_pass_ms", "quiet", "spin_count"})


class RPCConfig(BaseModel):
    """A TVM RPC tracker and the device key to request from it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tracker_host: str = "127.0.0.1"
    tracker_port: int = 9190
    key: str = "local"
    session_timeout_s: float = 600.0
    parallel: int | None = Field(None, ge=1, description="devices measured at once (default: "
                                 "the servers the tracker has free under the key)")


@dataclass(frozen=True)
class MeasureResult:
    """One measurement: the median latency, or what went wrong."""

    latency_s: float | None
    runs_s: tuple[float, ...] = ()
    error_kind: ErrorKind | None = None
    error: str | None = None
    max_error: float | None = None
    """Largest |out - ref| / max |ref| over the outputs (``None`` when not checked)."""
    seconds: float = 0.0
    """Wall-clock of the whole measurement (build, check, timing)."""
    censored: bool = False
    """Timing stopped after the first pass: the candidate was clearly slower than the best."""
    build_s: float = 0.0
    """Of ``seconds``, compiling, loading and checking (in a worker)."""
    time_s: float = 0.0
    """Of ``seconds``, timing (in a worker)."""

    @property
    def ok(self) -> bool:
        return self.latency_s is not None


# ------------------------------------------------------------------------------- parent side


class Measurer:
    """Measures programs of one workload on one target in isolated worker processes.

    Locally, a batch is measured in two phases: the workers build and check the programs in
    parallel (each keeps what it built), then the programs are timed one at a time, nothing else
    running. With an RPC tracker, each worker holds a device of the tracker and builds, uploads
    and times its programs; the devices work at once (a device farm).
    """

    def __init__(self, workload: Workload, target: tvm.target.Target,
                 config: MeasureConfig | None = None, rpc: RPCConfig | None = None) -> None:
        self.workload = workload
        self.target = target
        self.config = config or MeasureConfig()
        self.rpc = rpc
        self._scratch = tempfile.TemporaryDirectory(prefix="optarena-measure-")
        self.reference_file = Path(self._scratch.name) / "reference.npz"
        """The reference outputs every worker checks programs against: written by the first
        worker, which computes them (or by :meth:`reference_outputs` from what it is given),
        read by the others."""
        self._setup = {"spec": workload.name, "target": str(target),
                       "config": self.config.model_dump(),
                       "rpc": None if rpc is None else rpc.model_dump(),
                       "reference": str(self.reference_file)}
        count = _rpc_devices(rpc) if rpc is not None else \
            (self.config.build_workers or usable_cores())
        self.workers = [Child(worker_argv(self._setup),
                              name=f"measurement worker {i} of {workload.name}",
                              start_timeout_s=self.config.startup_timeout_s)
                        for i in range(count)]

    def measure(self, mod: tvm.IRModule, *, baseline: bool = False, full: bool = False
                ) -> MeasureResult:
        """Measure one program (``baseline``: the unscheduled one, which may take longer and is
        always timed in full; ``full``: MetaSchedule's timing, nothing adaptive)."""
        return self.measure_many([mod], [None], baseline=baseline, full=full)[0]

    def measure_many(self, mods: Sequence[tvm.IRModule],
                     bounds: Sequence[float | None] | None = None, *, baseline: bool = False,
                     full: bool = False) -> list[MeasureResult]:
        """Measure a batch; ``bounds[i]`` is the best latency known of the program's workload
        (early stopping times a candidate clearly slower than it only briefly)."""
        self._start()
        config = self.config
        build_timeout, timeout = ((config.baseline_timeout_s,) * 2 if baseline
                                  else (config.build_timeout_s, config.timeout_s))
        bounds = list(bounds) if bounds is not None else [None] * len(mods)
        protocols = [config.protocol(b, full=full or baseline) for b in bounds]
        jobs = [_Job(index, tvm.ir.save_json(mod), protocol)
                for index, (mod, protocol) in enumerate(zip(mods, protocols, strict=True))]
        if self.rpc is not None:
            _run_concurrently(self.workers, jobs, "measure", build_timeout + timeout)
        else:
            pending = jobs
            while pending:  # a worker lost in a phase takes its built programs: they go again
                built = _run_concurrently(self.workers, pending, "build", build_timeout)
                pending = []
                for worker, group in _by_worker(built).items():
                    self._quiet(worker)
                    pending += [job for job in group if not job.timed(timeout)]
        return [job.result for job in jobs]  # type: ignore[misc]

    def measure_anchors(self, names: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Check and time the workload's anchors ``names`` in a worker of their own (the one
        that imports PyTorch: :func:`worker_argv`), nothing else running, with the reference's
        protocol (in full, its timeout): per name the worker's reply
        (:meth:`~optarena.envs.tensor_schedule.worker._Worker.measure_anchors`) or the
        failure of the worker. That worker is killed afterwards: no kernel shares a process
        with torch's or the BLAS's idle threads."""
        self._start()  # the reference outputs are known before the anchors' worker starts
        worker = Child(worker_argv(self._setup, torch=True),
                       name=f"anchor worker of {self.workload.name}",
                       start_timeout_s=self.config.startup_timeout_s)
        request = {"op": "anchors", "names": list(names),
                   **self.config.protocol(None, full=True)}
        try:
            worker.start()
            self._quiet(worker)
            reply = worker.request(request, self.config.baseline_timeout_s)
        except ChildFailed as err:
            return {name: {"error_kind": err.kind, "error": err.detail} for name in names}
        finally:
            worker.kill()
        if not reply["ok"]:
            return {name: {"error_kind": "run", "error": reply["error"]} for name in names}
        return reply["anchors"]

    def reference_outputs(self, kept: Sequence[np.ndarray] | None = None) -> list[np.ndarray]:
        """The workload's reference outputs on the workers' random inputs: ``kept`` (what an
        earlier run computed: the evaluator keeps them in the measurement store), else computed
        by the first worker (the workload's NumPy reference, or its unscheduled program run
        there), which writes them for the others."""
        if not self.reference_file.exists():
            if kept is not None:
                with replacing(self.reference_file) as partial:
                    partial.write_bytes(pack_arrays(kept))
            else:
                self._start(first_only=True)
        return unpack_arrays(self.reference_file.read_bytes())

    def _start(self, first_only: bool = False) -> None:
        """Start the workers, at once when the reference outputs are known; else the first
        alone (it computes them), then the others (``first_only``: not the others)."""
        if all(worker.alive for worker in self.workers):
            return
        try:
            if not self.reference_file.exists():
                self.workers[0].start()
            if first_only:
                return
            for worker in self.workers:
                worker.launch()
            for worker in self.workers:
                worker.wait_ready()
        except ChildFailed as err:
            raise RuntimeError(f"{err.detail}; its stderr is above") from None

    def _quiet(self, timing: Child) -> None:
        """With ``quiet``: wait until the workers other than ``timing`` use no CPU (a warning
        when they are still busy after the wait's timeout: the timings that follow may be slow)."""
        if not self.config.quiet:
            return
        others = [w.pid for w in self.workers if w is not timing and w.pid is not None]
        if not wait_until_idle(others):
            warnings.warn(f"measurement workers {others} were still busy after the wait for "
                          "them to be idle; timing anyway, so these latencies may be slower "
                          "than on a quiet machine", RuntimeWarning, stacklevel=2)

    def close(self) -> None:
        close_all(self.workers)
        self._scratch.cleanup()


def reference_key(workload: Workload, seed: int) -> str:
    """The key the measurement store keeps a workload's reference outputs under, for an input
    seed."""
    return f"reference:{workload.structural_hash}:{seed}"


@dataclass
class _Job:
    """One program of a batch and, once known, its result."""

    index: int
    mod: str
    protocol: dict[str, Any]
    worker: Child | None = None
    """The worker that built it and keeps it (until it is timed)..."""
    worker_pid: int | None = None
    """... as long as that worker is the same process."""
    result: MeasureResult | None = None
    started: float = field(default_factory=time.perf_counter)
    built: dict[str, Any] = field(default_factory=dict)
    """The worker's reply to ``build`` (the check's error, the build's seconds)."""

    def request(self, op: str) -> dict[str, Any]:
        return {"op": op, "id": str(self.index), "mod": self.mod, **self.protocol}

    def finish(self, reply: dict[str, Any]) -> None:
        reply = {**self.built, **reply}
        self.result = MeasureResult(
            reply.get("latency_s"), tuple(reply.get("runs_s", ())), reply.get("error_kind"),
            reply.get("error"), reply.get("max_error"), time.perf_counter() - self.started,
            bool(reply.get("censored")), reply.get("build_s", 0.0), reply.get("time_s", 0.0))

    def fail(self, err: ChildFailed) -> None:
        self.result = MeasureResult(None, error_kind=err.kind,  # type: ignore[arg-type]
                                    error=err.detail, seconds=time.perf_counter() - self.started)

    def timed(self, timeout: float) -> bool:
        """Time the built program on its worker, alone; ``False`` if the worker was lost
        before this program's turn (it must be built again)."""
        worker = self.worker
        if self.result is not None:
            return True
        if worker is None or worker.pid is None or worker.pid != self.worker_pid:
            return False
        try:
            reply = worker.request({"op": "time", "id": str(self.index), **self.protocol}, timeout)
        except ChildFailed as err:
            self.fail(err)
            return True
        self.finish(reply)
        if reply.get("restart"):
            worker.kill()
        return True


def _run_concurrently(workers: list[Child], jobs: list[_Job], op: str, timeout: float
                      ) -> list[_Job]:
    """Send ``op`` requests for ``jobs`` to the workers, one job per worker at a time, taking
    the replies as they come. ``build`` keeps a built job on its worker (``job.worker``) and
    returns the jobs built; a failure is the job's result. A worker that dies or times out is
    restarted for the next job."""
    queue, busy, built = list(jobs), {}, []
    while queue or busy:
        for worker in workers:
            if worker not in busy and queue:
                job = queue.pop(0)
                job.started = time.perf_counter()
                worker.send(job.request(op))
                busy[worker] = job
        deadline = min(job.started for job in busy.values()) + timeout
        answered = ready(list(busy), max(0.0, deadline - time.perf_counter()))
        for worker in [w for w, j in busy.items()
                       if w not in answered and time.perf_counter() - j.started >= timeout]:
            worker.kill()
            busy.pop(worker).fail(ChildFailed("timeout", f"{worker.name} gave no answer within "
                                                         f"{timeout:g} s; killed"))
        for worker in answered:
            job = busy.pop(worker)
            try:
                reply = worker.receive(0)
            except ChildFailed as err:
                job.fail(err)
                continue
            if op == "build" and "error_kind" not in reply:
                job.worker, job.worker_pid, job.built = worker, worker.pid, reply
                built.append(job)
            else:
                job.finish(reply)
            if reply.get("restart"):
                worker.kill()
    return built


def _by_worker(jobs: list[_Job]) -> dict[Child, list[_Job]]:
    """Built jobs grouped by the worker that keeps them (in order): a worker's programs are
    timed one after another, and the others are waited for once per group."""
    groups: dict[Child, list[_Job]] = {}
    for job in jobs:
        groups.setdefault(job.worker, []).append(job)  # type: ignore[arg-type]
    return groups


def _rpc_devices(rpc: RPCConfig) -> int:
    """How many devices to measure on at once: ``rpc.parallel``, else the servers the tracker
    has free under the key (at least one)."""
    if rpc.parallel is not None:
        return rpc.parallel
    summary = tvm.rpc.connect_tracker(rpc.tracker_host, rpc.tracker_port).summary()
    return max(1, int(summary.get("queue_info", {}).get(rpc.key, {}).get("free", 1)))

"""Measuring scheduled programs: real compilation and timing, isolated, checked and cached.

Every program is compiled with ``tvm.compile`` and timed with ``time_evaluator`` in a *worker
process* (:class:`~optarena.envs.isolation.Child`); the parent never runs generated code. The
worker is started once, generates the workload's random inputs and its reference outputs once,
then serves measurements:

* a build that fails, a kernel that raises, returns a wrong result (compared with the reference on
  the same random inputs) or crashes the worker (SIGSEGV, SIGILL, abort) is a *failed measurement*
  with the reason; a kernel that runs past the timeout has its worker killed. The next measurement
  starts a fresh worker; the environment lives on.
* with an :class:`RPCConfig`, the worker exports the compiled library and runs it on a device
  obtained from a TVM RPC tracker (``tracker host:port``, ``key``) instead of locally.

The reported latency is the median over ``repeat`` repeats of ``number`` calls each (each repeat
lasting at least ``min_repeat_ms``).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import tvm
from pydantic import BaseModel, ConfigDict, Field

from optarena.envs.isolation import Child, ChildFailed
from optarena.envs.tensor_schedule.workload import Workload

WORKER_MODULE = "optarena.envs.tensor_schedule.worker"
"""Run as ``python -m WORKER_MODULE SETUP``; named, not imported, so ``runpy`` executes it fresh."""

ErrorKind = Literal["build", "run", "wrong_output", "timeout", "crash"]


class MeasureConfig(BaseModel):
    """How programs are timed and checked."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    number: int = Field(1, ge=1, description="calls per repeat (raised to fill min_repeat_ms)")
    repeat: int = Field(5, ge=1, description="repeats; the median is reported")
    min_repeat_ms: int = Field(20, ge=0, description="each repeat lasts at least this long")
    timeout_s: float = Field(60.0, gt=0, description="build + check + timing of one program")
    baseline_timeout_s: float = Field(900.0, gt=0, description="same, for the unscheduled program")
    startup_timeout_s: float = Field(900.0, gt=0, description="worker start: inputs, reference")
    check: bool = Field(True, description="compare outputs with the reference before timing")
    tolerance: float = Field(1e-3, gt=0, description="max |out - ref| / max |ref| accepted")
    input_seed: int = Field(0, description="seed of the random inputs")


class RPCConfig(BaseModel):
    """A TVM RPC tracker and the device key to request from it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tracker_host: str = "127.0.0.1"
    tracker_port: int = 9190
    key: str = "local"
    session_timeout_s: float = 600.0


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

    @property
    def ok(self) -> bool:
        return self.latency_s is not None


# ------------------------------------------------------------------------------- parent side


class Measurer:
    """Measures programs of one workload on one target in an isolated worker process."""

    def __init__(self, workload: Workload, target: tvm.target.Target,
                 config: MeasureConfig | None = None, rpc: RPCConfig | None = None) -> None:
        self.workload = workload
        self.target = target
        self.config = config or MeasureConfig()
        self.rpc = rpc
        setup = {"spec": workload.name, "target": str(target), "config": self.config.model_dump(),
                 "rpc": None if rpc is None else rpc.model_dump()}
        self.worker = Child([sys.executable, "-m", WORKER_MODULE, json.dumps(setup)],
                            name=f"the measurement worker of {workload.name}",
                            start_timeout_s=self.config.startup_timeout_s)

    def measure(self, mod: tvm.IRModule, *, baseline: bool = False) -> MeasureResult:
        """Compile, check and time one program (``baseline``: the unscheduled program, which may
        take longer)."""
        timeout = self.config.baseline_timeout_s if baseline else self.config.timeout_s
        start = time.perf_counter()
        try:
            self.worker.start()
        except ChildFailed as err:
            raise RuntimeError(f"{err.detail}; its stderr is above") from None
        try:
            reply = self.worker.request({
                "mod": tvm.ir.save_json(mod), "number": self.config.number,
                "repeat": self.config.repeat, "min_repeat_ms": self.config.min_repeat_ms,
            }, timeout)
        except ChildFailed as err:  # the worker was killed or died: the next one starts fresh
            return MeasureResult(None, error_kind=err.kind, error=err.detail,  # type: ignore[arg-type]
                                 seconds=time.perf_counter() - start)
        if reply.get("restart"):
            self.worker.kill()
        return MeasureResult(
            reply.get("latency_s"), tuple(reply.get("runs_s", ())), reply.get("error_kind"),
            reply.get("error"), reply.get("max_error"), time.perf_counter() - start,
        )

    def close(self) -> None:
        self.worker.close()


# ------------------------------------------------------------------------------- surrogate


class Surrogate:
    """MetaSchedule's XGBoost cost model over its per-store features, as a cheap latency estimate.

    It is trained on every successful measurement the environment makes and predicts a latency
    for unmeasured schedules. XGBModel scores are throughputs normalized by the best measured
    program, so the estimate is ``best latency / score``. Until ``warmup`` measurements exist,
    the scores are random, as stock MetaSchedule's are for its first samples, but drawn from a
    seeded generator (MetaSchedule draws from NumPy's global one); :attr:`ready` says whether
    the estimate is informed.
    """

    def __init__(self, context: Any, *, warmup: int = 8, seed: int = 43) -> None:
        from tvm.s_tir import meta_schedule as ms

        self._ms = ms
        self.context = context
        self.warmup = warmup
        self.model = ms.cost_model.XGBModel(
            config=ms.cost_model.xgb_model.XGBConfig(seed=seed, nthread=1),
            num_warmup_samples=warmup, adaptive_training=False, verbose_eval=0,
        )
        self.num_samples = 0
        self.num_calls = 0
        self.rng = np.random.default_rng(seed)
        self.best_latency: float | None = None

    @property
    def ready(self) -> bool:
        return self.num_samples >= self.warmup

    def _candidates(self, schedules: list[Any]) -> list[Any]:
        ms = self._ms
        return [ms.MeasureCandidate(s, ms.arg_info.ArgInfo.from_prim_func(s.mod["main"]))
                for s in schedules]

    def update(self, schedules: list[Any], latencies: list[float]) -> None:
        ms = self._ms
        self.model.update(self.context, self._candidates(schedules),
                          [ms.runner.RunnerResult([lat], None) for lat in latencies])
        self.num_samples += len(latencies)
        best = min(latencies)
        self.best_latency = best if self.best_latency is None else min(best, self.best_latency)

    def estimate(self, schedules: list[Any]) -> np.ndarray:
        """Estimated latency in seconds of each schedule."""
        self.num_calls += len(schedules)
        if not self.ready:  # MetaSchedule's model draws from the unseeded global NumPy RNG here
            scores = self.rng.uniform(0, 1, len(schedules))
        else:
            scores = np.asarray(self.model.predict(self.context, self._candidates(schedules)))
        best = self.best_latency if self.best_latency is not None else 1.0
        return best / np.maximum(scores, 1e-6)

"""The measurement worker: runs in its own process, started by :class:`~.measure.Measurer`.

``python -m optarena.envs.tensor_schedule.worker SETUP`` (``SETUP``: JSON with the workload,
target, settings, RPC device and the reference outputs' file) generates the random inputs and
reads the reference outputs from that file (computing them and writing it when there is none
yet: the measurer hands them to the evaluator, which keeps them; a worker never opens the
measurement store), says it is ready, then answers one JSON line per request
(:func:`optarena.envs.isolation.serve`):

* ``build``: compile a program, load it and check its outputs; keep it;
* ``time``: time a kept program (:func:`timing`) and forget it;
* ``measure``: both; ``drop``: forget kept programs;
* ``anchors``: check and time the workload's anchors (:meth:`_Worker.measure_anchors`; only a
  worker started with PyTorch importable can time its anchors, see
  :func:`~.measure.worker_argv`).

Generated code runs only here, so a kernel that crashes or hangs takes this process down, not the
environment.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import tvm
from threadpoolctl import threadpool_limits

from optarena.envs.contract import error_summary
from optarena.envs.host import replacing
from optarena.envs.isolation import serve
from optarena.envs.store import pack_arrays, unpack_arrays
from optarena.envs.tensor_schedule.anchors import (
    INSTALL_HINT,
    Anchor,
    libraries,
    time_call,
    torch_facts,
)
from optarena.envs.tensor_schedule.measure import MeasureConfig, RPCConfig
from optarena.envs.tensor_schedule.roofline import (
    ROOFLINE,
    machine_rates,
    roofline,
    workload_bytes,
)
from optarena.envs.tensor_schedule.target import kernel_threads, set_kernel_threads
from optarena.envs.tensor_schedule.workload import Workload, get_workload


def make_inputs(workload: Workload, seed: int) -> list[np.ndarray]:
    """Deterministic random arguments for every parameter (outputs included)."""
    rng = np.random.default_rng(seed)
    arrays = []
    for _, shape, dtype in workload.params:
        if dtype.startswith("float"):
            arr = rng.random(shape, dtype=np.float32) * np.float32(2) - np.float32(1)
            arrays.append(arr.astype(dtype, copy=False))
        else:
            arrays.append(rng.integers(-8, 8, size=shape).astype(dtype))
    return arrays


def relative_error(out: np.ndarray, ref: np.ndarray) -> float:
    """max |out - ref| / max |ref| (inf when the output has NaNs or infinities)."""
    out64, ref64 = out.astype(np.float64), ref.astype(np.float64)
    if not np.all(np.isfinite(out64)):
        return float("inf")
    scale = max(float(np.max(np.abs(ref64))), 1e-30)
    return float(np.max(np.abs(out64 - ref64))) / scale


class _Device:
    """Where the worker runs kernels: this process, or an RPC session."""

    def __init__(self, target: tvm.target.Target, rpc: RPCConfig | None) -> None:
        self.target = target
        self.session: Any = None
        if rpc is not None:
            self.tmp = tempfile.TemporaryDirectory(prefix="optarena-rpc-")
            self.session = tvm.rpc.connect_tracker(rpc.tracker_host, rpc.tracker_port).request(
                rpc.key, session_timeout=int(rpc.session_timeout_s)
            )
            self.dev = self.session.cpu()
        else:
            self.dev = tvm.cpu()

    def load(self, mod: tvm.IRModule) -> Any:
        executable = tvm.compile(mod, target=self.target)
        if self.session is None:
            return executable.jit()
        path = Path(self.tmp.name) / f"kernel_{time.monotonic_ns()}.so"
        executable.export_library(str(path))
        self.session.upload(str(path))
        return self.session.load_module(path.name)


class _Worker:
    """The worker's state: the device, the inputs and the reference outputs, and the programs
    built and checked but not yet timed."""

    def __init__(self, setup: dict[str, Any]) -> None:
        self.config = MeasureConfig(**setup["config"])
        rpc = None if setup["rpc"] is None else RPCConfig(**setup["rpc"])
        target = tvm.target.Target(setup["target"])
        self.threads = kernel_threads(target)
        set_kernel_threads(self.threads, self.config.spin_count)
        workload = get_workload(setup["spec"])
        self.workload = workload
        self.anchors = workload.anchors
        self.device = _Device(target, rpc)
        self.inputs = make_inputs(workload, self.config.input_seed)
        self.written = workload.written
        self.reference = _reference(workload, target, self.inputs, Path(setup["reference"]))
        self.args = [tvm.runtime.tensor(a, self.device.dev) for a in self.inputs]
        self.built: dict[str, Any] = {}

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op", "measure")
        if op == "drop":
            for key in request["ids"]:
                self.built.pop(key, None)
            return {}
        if op in ("build", "measure"):
            reply = self.build(request)
            if op == "build" or "error_kind" in reply:
                return reply
            return {**reply, **self.time(request)}
        if op == "time":
            return self.time(request)
        if op == "anchors":
            return self.measure_anchors(request)
        raise ValueError(f"unknown op {op!r}")

    def build(self, request: dict[str, Any]) -> dict[str, Any]:
        """Compile, load and check a program; keep it for :meth:`time`."""
        started = time.perf_counter()
        try:
            module = self.device.load(tvm.ir.load_json(request["mod"]))
        except tvm.error.RPCError as err:  # the remote side is gone: reconnect in a fresh worker
            return {"error_kind": "run", "error": error_summary(err, 500), "restart": True}
        except Exception as err:  # any compiler error is a failed build
            return {"error_kind": "build", "error": error_summary(err, 500)}
        try:
            max_error = self.check(module) if self.config.check else None
        except tvm.error.RPCError as err:
            return {"error_kind": "run", "error": error_summary(err, 500), "restart": True}
        except Exception as err:  # any runtime error is a failed run
            return {"error_kind": "run", "error": error_summary(err, 500)}
        if max_error is not None and not max_error <= self.config.tolerance:
            return _wrong_output(max_error, self.config.tolerance)
        self.built[request["id"]] = module
        return {"max_error": max_error, "build_s": time.perf_counter() - started}

    def check(self, module: Any) -> float:
        """The largest relative error of the outputs of one call (outputs reset first: a
        kernel that skips part of its output must not pass)."""
        for i in self.written:
            self.args[i].copyfrom(self.inputs[i])
        module["main"](*self.args)
        errors = [relative_error(self.args[i].numpy(), ref)
                  for i, ref in zip(self.written, self.reference, strict=True)]
        return max(errors) if errors else 0.0

    def time(self, request: dict[str, Any]) -> dict[str, Any]:
        """Time a built program (:func:`timing`); it is forgotten afterwards."""
        module = self.built.pop(request["id"])
        started = time.perf_counter()
        try:
            return {**timing(module, self.device.dev, self.args, request),
                    "time_s": time.perf_counter() - started}
        except tvm.error.RPCError as err:
            return {"error_kind": "run", "error": error_summary(err, 500), "restart": True}
        except Exception as err:  # any runtime error is a failed run
            return {"error_kind": "run", "error": error_summary(err, 500)}

    def measure_anchors(self, request: dict[str, Any]) -> dict[str, Any]:
        """Check and time the anchors ``request["names"]`` (:func:`measure_anchor`) with the
        protocol's ``number``, ``repeat`` and ``min_repeat_ms``, on the inputs every kernel
        gets, with the target's threads: torch's set, the BLAS and OpenMP pools limited to them.
        With each anchor: the thread pools threadpoolctl reports after its timing and, for
        torch's, torch's version, threads and BLAS (a worker of their own, killed afterwards:
        :meth:`~optarena.envs.tensor_schedule.measure.Measurer.measure_anchors`). The name
        :data:`~optarena.envs.tensor_schedule.roofline.ROOFLINE` is the workload's roofline on
        this machine, its rates measured with the same threads."""
        inputs = [a for i, a in enumerate(self.inputs) if i not in self.written]
        (reference,) = self.reference
        replies = {}
        with threadpool_limits(limits=self.threads):
            for name in request["names"]:
                if name == ROOFLINE:
                    replies[name] = self.measure_roofline()
                    continue
                anchor = self.anchors[name]
                reply = measure_anchor(anchor, inputs, reference, self.threads,
                                       self.config.tolerance, request)
                if "latency_s" in reply:
                    reply.update(threads=self.threads, libraries=libraries(),
                                 **(torch_facts() if anchor.library == "torch" else {}))
                replies[name] = reply
        return {"anchors": replies}


    def measure_roofline(self) -> dict[str, Any]:
        """The workload's roofline on this machine (its rates measured with the kernels'
        threads), as an anchor's reply: its time as ``latency_s``, or why it failed."""
        try:
            rates = machine_rates(workload_bytes(self.workload), self.threads)
        except Exception as err:  # torch's error, whatever it is, is the roofline's failure
            return {"error_kind": "missing" if isinstance(err, ImportError) else "run",
                    "error": error_summary(err)}
        bound = roofline(self.workload, rates)
        return {"latency_s": bound.pop("time_s"), **bound, "threads": self.threads,
                **torch_facts()}


def measure_anchor(anchor: Anchor, inputs: list[np.ndarray], reference: np.ndarray, threads: int,
                   tolerance: float, protocol: dict[str, Any]) -> dict[str, Any]:
    """Check, then time, one anchor: its output on ``inputs`` is compared with ``reference``
    (an anchor off by more than ``tolerance`` is refused, not timed), then it is timed as
    :func:`~optarena.envs.tensor_schedule.anchors.time_call` does with the protocol's
    ``number``, ``repeat`` and ``min_repeat_ms``; the latency is the median. A failure is
    ``error_kind`` ``missing`` (its library is not installed), ``run`` or ``wrong_output``."""
    try:
        call = anchor.prepare(inputs, threads)
        max_error = relative_error(np.asarray(call()), reference)
    except ImportError as err:
        return {"error_kind": "missing", "error": f"{error_summary(err)} ({INSTALL_HINT})"}
    except Exception as err:  # the library's error, whatever it is, is the anchor's failure
        return {"error_kind": "run", "error": error_summary(err, 500)}
    if not max_error <= tolerance:
        return _wrong_output(max_error, tolerance)
    runs = time_call(call, int(protocol["number"]), int(protocol["repeat"]),
                     float(protocol["min_repeat_ms"]))
    return {"latency_s": float(np.median(runs)), "runs_s": runs, "max_error": max_error}


def _wrong_output(max_error: float, tolerance: float) -> dict[str, Any]:
    return {"error_kind": "wrong_output", "max_error": max_error,
            "error": f"output differs from the reference: relative error {max_error:.3g} > "
                     f"{tolerance:g}"}


def timing(module: Any, dev: Any, args: list[Any], protocol: dict[str, Any]) -> dict[str, Any]:
    """Time ``module["main"]`` as ``protocol`` says (:class:`MeasureConfig`'s fields).

    Full (no ``bound``, no ``spread``): ``time_evaluator(number, repeat, min_repeat_ms)``,
    MetaSchedule's protocol. Adaptive: a first pass of one repeat lasting ``first_pass_ms``; if it
    is slower than ``bound`` the candidate is hopeless and the result is *censored* (its
    first-pass latency, never a best); otherwise repeats of as many calls as fill
    ``min_repeat_ms`` (calibrated on the first pass) until the last ``min_repeats`` of them
    agree (their ``(max - min) / median`` at most ``spread``), or ``repeat`` of them; the latency
    is the median of the last ``min_repeats`` (the first repeats after a build run warm up).
    """
    number, repeat = int(protocol["number"]), int(protocol["repeat"])
    bound, spread = protocol.get("bound"), protocol.get("spread")
    if bound is None and spread is None:
        timer = module.time_evaluator("main", dev, number=number, repeat=repeat,
                                      min_repeat_ms=int(protocol["min_repeat_ms"]))
        runs = [float(r) for r in timer(*args).results]
        return {"latency_s": float(np.median(runs)), "runs_s": runs, "censored": False}
    first = float(module.time_evaluator("main", dev, number=number, repeat=1,
                                        min_repeat_ms=int(protocol["first_pass_ms"])
                                        )(*args).results[0])
    if bound is not None and first > bound:
        return {"latency_s": first, "runs_s": [first], "censored": True}
    calls = max(number, math.ceil(protocol["min_repeat_ms"] / 1e3 / max(first, 1e-9)))
    timer = module.time_evaluator("main", dev, number=calls, repeat=1, min_repeat_ms=0)
    window = int(protocol["min_repeats"]) if spread is not None else repeat
    runs: list[float] = []
    while len(runs) < repeat:
        runs.append(float(timer(*args).results[0]))
        last = runs[-window:]
        if spread is not None and len(last) == window \
                and max(last) - min(last) <= spread * float(np.median(last)):
            break
    return {"latency_s": float(np.median(runs[-window:])), "runs_s": runs, "censored": False}


def _reference(workload: Workload, target: tvm.target.Target, inputs: list[np.ndarray],
               path: Path) -> list[np.ndarray]:
    """The reference outputs on ``inputs``, from ``path``; where there is none yet, computed
    (the workload's NumPy reference, or for a user's workload its unscheduled program) and
    written there (whole or not at all) for the measurer and the other workers."""
    if path.exists():
        return unpack_arrays(path.read_bytes())
    written = workload.written
    if workload.reference is not None:
        reference = workload.reference([a for i, a in enumerate(inputs) if i not in written])
    else:
        function = tvm.compile(workload.mod, target=target).jit()
        args = [tvm.runtime.tensor(a, tvm.cpu()) for a in inputs]
        function["main"](*args)
        reference = [args[i].numpy() for i in written]
    with replacing(path) as partial:
        partial.write_bytes(pack_arrays(reference))
    return reference


if __name__ == "__main__":
    serve(_Worker(json.loads(sys.argv[1])).handle, ready={"ready": True})

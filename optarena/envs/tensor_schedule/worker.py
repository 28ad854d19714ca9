"""The measurement worker: runs in its own process, started by :class:`~.measure.Measurer`.

``python -m optarena.envs.tensor_schedule.worker SETUP`` (``SETUP``: JSON with the workload,
target, settings and RPC device) generates the random inputs and the reference outputs once,
says it is ready, then compiles, checks and times each program it is sent, one JSON line each
way (:func:`optarena.envs.isolation.serve`). Generated code runs only here, so a kernel that
crashes or hangs takes this process down, not the environment.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import tvm

from optarena.envs.contract import error_summary
from optarena.envs.isolation import serve
from optarena.envs.tensor_schedule.measure import MeasureConfig, RPCConfig
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


def _serve(setup: dict[str, Any]) -> None:
    """Worker loop: set up inputs and reference once, then answer measurement requests."""
    spec, target = setup["spec"], setup["target"]
    config = MeasureConfig(**setup["config"])
    rpc = None if setup["rpc"] is None else RPCConfig(**setup["rpc"])
    os.environ["TVM_NUM_THREADS"] = str(tvm.target.Target(target).attrs.get("num-cores", 1))
    workload = get_workload(spec)
    tgt = tvm.target.Target(target)
    device = _Device(tgt, rpc)
    inputs = make_inputs(workload, config.input_seed)
    written = workload.written
    if workload.reference is not None:
        reference = workload.reference([a for i, a in enumerate(inputs) if i not in written])
    else:  # a user's workload: its unscheduled program is the reference
        reference_fn = tvm.compile(workload.mod, target=tgt).jit()
        args = [tvm.runtime.tensor(a, tvm.cpu()) for a in inputs]
        reference_fn["main"](*args)
        reference = [args[i].numpy() for i in written]
    args = [tvm.runtime.tensor(a, device.dev) for a in inputs]
    serve(lambda request: _measure_one(request, device, args, inputs, written, reference, config),
          ready={"ready": True})


def _measure_one(request: dict[str, Any], device: _Device, args: list[Any],
                 inputs: list[np.ndarray], written: list[int], reference: list[np.ndarray],
                 config: MeasureConfig) -> dict[str, Any]:
    try:
        module = device.load(tvm.ir.load_json(request["mod"]))
    except tvm.error.RPCError as err:  # the remote side is gone: reconnect in a fresh worker
        return {"error_kind": "run", "error": error_summary(err, 500), "restart": True}
    except Exception as err:  # any compiler error is a failed build
        return {"error_kind": "build", "error": error_summary(err, 500)}
    try:
        max_error = None
        if config.check:
            for i in written:  # a kernel that skips part of its output must not pass
                args[i].copyfrom(inputs[i])
            module["main"](*args)
            errors = [relative_error(args[i].numpy(), ref)
                      for i, ref in zip(written, reference, strict=True)]
            max_error = max(errors) if errors else 0.0
            if not max_error <= config.tolerance:
                return {"error_kind": "wrong_output", "max_error": max_error,
                        "error": f"output differs from the reference: relative error "
                                 f"{max_error:.3g} > {config.tolerance:g}"}
        timer = module.time_evaluator("main", device.dev, number=request["number"],
                                      repeat=request["repeat"],
                                      min_repeat_ms=request["min_repeat_ms"])
        runs = [float(r) for r in timer(*args).results]
    except tvm.error.RPCError as err:
        return {"error_kind": "run", "error": error_summary(err, 500), "restart": True}
    except Exception as err:  # any runtime error is a failed run
        return {"error_kind": "run", "error": error_summary(err, 500)}
    return {"latency_s": float(np.median(runs)), "runs_s": runs, "max_error": max_error}


if __name__ == "__main__":
    _serve(json.loads(sys.argv[1]))

"""The roofline of a tensor workload on the machine of a run: the least time any program can take.

A kernel must move its inputs and outputs through memory at least once and do its arithmetic,
so it cannot beat ``max(bytes / stream bandwidth, flops / peak rate)``. Both rates are measured
here, in the workload's anchor worker, with the threads the kernels get (PyTorch, as the
``pytorch`` anchor): the **stream bandwidth** is the best of several 2-pass reductions
(``torch.sum``) over an array far larger than the caches, the **peak** the best of several large
float32 GEMMs (``torch.matmul``, MKL in PyTorch's CPU build). ``bytes`` is the workload's
parameters' size (inputs and outputs, once), ``flops`` its operation count
(:attr:`~optarena.envs.tensor_schedule.workload.Workload.flops`).

A schedule's *fraction of the roofline* is ``roofline time / its latency`` (1.0: at the bound).
The bound is loose where a workload's intermediates exceed the caches (attention's scores) and
for small workloads, whose calls cost more than their data: it says how far a schedule is from
what this machine could do, beside how it compares with PyTorch eager (a weak anchor on some
CPUs: see the README).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from optarena.envs.tensor_schedule.workload import Workload

STREAM_BYTES = 1 << 29
"""Bytes the bandwidth is measured over (512 MiB: far beyond any CPU's last-level cache)."""
GEMM_SIZE = 2048
"""Square float32 GEMM the peak is measured with (17 GFLOP a call)."""
REPEATS = 5


def workload_bytes(workload: Workload) -> int:
    """Bytes of the workload's parameters (inputs and outputs), each moved once."""
    return sum(int(np.prod(shape)) * np.dtype(dtype).itemsize
               for _, shape, dtype in workload.params())


def _best_seconds(call: Callable[[], Any], repeats: int) -> float:
    call()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - started)
    return best


def machine_rates(threads: int) -> dict[str, float]:
    """``stream_bytes_per_s`` and ``peak_flops_per_s`` of this machine with ``threads`` threads
    (``ImportError`` without torch)."""
    import torch

    torch.set_num_threads(threads)
    data = torch.ones(STREAM_BYTES // 4, dtype=torch.float32)
    stream = STREAM_BYTES / _best_seconds(lambda: torch.sum(data), REPEATS)
    a = torch.rand(GEMM_SIZE, GEMM_SIZE, dtype=torch.float32)
    b = torch.rand(GEMM_SIZE, GEMM_SIZE, dtype=torch.float32)
    peak = 2 * GEMM_SIZE ** 3 / _best_seconds(lambda: torch.matmul(a, b), REPEATS)
    return {"stream_bytes_per_s": stream, "peak_flops_per_s": peak}


def roofline(workload: Workload, rates: dict[str, float]) -> dict[str, Any]:
    """The workload's roofline under measured ``rates``: ``time_s`` and what bounds it."""
    moved, flops = workload_bytes(workload), workload.flops
    memory_s = moved / rates["stream_bytes_per_s"]
    compute_s = flops / rates["peak_flops_per_s"]
    return {"time_s": max(memory_s, compute_s), "bytes": moved, "flops": flops,
            "memory_s": memory_s, "compute_s": compute_s,
            "bound": "memory" if memory_s >= compute_s else "compute", **rates}

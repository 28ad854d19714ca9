"""The roofline of a tensor workload on the machine of a run: the least time any program can take.

A kernel must move its inputs and outputs through memory at least once and do its arithmetic,
so it cannot beat ``max(bytes / stream bandwidth, flops / peak rate)``. Both rates are measured
here, in the workload's anchor worker, with the threads the kernels get (PyTorch, as the
``pytorch`` anchor), timed as the anchors are (:func:`~optarena.envs.tensor_schedule.anchors.
time_call`, best of the repeats): the **stream bandwidth** is that of a reduction
(``torch.sum``) over as many bytes as the workload moves -- from memory for a workload larger
than the caches, from the caches for one that fits, as its kernels would read them -- and the
**peak** that of a large float32 GEMM (``torch.matmul``, MKL in PyTorch's CPU build). ``bytes``
is the workload's parameters' size (inputs and outputs, once), ``flops`` its operation count
(:attr:`~optarena.envs.tensor_schedule.workload.Workload.flops`).

It is measured and kept like an anchor of the workload, named :data:`ROOFLINE`, whose score is
the roofline time and whose notes (``problem()["anchor_notes"]["roofline"]``) hold the bytes,
flops, measured rates and the bound. A schedule's *fraction of the roofline* is ``roofline time
/ its latency`` (1.0: at the bound). The bound is loose where a workload's intermediates exceed
the caches (attention's scores), and for small workloads, whose calls cost more than their data
(the reduction's own call overhead lowers the bandwidth measured over few bytes): it says how far
a schedule is from what this machine could do, beside how it compares with PyTorch eager (a weak
anchor on some CPUs: see the README).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from optarena.envs.tensor_schedule.anchors import time_call
from optarena.envs.tensor_schedule.workload import Workload

ROOFLINE = "roofline"
"""The roofline's name among a workload's anchors (its score: the roofline time)."""
GEMM_SIZE = 2048
"""Square float32 GEMM the peak is measured with (17 GFLOP a call)."""
PROTOCOL = {"number": 1, "repeat": 5, "min_repeat_ms": 50}
"""How both rates are timed (:func:`~optarena.envs.tensor_schedule.anchors.time_call`)."""


def workload_bytes(workload: Workload) -> int:
    """Bytes of the workload's parameters (inputs and outputs), each moved once."""
    return sum(int(np.prod(shape)) * np.dtype(dtype).itemsize
               for _, shape, dtype in workload.params)


def machine_rates(moved: int, threads: int) -> dict[str, float]:
    """``stream_bytes_per_s`` over ``moved`` bytes and ``peak_flops_per_s`` of this machine with
    ``threads`` threads (``ImportError`` without torch)."""
    import torch

    torch.set_num_threads(threads)
    data = torch.ones(max(moved // 4, 1), dtype=torch.float32)
    stream = data.numel() * 4 / min(time_call(lambda: torch.sum(data), **PROTOCOL))
    a = torch.rand(GEMM_SIZE, GEMM_SIZE, dtype=torch.float32)
    b = torch.rand(GEMM_SIZE, GEMM_SIZE, dtype=torch.float32)
    peak = 2 * GEMM_SIZE ** 3 / min(time_call(lambda: torch.matmul(a, b), **PROTOCOL))
    return {"stream_bytes_per_s": stream, "peak_flops_per_s": peak}


def roofline(workload: Workload, rates: dict[str, float]) -> dict[str, Any]:
    """The workload's roofline under measured ``rates``: ``time_s`` and what bounds it."""
    moved, flops = workload_bytes(workload), workload.flops
    memory_s = moved / rates["stream_bytes_per_s"]
    compute_s = flops / rates["peak_flops_per_s"]
    return {"time_s": max(memory_s, compute_s), "bytes": moved, "flops": flops,
            "memory_s": memory_s, "compute_s": compute_s,
            "bound": "memory" if memory_s >= compute_s else "compute", **rates}

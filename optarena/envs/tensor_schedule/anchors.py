"""Anchors of the tensor workloads: what a user would run instead of a tuned schedule.

An anchor computes a built-in workload's output with a well-known library, as a user of that
library writes it: **pytorch** (PyTorch eager on the CPU: ``torch.matmul``,
``torch.nn.functional.conv2d``, ``scaled_dot_product_attention``, the SwiGLU composition of
``F.linear`` and ``F.silu``) for every built-in workload, and **openblas** (``numpy.matmul``,
NumPy's BLAS) for matmuls. A user's TVMScript workload has none.

Anchors are checked and timed in the workload's measurement worker
(:func:`~optarena.envs.tensor_schedule.worker.measure_anchor`): on the same random inputs as
every kernel, with as many threads as the target's ``num-cores`` (``torch.set_num_threads``; the
BLAS and OpenMP pools limited by threadpoolctl), their output compared with the workload's NumPy
reference within the tolerance before they are timed (:func:`time_call`: TVM's
``time_evaluator`` protocol, in Python). A timed call costs what the user's call costs: Python
and dispatch overhead and a freshly allocated output included. The BLAS is the process's as configured (its
environment, e.g. ``OPENBLAS_CORETYPE``, is left alone); what threadpoolctl reports of it is
recorded with each anchor (:func:`libraries`), so results say what was timed.
"""

from __future__ import annotations

import importlib.metadata
import math
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from threadpoolctl import threadpool_info

Prepare = Callable[[Sequence[np.ndarray], int], Callable[[], Any]]
"""Given a workload's input arrays (parameter order, outputs left out) and the threads to use,
a call that computes the workload's output once (a NumPy array or a torch tensor)."""

INSTALL_HINT = "pip install 'optarena[anchors]'"
"""How to get the libraries of every anchor."""

LIBRARY_FIELDS = ("user_api", "internal_api", "prefix", "version", "architecture", "num_threads")
"""What :func:`libraries` keeps of each of threadpoolctl's entries."""


@dataclass(frozen=True)
class Anchor:
    """A well-known alternative to a tuned schedule of a workload."""

    library: str
    """The distribution it needs (``torch``, ``numpy``); without it the anchor is absent."""
    prepare: Prepare

    def version(self) -> str | None:
        """The installed version of :attr:`library` (``None``: not installed)."""
        return library_version(self.library)


def library_version(library: str) -> str | None:
    """The installed version of the distribution ``library`` (``None``: not installed)."""
    try:
        return importlib.metadata.version(library)
    except importlib.metadata.PackageNotFoundError:
        return None


def _torch(threads: int) -> Any:
    """torch, with ``threads`` intra-op threads (``ImportError`` when it is not installed)."""
    import torch

    torch.set_num_threads(threads)
    return torch


def _numpy_matmul(inputs: Sequence[np.ndarray], threads: int) -> Callable[[], Any]:
    """``numpy.matmul``: float32 GEMM of NumPy's BLAS, whose threads the worker limits."""
    a, b = inputs
    return lambda: np.matmul(a, b)


def _torch_matmul(inputs: Sequence[np.ndarray], threads: int) -> Callable[[], Any]:
    torch = _torch(threads)
    a, b = (torch.from_numpy(x) for x in inputs)
    return lambda: torch.matmul(a, b)


def _torch_conv2d_nhwc(inputs: Sequence[np.ndarray], threads: int) -> Callable[[], Any]:
    """``F.conv2d`` as a user with NHWC activations and HWIO weights runs it, channels last:
    the activations enter as an NCHW view of the NHWC array and the output leaves as an NHWC
    view (``permute``, no copy; inside the timed call), the weights are converted to OIHW in
    channels-last memory once, beforehand (as ``model.to(memory_format=torch.channels_last)``
    does on loading). Stride 1, same padding."""
    torch = _torch(threads)
    x = torch.from_numpy(inputs[0])
    w = torch.from_numpy(inputs[1]).permute(3, 2, 0, 1).contiguous(
        memory_format=torch.channels_last)
    padding = (w.shape[2] // 2, w.shape[3] // 2)
    conv2d = torch.nn.functional.conv2d
    return lambda: conv2d(x.permute(0, 3, 1, 2), w, padding=padding).permute(0, 2, 3, 1)


def _torch_attention(causal: bool) -> Prepare:
    """``F.scaled_dot_product_attention`` on ``(1, heads, seq, head_dim)`` (a batch of one: the
    4-D layout its fused CPU kernel takes; 3-D falls back to the much slower unfused path),
    ``is_causal`` as the workload, grouped-query heads by ``enable_gqa`` (no copy of K and V)."""

    def prepare(inputs: Sequence[np.ndarray], threads: int) -> Callable[[], Any]:
        torch = _torch(threads)
        q, k, v = (torch.from_numpy(x)[None] for x in inputs)
        attend = torch.nn.functional.scaled_dot_product_attention
        grouped = q.shape[1] != k.shape[1]
        return lambda: attend(q, k, v, is_causal=causal, enable_gqa=grouped)[0]

    return prepare


def _torch_swiglu(inputs: Sequence[np.ndarray], threads: int) -> Callable[[], Any]:
    """``F.linear(F.silu(F.linear(x, w_gate)) * F.linear(x, w_up), w_down)``: a SwiGLU MLP of
    ``nn.Linear`` layers, weights ``(out, in)`` as the workload's."""
    torch = _torch(threads)
    x, w_gate, w_up, w_down = (torch.from_numpy(a) for a in inputs)
    linear, silu = torch.nn.functional.linear, torch.nn.functional.silu
    return lambda: linear(silu(linear(x, w_gate)) * linear(x, w_up), w_down)


MATMUL = {"pytorch": Anchor("torch", _torch_matmul), "openblas": Anchor("numpy", _numpy_matmul)}
CONV2D_NHWC = {"pytorch": Anchor("torch", _torch_conv2d_nhwc)}
SWIGLU = {"pytorch": Anchor("torch", _torch_swiglu)}


def attention_anchors(causal: bool) -> dict[str, Anchor]:
    """The anchors of an attention workload (causal or not)."""
    return {"pytorch": Anchor("torch", _torch_attention(causal))}


def time_call(call: Callable[[], Any], number: int, repeat: int, min_repeat_ms: float
              ) -> list[float]:
    """Seconds per call of ``call`` in each of ``repeat`` repeats, as TVM's ``time_evaluator``
    times a kernel: one warm-up call, then each repeat runs ``number`` calls, ``number`` raised
    (by the golden ratio at least, and kept for later repeats) until a repeat lasts
    ``min_repeat_ms``."""
    call()
    runs = []
    for _ in range(repeat):
        elapsed = 0.0
        while True:
            if elapsed > 0:
                number = max(int(min_repeat_ms / 1e3 / (elapsed / number)) + 1,
                             math.ceil(number * 1.618))
            started = time.perf_counter()
            for _ in range(number):
                call()
            elapsed = time.perf_counter() - started
            if elapsed * 1e3 >= min_repeat_ms:
                break
        runs.append(elapsed / number)
    return runs


def libraries() -> list[dict[str, Any]]:
    """The thread pools loaded in this process (BLAS, OpenMP) as threadpoolctl reports them:
    :data:`LIBRARY_FIELDS` of each (the BLAS kernel is ``architecture``)."""
    return [{key: info.get(key) for key in LIBRARY_FIELDS} for info in threadpool_info()]


def torch_facts() -> dict[str, Any]:
    """torch's version, threads and BLAS (MKL is linked into torch's CPU build, so threadpoolctl
    does not see it); torch must be imported."""
    torch = sys.modules["torch"]
    blas = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
    return {"torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "torch_blas": blas.group(1) if blas else None}

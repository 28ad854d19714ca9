"""Choosing the LLVM target for the machine the kernels run on.

TVM's own host detection asks LLVM for the CPU *model*; on virtual machines the model may promise
instruction sets the hypervisor does not expose (an AMD ``znver4`` guest without AVX-512), and code
built for it dies with SIGILL. With no ``mcpu`` at all, LLVM emits baseline x86-64 code (no AVX2/FMA)
that is about 2.35x slower. So the host target is chosen from the features the OS reports: the
first CPU, starting with the detected one and walking down its family, whose SIMD features are all
present in ``/proc/cpuinfo``.
"""

from __future__ import annotations

import os
import platform
from typing import Any

import tvm
from tvm.target import codegen

from optarena.envs.contract import error_summary
from optarena.envs.host import host_cpu_flags, usable_cores

# LLVM feature name -> /proc/cpuinfo flag, for the features whose absence raises SIGILL.
_LLVM_TO_PROC_FLAG: dict[str, str] = {
    "sse4.1": "sse4_1",
    "sse4.2": "sse4_2",
    "sse4a": "sse4a",
    "avx": "avx",
    "avx2": "avx2",
    "fma": "fma",
    "f16c": "f16c",
    "bmi": "bmi1",
    "bmi2": "bmi2",
    "adx": "adx",
    "movbe": "movbe",
    "sha": "sha_ni",
    "aes": "aes",
    "vaes": "vaes",
    "vpclmulqdq": "vpclmulqdq",
    "gfni": "gfni",
    "avxvnni": "avx_vnni",
    "avx512f": "avx512f",
    "avx512bw": "avx512bw",
    "avx512cd": "avx512cd",
    "avx512dq": "avx512dq",
    "avx512vl": "avx512vl",
    "avx512vnni": "avx512_vnni",
    "avx512bf16": "avx512_bf16",
    "avx512ifma": "avx512ifma",
    "avx512vbmi": "avx512vbmi",
    "avx512vbmi2": "avx512_vbmi2",
    "avx512bitalg": "avx512_bitalg",
    "avx512vpopcntdq": "avx512_vpopcntdq",
    "avx512fp16": "avx512_fp16",
    "amx-tile": "amx_tile",
}

# Walked in order after the detected CPU; the first one whose features the OS reports wins.
_X86_FALLBACKS: tuple[str, ...] = (
    "znver5",
    "znver4",
    "znver3",
    "znver2",
    "znver1",
    "sapphirerapids",
    "icelake-server",
    "skylake-avx512",
    "alderlake",
    "skylake",
    "haswell",
    "x86-64-v4",
    "x86-64-v3",
    "x86-64-v2",
    "x86-64",
)


def missing_features(mcpu: str, flags: frozenset[str]) -> list[str]:
    """LLVM features that ``mcpu`` implies but the host does not report."""
    features = codegen.llvm_get_cpu_features(tvm.target.Target({"kind": "llvm", "mcpu": mcpu}))
    return sorted(
        feature
        for feature in features
        if feature in _LLVM_TO_PROC_FLAG and _LLVM_TO_PROC_FLAG[feature] not in flags
    )


def host_mcpu(flags: frozenset[str] | None = None) -> str:
    """The newest CPU model whose SIMD features the host actually has."""
    flags = host_cpu_flags() if flags is None else flags
    detected = codegen.llvm_get_system_cpu()
    if platform.machine() not in ("x86_64", "AMD64") or not flags:
        return detected
    known = set(codegen.llvm_get_cpu_archlist(tvm.target.Target({"kind": "llvm"})))
    for mcpu in (detected, *_X86_FALLBACKS):
        if mcpu in known and not missing_features(mcpu, flags):
            return mcpu
    return "x86-64"


def host_target(num_cores: int | None = None) -> dict[str, Any]:
    """Target dict for the local CPU: safe ``mcpu`` and the number of physical cores to use."""
    cores = num_cores or usable_cores()
    return {"kind": "llvm", "mcpu": host_mcpu(), "num-cores": cores}


def resolve_target(target: str | dict[str, Any] | None) -> tvm.target.Target:
    """``None`` or ``"host"`` -> :func:`host_target`; a dict or a TVM target string as given.
    ``ValueError`` naming the problem for a target TVM rejects or an ``mcpu`` LLVM does not
    know (TVM's own message is about a missing attribute)."""
    if target is None or target == "host":
        return tvm.target.Target(host_target())
    try:
        resolved = tvm.target.Target(target)
    except (ValueError, RuntimeError, TypeError) as err:
        raise ValueError(f"not a TVM target: {target!r} ({error_summary(err)})") from err
    mcpu = str(resolved.attrs.get("mcpu", "")) if resolved.kind.name == "llvm" else ""
    if mcpu:
        known = set(codegen.llvm_get_cpu_archlist(tvm.target.Target({"kind": "llvm"})))
        if known and mcpu not in known:
            raise ValueError(f"unknown mcpu {mcpu!r} for LLVM {codegen.llvm_version_major()} on "
                             f"this machine; valid: {', '.join(sorted(known))}")
    return resolved


def kernel_threads(target: tvm.target.Target) -> int:
    """The threads a kernel built for ``target`` runs on: the target's ``num-cores``."""
    return int(target.attrs.get("num-cores", 1))


def set_kernel_threads(count: int, spin_count: int | None = None) -> None:
    """Run this process's TVM kernels on ``count`` threads, whose idle threads yield
    ``spin_count`` times before they sleep (``None``: TVM's default). Call it before the first
    kernel runs: TVM's thread pool reads ``TVM_NUM_THREADS`` and ``TVM_THREAD_POOL_SPIN_COUNT``
    once, and without the first takes half the logical CPUs on x86 (it assumes hyper-threading),
    which is 1 thread on a 2-core machine without SMT."""
    os.environ["TVM_NUM_THREADS"] = str(count)
    if spin_count is None:  # TVM's default, whatever the environment this process inherited
        os.environ.pop("TVM_THREAD_POOL_SPIN_COUNT", None)
    else:
        os.environ["TVM_THREAD_POOL_SPIN_COUNT"] = str(spin_count)

"""What a step of ``optarena/LlvmPassOrder-v0`` costs, against CompilerGym's own step.

For each benchmark: ``gym.make`` (service start, program load, the unoptimized and ``-O3``
programs scored), ``reset``, and ``steps`` uniformly random allowed passes (seed 0), split into
steps that made new IR (a measurement: build, check, score) and steps whose IR was seen before
(free). The anchor is CompilerGym itself in the same run: the same pass sequences applied through
the service without scoring (``llvm-v0`` step, IR and observations, bitcode written). Prints
median times and the ratios to the anchor.

    python benchmarks/bench_llvm.py [--steps 40] [--benchmarks suite:crc32=runtime,csmith:1=cycles]
"""

from __future__ import annotations

import argparse
import statistics
import time

import gymnasium as gym
import numpy as np
from rich.console import Console
from rich.table import Table

import optarena.envs  # noqa: F401 - registers the environments


def _median_ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1e3:.1f}" if values else "—"


def bench(spec: str, reward: str, steps: int, seed: int) -> dict[str, list[float]]:
    """Times (seconds) of make, reset, new-IR steps, cached steps and the CompilerGym anchor."""
    times: dict[str, list[float]] = {"make": [], "reset": [], "new": [], "cached": [], "anchor": []}
    start = time.perf_counter()
    env = gym.make("optarena/LlvmPassOrder-v0", benchmark=spec, reward=reward)
    times["make"].append(time.perf_counter() - start)
    inner = env.unwrapped
    rng = np.random.default_rng(seed)
    sequences: list[list[str]] = []
    try:
        start = time.perf_counter()
        env.reset()
        times["reset"].append(time.perf_counter() - start)
        legal = np.flatnonzero(inner.action_masks())
        for _ in range(steps):
            before = inner.num_measurements
            start = time.perf_counter()
            _, _, _, truncated, info = env.step(int(rng.choice(legal)))
            times["new" if inner.num_measurements > before else "cached"].append(
                time.perf_counter() - start)
            sequences.append(info["state"]["passes"])
            if truncated:
                env.reset()
        session = inner.llvm.session
        session.request("reset", benchmark=inner.llvm.load(spec).request)
        for passes in sequences:
            start = time.perf_counter()
            session.request("apply", passes=passes, out=None,
                            observations=["Autophase", "IrInstructionCount"])
            times["anchor"].append(time.perf_counter() - start)
    finally:
        env.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--benchmarks", default="suite:crc32=runtime,suite:matmul=runtime,"
                        "csmith:1=cycles,llvm-stress:0=cycles")
    args = parser.parse_args()
    table = Table(title=f"LlvmPassOrder-v0, {args.steps} random steps, seed {args.seed} "
                  "(medians, ms)")
    for column in ("benchmark", "score", "make", "reset", "step: new IR (n)",
                   "step: seen IR (n)", "CompilerGym step", "new / CG", "seen / CG"):
        table.add_column(column)
    for item in args.benchmarks.split(","):
        spec, reward = item.split("=")
        t = bench(spec, reward, args.steps, args.seed)
        anchor = statistics.median(t["anchor"])
        ratio = {k: f"{statistics.median(t[k]) / anchor:.1f}x" if t[k] else "—"
                 for k in ("new", "cached")}
        table.add_row(spec, reward, _median_ms(t["make"]), _median_ms(t["reset"]),
                      f"{_median_ms(t['new'])} ({len(t['new'])})",
                      f"{_median_ms(t['cached'])} ({len(t['cached'])})", _median_ms(t["anchor"]),
                      ratio["new"], ratio["cached"])
    Console(width=150).print(table)


if __name__ == "__main__":
    main()

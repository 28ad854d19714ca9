"""What a step of ``optarena/LlvmPassOrder-v0`` costs, against CompilerGym's own step.

For each benchmark: ``gym.make`` (service start, program load, the unoptimized and ``-O3``
programs scored), ``reset``, and ``steps`` uniformly random allowed passes (seed 0), split into
steps that made new IR (a measurement: build, check, score) and steps whose IR was seen before
(free). The anchor is CompilerGym's own ``env.step`` in the same run, in its own virtual
environment: ``gym.make("llvm-v0", observation_space=<the env's feature observation>,
reward_space=<the metric's -Oz reward>)`` replaying the same passes from the same resets (its
step computes the observation and the reward; ``IrInstructionCountOz`` is the metric of
CompilerGym's leaderboard). Each IR-count metric runs twice: programs identified by their IR
(``identity="ir"``, the default: CompilerGym hashes the IR every step) and by their pass sequence
(``identity="passes"``, what training uses). Prints median times and the ratios to the anchor.

    python benchmarks/bench_llvm.py [--steps 40] [--benchmarks csmith:1=ir_instructions,...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import textwrap
import time
from typing import Any

import gymnasium as gym
import numpy as np
from rich.console import Console
from rich.table import Table

import optarena.envs  # noqa: F401 - registers the environments
from optarena.envs.host import cpu_model
from optarena.envs.llvm_pass_order.session import compiler_gym_home

REWARDS = {"ir_instructions": "IrInstructionCountOz", "code_size": "ObjectTextSizeOz",
           "cycles": "IrInstructionCountOz", "runtime": "IrInstructionCountOz"}
"""The CompilerGym reward its anchor step computes for each metric (IR counts for the metrics
CompilerGym has no reward for)."""
REWARDS_OF_CG = ("ir_instructions", "code_size")
"""The metrics CompilerGym computes itself (its step is the like-for-like anchor)."""
REPLAY = textwrap.dedent("""
    import json, sys, time
    import gym, compiler_gym
    from compiler_gym.envs.llvm import make_benchmark
    job = json.loads(sys.stdin.read())
    request = job["benchmark"]
    benchmark = make_benchmark(request["file"], copt=request.get("copt")) if "file" in request \\
        else request["uri"]
    env = gym.make("llvm-v0", disable_env_checker=True, benchmark=benchmark,
                   observation_space=job["observation"], reward_space=job["reward"])
    names = env.action_space.names
    env.reset()
    times = []
    for item in job["trajectory"]:
        if item is None:
            env.reset()
            continue
        start = time.perf_counter()
        env.step(names.index(item))
        times.append(time.perf_counter() - start)
    env.close()
    print(json.dumps(times))
""")


def compiler_gym_steps(benchmark: dict[str, Any], observation: str, reward: str,
                       trajectory: list[str | None]) -> list[float]:
    """Seconds of each CompilerGym ``env.step`` replaying ``trajectory`` (pass names; ``None``
    is a reset), in CompilerGym's virtual environment."""
    home = compiler_gym_home()
    done = subprocess.run(
        [str(home / "venv" / "bin" / "python"), "-c", REPLAY],
        input=json.dumps({"benchmark": benchmark, "observation": observation, "reward": reward,
                          "trajectory": trajectory}),
        capture_output=True, text=True, check=True,
        env={**os.environ, "COMPILER_GYM_SITE_DATA": str(home / "site-data")})
    return json.loads(done.stdout.strip().splitlines()[-1])


def _median_ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1e3:.1f}" if values else "—"


def bench(spec: str, reward: str, identity: str, steps: int, seed: int
          ) -> dict[str, list[float]]:
    """Times (seconds) of make, reset, new-IR steps, cached steps and the CompilerGym anchor."""
    times: dict[str, list[float]] = {"make": [], "reset": [], "new": [], "cached": [], "anchor": []}
    start = time.perf_counter()
    env = gym.make("optarena/LlvmPassOrder-v0", benchmark=spec, reward=reward, identity=identity)
    times["make"].append(time.perf_counter() - start)
    inner = env.unwrapped
    rng = np.random.default_rng(seed)
    trajectory: list[str | None] = []
    try:
        start = time.perf_counter()
        env.reset()
        times["reset"].append(time.perf_counter() - start)
        legal = np.flatnonzero(inner.action_masks())
        for _ in range(steps):
            action = int(rng.choice(legal))
            before = inner.evaluator.num_measurements
            start = time.perf_counter()
            _, _, _, truncated, info = env.step(action)
            times["new" if inner.evaluator.num_measurements > before else "cached"].append(
                time.perf_counter() - start)
            trajectory.append(info["state"]["passes"][-1])
            if truncated:
                env.reset()
                trajectory.append(None)
        request = inner.llvm.load(spec).request
        observation = inner.llvm.observations[0]
    finally:
        env.close()
    times["anchor"] = compiler_gym_steps(request, observation, REWARDS[reward], trajectory)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--benchmarks", default="csmith:1=ir_instructions,csmith:1=code_size,"
                        "csmith:2=ir_instructions,csmith:2=code_size,suite:crc32=ir_instructions,"
                        "suite:crc32=code_size,suite:crc32=runtime")
    args = parser.parse_args()
    table = Table(title=f"LlvmPassOrder-v0, {args.steps} random steps, seed {args.seed} "
                  f"(medians, ms); {cpu_model()}")
    for column in ("benchmark", "score", "program", "make", "reset", "step: new program (n)",
                   "step: seen program (n)", "CompilerGym step", "new / CG", "seen / CG"):
        table.add_column(column)
    for item in args.benchmarks.split(","):
        spec, reward = item.split("=")
        for identity in ("ir", "passes") if reward in REWARDS_OF_CG else ("ir",):
            t = bench(spec, reward, identity, args.steps, args.seed)
            anchor = statistics.median(t["anchor"])
            ratio = {k: f"{statistics.median(t[k]) / anchor:.1f}x" if t[k] else "—"
                     for k in ("new", "cached")}
            table.add_row(spec, reward, identity, _median_ms(t["make"]), _median_ms(t["reset"]),
                          f"{_median_ms(t['new'])} ({len(t['new'])})",
                          f"{_median_ms(t['cached'])} ({len(t['cached'])})",
                          _median_ms(t["anchor"]), ratio["new"], ratio["cached"])
    Console(width=150).print(table)


if __name__ == "__main__":
    main()

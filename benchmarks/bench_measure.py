"""Measured candidates per second: optarena's measurement vs stock MetaSchedule, in one run.

The same ``N`` distinct valid candidates of one workload (sampled with a seed) are measured with
the same timing settings (``number``, ``repeat``, ``min_repeat_ms``) by

1. optarena's :class:`~optarena.envs.tensor_schedule.measure.Measurer` (one persistent worker:
   compile, check against NumPy, time);
2. stock MetaSchedule's ``LocalBuilder`` + ``LocalRunner`` (what ``tune_tir`` uses), one batch,
   (a) as shipped but with the build timeout raised from 30 s to 300 s: its ``default_build``
   imports every tensor intrinsic (CUDA's included) inside the first build of each worker, which
   takes longer than 30 s on 2 cores, so with the stock timeout every build fails; and
   (b) with a builder initializer that imports only the CPU intrinsics (the fix optarena applies
   to itself), which compares the two measurement pipelines like for like;
3. ``tune_tir`` for ``N`` trials end to end (search, cost model, builder, runner), with builders
   (a) and (b);
4. the environment itself: random legal steps until ``N`` new measurements (mask, features and
   step overhead included).

Wall-clock includes start-up (worker processes, imports): that is what a user waits for. Usage::

    python benchmarks/bench_measure.py --workload matmul-256 --candidates 32
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time

import numpy as np
import tvm

from optarena.envs.tensor_schedule.measure import MeasureConfig, Measurer
from optarena.envs.tensor_schedule.space import DesignSpace, import_cpu_tensor_intrinsics
from optarena.envs.tensor_schedule.target import host_target
from optarena.envs.tensor_schedule.workload import get_workload, tvm_structural_hash


def distinct_candidates(space: DesignSpace, count: int, seed: int) -> list[tvm.IRModule]:
    rng = np.random.default_rng(seed)
    mods: dict[int, tvm.IRModule] = {}
    while len(mods) < count:
        mod = space.schedule(space.sample(rng)).mod
        mods.setdefault(tvm_structural_hash(mod), mod)
    return list(mods.values())


def bench_optarena(space: DesignSpace, mods: list[tvm.IRModule], config: MeasureConfig) -> float:
    measurer = Measurer(space.workload, space.target, config)
    start = time.perf_counter()
    try:
        results = [measurer.measure(mod) for mod in mods]
    finally:
        measurer.close()
    elapsed = time.perf_counter() - start
    failed = sum(not r.ok for r in results)
    print(f"  optarena: {len(mods)} candidates in {elapsed:.1f} s ({failed} failed)")
    return elapsed


def bench_metaschedule(space: DesignSpace, mods: list[tvm.IRModule], config: MeasureConfig,
                       builder: object, label: str) -> float:
    from tvm.s_tir import meta_schedule as ms

    runner = ms.runner.LocalRunner(evaluator_config=_evaluator(config))
    args_info = ms.arg_info.ArgInfo.from_prim_func(space.workload.func)
    start = time.perf_counter()
    built = builder.build([ms.builder.BuilderInput(mod, space.target) for mod in mods])
    inputs = [ms.runner.RunnerInput(b.artifact_path, "cpu", args_info)
              for b in built if b.error_msg is None]
    results = [future.result() for future in runner.run(inputs)]
    elapsed = time.perf_counter() - start
    failed = len(mods) - sum(r.error_msg is None for r in results)
    print(f"  MetaSchedule builder+runner, {label}: {len(mods)} candidates in {elapsed:.1f} s "
          f"({failed} failed)")
    return elapsed


def _evaluator(config: MeasureConfig) -> object:
    from tvm.s_tir import meta_schedule as ms

    return ms.runner.EvaluatorConfig(number=config.number, repeat=config.repeat,
                                     min_repeat_ms=config.min_repeat_ms,
                                     enable_cpu_cache_flush=False)


def bench_tune_tir(space: DesignSpace, count: int, config: MeasureConfig, builder: object,
                   label: str) -> float:
    from tvm.s_tir import meta_schedule as ms

    with tempfile.TemporaryDirectory() as work_dir:
        start = time.perf_counter()
        ms.tune_tir(mod=space.workload.mod, target=space.target, work_dir=work_dir,
                    max_trials_global=count, num_trials_per_iter=count, builder=builder,
                    runner=ms.runner.LocalRunner(evaluator_config=_evaluator(config)))
        elapsed = time.perf_counter() - start
    print(f"  MetaSchedule tune_tir, {label}: {count} trials in {elapsed:.1f} s")
    return elapsed


def bench_env(workload: str, count: int, config: MeasureConfig, seed: int) -> float:
    import gymnasium as gym

    import optarena.envs  # noqa: F401 - registers the environments

    start = time.perf_counter()
    env = gym.make("optarena/TensorSchedule-v0", workload=workload, measure=config.model_dump(),
                   info_program=False, max_steps=10**6)
    inner = env.unwrapped
    rng = np.random.default_rng(seed)
    try:
        _, info = env.reset(seed=seed)
        while inner.num_measurements < count:
            legal = np.flatnonzero(info["action_mask"])
            if len(legal) == 0:
                _, info = env.reset(seed=int(rng.integers(2**31)))
                continue
            _, _, _, _, info = env.step(int(rng.choice(legal)))
    finally:
        env.close()
    elapsed = time.perf_counter() - start
    print(f"  optarena env: {inner.num_measurements} measurements (baseline included) "
          f"in {elapsed:.1f} s")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", default="matmul-256")
    parser.add_argument("--candidates", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-tune-tir", action="store_true")
    parser.add_argument("--skip-stock-import", action="store_true",
                        help="skip variant (a), which pays the all-intrinsics import per worker")
    args = parser.parse_args()

    config = MeasureConfig()
    target = tvm.target.Target(host_target())
    space = DesignSpace(get_workload(args.workload), target)
    mods = distinct_candidates(space, args.candidates, args.seed)
    print(f"{args.workload}, {len(mods)} distinct candidates (seed {args.seed}), target {target}, "
          f"{platform.processor() or platform.machine()}")
    print(f"timing: number={config.number} repeat={config.repeat} "
          f"min_repeat_ms={config.min_repeat_ms}")
    from tvm.s_tir import meta_schedule as ms

    n = len(mods)
    rates = {"optarena Measurer": n / bench_optarena(space, mods, config),
             "optarena env (random steps)": n / bench_env(args.workload, n, config, args.seed)}
    builders = {"(b) CPU intrinsics only": ms.builder.LocalBuilder(
        initializer=import_cpu_tensor_intrinsics)}
    if not args.skip_stock_import:
        builders["(a) as shipped, build timeout 300 s"] = ms.builder.LocalBuilder(timeout_sec=300)
    for label, builder in builders.items():
        rates[f"MetaSchedule builder+runner {label}"] = n / bench_metaschedule(
            space, mods, config, builder, label)
        if not args.skip_tune_tir:
            rates[f"tune_tir {label}"] = n / bench_tune_tir(space, n, config, builder, label)
    ours = rates["optarena Measurer"]
    print(f"\n{'pipeline':55s} {'candidates/s':>12s} {'optarena is':>12s}")
    for label, rate in rates.items():
        print(f"{label:55s} {rate:12.2f} {ours / rate:11.1f}x")


if __name__ == "__main__":
    main()

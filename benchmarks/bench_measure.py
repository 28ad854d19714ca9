"""Measured candidates per second: optarena's batch path against MetaSchedule's, in one run.

The same candidates of one workload are measured with the same timing settings (``number``,
``repeat``, ``min_repeat_ms``) by

* **optarena, batch path**: the environment's ``evaluate`` in batches of ``--batch`` (as an
  evolutionary generation or a vector step submits them): the candidates are built and checked in
  parallel worker processes, then timed one at a time with nothing else running, adaptively (a
  short first pass, repeats until their spread is small) and with early stopping of candidates
  clearly slower than the best so far (censored). A fresh measurement store: no result is reused.
* **optarena, full protocol**: the same batches, nothing adaptive (MetaSchedule's timing).
* **optarena, one at a time** (the pipeline before batches): one worker compiles, checks and
  times each candidate in full.
* **MetaSchedule** ``LocalBuilder`` + ``LocalRunner``, the builder's workers importing only the CPU
  tensor intrinsics (its stock initializer imports every target's, 44 s on 2 cores: see the
  README), the runner timing with the same settings.

for two candidate sets: (a) ``--candidates`` random samples of the design space and (b) the
candidates an evolutionary search of ``--evolution`` measurements proposes. Wall-clock includes
start-up (worker processes, imports): what a user waits for. It also checks the adaptive protocol
against the full one on ``--accuracy`` programs (each timed both ways, the relative difference
of the medians), the workers' short pool spin against TVM's on the same programs, and says where
the time per candidate goes (build and check, timing, the rest).

    python benchmarks/bench_measure.py --workload matmul-256
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import gymnasium as gym
import numpy as np

import optarena.envs  # noqa: F401 - registers the environments
from optarena import agents
from optarena.agents.metaschedule import stock_runner
from optarena.envs.contract import Outcome
from optarena.envs.host import cpu_model
from optarena.envs.tensor_schedule.env import TensorScheduleEnv
from optarena.envs.tensor_schedule.measure import MeasureConfig, Measurer, MeasureResult
from optarena.envs.tensor_schedule.space import ScheduleState, import_cpu_tensor_intrinsics


def make_env(workload: str, measure: MeasureConfig, store: Path) -> TensorScheduleEnv:
    env = gym.make("optarena/TensorSchedule-v0", workload=workload, store=store,
                   measure=measure.model_dump(), info_program=False).unwrapped
    assert isinstance(env, TensorScheduleEnv)
    return env


def random_candidates(env: TensorScheduleEnv, count: int, seed: int) -> list[ScheduleState]:
    """``count`` states with distinct programs, sampled with ``seed``."""
    rng = np.random.default_rng(seed)
    found: dict[str, ScheduleState] = {}
    while len(found) < count:
        state = env.initial_state(rng)
        found.setdefault(str(env.evaluator.key(state)), state)
    return list(found.values())


def evolution_candidates(workload: str, measure: MeasureConfig, budget: int, seed: int,
                         scratch: Path) -> list[ScheduleState]:
    """The states an evolutionary search of ``budget`` measurements measured, in order."""
    env = make_env(workload, measure, scratch / "evolution.sqlite")
    measured: list[ScheduleState] = []
    evaluate = env.evaluate

    def recording(states: list[ScheduleState], *, fresh: bool = False) -> list[Outcome]:
        measured.extend(s for s in states if env.evaluator.cached(s) is None)
        return evaluate(states, fresh=fresh)

    env.evaluate = recording  # type: ignore[method-assign]
    try:
        env.reset(seed=seed)
        measured.insert(0, env.get_state())
        agents.make("evolutionary").run(env, budget, seed)
    finally:
        env.close()
    return list(dict.fromkeys(measured))


def bench_env(workload: str, states: list[ScheduleState], measure: MeasureConfig, batch: int,
              store: Path) -> tuple[float, float, list[Outcome]]:
    """Seconds to measure ``states`` through a fresh environment's ``evaluate``, in batches:
    from scratch (the environment made, its workers started), and once started."""
    start = time.perf_counter()
    env = make_env(workload, measure, store)
    try:
        env.reference_score()  # starts the workers (the reference outputs are computed once)
        warm = time.perf_counter()
        outcomes = []
        for first in range(0, len(states), batch):
            outcomes += env.evaluate(states[first:first + batch])
        end = time.perf_counter()
    finally:
        env.close()
    failed = sum(not o.ok for o in outcomes)
    censored = sum(o.censored for o in outcomes)
    print(f"    {len(states)} candidates in {end - start:.1f} s, {end - warm:.1f} s once started "
          f"({failed} failed, {censored} stopped early)")
    return end - start, end - warm, outcomes


def bench_one_at_a_time(env: TensorScheduleEnv, states: list[ScheduleState],
                        measure: MeasureConfig) -> tuple[float, float, list[MeasureResult]]:
    design = env.tensor_space.space(states[0].problem)
    config = measure.model_copy(update={"build_workers": 1, "early_stop": None, "spread": None})
    mods = [design.schedule(s).mod for s in states]
    start = time.perf_counter()
    measurer = Measurer(design.workload, env.target, config)
    try:
        measurer.measure(design.workload.mod, baseline=True)  # starts the worker
        warm = time.perf_counter()
        results = [measurer.measure(mod) for mod in mods]
        end = time.perf_counter()
    finally:
        measurer.close()
    print(f"    {len(states)} candidates in {end - start:.1f} s, {end - warm:.1f} s once started "
          f"({sum(not r.ok for r in results)} failed)")
    return end - start, end - warm, results


@contextlib.contextmanager
def without_torch() -> Iterator[None]:
    """Python processes started meanwhile cannot import ``torch``: TVM's FFI imports it whenever
    it is installed (3 s of CPU per process here), optarena's workers block it
    (:func:`~optarena.envs.tensor_schedule.measure.worker_argv`, which sets their command; TVM
    starts MetaSchedule's), and MetaSchedule's builder and runner processes get the same, like
    for like: a ``torch`` package that fails to import, first on their ``PYTHONPATH``."""
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "torch").mkdir()
        (Path(folder) / "torch" / "__init__.py").write_text(
            'raise ImportError("torch is blocked in this benchmark\'s worker processes")\n')
        path = os.pathsep.join(p for p in (folder, os.environ.get("PYTHONPATH")) if p)
        with mock.patch.dict(os.environ, {"PYTHONPATH": path}):
            yield


@without_torch()
def bench_metaschedule(env: TensorScheduleEnv, states: list[ScheduleState],
                       measure: MeasureConfig) -> tuple[float, float, list[Any]]:
    """MetaSchedule's builder and runner, their processes without torch (:func:`without_torch`);
    "once started" leaves out making them (the builder's check and the runner's worker), not the
    builder's pool, which it starts for every batch."""
    from tvm.s_tir import meta_schedule as ms

    design = env.tensor_space.space(states[0].problem)
    mods = [design.schedule(s).mod for s in states]
    start = time.perf_counter()
    builder = ms.builder.LocalBuilder(initializer=import_cpu_tensor_intrinsics)
    runner = stock_runner(measure, env.target)
    args_info = ms.arg_info.ArgInfo.from_prim_func(design.workload.func)
    warm = time.perf_counter()
    built = builder.build([ms.builder.BuilderInput(mod, env.target) for mod in mods])
    inputs = [ms.runner.RunnerInput(b.artifact_path, "cpu", args_info)
              for b in built if b.error_msg is None]
    results = [future.result() for future in runner.run(inputs)]
    end = time.perf_counter()
    runner.pool.shutdown()
    failed = len(mods) - sum(r.error_msg is None for r in results)
    print(f"    {len(mods)} candidates in {end - start:.1f} s, {end - warm:.1f} s once started "
          f"({failed} failed)")
    return end - start, end - warm, []


def difference(result: MeasureResult, reference: MeasureResult) -> float:
    """How far ``result``'s median is from ``reference``'s, relative to the reference (signed:
    positive when ``result`` is slower)."""
    return (result.latency_s - reference.latency_s) / reference.latency_s


def accuracy(env: TensorScheduleEnv, states: list[ScheduleState], measure: MeasureConfig
             ) -> tuple[list[float], list[float]]:
    """Relative differences of each program's adaptive median from its full-protocol median,
    and, as the noise floor, of a second full-protocol median from the first."""
    design = env.tensor_space.space(states[0].problem)
    measurer = Measurer(design.workload, env.target, measure.model_copy(update={
        "early_stop": None, "build_workers": 1}))
    adaptive, control = [], []
    try:
        for state in states:
            mod = design.schedule(state).mod
            fast, full, again = (measurer.measure(mod), measurer.measure(mod, full=True),
                                 measurer.measure(mod, full=True))
            if fast.ok and full.ok and again.ok:
                adaptive.append(difference(fast, full))
                control.append(difference(again, full))
    finally:
        measurer.close()
    return adaptive, control


def spin_accuracy(env: TensorScheduleEnv, states: list[ScheduleState], measure: MeasureConfig
                  ) -> tuple[list[float], list[float]]:
    """Relative differences of each program's full-protocol median with TVM's pool spin from its
    median with the workers' short spin, and, as the noise floor, of a second short-spin median
    from the first: each pass over the programs in a worker of its own, one after the other
    (timings in another process at another time differ more than two in a row in one)."""
    design = env.tensor_space.space(states[0].problem)
    mods = [design.schedule(state).mod for state in states]
    medians = []
    for spin_count in (measure.spin_count, None, measure.spin_count):
        measurer = Measurer(design.workload, env.target, measure.model_copy(update={
            "early_stop": None, "build_workers": 1, "spin_count": spin_count}))
        try:
            medians.append([measurer.measure(mod, full=True) for mod in mods])
        finally:
            measurer.close()
    short, tvm_spin, again = medians
    ok = [i for i in range(len(mods)) if short[i].ok and tvm_spin[i].ok and again[i].ok]
    return ([difference(tvm_spin[i], short[i]) for i in ok],
            [difference(again[i], short[i]) for i in ok])


def _where(label: str, elapsed: float, results: list[Outcome | MeasureResult],
           count: int) -> None:
    phases = [(r.extras.get("build_s", 0.0), r.extras.get("time_s", 0.0))
              if isinstance(r, Outcome) else (r.build_s, r.time_s) for r in results]
    build, timing = sum(b for b, _ in phases), sum(t for _, t in phases)
    print(f"    {label}: {1e3 * elapsed / count:.0f} ms per candidate of wall-clock; in the "
          f"workers {1e3 * build / count:.0f} ms building and checking (CPU, parallel), "
          f"{1e3 * timing / count:.0f} ms timing")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", default="matmul-256")
    parser.add_argument("--candidates", type=int, default=64)
    parser.add_argument("--evolution", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--accuracy", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    measure = MeasureConfig()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        env = make_env(args.workload, measure, root / "sampling.sqlite")
        sets = {"(a) random": random_candidates(env, args.candidates, args.seed),
                "(b) evolutionary": evolution_candidates(args.workload, measure, args.evolution,
                                                         args.seed, root)}
        print(f"{args.workload} on {cpu_model()}, target {env.target}")
        print(f"timing: number={measure.number} repeat={measure.repeat} "
              f"min_repeat_ms={measure.min_repeat_ms}; optarena batches of {args.batch}, "
              f"early stop at {measure.early_stop}x the best, adaptive spread {measure.spread}, "
              f"pool spin {measure.spin_count}")
        full = measure.model_copy(update={"early_stop": None, "spread": None})
        rows: list[tuple[str, str, float, float]] = []
        for name, states in sets.items():
            count = len(states)
            print(f"{name}: {count} candidates")
            runs: dict[str, Callable[[], tuple[float, float, list[Any]]]] = {
                "optarena batch path": lambda s=states, n=name: bench_env(
                    args.workload, s, measure, args.batch, root / f"{n}-batch.sqlite"),
                "optarena batch, full protocol": lambda s=states, n=name: bench_env(
                    args.workload, s, full, args.batch, root / f"{n}-full.sqlite"),
                "optarena one at a time (before)": lambda s=states: bench_one_at_a_time(
                    env, s, measure),
                "MetaSchedule builder + runner": lambda s=states: bench_metaschedule(
                    env, s, measure),
            }
            for label, run in runs.items():
                print(f"  {label}")
                cold, warm, results = run()
                rows.append((name, label, count / cold, count / warm))
                if results:
                    _where(label, warm, results, count)
        adaptive, control = accuracy(env, sets["(a) random"][: args.accuracy], measure)
        spin, spin_control = spin_accuracy(env, sets["(a) random"][: args.accuracy], measure)
        env.close()
    print(f"\n{'candidates':18s} {'pipeline':34s} {'from scratch':>18s} {'once started':>18s}")
    print(f"{'':18s} {'':34s} {'cand./s  vs MS':>18s} {'cand./s  vs MS':>18s}")
    for name in sets:
        anchor = next(row for row in rows if row[0] == name and row[1].startswith("Meta"))
        for n, label, cold, warm in rows:
            if n == name:
                print(f"{n:18s} {label:34s} {cold:8.2f} {cold / anchor[2]:7.2f}x "
                      f"{warm:8.2f} {warm / anchor[3]:7.2f}x")
    for what, differences in (("adaptive vs full", adaptive), ("full vs full (noise)", control),
                              ("TVM's spin vs short", spin),
                              ("short vs short (noise)", spin_control)):
        sizes = [abs(d) for d in differences]
        print(f"{what:22s} on {len(differences)} programs: median difference "
              f"{100 * statistics.median(sizes):.2f}%, max {100 * max(sizes):.2f}%, "
              f"{sum(d <= 0.03 for d in sizes)}/{len(sizes)} within 3%; median signed "
              f"{100 * statistics.median(differences):+.2f}% (positive: the first slower)")


if __name__ == "__main__":
    main()

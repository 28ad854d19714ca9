"""Does a program's latency depend on being timed in a batch? Batch against alone, in one run.

The tensor environment builds a batch in parallel worker processes and then times each program
on the worker that built it. A TVM process is not idle once its kernel returns: its thread pool
spins on (yields in a loop) for 0.2-2 s, and a kernel timed meanwhile in the other worker is
slowed down. ``MeasureConfig.quiet`` (on by default) waits, before a worker's programs are timed,
until the other workers use no CPU. This script measures ``--programs`` random schedules of a
workload (the same ones, MetaSchedule's full timing protocol, nothing adaptive, no store):

* **alone**: one worker, each program built and timed by itself (nothing else ran before it);
* **batch, quiet off** and **batch, quiet on**: all of them as one batch on ``--workers``
  workers, as an evolutionary generation or a vector step submits them.

It prints, for each batch setting, the relative difference of every program's batch latency
from its latency alone (median, largest, how many within 3%) and the median signed ratio
(above 1: slower in the batch). The noise floor is a second "alone" pass.

    python benchmarks/bench_batch_timing.py --workload flux-attention:seq_len=32
"""

from __future__ import annotations

import argparse
import statistics

import gymnasium as gym
import numpy as np

import optarena.envs  # noqa: F401 - registers the environments
from optarena.envs.host import cpu_model
from optarena.envs.tensor_schedule.measure import MeasureConfig, Measurer, MeasureResult


def _latencies(measurer: Measurer, mods: list, batch: bool) -> list[float | None]:
    results: list[MeasureResult] = (measurer.measure_many(mods) if batch
                                    else [measurer.measure(mod) for mod in mods])
    return [r.latency_s if r.ok else None for r in results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", default="flux-attention:seq_len=32")
    parser.add_argument("--programs", type=int, default=24)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    full = MeasureConfig(number=1, repeat=3, min_repeat_ms=10, early_stop=None, spread=None)
    env = gym.make("optarena/TensorSchedule-v0", workload=args.workload, store=None,
                   measure=full.model_dump(), info_program=False).unwrapped
    try:
        rng = np.random.default_rng(args.seed)
        states = list(dict.fromkeys(env.initial_state(rng) for _ in range(args.programs)))
        design = env.tensor_space.space(states[0].problem)
        mods = [design.schedule(state).mod for state in states]
        target = env.target
    finally:
        env.close()
    print(f"{args.workload} on {cpu_model()}, target {target}; {len(mods)} random schedules "
          f"(seed {args.seed}); timing number={full.number} repeat={full.repeat} "
          f"min_repeat_ms={full.min_repeat_ms}, nothing adaptive")
    runs: dict[str, list[float | None]] = {}
    settings = [("alone", 1, True, False), ("alone again (noise)", 1, True, False),
                ("batch, quiet off", args.workers, False, True),
                ("batch, quiet on", args.workers, True, True)]
    for label, workers, quiet, batch in settings:
        measurer = Measurer(design.workload, target, full.model_copy(
            update={"build_workers": workers, "quiet": quiet}))
        try:
            runs[label] = _latencies(measurer, mods, batch)
        finally:
            measurer.close()
    alone = runs["alone"]
    print(f"{'':22s} {'programs':>8s} {'median |diff|':>14s} {'max |diff|':>11s} "
          f"{'within 3%':>10s} {'median ratio':>13s}")
    for label, latencies in runs.items():
        if label == "alone":
            continue
        pairs = [(b, a) for b, a in zip(latencies, alone, strict=True)
                 if a is not None and b is not None]
        differences = [abs(b - a) / a for b, a in pairs]
        print(f"{label:22s} {len(pairs):8d} {100 * statistics.median(differences):13.1f}% "
              f"{100 * max(differences):10.1f}% {sum(d <= 0.03 for d in differences):5d}/"
              f"{len(pairs):<4d} {statistics.median(b / a for b, a in pairs):12.3f}x")


if __name__ == "__main__":
    main()

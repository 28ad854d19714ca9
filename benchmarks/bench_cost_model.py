"""How well the tensor environment's cost model ranks schedules it has not measured.

For each workload, ``--samples`` distinct random schedules (a seeded draw of the design space,
what stock MetaSchedule measures first) are measured with early stopping off. Then:

1. **The prior** (``--prior``, made by ``optarena prior`` from other workloads): its estimates of
   every sample before any is measured.
2. **The in-run model** after ``k`` measurements (16, 32, 64: the checkpoints of the races): the
   XGB surrogate trained on ``k`` of the samples (a seeded choice), estimating the others; with
   ``--prior``, also the prior retrained on those ``k``.

For each it prints Spearman's rank correlation of estimate and measured latency (1: a perfect
ranking, 0: chance) and, for a search that measures the model's 8 best, the best of those 8
against the expected best of 8 drawn at random (throughput relative to the best sample). The
measurement store makes a second run of the same samples cheap.

    python benchmarks/bench_cost_model.py flux-attention:seq_len=32 flux-conv:size=8 \\
        --prior runs/priors/rc-small-other-sizes.tar
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from scipy.stats import spearmanr

import optarena.envs  # noqa: F401 - registers the environments
from optarena.envs.host import cpu_model

MEASURE = {"number": 1, "repeat": 3, "min_repeat_ms": 10, "early_stop": None}
PICKED = 8


def _env(workload: str, **kwargs: Any) -> Any:
    return gym.make("optarena/TensorSchedule-v0", workload=workload, measure=MEASURE,
                    surrogate=True, info_program=False, **kwargs).unwrapped


def _ranking(estimates: np.ndarray, latencies: np.ndarray, rng: np.random.Generator) -> str:
    throughput = latencies.min() / latencies
    picked = throughput[np.argsort(estimates, kind="stable")[:PICKED]].max()
    chance = np.mean([throughput[rng.choice(len(throughput), PICKED, replace=False)].max()
                      for _ in range(1000)])
    rho = spearmanr(estimates, latencies).statistic
    return f"Spearman {rho:5.2f}; best of its {PICKED} best {picked:.2f} (random {PICKED}: {chance:.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workloads", nargs="+")
    parser.add_argument("--samples", type=int, default=120)
    parser.add_argument("--prior", type=Path)
    parser.add_argument("--seed", type=int, default=123)
    args = parser.parse_args()
    print(f"CPU {cpu_model()}; {args.samples} random schedules per workload, seed {args.seed}, "
          f"timing {MEASURE}")
    for workload in args.workloads:
        rng = np.random.default_rng(args.seed)
        env = _env(workload, **({"surrogate_prior": args.prior} if args.prior else {}))
        try:
            states = list(dict.fromkeys(env.initial_state(rng) for _ in range(args.samples)))
            before = env.estimate(states) if args.prior else None
            outcomes = env.evaluate(states)
        finally:
            env.close()
        ok = [i for i, outcome in enumerate(outcomes) if outcome.ok and outcome.score]
        latencies = np.array([outcomes[i].score for i in ok])
        print(f"{workload}: {len(ok)} of {len(states)} ran")
        if before is not None:
            print(f"  prior, nothing measured: {_ranking(before[ok], latencies, rng)}")
        for k in (16, 32, 64):
            if k >= len(ok) - PICKED:
                break
            order = np.random.default_rng(k).permutation(len(ok))
            train, test = order[:k], order[k:]
            for name, kwargs in (("in-run model", {}),
                                 *((("prior + run", {"surrogate_prior": args.prior}),)
                                   if args.prior else ())):
                env = _env(workload, **kwargs)
                try:  # the store returns the latencies measured above, counted again
                    env.evaluate([states[ok[i]] for i in train])
                    estimates = env.estimate([states[ok[i]] for i in test])
                finally:
                    env.close()
                print(f"  {name} after {k}: {_ranking(estimates, latencies[test], rng)}")


if __name__ == "__main__":
    main()

"""AArch64 peephole environment: step rate, verification cost, greedy pairing vs LLVM's oracle.

1. steps per second of ``optarena/AArch64Peephole-v0`` (mask + apply + verification + llvm-mca),
   random legal actions over the corpus;
2. the cost of one verification (the equivalence checker on one block pair);
3. the "apply every legal pairing" policy against LLVM's load/store optimizer: the share of the
   oracle's llvm-mca cycle savings it reaches, on the blocks the oracle changes and on all
   blocks, and how many of its rewrites failed verification (must be 0). Usage::

    python benchmarks/bench_peephole.py [--corpus PATH] [--mcpu neoverse-n1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

import optarena.envs  # noqa: F401 - registers the environments
from optarena.envs.aarch64_peephole.check import EquivalenceChecker
from optarena.envs.aarch64_peephole.corpus import SHIPPED_CORPUS, load_corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=SHIPPED_CORPUS)
    parser.add_argument("--mcpu", default="neoverse-n1")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    corpus = load_corpus(args.corpus)
    print(f"corpus {args.corpus}: {len(corpus)} blocks, "
          f"{sum(b.oracle is not None and b.input != b.oracle for b in corpus)} changed by LLVM")

    checker = EquivalenceChecker(states=8)
    timings = []
    for block in corpus[:40]:
        if block.oracle is None:
            continue
        start = time.perf_counter()
        checker.check(block.input, block.oracle)
        timings.append(time.perf_counter() - start)
    print(f"one verification: median {1e3 * statistics.median(timings):.1f} ms "
          f"(p90 {1e3 * float(np.percentile(timings, 90)):.1f} ms, {len(timings)} blocks, "
          f"8 random states + alias states)")

    env = gym.make("optarena/AArch64Peephole-v0", corpus=args.corpus, mcpu=args.mcpu)
    rng = np.random.default_rng(args.seed)
    _, info = env.reset(seed=args.seed)
    steps, start = 0, time.perf_counter()
    while steps < args.steps:
        legal = np.flatnonzero(info["action_mask"])
        if len(legal) == 0:
            _, info = env.reset(seed=int(rng.integers(2**31)))
            continue
        _, _, terminated, truncated, info = env.step(int(rng.choice(legal)))
        steps += 1
        if terminated or truncated:
            _, info = env.reset(seed=int(rng.integers(2**31)))
    elapsed = time.perf_counter() - start
    print(f"env: {steps} random legal steps in {elapsed:.1f} s = {steps / elapsed:.1f} steps/s "
          f"(resets included)")

    inner = env.unwrapped
    pairing = inner.max_instructions
    saved = {"changed": [0, 0], "all": [0, 0]}
    failed = inner.failed_verifications
    for block in corpus:
        if block.oracle is None or block.id not in inner.by_id:
            continue
        _, info = env.reset(options={"problem": block.id})
        while (legal := np.flatnonzero(info["action_mask"][:pairing])).size:
            _, _, terminated, truncated, info = env.step(int(legal[0]))
            if terminated or truncated:
                break
        start, oracle = info["reference_score"], inner.problem()["anchors"]["llvm"]
        gains = (start - oracle, start - info["score"])
        for key in ("all", "changed") if block.input != block.oracle else ("all",):
            saved[key][0] += gains[0]
            saved[key][1] += gains[1]
    for key, (oracle, greedy) in saved.items():
        print(f"greedy pairing on {key} blocks: saves {greedy} llvm-mca cycles vs the oracle's "
              f"{oracle} ({100 * greedy / max(oracle, 1):.1f}%)")
    print(f"failed verifications of greedy rewrites: {inner.failed_verifications - failed}")
    env.close()


if __name__ == "__main__":
    main()

"""AArch64 peephole environment: steps per second (one environment, a vector of 8) against the code
path before (the same measurement of an earlier commit, in the same run), verification cost, and
greedy pairing against LLVM's own pass.

1. **Steps per second**: random legal steps on the blocks of a csmith corpus that have a legal
   rewrite (the ``peephole-csmith/v1`` split's, from the shipped ``csmith-v1`` corpus; with
   ``--rules deep``, the deep rules on ``peephole-csmith/v2``'s blocks), proofs on, a reset
   drawing a fresh block whenever an episode ends, no measurement store (nothing measured before
   is known): ``gym.make`` (one environment) and ``gym.make_vec(num_envs=8)`` (the 8 new
   blocks of a step verified and scored as one batch), beside the same single-environment loop of
   the code at ``--baseline`` (``git archive`` of that commit, run in a subprocess).
2. **Proofs**: the verdicts on every legal rewrite of each of those blocks' starts, and the
   proof's seconds (median, 99th percentile, most).
   **One verification**: the equivalence checker on the corpus oracle rewrites (median).
3. **Greedy pairing vs LLVM**: the "apply every legal pairing" policy's llvm-mca savings as a share
   of LLVM's own load/store optimizer's, on the shipped hand-written corpus; failed verifications
   (must be 0).

    python benchmarks/bench_peephole.py [--steps 400] [--baseline 1ad5461] [--rules deep]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from pathlib import Path

import gymnasium as gym
import numpy as np

import optarena.envs  # noqa: F401 - registers the environments
from optarena.envs.aarch64_peephole.block import format_block, parse_block
from optarena.envs.aarch64_peephole.check import Equivalence, EquivalenceChecker
from optarena.envs.aarch64_peephole.corpus import (
    CSMITH_CORPUS,
    SHIPPED_CORPUS,
    BlockPair,
    load_corpus,
)
from optarena.envs.aarch64_peephole.prove import DEFAULT_TIME_LIMIT
from optarena.envs.aarch64_peephole.space import PeepholeSpace
from optarena.envs.host import cpu_model
from optarena.envs.splits import get_split

SINGLE = textwrap.dedent("""
    import sys, time
    import numpy as np, gymnasium as gym
    import optarena.envs
    corpus, mcpu, steps, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    env = gym.make("optarena/AArch64Peephole-v0", corpus=corpus, mcpu=mcpu, **{KWARGS})
    rng = np.random.default_rng(seed)
    _, info = env.reset(seed=seed)
    done, start = 0, time.perf_counter()
    while done < steps:
        legal = np.flatnonzero(info["action_mask"])
        if len(legal) == 0:
            _, info = env.reset(seed=int(rng.integers(2**31)))
            continue
        _, _, terminated, truncated, info = env.step(int(rng.choice(legal)))
        done += 1
        if terminated or truncated:
            _, info = env.reset(seed=int(rng.integers(2**31)))
    print(done / (time.perf_counter() - start))
""")


def single_env_rate(python_path: str | None, corpus: Path, mcpu: str, steps: int, seed: int,
                    kwargs: str) -> float:
    """Steps per second of one environment, in a fresh process importing optarena from
    ``python_path`` (``None``: this installation)."""
    env = dict(os.environ)
    if python_path is not None:
        env["PYTHONPATH"] = python_path
    done = subprocess.run(
        [sys.executable, "-c", SINGLE.replace("{KWARGS}", kwargs), str(corpus), mcpu,
         str(steps), str(seed)], capture_output=True, text=True, env=env, check=True, cwd="/")
    return float(done.stdout.strip().splitlines()[-1])


def vector_rate(corpus: Path, mcpu: str, steps: int, seed: int, num_envs: int, rules: str
                ) -> float:
    envs = gym.make_vec("optarena/AArch64Peephole-v0", num_envs=num_envs, corpus=str(corpus),
                        mcpu=mcpu, store=None, rules=rules)
    rng = np.random.default_rng(seed)
    try:
        envs.reset(seed=seed)
        done, start = 0, time.perf_counter()
        while done < steps:
            masks = envs.action_masks()
            actions = [int(rng.choice(np.flatnonzero(m))) if m.any() else 0 for m in masks]
            envs.step(actions)  # a copy with no legal action is reset on the next step
            done += int(sum(m.any() for m in masks))
        return done / (time.perf_counter() - start)
    finally:
        envs.close()


def proof_costs(blocks: list[BlockPair], rules: str) -> list[Equivalence]:
    """The checker's verdict (with its proof's seconds) on every legal rewrite of each block's
    start, with proofs at the environment's default time limit."""
    space = PeepholeSpace(blocks, rules=rules)
    checker = EquivalenceChecker(states=8, proof_time_limit=DEFAULT_TIME_LIMIT)
    verdicts = []
    for block in blocks:
        start = space.initial(block.id, None).asm  # type: ignore[arg-type]
        rewritten = [format_block(site.apply(parse_block(start)))
                     for site in space.sites(start).values()]
        verdicts += [checker.check(start, text) for text in rewritten]
    return verdicts


def baseline_tree(commit: str, root: Path) -> str:
    """``optarena`` as it was at ``commit`` (the layout then: envs/ agents/ ... at the top),
    importable from the returned path."""
    source, package = root / "src", root / "pkg" / "optarena"
    source.mkdir(parents=True)
    package.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(Path(__file__).resolve().parent.parent),
                              "archive", commit], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    for part in ("envs", "agents", "experiments", "llm"):
        (package / part).symlink_to(source / part)
    return str(root / "pkg")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mcpu", default="neoverse-n1")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baseline", default="1ad5461", help="the commit to compare with")
    parser.add_argument("--rules", default="load-store", choices=("load-store", "deep"),
                        help="the rule families (deep: the blocks of peephole-csmith/v2)")
    args = parser.parse_args()
    split = "peephole-csmith/v1" if args.rules == "load-store" else "peephole-csmith/v2"
    train, test = get_split(split).problems()
    playable = set(train) | set(test)
    with tempfile.TemporaryDirectory() as scratch:
        plain = Path(scratch) / "csmith.jsonl"  # the baseline reads uncompressed corpora only
        corpus = [b for b in load_corpus(CSMITH_CORPUS) if b.id in playable]
        plain.write_text("".join(b.to_json() + "\n" for b in corpus))
        print(f"{cpu_model()}; the {len(corpus)} blocks of {CSMITH_CORPUS.name} with a legal "
              f"rewrite (split {split}, rules {args.rules}); {args.steps} random legal steps "
              f"each, seed {args.seed}, llvm-mca -mcpu={args.mcpu}, proofs on")
        old_path = baseline_tree(args.baseline, Path(scratch) / "baseline")
        rates = {
            f"before ({args.baseline}), 1 environment": single_env_rate(
                old_path, plain, args.mcpu, args.steps, args.seed, "{}"),
            "now, 1 environment": single_env_rate(
                None, plain, args.mcpu, args.steps, args.seed,
                f"{{\"store\": None, \"rules\": \"{args.rules}\"}}"),
            "now, vector of 8 (one batch per step)": vector_rate(
                plain, args.mcpu, args.steps, args.seed, 8, args.rules),
        }
        proofs = proof_costs(corpus, args.rules)
    before = next(iter(rates.values()))
    print(f"\n{'environment':45s} {'steps/s':>9s} {'vs before':>10s}")
    for label, rate in rates.items():
        print(f"{label:45s} {rate:9.1f} {rate / before:9.1f}x")

    seconds = sorted(p.proof_seconds or 0.0 for p in proofs)
    verdicts = Counter(p.verdict for p in proofs)
    print(f"\nproofs of every legal rewrite of each block's start ({len(proofs)}): "
          f"{dict(verdicts)}; {1e3 * statistics.median(seconds):.2f} ms median, "
          f"{1e3 * seconds[int(0.99 * (len(seconds) - 1))]:.1f} ms at the 99th percentile, "
          f"{1e3 * seconds[-1]:.1f} ms at most")

    shipped = load_corpus(SHIPPED_CORPUS)
    checker = EquivalenceChecker(states=8)
    timings = []
    for block in [b for b in shipped if b.oracle is not None][:40]:
        start = time.perf_counter()
        checker.check(block.input, block.oracle)  # type: ignore[arg-type]
        timings.append(time.perf_counter() - start)
    print(f"\none verification: median {1e3 * statistics.median(timings):.1f} ms "
          f"({len(timings)} blocks, 8 random states + alias states)")

    env = gym.make("optarena/AArch64Peephole-v0", mcpu=args.mcpu, store=None)
    inner = env.unwrapped
    pairing = inner.max_instructions
    saved = {"changed": [0.0, 0.0], "all": [0.0, 0.0]}
    for block in shipped:
        if block.oracle is None or block.id not in inner.space.blocks:
            continue
        _, info = env.reset(options={"problem": block.id})
        while (legal := np.flatnonzero(info["action_mask"][:pairing])).size:
            _, _, terminated, truncated, info = env.step(int(legal[0]))
            if terminated or truncated:
                break
        start, oracle = info["reference_score"], inner.problem()["anchors"]["llvm"]
        for key in ("all", "changed") if block.input != block.oracle else ("all",):
            saved[key][0] += start - oracle
            saved[key][1] += start - info["score"]
    for key, (oracle_saved, greedy_saved) in saved.items():
        print(f"greedy pairing on {key} blocks: saves {greedy_saved:.0f} llvm-mca cycles vs the "
              f"oracle's {oracle_saved:.0f} ({100 * greedy_saved / max(oracle_saved, 1):.1f}%)")
    print(f"failed verifications of greedy rewrites: {inner.failed_verifications}")
    env.close()


if __name__ == "__main__":
    main()

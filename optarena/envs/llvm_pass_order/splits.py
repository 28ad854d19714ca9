"""The pass-ordering environment's train/test splits.

``llvm-csmith/v1``: CompilerGym's csmith generator, scored by IR instruction count (CompilerGym's
leaderboard metric, against ``-Oz``): programs of generator seeds 0-199 to train on, seeds
10000-10024 and the suite's C programs held out. A problem's source is its generator seed or its
suite program. The seeds whose program CompilerGym's generator cannot build (it answers "Failed to
parse LLVM bitcode"; :data:`UNBUILDABLE`, found by resetting to every seed) are left out.
"""

from __future__ import annotations

from optarena.envs.llvm_pass_order.workload import suite_names
from optarena.envs.splits import Split

UNBUILDABLE = frozenset({16, 30, 56, 115, 126, 159, 163, 164, 187, 10_000})
TRAIN_SEEDS = [s for s in range(200) if s not in UNBUILDABLE]
TEST_SEEDS = [s for s in range(10_000, 10_025) if s not in UNBUILDABLE]

SPLITS = (
    Split("llvm-csmith", 1, "llvm_pass_order",
          "csmith generator seeds 0-199 to train on; seeds 10000-10024 and the suite programs "
          "held out (seeds CompilerGym cannot build left out); IR instruction count",
          divide=lambda: ([f"csmith:{s}" for s in TRAIN_SEEDS],
                          [f"csmith:{s}" for s in TEST_SEEDS]
                          + [f"suite:{name}" for name in suite_names()]),
          group=lambda benchmark: benchmark,
          kwargs={"reward": "ir_instructions", "observation": "autophase"}),
)

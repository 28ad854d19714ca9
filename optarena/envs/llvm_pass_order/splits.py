"""The pass-ordering environment's train/test splits.

``llvm-csmith/v1``: CompilerGym's csmith generator, scored by IR instruction count (CompilerGym's
leaderboard metric, against ``-Oz``): programs of generator seeds 0-199 to train on, seeds
10000-10024 and the suite's C programs held out. A problem's source is its generator seed or its
suite program. The seeds whose program CompilerGym's generator cannot build (it answers "Failed to
parse LLVM bitcode"; :data:`UNBUILDABLE`, found by resetting to every seed) are left out.

``llvm-heldout/v1``: the same csmith programs to train on; held out, the real programs of
``heldout/`` (``heldout:NAME``: hashing, ciphers, compression, sorting and searching, graphs,
string search, image filters, signal processing, matrix and numeric kernels, written for this
suite), the kinds of program CompilerGym's leaderboard scores on cBench, which cannot be fetched
here. IR instruction count, as ``llvm-ic-v0``.
"""

from __future__ import annotations

from optarena.envs.llvm_pass_order.workload import suite_names
from optarena.envs.splits import Split

UNBUILDABLE = frozenset({16, 30, 56, 115, 126, 159, 163, 164, 187, 10_000})
TRAIN_SEEDS = [s for s in range(200) if s not in UNBUILDABLE]
TEST_SEEDS = [s for s in range(10_000, 10_025) if s not in UNBUILDABLE]
HELDOUT_V1 = (
    "adler_fnv", "checksums", "sha1",          # hashing and checksums
    "aes", "rc4", "xtea",                      # ciphers
    "bwt", "huffman", "lz77",                  # compression
    "search", "sorting",                       # sorting and searching
    "components", "dijkstra", "toposort",      # graphs
    "aho", "strsearch",                        # string search
    "blur", "median", "sobel",                 # image filters
    "adpcm", "fft", "fir_iir",                 # signal processing
    "bitcount", "gemm", "jacobi", "lu", "numeric",  # matrix and numeric kernels
)
"""The programs ``llvm-heldout/v1`` tests on (``heldout/NAME.c``): a program added to the folder
joins a new version, never this one."""


def _train() -> list[str]:
    return [f"csmith:{s}" for s in TRAIN_SEEDS]


SPLITS = tuple(
    Split(name, 1, "llvm_pass_order", description, divide=divide,
          group=lambda benchmark: benchmark,
          kwargs={"reward": "ir_instructions", "observation": "autophase"})
    for name, description, divide in [
        ("llvm-csmith",
         "csmith generator seeds 0-199 to train on; seeds 10000-10024 and the suite programs "
         "held out (seeds CompilerGym cannot build left out); IR instruction count",
         lambda: (_train(), [f"csmith:{s}" for s in TEST_SEEDS]
                  + [f"suite:{program}" for program in suite_names()])),
        ("llvm-heldout",
         "csmith generator seeds 0-199 to train on; 27 real programs held out (hashing, "
         "ciphers, compression, sorting, graphs, string search, image filters, signal "
         "processing, matrix and numeric kernels); IR instruction count",
         lambda: (_train(), [f"heldout:{program}" for program in HELDOUT_V1])),
    ]
)

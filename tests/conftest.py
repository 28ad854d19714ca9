"""Shared fixtures: small real environments (real TVM compilation and timing, no stand-ins).

Every environment the tests make uses a measurement store of the test session (``OPTARENA_STORE``,
inherited by the subprocesses the tests start), never the user's."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import pytest

import optarena.envs  # noqa: F401 - registers the environments
from optarena.envs.host import cache_root

# Tests check behaviour, not latencies: no waiting for idle workers before timing (`quiet`, whose
# own test is in test_measure.py).
FAST_MEASURE = {"number": 1, "repeat": 3, "min_repeat_ms": 5, "timeout_s": 60, "quiet": False}
SCRATCH = Path(tempfile.mkdtemp(prefix="optarena-tests-"))
os.environ["OPTARENA_STORE"] = str(SCRATCH / "store.sqlite")
# the tests that train SB3 models directly log there, not in a new folder of the temp dir each
os.environ["SB3_LOGDIR"] = str(SCRATCH / "sb3")


@pytest.fixture(autouse=True)
def one_torch_thread_beside_another_test() -> None:
    """One intra-op thread for torch (SB3's policies, PPO) while pytest-xdist runs two tests at
    a time on the 2 cores: two threads per test spin against the other test's work (PPO's
    peephole test took 7 s alone and 37 s beside another test; with one thread, 4.5 s beside a
    busy core)."""
    if os.environ.get("PYTEST_XDIST_WORKER") and importlib.util.find_spec("torch"):
        import torch

        torch.set_num_threads(1)


def private_cache(folder: Path) -> dict[str, str]:
    """``os.environ`` for subprocesses with an optarena cache of their own in ``folder`` that
    shares the machine's compiled tools (``native/``: the llvm-mc/llvm-mca server, keyed by its
    source and compiler), so a test with its own cache does not wait for another build of them."""
    native = cache_root() / "native"
    native.mkdir(parents=True, exist_ok=True)
    (folder / "native").symlink_to(native, target_is_directory=True)
    return {**os.environ, "OPTARENA_CACHE_DIR": str(folder)}


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A measurement store shared by the session's environments that ask for this one."""
    return tmp_path_factory.mktemp("optarena-store") / "store.sqlite"


@pytest.fixture(scope="module")
def matmul_env(store: Path) -> Iterator[gym.Env]:
    env = gym.make("optarena/TensorSchedule-v0", workload="matmul-64", measure=FAST_MEASURE,
                   store=store, max_steps=8)
    yield env
    env.close()


C_SOURCE = """
struct S { long a, b, c, d; int e, f; double g, h; };
void copy(struct S *dst, const struct S *src) { *dst = *src; }
long sum4(const long *p) { return p[0] + p[1] + p[2] + p[3]; }
void swap_pairs(int *p) {
  int a = p[0], b = p[1], c = p[2], d = p[3];
  p[0] = b; p[1] = a; p[2] = d; p[3] = c;
}
double dot2(const double *x, const double *y) { return x[0] * y[0] + x[1] * y[1]; }
"""


def _function_bodies(asm: str) -> dict[str, str]:
    """Straight-line function bodies (the final ret dropped) of clang's output."""
    bodies: dict[str, list[str]] = {}
    current = None
    for line in asm.splitlines():
        stripped = line.split("//")[0].strip()
        if stripped.endswith(":") and not stripped.startswith("."):
            current = stripped[:-1]
            bodies[current] = []
        elif current and stripped and not stripped.startswith(".") and stripped != "ret":
            bodies[current].append(stripped)
    return {name: "\n".join(lines) + "\n" for name, lines in bodies.items()}


@pytest.fixture(scope="session")
def oracle_functions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, str]]:
    """``name -> (input, oracle)``: clang-14 -O1 without and with LLVM's load/store pairing."""
    if shutil.which("clang-14") is None:
        pytest.skip("clang-14 is not installed (.ci/run installs it)")
    source = tmp_path_factory.mktemp("oracle") / "pairs.c"
    source.write_text(C_SOURCE)
    flags = ["clang-14", "--target=aarch64-linux-gnu", "-O1", "-S", "-o", "-", str(source)]
    before = _function_bodies(subprocess.run(
        [*flags, "-mllvm", "-aarch64-enable-ldst-opt=false"], capture_output=True, text=True,
        check=True).stdout)
    after = _function_bodies(subprocess.run(flags, capture_output=True, text=True,
                                            check=True).stdout)
    return {name: (before[name], after[name]) for name in before}

"""What ``optarena/LlvmPassOrder-v0`` optimizes: a program, named by a short benchmark spec.

* ``suite:NAME`` -- a C program shipped with optarena (``benchmarks/NAME.c``; each has a ``main``
  that prints a checksum, so its run time can be measured and its output checked);
* ``heldout:NAME`` -- a held-out C program (``heldout/NAME.c``): programs of the kinds cBench and
  MiBench hold (hashing, ciphers, compression, sorting, graphs, string search, image filters,
  signal processing, matrix and numeric kernels), written for this suite and kept apart from
  anything trained on; each generates its input, checks its own result (a round trip, published
  test vectors or an invariant), prints a checksum and exits 1 if a check fails;
* ``csmith:SEED`` and ``llvm-stress:SEED`` -- CompilerGym's program generators
  (``generator://csmith-v0/SEED``: random C with a ``main``; ``generator://llvm-stress-v0/SEED``:
  random IR functions, no ``main``);
* a path to a user's ``.c``, ``.ll`` or ``.bc`` file;
* any other ``generator://`` URI. CompilerGym's ``benchmark://`` datasets (cBench, ...) are
  downloads and are refused: this suite runs offline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SUITE = Path(__file__).with_name("benchmarks")
HELDOUT = Path(__file__).with_name("heldout")
FOLDERS = {"suite": SUITE, "heldout": HELDOUT}
GENERATORS = {"csmith": "generator://csmith-v0", "llvm-stress": "generator://llvm-stress-v0"}
FILE_SUFFIXES = (".c", ".ll", ".bc")
STARTS = ("unoptimized", "-Oz")
"""Where a problem's episodes start (``start=``): its program as loaded, or after LLVM's ``-Oz``
pipeline (applied in CompilerGym's service, :mod:`~optarena.envs.llvm_pass_order.service`)."""


@dataclass(frozen=True)
class Benchmark:
    """A program to optimize: ``spec`` as given, and how CompilerGym loads it (``request``)."""

    spec: str
    request: dict[str, Any]
    """``{"uri": URI}`` or ``{"file": PATH}``, as the service's ``reset`` takes it."""


def suite_names() -> list[str]:
    """The shipped C programs."""
    return program_names("suite")


def heldout_names() -> list[str]:
    """The held-out C programs."""
    return program_names("heldout")


def program_names(kind: str) -> list[str]:
    """The C programs shipped under ``kind`` (``suite`` or ``heldout``)."""
    return sorted(p.stem for p in FOLDERS[kind].glob("*.c"))


def parse_benchmark(spec: str) -> Benchmark:
    """The :class:`Benchmark` a spec names; ``ValueError`` saying what is accepted otherwise."""
    kind, _, rest = spec.partition(":")
    if kind in FOLDERS:
        names = program_names(kind)
        if rest not in names:
            raise ValueError(f"unknown {kind} program {rest!r}; available: {names}")
        return Benchmark(spec, {"file": str(FOLDERS[kind] / f"{rest}.c")})
    if kind in GENERATORS:
        if not rest.isdigit():
            raise ValueError(f"{kind}: needs a non-negative integer seed, e.g. {kind}:0")
        return Benchmark(spec, {"uri": f"{GENERATORS[kind]}/{rest}"})
    if spec.startswith("generator://"):
        return Benchmark(spec, {"uri": spec})
    if spec.startswith("benchmark://"):
        raise ValueError(f"{spec}: CompilerGym's benchmark:// datasets are downloads, which this "
                         "suite does not make; use suite:NAME, heldout:NAME, csmith:SEED, "
                         "llvm-stress:SEED or a .c/.ll/.bc file")
    path = Path(spec).expanduser()
    if path.suffix in FILE_SUFFIXES:
        if not path.is_file():
            raise ValueError(f"no such file: {path}")
        return Benchmark(spec, {"file": str(path.resolve())})
    raise ValueError(f"unknown benchmark {spec!r}: use suite:NAME ({', '.join(suite_names())}), "
                     "heldout:NAME, csmith:SEED, llvm-stress:SEED, a generator:// URI or a "
                     ".c/.ll/.bc file")


def check_start(start: str) -> None:
    """``ValueError`` for a start that is not one of :data:`STARTS`."""
    if start not in STARTS:
        raise ValueError(f"unknown start {start!r}; use one of {', '.join(STARTS)}")


def check_benchmarks(problems: Sequence[str], kwargs: Mapping[str, Any]) -> None:
    """``ValueError`` for a spec that names no benchmark (:func:`parse_benchmark`) or a start
    that is none (:func:`check_start`)."""
    check_start(kwargs.get("start", STARTS[0]))
    for spec in problems:
        parse_benchmark(spec)

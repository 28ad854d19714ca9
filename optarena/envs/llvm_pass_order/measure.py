"""Scores of ``optarena/LlvmPassOrder-v0``: what the optimized IR costs on a CPU (lower is better).

* ``cycles`` -- ``llc-14 -O2`` compiles the bitcode for the target CPU; ``llvm-mca-14`` gives the
  cycles per iteration of each machine basic block, and each block counts ``32 ** loop depth``
  times (LLVM's own static guess of loop trip counts) per call of its function, calls counted
  through the call graph from ``main``: a static latency estimate that needs no
  ``main`` and works for an AArch64 CPU as well as for this host. It cannot know real trip counts
  (a partially unrolled loop looks longer, not shorter); ``runtime`` measures them.
* ``runtime`` -- for programs with a ``main``, on this host: the object from ``llc`` is linked with
  ``clang-14`` and run ``runs`` times; the median wall time in seconds.
* ``ir_instructions`` and ``code_size`` -- CompilerGym's IR instruction count and ``.text`` size
  in bytes, from the service (not computed here).

Programs with a ``main`` are checked whenever they are scored with ``check=True``: the optimized
program must print what the unoptimized one printed and exit the same way, within the timeout.
A pass sequence that miscompiles (or crashes, or hangs) the program raises :class:`MeasureError`.
"""

from __future__ import annotations

import platform
import re
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from optarena.envs.host import host_cpu_flags

METRICS = ("cycles", "runtime", "ir_instructions", "code_size")
SERVICE_METRICS = {"ir_instructions": ("IrInstructionCount", "IrInstructionCountO3"),
                   "code_size": ("ObjectTextSizeBytes", "ObjectTextSizeO3")}
"""Metric -> (CompilerGym observation, its value after CompilerGym's -O3)."""
TRIPLES = {"host": "x86_64-pc-linux-gnu", "aarch64": "aarch64-linux-gnu"}
DEFAULT_MCPU = {"aarch64": "neoverse-n1"}


LOOP_TRIPS = 32
"""Iterations assumed per loop level: LLVM's static estimate (back edges taken 124 times in 128)."""
_LABEL = re.compile(r"^(?:[.\w$]+:|(?:#|//) %bb\.\d+:)")
_FUNCTION = re.compile(r"^([A-Za-z_$][\w.$]*):")
_DEPTH = re.compile(r"Depth=(\d+)")
_CALL = re.compile(r"^(?:call\w*|bl)\s+([\w.$]+)")


@dataclass
class Block:
    """A machine basic block with instructions: its function, loop depth and direct calls."""

    function: str
    depth: int
    calls: list[str]


def mark_blocks(asm: str, comment: str = "#") -> tuple[str, list[Block]]:
    """``asm`` with an llvm-mca code region around each machine basic block that has
    instructions, and the blocks in order (loop depths from ``llc``'s ``Depth=N`` comments;
    ``comment`` is the assembly's comment string, ``//`` for AArch64)."""
    out: list[str] = []
    blocks: list[Block] = []
    function, depth, in_region, header = "", 0, False, False
    for line in asm.splitlines():
        text = line.strip()
        if _LABEL.match(text):
            if in_region:
                out.append("# LLVM-MCA-END")
                in_region = False
            named = _FUNCTION.match(text)
            if named and not text.startswith(".L"):
                function = named.group(1)
            depth, header = max(map(int, _DEPTH.findall(text)), default=0), True
        elif text.startswith(comment) and header:
            depth = max([depth, *map(int, _DEPTH.findall(text))])
        elif text and not text.startswith((".", comment)):
            if not in_region:
                out.append(f"# LLVM-MCA-BEGIN b{len(blocks)}")
                blocks.append(Block(function, depth, []))
                in_region = True
            call = _CALL.match(text)
            if call:
                blocks[-1].calls.append(call.group(1).removesuffix("@PLT"))
            header = False
        out.append(line)
    if in_region:
        out.append("# LLVM-MCA-END")
    return "\n".join(out) + "\n", blocks


def block_weights(blocks: list[Block]) -> list[float]:
    """How often each block runs, statically: ``LOOP_TRIPS ** depth`` times per call of its
    function, whose calls are counted through the call graph from the functions nothing in the
    program calls (``main``); a recursive call adds nothing."""
    functions = {b.function for b in blocks}
    callers: dict[str, list[Block]] = {f: [] for f in functions}
    for block in blocks:
        for callee in block.calls:
            if callee in callers and callee != block.function:
                callers[callee].append(block)
    frequency: dict[str, float] = {}

    def calls_of(function: str, active: frozenset[str]) -> float:
        if function not in frequency:
            sites = [b for b in callers[function] if b.function not in active]
            frequency[function] = sum(
                calls_of(b.function, active | {function}) * LOOP_TRIPS ** b.depth
                * b.calls.count(function) for b in sites) if callers[function] else 1.0
        return frequency[function]

    return [calls_of(b.function, frozenset()) * LOOP_TRIPS ** b.depth for b in blocks]


class MeasureError(ValueError):
    """The program could not be scored: ``kind`` is ``compile``, ``link``, ``crash``, ``timeout``
    or ``output`` (it printed something else than the unoptimized program: a miscompile)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind, self.detail = kind, detail


@dataclass(frozen=True)
class Run:
    """What one build of the program did: its output, exit code and median wall time."""

    stdout: str
    returncode: int
    seconds: float


AVX512_CPUS = frozenset({"knl", "knm", "skylake-avx512", "skx", "cascadelake", "cooperlake",
                         "cannonlake", "icelake-client", "icelake-server", "tigerlake",
                         "sapphirerapids", "rocketlake"})
"""LLVM 14's x86 CPUs whose code may use AVX-512."""


def default_mcpu(target: str, llc: str = "llc-14") -> str:
    """The CPU to score for: ``llc``'s host CPU unless it implies AVX-512 the OS does not report
    (virtual machines; the code would die with SIGILL), then ``x86-64-v3`` or ``x86-64``;
    ``neoverse-n1`` for ``aarch64``."""
    if target != "host":
        return DEFAULT_MCPU[target]
    if platform.machine() != "x86_64":
        raise ValueError("target='host' scores x86-64 code; use target='aarch64' here")
    done = subprocess.run([llc, "--version"], capture_output=True, text=True, check=False)
    found = re.search(r"Host CPU:\s*(\S+)", done.stdout)
    flags = host_cpu_flags()
    if found and (found.group(1) not in AVX512_CPUS or "avx512f" in flags):
        return found.group(1)
    return "x86-64-v3" if {"avx2", "fma", "bmi2"} <= flags else "x86-64"


@dataclass(frozen=True)
class BitcodeMeasurer:
    """Compiles and scores bitcode for ``target`` (``host`` or ``aarch64``) and ``mcpu``."""

    target: str = "host"
    mcpu: str = "x86-64"
    iterations: int = 100
    """llvm-mca iterations of each basic block (per-iteration cycles are used)."""
    runs: int = 5
    """Runs of the program per ``runtime`` score (the median is kept)."""
    timeout_s: float = 10.0
    """Longest a single run of the program may take."""
    llc: str = "llc-14"
    llvm_mca: str = "llvm-mca-14"
    clang: str = "clang-14"
    llvm_dis: str = "llvm-dis-14"

    def __post_init__(self) -> None:
        if self.target not in TRIPLES:
            raise ValueError(f"unknown target {self.target!r}; available: {sorted(TRIPLES)}")

    @property
    def triple(self) -> str:
        return TRIPLES[self.target]

    def cycles(self, bitcode: Path) -> float:
        """Estimated cycles of one run of the program: ``llc`` compiles it, ``llvm-mca``
        simulates each machine basic block (a code region, ``iterations`` times, per-iteration
        cycles kept) and each block counts as often as :func:`block_weights` estimates."""
        asm = self._run([self.llc, "-O2", f"-mtriple={self.triple}", f"-mcpu={self.mcpu}",
                         str(bitcode), "-o", "-"], "compile").stdout
        marked, blocks = mark_blocks(asm, "//" if self.target == "aarch64" else "#")
        if not blocks:
            return 0.0
        done = subprocess.run(
            [self.llvm_mca, f"-mtriple={self.triple}", f"-mcpu={self.mcpu}",
             f"-iterations={self.iterations}", "-instruction-info=0", "-resource-pressure=0"],
            input=marked, capture_output=True, text=True, check=False)
        totals = [int(c) for c in re.findall(r"^Total Cycles:\s+(\d+)", done.stdout, re.M)]
        if done.returncode != 0 or len(totals) != len(blocks):
            raise MeasureError("compile", f"llvm-mca: {done.stderr.strip()[:300]}")
        return sum(weight * total / self.iterations
                   for weight, total in zip(block_weights(blocks), totals, strict=True))

    def run(self, bitcode: Path, runs: int | None = None) -> Run:
        """Build the program for this host and run it ``runs`` times (default :attr:`runs`)."""
        if self.target != "host":
            raise ValueError(f"cannot run {self.target} code on this host")
        with tempfile.TemporaryDirectory(prefix="optarena-llvm-") as tmp:
            obj, exe = Path(tmp) / "program.o", Path(tmp) / "program"
            self._run([self.llc, "-O2", "-filetype=obj", "-relocation-model=pic",
                       f"-mcpu={self.mcpu}", str(bitcode), "-o", str(obj)], "compile")
            self._run([self.clang, str(obj), "-o", str(exe), "-lm"], "link")
            times, outputs = [], set()
            for _ in range(runs or self.runs):
                start = time.perf_counter()
                try:
                    done = subprocess.run([str(exe)], capture_output=True, text=True,
                                          timeout=self.timeout_s, check=False)
                except subprocess.TimeoutExpired:
                    raise MeasureError("timeout", f"ran over {self.timeout_s:.0f} s") from None
                times.append(time.perf_counter() - start)
                if done.returncode < 0:
                    raise MeasureError("crash", f"killed by signal {-done.returncode}")
                outputs.add((done.stdout, done.returncode))
            if len(outputs) > 1:
                raise MeasureError("output", "two runs printed different output")
            stdout, code = outputs.pop()
            return Run(stdout, code, statistics.median(times))

    @staticmethod
    def check(run: Run, reference: Run) -> None:
        """:class:`MeasureError` (``output``) unless ``run`` behaved like ``reference``."""
        if (run.stdout, run.returncode) != (reference.stdout, reference.returncode):
            raise MeasureError("output", f"printed {run.stdout[:80]!r} (exit {run.returncode}), "
                               f"expected {reference.stdout[:80]!r} (exit {reference.returncode})")

    def disassemble(self, bitcode: Path) -> str:
        """The IR of ``bitcode`` as text."""
        return self._run([self.llvm_dis, str(bitcode), "-o", "-"], "compile").stdout

    def optimize(self, bitcode: Path, out: Path, level: str, opt: str = "opt-14") -> Path:
        """``opt LEVEL`` (``-O3``, ``-Oz``) of ``bitcode`` into ``out``: the compiler's own
        pipelines, the anchors of pass ordering."""
        self._run([opt, level, str(bitcode), "-o", str(out)], "compile")
        return out

    @staticmethod
    def _run(command: list[str], kind: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise MeasureError(kind, f"{Path(command[0]).name}: {done.stderr.strip()[:300]}")
        return done

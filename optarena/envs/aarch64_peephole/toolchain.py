"""The LLVM tools the peephole environment runs: ``llvm-mc`` (assemble; the code is read from its
object file with pyelftools) and ``llvm-mca`` (cycle estimate). Paths are configurable; a missing
tool is an error that names the Debian package providing it. Results are pure functions of the
text and kept in bounded caches (least recently used first out), one set per :class:`Toolchain`.

**Batches.** :meth:`Toolchain.assemble_many` and :meth:`Toolchain.cycles_many` serve many blocks
with one tool run: each block gets its own section (``llvm-mc``) or its own code region
(``llvm-mca``, between ``# LLVM-MCA-BEGIN`` and ``# LLVM-MCA-END``), which gives the same bytes
and the same total cycles as the block alone. Only *plain* blocks share a run: instruction lines
and nothing that could reach into another block (no label, directive, symbol assignment,
comment, string or statement separator). Any other block, and any block an error of a shared run
points at, runs alone, so its result and message are exactly what it gets alone; a shared run
that fails without saying where runs every block alone. :meth:`Toolchain.prepare` runs both tools
on a batch at once (two processes in parallel) so that later calls on its blocks are cache hits.

**Keystone** (optional, GPL-2.0: ``pip install 'optarena[keystone]'``):
``Toolchain(assembler="keystone")`` assembles plain blocks in process (``keystone-engine``; tens
of microseconds instead of a process). Only its successes are taken: a block Keystone rejects,
or that is not plain, goes to ``llvm-mc``, which also gives every error message. ``llvm-mc``
stays the default and the reference (the encodings are the same on the shipped corpus; the tests
check it).
"""

from __future__ import annotations

import bisect
import io
import re
import shutil
import subprocess
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, TypeVar

from elftools.elf.elffile import ELFFile

from optarena.envs.lru import LRU

DEBIAN_PACKAGES: dict[str, str] = {
    "llvm-mc": "llvm-14 (or llvm)",
    "llvm-mca": "llvm-14 (or llvm)",
    "clang-14": "clang-14",
    "csmith": "csmith",
}
Assembler = Literal["llvm-mc", "keystone"]
ASSEMBLERS: tuple[Assembler, ...] = ("llvm-mc", "keystone")
MCA_VIEWS = ("--instruction-info=false", "--resource-pressure=false")
"""llvm-mca views that are not needed for the total cycles (the summary is always printed)."""

_PLAIN_LINE = re.compile(r"[ \t]*(?:[A-Za-z][ \t!#$%&()+,\-.0-9<>?@A-Z\[\]^_`a-z{|}~]*)?")
_ERROR_LINE = re.compile(r"^<stdin>:(\d+):\d+: error:", re.M)
_REGION = re.compile(r"^\[\d+\] Code Region - b(\d+)$.*?^Total Cycles:\s+(\d+)$", re.M | re.S)
K = TypeVar("K", bound=Hashable)
R = TypeVar("R")


class ToolMissing(RuntimeError):
    """A required program is not installed."""


class AssembleError(ValueError):
    """The assembler rejected the text; ``message`` is its first diagnostic."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def plain(asm: str) -> bool:
    """Whether ``asm`` is only instruction lines (at least one) that cannot affect another block
    assembled in the same run: each starts with a mnemonic and has no ``: ; = " ' / \\ *``."""
    lines = asm.split("\n")
    return all(_PLAIN_LINE.fullmatch(line) for line in lines) and any(map(str.strip, lines))


def _terminated(asm: str) -> str:
    return asm if asm.endswith("\n") else asm + "\n"


def _first_error(stderr: str, marker: str = "error:") -> str | None:
    """The first diagnostic line containing ``marker``, with ``<stdin>:`` spelled ``line``."""
    errors = [line for line in stderr.splitlines() if marker in line]
    return errors[0].replace("<stdin>:", "line ") if errors else None


def _blocks_blamed(stderr: str, starts: list[int]) -> set[int]:
    """Positions of the blocks (first lines ``starts``, 1-based) that error lines point at."""
    return {bisect.bisect_right(starts, int(line)) - 1 for line in _ERROR_LINE.findall(stderr)} \
        - {-1}


def _shared_source(asms: Sequence[str], open_: Callable[[int], str],
                   close: Callable[[int], str]) -> tuple[str, list[int]]:
    """One input for a shared run (block ``k`` between ``open_(k)`` and ``close(k)`` lines) and
    the line where each block's part starts."""
    parts, starts, line = [], [], 1
    for k, asm in enumerate(asms):
        part = f"{open_(k)}\n{_terminated(asm)}{close(k)}"
        starts.append(line)
        parts.append(part)
        line += part.count("\n")
    return "".join(parts), starts


def _isolating(blocks: Sequence[str], alone: Callable[[str], R],
               shared: Callable[[list[str]], list[R] | set[int]]) -> list[R]:
    """Results of ``blocks``: plain ones share runs of ``shared`` (which returns the results, or
    the positions of the blocks its errors point at); the others and the blamed ones run alone.
    A failed shared run that blames no block leaves every block to run alone."""
    results: dict[int, R] = {}
    together = [i for i, asm in enumerate(blocks) if plain(asm)]
    while len(together) > 1:
        outcome = shared([blocks[i] for i in together])
        if isinstance(outcome, list):
            results.update(zip(together, outcome, strict=True))
            break
        blamed = {together[k] for k in outcome} or set(together)
        together = [i for i in together if i not in blamed]
    return [results[i] if i in results else alone(asm) for i, asm in enumerate(blocks)]


def _through(cache: LRU[K, R], keys: Sequence[K], compute: Callable[[list[K]], list[R]]) -> list[R]:
    """The cached result of each key; ``compute`` gets the missing keys (each once)."""
    known: dict[K, R] = {}
    missing: list[K] = []
    for key in dict.fromkeys(keys):
        value = cache.get(key)
        if value is None:
            missing.append(key)
        else:
            known[key] = value
    for key, value in zip(missing, compute(missing), strict=True):
        known[key] = value
        cache.put(key, value)
    return [known[key] for key in keys]


def _fresh(result: R) -> R:
    """A new :class:`AssembleError` for a cached one (raising a shared instance would pile up
    tracebacks on it); other results as they are."""
    return AssembleError(result.message) if isinstance(result, AssembleError) else result  # type: ignore[return-value]


class _Memo:
    """A toolchain's caches and its Keystone engine (mutable, so kept out of the frozen fields)."""

    def __init__(self, size: int, keystone: Any) -> None:
        self.code: LRU[str, bytes | AssembleError] = LRU(size)
        self.cycles: LRU[tuple[str, str, int], int | AssembleError] = LRU(size)
        self.cpus: tuple[str, ...] | None = None
        self.version: str | None = None
        self.keystone = keystone
        """A ``keystone.Ks`` for AArch64 when the assembler is Keystone, else None."""


@dataclass(frozen=True)
class Toolchain:
    """Where the tools are (each a command name on ``PATH`` or a path), which assembler serves
    :meth:`assemble` (``"llvm-mc"``, the reference, or ``"keystone"``), and how many results of
    each kind are cached."""

    llvm_mc: str = "llvm-mc"
    llvm_mca: str = "llvm-mca"
    triple: str = "aarch64"
    assembler: Assembler = "llvm-mc"
    cache_size: int = 4096
    _memo: _Memo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.assembler not in ASSEMBLERS:
            raise ValueError(f"unknown assembler {self.assembler!r}; use one of {ASSEMBLERS}")
        object.__setattr__(self, "_memo", _Memo(self.cache_size, self._keystone_engine()))

    def __reduce__(self) -> tuple[type[Toolchain], tuple[Any, ...]]:
        """Pickled (e.g. into a vector environment's worker) without its caches and engine."""
        return type(self), tuple(getattr(self, f.name) for f in fields(self) if f.init)

    def _keystone_engine(self) -> Any:
        if self.assembler != "keystone":
            return None
        if self.triple.split("-")[0] not in ("aarch64", "arm64"):
            raise ValueError(f"the keystone assembler serves little-endian AArch64, not {self.triple}")
        try:
            from keystone import KS_ARCH_ARM64, KS_MODE_LITTLE_ENDIAN, Ks
        except ImportError as err:
            raise ToolMissing("assembler='keystone' needs keystone-engine (GPL-2.0): "
                              "pip install 'optarena[keystone]'") from err
        return Ks(KS_ARCH_ARM64, KS_MODE_LITTLE_ENDIAN)

    @staticmethod
    def require(tool: str) -> str:
        """The tool's full path, or :class:`ToolMissing` naming its Debian package."""
        path = shutil.which(tool)
        if path is None:
            name = Path(tool).name
            package = DEBIAN_PACKAGES.get(name, DEBIAN_PACKAGES.get(re.sub(r"-\d+$", "", name), "?"))
            raise ToolMissing(f"{tool} not found; install the Debian package {package} "
                              f"(apt-get install {package.split()[0]}) or configure its path")
        return path

    def version(self) -> str:
        """llvm-mca's version line (results record which cost model scored them)."""
        if self._memo.version is None:
            done = subprocess.run([self.require(self.llvm_mca), "--version"], capture_output=True,
                                  text=True, check=False)
            found = re.search(r"LLVM version ([\w.]+)", done.stdout)
            self._memo.version = found.group(1) if found else done.stdout.strip().splitlines()[0]
        return self._memo.version

    # ------------------------------------------------------------------ CPUs

    def cpus(self) -> tuple[str, ...]:
        """The CPUs llvm-mca models for the triple (``llvm-mca -mcpu=help``)."""
        if self._memo.cpus is None:
            done = subprocess.run([self.require(self.llvm_mca), f"-mtriple={self.triple}",
                                   "-mcpu=help"], input="", capture_output=True, text=True,
                                  check=False)
            listing = (done.stdout + done.stderr).split("Available CPUs for this target:", 1)[-1]
            listing = listing.split("Available features for this target:", 1)[0]
            self._memo.cpus = tuple(re.findall(r"^\s+(\S+)\s+- ", listing, re.M))
        return self._memo.cpus

    def check_mcpu(self, mcpu: str) -> None:
        """Raise ``ValueError`` naming ``mcpu`` and listing the valid CPUs unless llvm-mca models it."""
        cpus = self.cpus()
        if mcpu not in cpus:
            raise ValueError(f"llvm-mca has no model of the CPU {mcpu!r} for {self.triple}; "
                             f"valid CPUs: {', '.join(cpus)}")

    # ------------------------------------------------------------------ assembling

    def assemble(self, asm: str) -> bytes:
        """Machine code of the block; raises :class:`AssembleError` with the message."""
        code = self.assemble_many([asm])[0]
        if isinstance(code, AssembleError):
            raise code
        return code

    def assemble_many(self, asms: Sequence[str]) -> list[bytes | AssembleError]:
        """Machine code of each block, or the :class:`AssembleError` (with the assembler's message,
        lines counted within the block) that rejects it; one ``llvm-mc`` run serves all the plain
        blocks not cached (see the module docstring)."""
        return [_fresh(code) for code in _through(self._memo.code, asms, self._assemble_new)]

    def _assemble_new(self, asms: list[str]) -> list[bytes | AssembleError]:
        codes: dict[int, bytes | AssembleError] = {
            i: code for i, asm in enumerate(asms) if (code := self._keystone_code(asm)) is not None}
        rest = [i for i in range(len(asms)) if i not in codes]
        codes.update(zip(rest, _isolating([asms[i] for i in rest], self._assemble_alone,
                                          self._assemble_shared), strict=True))
        return [codes[i] for i in range(len(asms))]

    def _keystone_code(self, asm: str) -> bytes | None:
        """Keystone's code for a plain block; None when Keystone is not used, or rejects the block
        (it raises, returns nothing, or leaves out a line: every line is one 4-byte instruction)."""
        if self._memo.keystone is None or not plain(asm):
            return None
        from keystone import KsError

        try:
            code, _ = self._memo.keystone.asm(asm, 0, as_bytes=True)
        except KsError:
            return None
        instructions = sum(1 for line in asm.split("\n") if line.strip())
        return code if code is not None and len(code) == 4 * instructions else None

    def _llvm_mc(self, source: str) -> ELFFile | str:
        """``llvm-mc``'s object file for ``source``, or its diagnostics when it fails."""
        done = subprocess.run([self.require(self.llvm_mc), f"-triple={self.triple}",
                               "-filetype=obj", "-o", "-"],
                              input=source.encode(), capture_output=True, check=False)
        if done.returncode != 0:
            return done.stderr.decode(errors="replace")
        return ELFFile(io.BytesIO(done.stdout))

    def _assemble_alone(self, asm: str) -> bytes | AssembleError:
        """The ``.text`` section of ``llvm-mc``'s object for the block alone."""
        obj = self._llvm_mc(_terminated(asm))
        if isinstance(obj, str):
            return AssembleError(_first_error(obj) or (obj.splitlines() or ["failed"])[0])
        return obj.get_section_by_name(".text").data()

    def _assemble_shared(self, asms: list[str]) -> list[bytes] | set[int]:
        """Code of plain blocks assembled in one run, one section each; or the blocks blamed."""
        source, starts = _shared_source(asms, lambda k: f'.section .text.b{k},"ax",@progbits',
                                        lambda k: "")
        obj = self._llvm_mc(source)
        if isinstance(obj, str):
            return _blocks_blamed(obj, starts)
        return [obj.get_section_by_name(f".text.b{k}").data() for k in range(len(asms))]

    # ------------------------------------------------------------------ cycles

    def cycles(self, asm: str, mcpu: str = "neoverse-n1", iterations: int = 100) -> int:
        """llvm-mca's total cycles for ``iterations`` repetitions of the block on ``mcpu``;
        :class:`AssembleError` when llvm-mca reports an error."""
        cycles = self.cycles_many([asm], mcpu, iterations)[0]
        if isinstance(cycles, AssembleError):
            raise cycles
        return cycles

    def cycles_many(self, asms: Sequence[str], mcpu: str = "neoverse-n1",
                    iterations: int = 100) -> list[int | AssembleError]:
        """:meth:`cycles` of each block, or the :class:`AssembleError` that rejects it; one
        ``llvm-mca`` run (a code region per block) serves all the plain blocks not cached, each
        region scoring what the block scores alone. ``ValueError`` for an unknown ``mcpu``."""
        self.check_mcpu(mcpu)

        def new(keys: list[tuple[str, str, int]]) -> list[int | AssembleError]:
            return _isolating([asm for asm, _, _ in keys],
                              lambda asm: self._cycles_alone(asm, mcpu, iterations),
                              lambda shared: self._cycles_shared(shared, mcpu, iterations))

        keys = [(asm, mcpu, iterations) for asm in asms]
        return [_fresh(cycles) for cycles in _through(self._memo.cycles, keys, new)]

    def _mca(self, source: str, mcpu: str, iterations: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.require(self.llvm_mca), f"-mtriple={self.triple}", f"-mcpu={mcpu}",
             f"-iterations={iterations}", *MCA_VIEWS],
            input=source, capture_output=True, text=True, check=False,
        )

    def _cycles_alone(self, asm: str, mcpu: str, iterations: int) -> int | AssembleError:
        done = self._mca(_terminated(asm), mcpu, iterations)
        match = re.search(r"^Total Cycles:\s+(\d+)", done.stdout, re.M)
        error = _first_error(done.stderr, "error")
        if done.returncode != 0 or match is None or error is not None:
            return AssembleError(error or "llvm-mca failed")
        return int(match.group(1))

    def _cycles_shared(self, asms: list[str], mcpu: str, iterations: int) -> list[int] | set[int]:
        """Cycles of plain blocks scored in one run, one code region each; or the blocks blamed."""
        source, starts = _shared_source(asms, lambda k: f"# LLVM-MCA-BEGIN b{k}",
                                        lambda k: f"# LLVM-MCA-END b{k}\n")
        done = self._mca(source, mcpu, iterations)
        if done.returncode != 0 or "error" in done.stderr:
            return _blocks_blamed(done.stderr, starts)
        regions = {int(k): int(cycles) for k, cycles in _REGION.findall(done.stdout)}
        if sorted(regions) != list(range(len(asms))):
            return set()
        return [regions[k] for k in range(len(asms))]

    # ------------------------------------------------------------------ both

    def prepare(self, asms: Sequence[str], mcpu: str = "neoverse-n1", iterations: int = 100) -> None:
        """Assemble and score ``asms`` with ``llvm-mc`` and ``llvm-mca`` running side by side, so
        that :meth:`assemble_many` and :meth:`cycles_many` on them (and the equivalence checker's
        assembly) are cache hits."""
        with ThreadPoolExecutor(max_workers=2) as pool:
            assembled = pool.submit(self.assemble_many, asms)
            scored = pool.submit(self.cycles_many, asms, mcpu, iterations)
            assembled.result()
            scored.result()

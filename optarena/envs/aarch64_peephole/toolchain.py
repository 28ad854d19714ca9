"""The LLVM tools the peephole environment runs: ``llvm-mc`` (assemble; the code is the ``.text``
section of its object file) and ``llvm-mca`` (cycle estimate). Paths are configurable; a missing
tool is an error that names the Debian package providing it. Results are pure functions of the
text and kept in bounded caches (least recently used first out), one set per :class:`Toolchain`.

**Backends.** Starting a tool costs ~13 ms (loading libLLVM), far more than its work on a block
(~0.1 ms to assemble, ~0.6 ms to simulate 100 iterations). The ``"server"`` backend
(:mod:`~optarena.envs.aarch64_peephole.mcserver`) does what the two tools do in long-lived native
processes, built against libLLVM 14 at first use (from the Debian package ``llvm-14-dev``): one
per kind of request, each block its own request (a batch is sent at once, then its replies read).
Its results are the tools': the same bytes, the same total cycles, the same error messages
(derived from what the tool would have printed). A block the server dies on goes to the tool (the
server restarts), and so does a block that reads files or prints (``.include``, ``.incbin``,
``.print``: what they do depends on the tool's process). ``"process"`` runs the tools themselves;
``"auto"`` (the default) the server when it builds and starts with the tools' LLVM version, else
the tools, with a warning that says why.

**Batches** (``"process"``). :meth:`Toolchain.assemble_many` and :meth:`Toolchain.cycles_many`
serve many blocks with one tool run: each block gets its own section (``llvm-mc``) or its own code
region (``llvm-mca``, between ``# LLVM-MCA-BEGIN`` and ``# LLVM-MCA-END``), which gives the same
bytes and the same total cycles as the block alone. Only *plain* blocks share a run: instruction
lines and nothing that could reach into another block (no label, directive, symbol assignment,
comment, string or statement separator). Any other block, and any block an error of a shared run
points at, runs alone, so its result and message are exactly what it gets alone; a shared run
that fails without saying where runs every block alone. :meth:`Toolchain.prepare` runs both tools
on a batch at once (two processes or servers in parallel) so that later calls on its blocks are
cache hits.

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
import threading
import warnings
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar

from elftools.elf.elffile import ELFFile

from optarena.envs.aarch64_peephole.mcserver import MCServer, Reply, ServerUnavailable, build
from optarena.envs.lru import LRU

DEBIAN_PACKAGES: dict[str, str] = {
    "llvm-mc": "llvm-14 (or llvm)",
    "llvm-mca": "llvm-14 (or llvm)",
    "clang-14": "clang-14",
    "csmith": "csmith",
}
Assembler = Literal["llvm-mc", "keystone"]
ASSEMBLERS: tuple[Assembler, ...] = ("llvm-mc", "keystone")
Backend = Literal["auto", "server", "process"]
BACKENDS: tuple[Backend, ...] = ("auto", "server", "process")
MCA_VIEWS = ("--instruction-info=false", "--resource-pressure=false")
"""llvm-mca views that are not needed for the total cycles (the summary is always printed)."""

_PLAIN_LINE = re.compile(r"[ \t]*(?:[A-Za-z][ \t!#$%&()+,\-.0-9<>?@A-Z\[\]^_`a-z{|}~]*)?")
_ERROR_LINE = re.compile(r"^<stdin>:(\d+):\d+: error:", re.M)
_REGION = re.compile(r"^\[\d+\] Code Region - b(\d+)$.*?^Total Cycles:\s+(\d+)$", re.M | re.S)
_PROCESS_ONLY = re.compile(r"\.(?:include|incbin|print)\b", re.I)
"""Directives whose effect depends on the tool's process (its working directory, its output):
blocks with them go to the tools whatever the backend."""
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


def _assembly_failed(stderr: str) -> AssembleError:
    """The error of an ``llvm-mc`` run that failed with ``stderr``."""
    return AssembleError(_first_error(stderr) or (stderr.splitlines() or ["failed"])[0])


def _scored(returncode: int, total: int | None, stderr: str) -> int | AssembleError:
    """What an ``llvm-mca`` run that exited with ``returncode``, reported ``total`` cycles (None:
    no summary) and printed ``stderr`` says of its block: any error rejects it."""
    error = _first_error(stderr, "error")
    if returncode != 0 or total is None or error is not None:
        return AssembleError(error or "llvm-mca failed")
    return total


def _assembled(reply: Reply) -> bytes | AssembleError:
    """The code of a server's ``llvm-mc`` reply, or its error."""
    return reply.data if reply.status == 0 else _assembly_failed(reply.diagnostics)


def _scored_reply(reply: Reply) -> int | AssembleError:
    """The cycles of a server's ``llvm-mca`` reply, or its error."""
    return _scored(reply.status, reply.value if reply.value >= 0 else None, reply.diagnostics)


def _served(blocks: Sequence[str], serve: Callable[[list[str]], list[Reply | None]],
            result: Callable[[Reply], R], alone: Callable[[str], R]) -> list[R]:
    """Results of ``blocks`` from a server (``serve`` takes the texts, each block its own
    request); the blocks it does not take (see ``_PROCESS_ONLY``) or died on go to ``alone``."""
    taken = [i for i, asm in enumerate(blocks) if not _PROCESS_ONLY.search(asm)]
    replies = dict(zip(taken, serve([_terminated(blocks[i]) for i in taken]), strict=True))
    return [alone(asm) if (reply := replies.get(i)) is None else result(reply)
            for i, asm in enumerate(blocks)]


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
    """A toolchain's caches, Keystone engine and servers (mutable, so kept out of the frozen
    fields)."""

    def __init__(self, size: int, keystone: Any) -> None:
        self.code: LRU[str, bytes | AssembleError] = LRU(size)
        self.cycles: LRU[tuple[str, str, int], int | AssembleError] = LRU(size)
        self.cpus: tuple[str, ...] | None = None
        self.versions: dict[str, str] = {}
        self.keystone = keystone
        """A ``keystone.Ks`` for AArch64 when the assembler is Keystone, else None."""
        self.servers: dict[str, MCServer] = {}
        """The running servers by kind of request (``assemble``, ``cycles``)."""
        self.unavailable: str | None = None
        """Why the ``"auto"`` backend uses the tools (None: it has not found out, or it does not)."""
        self.lock = threading.Lock()


@dataclass(frozen=True)
class Toolchain:
    """Where the tools are (each a command name on ``PATH`` or a path), which assembler serves
    :meth:`assemble` (``"llvm-mc"``, the reference, or ``"keystone"``), how many results of each
    kind are cached, which backend runs the tools (see the module docstring) and which
    ``llvm-config`` builds the server (None: ``$OPTARENA_LLVM_CONFIG`` or the usual places)."""

    llvm_mc: str = "llvm-mc"
    llvm_mca: str = "llvm-mca"
    triple: str = "aarch64"
    assembler: Assembler = "llvm-mc"
    cache_size: int = 4096
    backend: Backend = "auto"
    llvm_config: str | None = None
    _memo: _Memo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.assembler not in ASSEMBLERS:
            raise ValueError(f"unknown assembler {self.assembler!r}; use one of {ASSEMBLERS}")
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}; use one of {BACKENDS}")
        object.__setattr__(self, "_memo", _Memo(self.cache_size, self._keystone_engine()))

    def __reduce__(self) -> tuple[type[Toolchain], tuple[Any, ...]]:
        """Pickled (e.g. into a vector environment's worker) without its caches, engine and
        servers."""
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
        return self._tool_version(self.llvm_mca)

    def _tool_version(self, tool: str) -> str:
        """The LLVM version of ``tool`` (``14.0.6``), else the first line it prints."""
        if tool not in self._memo.versions:
            done = subprocess.run([self.require(tool), "--version"], capture_output=True,
                                  text=True, check=False)
            found = re.search(r"LLVM version ([\w.]+)", done.stdout)
            self._memo.versions[tool] = found.group(1) if found else \
                done.stdout.strip().splitlines()[0]
        return self._memo.versions[tool]

    # ------------------------------------------------------------------ the server

    def _server(self, kind: Literal["assemble", "cycles"]) -> MCServer | None:
        """The running server for ``kind`` of request, or None when the tools serve it (the
        ``"process"`` backend, or ``"auto"`` without a server: warned once, with the reason).
        Started here, in the caller's thread: a server dies with the thread that starts it."""
        if self.backend == "process":
            return None
        memo = self._memo
        with memo.lock:
            if memo.unavailable is None and kind not in memo.servers:
                try:
                    memo.servers[kind] = self._start_server(kind)
                except ServerUnavailable as err:
                    if self.backend == "server":
                        raise
                    memo.unavailable = str(err)
                    warnings.warn(f"{err}; the toolchain runs llvm-mc and llvm-mca processes "
                                  "instead (slower, same results)", stacklevel=4)
            return memo.servers.get(kind)

    def _start_server(self, kind: Literal["assemble", "cycles"]) -> MCServer:
        """A started server for ``kind``, which links the LLVM version of the tool it replaces."""
        tool = self.llvm_mc if kind == "assemble" else self.llvm_mca
        expected = self._tool_version(tool)
        server = MCServer(build(self.llvm_config), self.triple)
        server.start()
        if server.version != expected:
            server.close()
            raise ServerUnavailable(f"the llvm-mc/llvm-mca server links LLVM {server.version}, "
                                    f"but {tool} is LLVM {expected}; configure the llvm-config "
                                    "of the tools' LLVM")
        return server

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
        texts = [asms[i] for i in rest]
        server = self._server("assemble") if rest else None
        codes.update(zip(rest, _isolating(texts, self._assemble_alone, self._assemble_shared)
                         if server is None else
                         _served(texts, server.assemble, _assembled, self._assemble_alone),
                         strict=True))
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
            return _assembly_failed(obj)
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
            blocks = [asm for asm, _, _ in keys]
            alone = partial(self._cycles_alone, mcpu=mcpu, iterations=iterations)
            server = self._server("cycles") if blocks and 0 <= iterations < 2**32 else None
            if server is not None:
                return _served(blocks, partial(server.cycles, mcpu=mcpu, iterations=iterations),
                               _scored_reply, alone)
            return _isolating(blocks, alone,
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
        return _scored(done.returncode, int(match.group(1)) if match else None, done.stderr)

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
        self._server("assemble")  # the servers start in this thread, which outlives the pool's
        self._server("cycles")
        with ThreadPoolExecutor(max_workers=2) as pool:
            assembled = pool.submit(self.assemble_many, asms)
            scored = pool.submit(self.cycles_many, asms, mcpu, iterations)
            assembled.result()
            scored.result()

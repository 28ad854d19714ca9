"""The peephole corpus: basic blocks before and after LLVM's load/store optimizer.

Each C source is compiled with ``clang-14 --target=aarch64-linux-gnu -S`` at each optimization
level twice: with ``-mllvm -aarch64-enable-ldst-opt=false`` (the *input*) and without it (LLVM's
own result, the *oracle*). The pass changes no control flow, so the two outputs have the same
blocks, function by function; they are paired by position. A plain ``.s`` file gives inputs with
no oracle.

A block is the straight-line code between labels, branches and calls; its terminator (branch,
return, call) is kept as context, not as code to rewrite: LLVM's pairing scan stops there and
the emulator cannot follow it. Blocks that refer to symbols (``adrp``, ``:lo12:``, literal pools)
are left out: their PC-relative values depend on where the code sits. All pairs that differ are
kept, plus a deterministic share of those that do not.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from optarena.envs.aarch64_peephole.block import parse_block
from optarena.envs.aarch64_peephole.toolchain import Toolchain

SHIPPED_SOURCES = Path(__file__).parent / "sources"
CROSS_SYSROOT = Path("/usr/aarch64-linux-gnu")  # Debian's libc6-dev-arm64-cross
CSMITH_INCLUDE = Path("/usr/include/csmith")  # Debian's libcsmith-dev
SHIPPED_CORPUS = Path(__file__).parent / "data" / "corpus.jsonl"
CSMITH_CORPUS = Path(__file__).parent / "data" / "csmith-v1.jsonl.gz"
"""60 csmith programs (``csmith --seed 1..60``) at -O0, -O1 and -O2, every block kept: the corpus of
the ``peephole-csmith`` split (``optarena peephole build-corpus --csmith 60 --csmith-seed 1
--unchanged-share 1``, sources by file name)."""
MAX_INSTRUCTIONS = 64
"""Blocks longer than this are not problems of an environment unless it is told otherwise."""
TERMINATORS = ("b", "br", "ret", "cbz", "cbnz", "tbz", "tbnz", "bl", "blr")
_SYMBOLIC = re.compile(r"adrp|\badr\b|:lo12:|:got|\.L[A-Za-z]|\b[A-Za-z_]\w*@", re.I)
_FUNCTION = re.compile(r"^([A-Za-z_][\w.$]*):")
_LABEL = re.compile(r"^(\.L\w+):|^\s*//\s*%bb\.\d+:")


@dataclass(frozen=True)
class BlockPair:
    """One corpus entry: the input block, LLVM's result (``None`` for ``.s`` sources), provenance."""

    id: str
    source: str
    flags: str
    function: str
    index: int
    input: str
    oracle: str | None
    terminator: str | None

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def split_blocks(asm: str) -> dict[str, list[tuple[list[str], str | None]]]:
    """``function -> [(instruction lines, terminator line or None), ...]`` in order."""
    functions: dict[str, list[tuple[list[str], str | None]]] = {}
    current: list[str] = []
    name = None

    def close(terminator: str | None) -> None:
        nonlocal current
        if name is not None and (current or terminator):
            functions[name].append((current, terminator))
        current = []

    for raw in asm.splitlines():
        function = _FUNCTION.match(raw)
        if function and not raw.startswith(".L"):
            close(None)
            name = function.group(1)
            functions[name] = []
            continue
        if _LABEL.match(raw):
            close(None)
            continue
        line = raw.split("//")[0].strip()
        if not line or line.startswith(".") or line.endswith(":") or name is None:
            continue
        mnemonic = line.split()[0].lower()
        if mnemonic in TERMINATORS or mnemonic.startswith("b."):
            current_terminator = line
            close(current_terminator)
        else:
            current.append(line)
    close(None)
    return functions


def _header_flags() -> list[str]:
    """libc headers for AArch64 when Debian's cross headers are installed, else freestanding."""
    flags = [f"-I{CSMITH_INCLUDE}"] if CSMITH_INCLUDE.exists() else []
    if (CROSS_SYSROOT / "include" / "stdio.h").exists():
        return [*flags, f"--sysroot={CROSS_SYSROOT}", "-isystem", str(CROSS_SYSROOT / "include")]
    return [*flags, "-ffreestanding"]


def compile_c(source: Path, opt: str, pairing: bool, clang: str = "clang-14") -> str:
    flags = [Toolchain.require(clang), "--target=aarch64-linux-gnu", opt, "-S", *_header_flags(),
             "-w", "-o", "-", str(source)]
    if not pairing:
        flags[4:4] = ["-mllvm", "-aarch64-enable-ldst-opt=false"]
    done = subprocess.run(flags, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ValueError(f"{source}: clang failed: {done.stderr.strip().splitlines()[:1]}")
    return done.stdout


def _keep(block_id: str, share: float) -> bool:
    digest = hashlib.sha256(block_id.encode()).digest()
    return int.from_bytes(digest[:4], "little") / 2**32 < share


def pairs_from_c(source: Path, opts: Iterable[str], unchanged_share: float,
                 clang: str = "clang-14") -> list[BlockPair]:
    out = []
    for opt in opts:
        before = split_blocks(compile_c(source, opt, pairing=False, clang=clang))
        after = split_blocks(compile_c(source, opt, pairing=True, clang=clang))
        for function, blocks in before.items():
            oracle_blocks = after.get(function, [])
            if len(oracle_blocks) != len(blocks):
                continue
            for index, ((lines, terminator), (oracle, _)) in enumerate(
                    zip(blocks, oracle_blocks, strict=True)):
                text, oracle_text = "\n".join(lines) + "\n", "\n".join(oracle) + "\n"
                if not lines or _SYMBOLIC.search(text) or _SYMBOLIC.search(oracle_text):
                    continue
                block_id = f"{source.stem}/{opt.lstrip('-')}/{function}/{index}"
                if text == oracle_text and not _keep(block_id, unchanged_share):
                    continue
                out.append(BlockPair(block_id, str(source), opt, function, index, text,
                                     oracle_text, terminator))
    return out


def pairs_from_asm(source: Path) -> list[BlockPair]:
    out = []
    for function, blocks in split_blocks(source.read_text()).items():
        for index, (lines, terminator) in enumerate(blocks):
            text = "\n".join(lines) + "\n"
            if lines and not _SYMBOLIC.search(text):
                out.append(BlockPair(f"{source.stem}/asm/{function}/{index}", str(source), "asm",
                                     function, index, text, None, terminator))
    return out


def collect_sources(paths: Iterable[Path]) -> list[Path]:
    """C and assembly files named, or found under named directories."""
    found = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix in (".c", ".s", ".S"))
        elif path.exists():
            found.append(path)
        else:
            raise FileNotFoundError(f"{path} does not exist")
    return found


def generate_csmith(count: int, seed: int, directory: Path, csmith: str = "csmith") -> list[Path]:
    """``count`` csmith programs with seeds ``seed .. seed + count - 1`` (reproducible), written
    to ``directory``. csmith runs in a scratch directory: it writes ``platform.info`` into its
    working directory, which must stay the user's."""
    directory.mkdir(parents=True, exist_ok=True)
    tool = Toolchain.require(csmith)
    paths = []
    with tempfile.TemporaryDirectory(prefix="optarena-csmith-") as scratch:
        for k in range(seed, seed + count):
            path = directory / f"csmith_{k}.c"
            if not path.exists():
                done = subprocess.run([tool, "--seed", str(k)], capture_output=True, text=True,
                                      check=True, cwd=scratch)
                path.write_text(done.stdout)
            paths.append(path)
    return paths


def build_corpus(paths: Iterable[Path], out: Path, *, opts: tuple[str, ...] = ("-O0", "-O1", "-O2"),
                 unchanged_share: float = 0.25, clang: str = "clang-14") -> list[BlockPair]:
    """Compile, split and pair every source; write ``out`` (JSONL) and return the entries."""
    from rich.progress import track

    sources = collect_sources(paths)
    pairs: list[BlockPair] = []
    for source in track(sources, description="building corpus", transient=True):
        if source.suffix == ".c":
            pairs += pairs_from_c(source, opts, unchanged_share, clang)
        else:
            pairs += pairs_from_asm(source)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(p.to_json() + "\n" for p in pairs))
    return pairs


def load_corpus(path: Path = SHIPPED_CORPUS) -> list[BlockPair]:
    """The entries of a corpus file (JSONL, or gzipped JSONL: ``.jsonl.gz``)."""
    text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" \
        else path.read_text()
    return [BlockPair(**json.loads(line)) for line in text.splitlines() if line]


def select_blocks(corpus: str | Path | None = None, max_instructions: int = MAX_INSTRUCTIONS,
                  chosen: Sequence[str] | None = None) -> list[BlockPair]:
    """The blocks of ``corpus`` (default: the shipped one) with at most ``max_instructions``
    instructions, or those of them named in ``chosen``, in that order; ``ValueError`` naming
    the blocks it lacks."""
    try:
        blocks = [b for b in load_corpus(Path(corpus) if corpus else SHIPPED_CORPUS)
                  if len(parse_block(b.input)) <= max_instructions]
    except FileNotFoundError:
        raise ValueError(f"corpus {corpus}: no such file") from None
    if not blocks:
        raise ValueError(f"no block of at most {max_instructions} instructions in the corpus")
    if chosen is None:
        return blocks
    by_id = {b.id: b for b in blocks}
    unknown = [b for b in chosen if b not in by_id]
    if unknown:
        raise ValueError(f"unknown block(s) {unknown[:3]} (or longer than {max_instructions} "
                         f"instructions); the corpus has {len(by_id)}: "
                         f"{', '.join(list(by_id)[:4])}, ...")
    return [by_id[b] for b in chosen]


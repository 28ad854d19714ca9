"""The LLVM tools the peephole environment runs: ``llvm-mc`` (assemble), ``llvm-objcopy`` (extract
``.text``) and ``llvm-mca`` (cycle estimate). Paths are configurable; a missing tool is an error
that names the Debian package providing it. Results are pure functions of the text and cached.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

DEBIAN_PACKAGES: dict[str, str] = {
    "llvm-mc": "llvm-14 (or llvm)",
    "llvm-mca": "llvm-14 (or llvm)",
    "llvm-objcopy": "llvm-14 (or llvm)",
    "clang-14": "clang-14",
    "csmith": "csmith",
}


class ToolMissing(RuntimeError):
    """A required program is not installed."""


class AssembleError(ValueError):
    """The assembler rejected the text; ``message`` is its first diagnostic."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Toolchain:
    """Where the tools are; each field is a command name on ``PATH`` or a path."""

    llvm_mc: str = "llvm-mc"
    llvm_mca: str = "llvm-mca"
    llvm_objcopy: str = "llvm-objcopy"
    triple: str = "aarch64"

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

    @functools.lru_cache(maxsize=1)  # noqa: B019 - the toolchain is frozen and long-lived
    def version(self) -> str:
        """llvm-mca's version line (results record which cost model scored them)."""
        done = subprocess.run([self.require(self.llvm_mca), "--version"], capture_output=True,
                              text=True, check=False)
        found = re.search(r"LLVM version ([\w.]+)", done.stdout)
        return found.group(1) if found else done.stdout.strip().splitlines()[0]

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - the toolchain is frozen and long-lived
    def assemble(self, asm: str) -> bytes:
        """Machine code of the ``.text`` section; raises :class:`AssembleError` with the message."""
        with tempfile.TemporaryDirectory(prefix="optarena-asm-") as tmp:
            obj, text = Path(tmp) / "block.o", Path(tmp) / "block.bin"
            done = subprocess.run(
                [self.require(self.llvm_mc), f"-triple={self.triple}", "-filetype=obj",
                 "-o", str(obj)],
                input=asm if asm.endswith("\n") else asm + "\n", capture_output=True, text=True,
                check=False,
            )
            if done.returncode != 0:
                errors = [line for line in done.stderr.splitlines() if "error:" in line]
                raise AssembleError((errors or done.stderr.splitlines() or ["failed"])[0]
                                    .replace("<stdin>:", "line "))
            subprocess.run([self.require(self.llvm_objcopy), "-O", "binary",
                            "--only-section=.text", str(obj), str(text)],
                           capture_output=True, check=True)
            return text.read_bytes()

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - the toolchain is frozen and long-lived
    def cycles(self, asm: str, mcpu: str = "neoverse-n1", iterations: int = 100) -> int:
        """llvm-mca's total cycles for ``iterations`` repetitions of the block on ``mcpu``."""
        done = subprocess.run(
            [self.require(self.llvm_mca), f"-mtriple={self.triple}", f"-mcpu={mcpu}",
             f"-iterations={iterations}"],
            input=asm if asm.endswith("\n") else asm + "\n", capture_output=True, text=True,
            check=False,
        )
        match = re.search(r"^Total Cycles:\s+(\d+)", done.stdout, re.M)
        if done.returncode != 0 or match is None:
            errors = [line for line in done.stderr.splitlines() if "error" in line]
            raise AssembleError((errors or ["llvm-mca failed"])[0].replace("<stdin>:", "line "))
        return int(match.group(1))

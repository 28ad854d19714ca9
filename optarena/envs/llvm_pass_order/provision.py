"""``optarena setup compiler-gym``: CompilerGym 0.2.5 offline, in its own virtual environment.

CompilerGym 0.2.5 (2022, archived) does not install on Python 3.11 as published: its ``grpcio``,
``gym`` and ``loop-tool-py`` pins have no wheels. Its own wheel (``py3-none-manylinux2014``, with
the LLVM-10 service binary and csmith) installs with ``--no-deps``; the dependencies below are the
newest that work, except ``numpy<2`` (``np.NINF``), ``protobuf==3.20.3`` (its generated
descriptors) and ``networkx<3.4``, which the rest of the suite cannot share. Hence a virtual
environment of its own, driven through :mod:`~optarena.envs.llvm_pass_order.session`.

``llvm-v0`` downloads LLVM-10 tools on first use unless ``$COMPILER_GYM_SITE_DATA/llvm-v0/.unpacked``
exists; the site data is provisioned with Debian's LLVM-14 tools instead, and a ``clang`` wrapper
adding ``-Xclang -disable-noundef-analysis`` (LLVM 10 cannot read clang-14's ``noundef``).
Every step is idempotent and every missing piece is named with the command that provides it.
"""

from __future__ import annotations

import ctypes
import hashlib
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from optarena.envs.llvm_pass_order.session import Session, compiler_gym_home

COMPILER_GYM = "compiler-gym==0.2.5"
DEPENDENCIES = (
    "absl-py==2.5.1", "deprecated==1.3.1", "docker==7.2.0", "fasteners==0.20", "grpcio==1.85.1",
    "gym==0.26.2", "humanize==4.17.0", "networkx==3.3", "numpy==1.26.4", "protobuf==3.20.3",
    "pydantic==2.14.3", "requests==2.34.2", "tabulate==0.10.0",
)
"""CompilerGym's dependencies, pinned at versions that work on Python 3.11."""

LLVM_TOOLS = ("opt", "llvm-size", "llvm-as", "llvm-link", "llvm-dis", "lli", "llc", "llvm-stress",
              "llvm-diff")
"""The tools CompilerGym's ``llvm-v0`` runs from its site data, taken from Debian's LLVM 14."""

CLANG_WRAPPER = """#!/bin/sh
# clang-14 making bitcode that CompilerGym's LLVM 10 can read (optarena setup compiler-gym)
exec {clang} -Xclang -disable-noundef-analysis "$@"
"""


class SetupError(RuntimeError):
    """A piece the setup cannot provide itself is missing; the message says how to get it."""


def check_system(llvm_suffix: str = "-14") -> list[str]:
    """What the system lacks for CompilerGym and the pass-ordering scores, each with its fix."""
    missing = []
    try:
        ctypes.CDLL("libtinfo.so.5")
    except OSError:
        missing.append("libtinfo.so.5 (CompilerGym's service binary): apt-get install libtinfo5")
    for tool in (*LLVM_TOOLS, "llvm-mca", "clang"):
        if shutil.which(tool + llvm_suffix) is None:
            package = "clang-14" if tool == "clang" else "llvm-14"
            missing.append(f"{tool}{llvm_suffix}: apt-get install {package}")
    return missing


def setup(home: Path | None = None, llvm_suffix: str = "-14",
          say: Callable[[str], None] = print) -> Path:
    """Install and provision CompilerGym in ``home`` (default :func:`compiler_gym_home`), then
    reset and step ``llvm-v0`` once to prove it works. Returns ``home``."""
    home = home or compiler_gym_home()
    missing = check_system(llvm_suffix)
    if missing:
        raise SetupError("missing system pieces:\n  " + "\n  ".join(missing))
    home.mkdir(parents=True, exist_ok=True)
    _install(home / "venv", say)
    _provision_site_data(home / "site-data" / "llvm-v0", llvm_suffix, say)
    with Session(home) as session:
        reply = session.request("reset", benchmark={"uri": "generator://llvm-stress-v0/0"})
        step = session.request("apply", passes=["-mem2reg"], out=str(home / "check.bc"),
                               observations=["IrInstructionCount"])
    (home / "check.bc").unlink(missing_ok=True)
    say(f"llvm-v0 works: {len(reply['actions'])} passes; llvm-stress-v0/0 after -mem2reg has "
        f"{step['observations']['IrInstructionCount']} IR instructions")
    return home


def _install(venv: Path, say: Callable[[str], None]) -> None:
    pins = "\n".join((COMPILER_GYM, *DEPENDENCIES))
    marker = venv / "optarena-pins.sha256"
    digest = hashlib.sha256(pins.encode()).hexdigest()
    if marker.exists() and marker.read_text() == digest:
        say(f"CompilerGym already installed in {venv}")
        return
    if not (venv / "bin" / "python").exists():
        say(f"creating the virtual environment {venv}")
        _run([sys.executable, "-m", "venv", str(venv)])
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
           "--disable-pip-version-check"]
    say(f"installing {COMPILER_GYM} (--no-deps) and {len(DEPENDENCIES)} pinned dependencies")
    _run([*pip, "--no-deps", COMPILER_GYM])
    _run([*pip, *DEPENDENCIES])
    marker.write_text(digest)


def _provision_site_data(llvm_v0: Path, llvm_suffix: str, say: Callable[[str], None]) -> None:
    bin_dir = llvm_v0 / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for tool in LLVM_TOOLS:
        link, path = bin_dir / tool, shutil.which(tool + llvm_suffix)
        assert path is not None  # check_system found it
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(path)
    clang = bin_dir / "clang"
    clang.write_text(CLANG_WRAPPER.format(clang=shutil.which("clang" + llvm_suffix)))
    clang.chmod(0o755)
    (llvm_v0 / ".unpacked").touch()
    say(f"site data {llvm_v0}: LLVM{llvm_suffix} tools and the clang wrapper")


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SetupError(f"`{' '.join(command)}` failed:\n{done.stderr.strip()[-2000:]}")

"""``llvm-mc`` and ``llvm-mca`` in one long-lived process: a native server (``native/mcserver.cpp``,
linked against libLLVM 14) that the :class:`~optarena.envs.aarch64_peephole.toolchain.Toolchain`
asks instead of starting a tool per block (each start costs ~13 ms, nearly all of it loading
libLLVM; the work itself is well under a millisecond).

**Building.** :func:`build` compiles the server at first use with ``llvm-config`` (``$OPTARENA_
LLVM_CONFIG``, else ``llvm-config-14``, ``/usr/lib/llvm-14/bin/llvm-config``, ``llvm-config``) and
a C++17 compiler (``$CXX``, else ``c++``, ``g++``, ``clang++``) into ``<cache>/native/`` (the cache
is ``$OPTARENA_CACHE_DIR``, else ``~/.cache/optarena``), under a name keyed by the source, the
compiler and LLVM; the binary is compiled under a temporary name and renamed into place, so
processes building at once do not disturb each other. What cannot be built is a
:class:`ServerUnavailable` naming what is missing.

**Serving.** An :class:`MCServer` starts its process on the first request (and again after it
died), sends a batch of requests at once and then reads the replies in order. The protocol is
described in the source; a reply carries the tool's verdict (its exit status), the code or the
total cycles, and what the tool would have printed on its standard error, so that the toolchain
derives results and error messages from a reply exactly as from a tool's run. A request the server
dies on (a crash, or a fatal LLVM error) has no reply (``None``): the caller asks the process tool.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import select
import shutil
import struct
import subprocess
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import IO, NamedTuple

from optarena.envs.host import cache_root, replacing
from optarena.envs.isolation import die_with_parent, exit_reason

SOURCE = Path(__file__).parent / "native" / "mcserver.cpp"
LLVM_CONFIGS = ("llvm-config-14", "/usr/lib/llvm-14/bin/llvm-config", "llvm-config")
COMPILERS = ("c++", "g++", "clang++")
DEV_PACKAGE = "llvm-14-dev"
"""The Debian package with LLVM 14's headers and libLLVM for linking."""

_OK, _FAILED, _FATAL = 0, 1, 2
_BUILT: dict[tuple[str, Path], Path] = {}
_BUILD_LOCK = threading.Lock()


class ServerUnavailable(RuntimeError):
    """The server cannot be built or started; the message says what is missing."""


class Reply(NamedTuple):
    """The server's answer to one request."""

    status: int
    """The tool's exit status: 0 or 1."""
    value: int
    """llvm-mca's total cycles (of the first region it reports), -1 when it reports none."""
    data: bytes
    """The ``.text`` section of llvm-mc's object."""
    diagnostics: str
    """What the tool would have written on its standard error."""


# ------------------------------------------------------------------ building


def find_llvm_config(configured: str | None = None) -> str:
    """The path of ``llvm-config``: ``configured`` (a name on ``PATH`` or a path), else
    ``$OPTARENA_LLVM_CONFIG``, else the first of :data:`LLVM_CONFIGS` found."""
    wanted = configured or os.environ.get("OPTARENA_LLVM_CONFIG")
    for candidate in (wanted,) if wanted else LLVM_CONFIGS:
        path = shutil.which(candidate)
        if path is not None:
            return path
    tried = repr(wanted) if wanted else ", ".join(LLVM_CONFIGS)
    raise ServerUnavailable(f"llvm-config not found (tried {tried}); install the Debian package "
                            f"{DEV_PACKAGE} (apt-get install {DEV_PACKAGE}) or configure its path")


def find_compiler() -> str:
    """The path of the C++ compiler: ``$CXX``, else the first of :data:`COMPILERS` found."""
    wanted = os.environ.get("CXX")
    for candidate in (wanted,) if wanted else COMPILERS:
        path = shutil.which(candidate)
        if path is not None:
            return path
    raise ServerUnavailable(f"no C++ compiler found (tried {wanted or ', '.join(COMPILERS)}); "
                            "install g++ (apt-get install g++) or set CXX")


def _output(argv: list[str]) -> str:
    """The standard output of a quick command, stripped; :class:`ServerUnavailable` if it fails."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
    except OSError as err:
        raise ServerUnavailable(f"{argv[0]} cannot run: {err}") from err
    if done.returncode != 0:
        raise ServerUnavailable(f"{' '.join(argv)} failed: {done.stderr.strip() or done.returncode}")
    return done.stdout.strip()


def build(llvm_config: str | None = None, cache: Path | None = None) -> Path:
    """The server's binary, compiled unless ``cache`` (default ``<cache>/native``) has it;
    :class:`ServerUnavailable` naming what is missing (with the compiler's first error)."""
    config = find_llvm_config(llvm_config)
    folder = cache or cache_root() / "native"
    with _BUILD_LOCK:
        known = _BUILT.get((config, folder))
        if known is None or not known.exists():
            known = _BUILT[(config, folder)] = _build(config, folder)
        return known


def _build(llvm_config: str, folder: Path) -> Path:
    version = _output([llvm_config, "--version"])
    flags = {flag: _output([llvm_config, flag]).split() for flag in
             ("--cxxflags", "--ldflags", "--libs", "--system-libs")}
    libdir, includedir = _output([llvm_config, "--libdir"]), _output([llvm_config, "--includedir"])
    if not (Path(includedir) / "llvm" / "MCA" / "Context.h").exists():
        raise ServerUnavailable(f"LLVM {version}'s headers are not in {includedir}; install the "
                                f"Debian package {DEV_PACKAGE} (apt-get install {DEV_PACKAGE})")
    compiler = find_compiler()
    source = SOURCE.read_bytes()
    identity = [compiler, _output([compiler, "--version"]).splitlines()[0], llvm_config, version,
                *(" ".join(value) for value in flags.values())]
    digest = hashlib.sha256(source + "\0".join(identity).encode()).hexdigest()[:20]
    binary = folder / f"mcserver-{version}-{digest}"
    if binary.exists():
        return binary
    with replacing(binary) as partial:
        # llvm-config asks for C++14; the later -std wins
        argv = [compiler, *flags["--cxxflags"], "-std=c++17", "-O2", "-o", str(partial),
                str(SOURCE), *flags["--ldflags"], *flags["--libs"], *flags["--system-libs"],
                f"-Wl,-rpath,{libdir}"]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            lines = done.stderr.splitlines()
            first = next((line for line in lines if "error" in line), lines[0] if lines else "")
            raise ServerUnavailable(
                f"cannot build the llvm-mc/llvm-mca server with {compiler} and LLVM {version}: "
                f"{first.strip() or f'exit code {done.returncode}'} (it needs the Debian package "
                f"{DEV_PACKAGE}: apt-get install {DEV_PACKAGE})")
    return binary


# ------------------------------------------------------------------ serving


def _string(data: bytes) -> bytes:
    return struct.pack("<I", len(data)) + data


def _read_reply(stream: IO[bytes]) -> Reply | None:
    """The next reply on ``stream``, or None when the stream ends first."""
    head = stream.read(13)
    if len(head) < 13:
        return None
    status, value, size = struct.unpack("<BqI", head)
    data = stream.read(size)
    length = stream.read(4)
    if len(data) < size or len(length) < 4:
        return None
    (size,) = struct.unpack("<I", length)
    diagnostics = stream.read(size)
    if len(diagnostics) < size:
        return None
    return Reply(status, value, data, diagnostics.decode(errors="replace"))


class MCServer:
    """One server process for ``triple``, started on first use and restarted after it died.
    Thread-safe: one batch at a time (a toolchain keeps a server per kind of request)."""

    def __init__(self, binary: Path, triple: str) -> None:
        self.binary = binary
        self.triple = triple
        self.version: str | None = None
        """The LLVM version the server links (known once it started)."""
        self._process: subprocess.Popen[bytes] | None = None
        self._owner = os.getpid()
        """The process whose server ``_process`` is (a forked copy starts its own)."""
        self._ending: weakref.finalize | None = None
        """Ends the process when it is stopped, this object is collected or Python exits."""
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        """The running server's process id."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def assemble(self, texts: Sequence[str]) -> list[Reply | None]:
        """What ``llvm-mc -triple=TRIPLE -filetype=obj`` makes of each text."""
        return self._serve([b"a" + _string(text.encode()) for text in texts])

    def cycles(self, texts: Sequence[str], mcpu: str, iterations: int) -> list[Reply | None]:
        """What ``llvm-mca -mtriple=TRIPLE -mcpu=MCPU -iterations=ITERATIONS`` makes of each text
        (``0 <= iterations < 2**32``)."""
        head = b"c" + struct.pack("<I", iterations) + _string(mcpu.encode())
        return self._serve([head + _string(text.encode()) for text in texts])

    def start(self) -> None:
        """Start the server unless it runs; :class:`ServerUnavailable` if it does not come up.
        The server dies with the thread that starts it (``PR_SET_PDEATHSIG``) or when its stdin
        closes."""
        with self._lock:
            self._running()

    def close(self) -> None:
        """Stop the server (the next request starts a new one)."""
        with self._lock:
            self._stop()

    def _serve(self, requests: list[bytes]) -> list[Reply | None]:
        """The replies to ``requests``; None for a request that is fatal to the server, or that it
        died on twice (a server that dies without a word gets a second chance: it may have been
        killed from outside)."""
        replies: list[Reply | None] = []
        suspect = -1
        with self._lock:
            while len(replies) < len(requests):
                answered = self._exchange(self._running(), requests[len(replies):])
                fatal = bool(answered) and answered[-1].status == _FATAL
                replies += answered[:-1] if fatal else answered
                if len(replies) == len(requests):
                    break
                if fatal or suspect == len(replies):
                    replies.append(None)
                else:
                    suspect = len(replies)
        return replies

    def _exchange(self, process: subprocess.Popen[bytes], requests: list[bytes]) -> list[Reply]:
        """Send ``requests`` and read the replies, up to a fatal one or to the first one missing
        (the server died); a server that answers fewer is stopped. A batch larger than a pipe's
        guaranteed capacity is written by a thread while the replies are read, so that neither
        side waits for the other."""
        assert process.stdin is not None and process.stdout is not None
        payload = b"".join(requests)
        writer = None
        if len(payload) <= select.PIPE_BUF:
            _write(process.stdin, payload)
        else:
            writer = threading.Thread(target=_write, args=(process.stdin, payload), daemon=True)
            writer.start()
        replies: list[Reply] = []
        while len(replies) < len(requests):
            reply = _read_reply(process.stdout)
            if reply is None:
                break
            replies.append(reply)
            if reply.status == _FATAL:
                break
        if len(replies) < len(requests) or replies[-1].status == _FATAL:
            self._stop()
        if writer is not None:
            writer.join()
        return replies

    def _running(self) -> subprocess.Popen[bytes]:
        if self._owner != os.getpid():  # forked: the server (and its pipes) is the parent's
            if self._ending is not None:
                self._ending.detach()
            self._process, self._ending, self._owner = None, None, os.getpid()
        process = self._process
        if process is not None and process.poll() is None:
            return process
        self._stop()
        try:
            process = subprocess.Popen([str(self.binary), self.triple], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       preexec_fn=die_with_parent)
        except OSError as err:
            raise ServerUnavailable(f"the llvm-mc/llvm-mca server {self.binary} cannot start: "
                                    f"{err}") from err
        self._process = process
        self._ending = weakref.finalize(self, _end, process)
        assert process.stdout is not None
        hello = _read_reply(process.stdout)
        if hello is None or hello.status != _OK:
            if hello is None:  # it ended: why, in its own words
                assert process.stderr is not None
                process.wait()
                said = f"{exit_reason(process.returncode)}: {process.stderr.read().decode(errors='replace')}"
            else:
                said = hello.diagnostics
            self._stop()
            raise ServerUnavailable(f"the llvm-mc/llvm-mca server {self.binary} did not start: "
                                    f"{said.strip()}")
        self.version = hello.data.decode()
        return process

    def _stop(self) -> None:
        self._process = None
        if self._ending is not None:
            self._ending()


def _end(process: subprocess.Popen[bytes]) -> None:
    """Kill a server and close its pipes."""
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    process.wait()
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def _write(stream: IO[bytes], payload: bytes) -> None:
    """Write and flush; a server that died is noticed by the reader."""
    with contextlib.suppress(OSError, ValueError):
        stream.write(payload)
        stream.flush()

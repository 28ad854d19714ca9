"""Facts about this machine that every part of the suite records or keys on."""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path


def cache_root() -> Path:
    """optarena's cache folder: ``$OPTARENA_CACHE_DIR``, else ``~/.cache/optarena``."""
    return Path(os.environ.get("OPTARENA_CACHE_DIR", Path.home() / ".cache" / "optarena"))


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` (unique to this process and thread) to write the new
    file to; it replaces ``path`` atomically when the block ends without an error, and is
    removed otherwise, so readers see the old file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity)."""
    return len(os.sched_getaffinity(0))


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` says."""
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def host_cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU feature flags the operating system reports (empty where there is no cpuinfo)."""
    if not cpuinfo.exists():
        return frozenset()
    for line in cpuinfo.read_text().splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_fingerprint(flags: Iterable[str] | None = None) -> str:
    """A short hash of the CPU flags the operating system reports (``""`` where it reports
    none): hosts that share a model name ("AMD EPYC") but expose different instruction sets
    have different fingerprints."""
    flags = sorted(host_cpu_flags() if flags is None else flags)
    return hashlib.sha256(" ".join(flags).encode()).hexdigest()[:12] if flags else ""


def cpu_seconds(pid: int) -> float:
    """The CPU time the threads of process ``pid`` have used so far, in seconds: the Linux
    scheduler's nanosecond counts (``/proc/PID/task/*/schedstat``; tick counts cannot tell a
    process using half a core for 30 ms from an idle one). 0 once the process is gone, and
    where there is no such count."""
    total = 0
    with contextlib.suppress(OSError):
        for thread in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += int((thread / "schedstat").read_text().split()[0])
    return total / 1e9


def wait_until_idle(pids: Iterable[int], *, window_s: float = 0.02, busy_s: float = 0.001,
                    timeout_s: float = 3.0) -> bool:
    """Wait until the processes ``pids`` together use at most ``busy_s`` of CPU time in a
    ``window_s`` (``True``), or ``timeout_s`` has passed (``False``: still busy).

    A kernel timed while another process runs is slowed down, and an idle TVM process is not
    always idle: after each kernel call its thread pool spins (yields in a loop,
    ``TVM_THREAD_POOL_SPIN_COUNT`` times), 0.2 s of a core on these machines when nothing else
    runs and up to 2 s when it shares the core, long enough to slow down all the timings of
    another process meanwhile (up to 3x, measured)."""
    pids = list(pids)
    if not pids:
        return True
    deadline = time.perf_counter() + timeout_s
    before = sum(map(cpu_seconds, pids))
    while True:
        time.sleep(window_s)
        now = sum(map(cpu_seconds, pids))
        if 0 <= now - before <= busy_s:
            return True
        if time.perf_counter() >= deadline:
            return False
        before = now

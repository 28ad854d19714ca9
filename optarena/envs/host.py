"""Facts about this machine that every part of the suite records or keys on."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cache_root() -> Path:
    """optarena's cache folder: ``$OPTARENA_CACHE_DIR``, else ``~/.cache/optarena``."""
    return Path(os.environ.get("OPTARENA_CACHE_DIR", Path.home() / ".cache" / "optarena"))


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

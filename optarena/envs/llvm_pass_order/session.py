"""The optarena side of CompilerGym: a :mod:`~optarena.envs.llvm_pass_order.service` process in
CompilerGym's own virtual environment, driven one JSON line at a time.

Every request has a timeout; a service that hangs or dies is killed (with CompilerGym's own
service process, its child) and started again on the next request, and the request raises
:class:`ServiceError`: one bad pass sequence costs that request, never the search. The service
dies with its owner (:mod:`optarena.envs.isolation`).
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import Any

from optarena.envs.host import cache_root
from optarena.envs.isolation import Child, ChildFailed

SERVICE = Path(__file__).with_name("service.py")


class CompilerGymMissing(RuntimeError):
    """CompilerGym's environment is not set up (``optarena setup compiler-gym`` does it)."""


class ServiceError(RuntimeError):
    """A request failed: CompilerGym's answer, or the service timed out or died."""


def compiler_gym_home() -> Path:
    """Where ``optarena setup compiler-gym`` puts CompilerGym: ``$OPTARENA_COMPILER_GYM_HOME``,
    else ``<cache>/compiler-gym`` (holding ``venv/``, the site data ``site-data/`` and the
    bitcode of generated benchmarks, ``benchmarks/``)."""
    return Path(os.environ.get("OPTARENA_COMPILER_GYM_HOME", cache_root() / "compiler-gym"))


class Session:
    """A running CompilerGym service (an isolated :class:`~optarena.envs.isolation.Child`);
    use as a context manager or call :meth:`close`."""

    def __init__(self, home: Path | None = None, timeout_s: float = 120.0) -> None:
        self.home = home or compiler_gym_home()
        python = self.home / "venv" / "bin" / "python"
        site_data = self.home / "site-data"
        if not python.exists() or not (site_data / "llvm-v0" / ".unpacked").exists():
            raise CompilerGymMissing(
                f"CompilerGym is not set up in {self.home}; run `optarena setup compiler-gym`")
        self.timeout_s = timeout_s
        self.log = self.home / "service.log"
        # in its home: CompilerGym's csmith writes platform.info into the working directory
        self.child = Child([str(python), str(SERVICE)], name="the CompilerGym service",
                           start_timeout_s=timeout_s, log=self.log, cwd=self.home,
                           env={**os.environ, "COMPILER_GYM_SITE_DATA": str(site_data),
                                "OPTARENA_BENCHMARK_CACHE": str(self.home / "benchmarks")})

    def request(self, op: str, timeout_s: float | None = None, **fields: Any) -> dict[str, Any]:
        """Send one request; the answer's fields, or :class:`ServiceError`."""
        self.send(op, **fields)
        return self.receive(timeout_s)

    def send(self, op: str, **fields: Any) -> None:
        """Send one request without waiting (the service starts on it if it is not running);
        :meth:`receive` takes the answer. Other services can work meanwhile."""
        self.child.send({"op": op, **fields})

    def receive(self, timeout_s: float | None = None) -> dict[str, Any]:
        """The answer to the request sent: its fields, or :class:`ServiceError`."""
        try:
            reply = self.child.receive(timeout_s or self.timeout_s)
        except ChildFailed as err:
            raise ServiceError(f"{err} (see {self.log})") from None
        if not reply.get("ok"):
            raise ServiceError(reply.get("error", "no answer"))
        return reply

    def close(self) -> None:
        self.child.close(timeout_s=30)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

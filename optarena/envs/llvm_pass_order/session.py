"""The optarena side of CompilerGym: a :mod:`~optarena.envs.llvm_pass_order.service` process in
CompilerGym's own virtual environment, driven one JSON line at a time.

Every request has a timeout; a service that hangs or dies is killed (with CompilerGym's own
service process, its child) and started again on the next request, and the request raises
:class:`ServiceError`: one bad pass sequence costs that request, never the search.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
from pathlib import Path
from types import TracebackType
from typing import Any

from optarena.envs.host import cache_root

SERVICE = Path(__file__).with_name("service.py")


class CompilerGymMissing(RuntimeError):
    """CompilerGym's environment is not set up (``optarena setup compiler-gym`` does it)."""


class ServiceError(RuntimeError):
    """A request failed: CompilerGym's answer, or the service timed out or died."""


def compiler_gym_home() -> Path:
    """Where ``optarena setup compiler-gym`` puts CompilerGym: ``$OPTARENA_COMPILER_GYM_HOME``,
    else ``<cache>/compiler-gym`` (holding ``venv/`` and the site data ``site-data/``)."""
    return Path(os.environ.get("OPTARENA_COMPILER_GYM_HOME", cache_root() / "compiler-gym"))


class Session:
    """A running CompilerGym service; use as a context manager or call :meth:`close`."""

    def __init__(self, home: Path | None = None, timeout_s: float = 120.0) -> None:
        self.home = home or compiler_gym_home()
        self.python = self.home / "venv" / "bin" / "python"
        self.site_data = self.home / "site-data"
        if not self.python.exists() or not (self.site_data / "llvm-v0" / ".unpacked").exists():
            raise CompilerGymMissing(
                f"CompilerGym is not set up in {self.home}; run `optarena setup compiler-gym`")
        self.timeout_s = timeout_s
        self.log = self.home / "service.log"
        self._process: subprocess.Popen[str] | None = None

    def request(self, op: str, timeout_s: float | None = None, **fields: Any) -> dict[str, Any]:
        """Send one request; the answer's fields, or :class:`ServiceError`."""
        process = self._process if self._process and self._process.poll() is None else self._start()
        assert process.stdin is not None
        try:
            process.stdin.write(json.dumps({"op": op, **fields}) + "\n")
            process.stdin.flush()
        except BrokenPipeError:
            self._kill()
            raise ServiceError(f"the CompilerGym service died (see {self.log})") from None
        reply = self._read(process, timeout_s or self.timeout_s)
        if not reply.get("ok"):
            raise ServiceError(reply.get("error", "no answer"))
        return reply

    def _start(self) -> subprocess.Popen[str]:
        self._kill()
        env = {**os.environ, "COMPILER_GYM_SITE_DATA": str(self.site_data)}
        with self.log.open("a") as log:
            self._process = subprocess.Popen(
                [str(self.python), str(SERVICE)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=log, text=True, env=env, start_new_session=True)
        self._read(self._process, self.timeout_s)  # the ready line
        return self._process

    def _read(self, process: subprocess.Popen[str], timeout_s: float) -> dict[str, Any]:
        assert process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            ready = selector.select(timeout_s)
        line = process.stdout.readline() if ready else ""
        if not line:
            what = "timed out" if not ready else "died"
            self._kill()
            raise ServiceError(f"the CompilerGym service {what} after {timeout_s:.0f} s "
                               f"(see {self.log})")
        return json.loads(line)

    def _kill(self) -> None:
        """Stop the service and everything it started (its process group)."""
        if self._process is not None and self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()
        self._process = None

    def close(self) -> None:
        if self._process is not None and self._process.poll() is None:
            try:
                assert self._process.stdin is not None
                self._process.stdin.write('{"op": "close"}\n')
                self._process.stdin.flush()
                self._process.wait(timeout=30)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                pass
        self._kill()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

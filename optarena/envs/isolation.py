"""Child processes of the suite: isolated, answering in time, never outliving their owner.

Generated code runs in child processes (the tensor environment's measurement workers, the
pass-ordering environment's CompilerGym service), so that a kernel that crashes or hangs takes a
child down, not the environment. :class:`Child` is the one way the suite runs them:

* a child speaks **JSON lines**: one request per line on its stdin, one reply per line on its
  stdout (its first line says it is ready); anything else it prints goes to its stderr;
* every request has a **timeout**; a child that does not answer in time is killed, one that dies
  is reported with the signal or exit code (``SIGSEGV``, ``SIGILL``, ...), and the next request
  starts a fresh one;
* a child runs in its **own process group**, killed as a whole (the compiler service it starts
  goes with it), and is asked by the kernel to die with its parent (``PR_SET_PDEATHSIG``): an
  owner killed with SIGKILL leaves nothing behind.

:func:`serve` is the child's side of the protocol.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import selectors
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

PR_SET_PDEATHSIG = 1


class ChildFailed(RuntimeError):
    """A request got no answer: ``kind`` is ``timeout`` (the child was killed) or ``crash``
    (it died: ``detail`` names the signal or exit code)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind, self.detail = kind, detail


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent thread ends (Linux; a
    no-op elsewhere). Used as ``preexec_fn`` of every child, and by children for themselves."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)


def exit_reason(code: int | None) -> str:
    """``SIGSEGV``, ``exit code 1``, ... for a process's return code."""
    if code is None:
        return "still running"
    if code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


class Child:
    """A JSON-lines child process, started on the first request (see the module docstring)."""

    def __init__(self, argv: Sequence[str], *, name: str, start_timeout_s: float = 300.0,
                 env: Mapping[str, str] | None = None, log: Path | None = None,
                 cwd: Path | None = None) -> None:
        """
        Args:
            argv: the command.
            name: what the child is, for messages.
            start_timeout_s: how long the child may take to say it is ready.
            env: its environment variables (default: this process's).
            log: where its stderr goes (default: this process's stderr).
            cwd: its working directory (default: this process's), for a child whose tools
                write files there.
        """
        self.argv = list(argv)
        self.cwd = cwd
        self.name = name
        self.start_timeout_s = start_timeout_s
        self.env = dict(env) if env is not None else None
        self.log = log
        self.ready: dict[str, Any] = {}
        """The child's first line (what it reported on starting)."""
        self._process: subprocess.Popen[str] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.alive else None  # type: ignore[union-attr]

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the child (if it is not running) and wait until it says it is ready."""
        if not self.alive or not self.ready:
            self.launch()
            self.wait_ready()

    def launch(self) -> None:
        """Start the child without waiting for it (several start at once; then
        :meth:`wait_ready`). A running child is left alone."""
        if self.alive:
            return
        self.kill()
        stderr = self.log.open("a") if self.log is not None else None
        try:
            self._process = subprocess.Popen(
                self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                text=True, env=self.env, cwd=self.cwd, start_new_session=True,
                preexec_fn=die_with_parent)
        finally:
            if stderr is not None:
                stderr.close()

    def wait_ready(self) -> None:
        """Wait for a launched child's first line (what it says of itself when it is ready)."""
        if self.ready:
            return
        try:
            self.ready = self._read(self.start_timeout_s)
        except ChildFailed as err:
            raise ChildFailed(err.kind, f"{self.name} did not start: {err.detail}") from None

    def request(self, message: Mapping[str, Any], timeout_s: float) -> dict[str, Any]:
        """Send one request and return the reply; :class:`ChildFailed` if the child does not
        answer within ``timeout_s`` (it is killed) or dies."""
        self.send(message)
        return self.receive(timeout_s)

    def send(self, message: Mapping[str, Any]) -> None:
        """Send one request (starting the child if needed); :meth:`receive` takes the reply.
        One request at a time: a child answers in order."""
        self.start()
        process = self._process
        assert process is not None and process.stdin is not None
        try:
            process.stdin.write(json.dumps(message) + "\n")
            process.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # it died: receive reports how

    def receive(self, timeout_s: float) -> dict[str, Any]:
        """The reply to the request sent (see :meth:`request` for failures)."""
        return self._read(timeout_s)

    def fileno(self) -> int:
        """The child's reply stream, for :func:`ready` (the child must be running)."""
        assert self._process is not None and self._process.stdout is not None
        return self._process.stdout.fileno()

    def _read(self, timeout_s: float) -> dict[str, Any]:
        process = self._process
        assert process is not None and process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            ready = selector.select(timeout_s)
        line = process.stdout.readline() if ready else ""
        if line:
            return json.loads(line)
        if not ready:
            self.kill()
            raise ChildFailed("timeout", f"{self.name} gave no answer within {timeout_s:g} s; "
                                         "killed")
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(10)
        reason = exit_reason(process.returncode)
        self.kill()
        raise ChildFailed("crash", f"{self.name} died: {reason}")

    def kill(self) -> None:
        """Kill the child and its process group (whatever it started)."""
        process, self._process = self._process, None
        self.ready = {}
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def stop(self) -> None:
        """Ask the child to stop (``{"op": "close"}``) without waiting for it (several stop at
        once; then :meth:`close`)."""
        process = self._process
        if process is not None and process.poll() is None and process.stdin is not None \
                and not process.stdin.closed:  # asked once: the request closes its stdin
            with contextlib.suppress(BrokenPipeError, OSError):
                process.stdin.write(json.dumps({"op": "close"}) + "\n")
                process.stdin.flush()
                process.stdin.close()

    def close(self, timeout_s: float = 10.0) -> None:
        """Ask the child to stop (unless :meth:`stop` did), wait up to ``timeout_s`` for it to
        exit, then kill what is left."""
        self.stop()
        process = self._process
        if process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout_s)
        self.kill()


def close_all(children: Sequence[Child], timeout_s: float = 10.0) -> None:
    """Close ``children`` at once: all are asked to stop before any is waited for, so that their
    exits (a TVM process takes ~0.5 s to exit) overlap."""
    for child in children:
        child.stop()
    for child in children:
        child.close(timeout_s)


def ready(children: Sequence[Child], timeout_s: float) -> list[Child]:
    """Those of ``children`` (each with a request sent) whose reply has come, waiting up to
    ``timeout_s`` for the first: several children work at once, their replies taken as they
    come."""
    with selectors.DefaultSelector() as selector:
        for child in children:
            selector.register(child, selectors.EVENT_READ)
        return [key.fileobj for key, _ in selector.select(timeout_s)]  # type: ignore[misc]


def serve(handle: Callable[[dict[str, Any]], dict[str, Any]], ready: dict[str, Any] | None = None,
          deathsig: int = signal.SIGKILL) -> None:
    """The child's side: answer each request line with ``handle(request)`` until stdin closes
    or a request says ``{"op": "close"}``. ``ready`` is the first line sent; ``deathsig`` is the
    signal this process gets when its parent dies (SIGTERM for one that must clean up). What the
    program prints on stdout goes to stderr (stdout carries the protocol only); an exception in
    ``handle`` answers ``{"ok": False, "error": ...}`` and the loop goes on."""
    die_with_parent(deathsig)
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    out.write(json.dumps({"ok": True, **(ready or {})}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("op") == "close":
            return
        try:
            reply = {"ok": True, **handle(request)}
        except Exception as err:  # the request failed; the child serves on
            reply = {"ok": False, "error": f"{type(err).__name__}: {err}"}
        out.write(json.dumps(reply) + "\n")

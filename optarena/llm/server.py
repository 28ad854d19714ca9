"""A local OpenAI-compatible server (llama-cpp-python's) for a registered model, and a check of
any endpoint.

:class:`LocalServer` starts ``python -m llama_cpp.server`` on 127.0.0.1 with a model of
:mod:`~optarena.llm.models`, waits until ``/v1/models`` answers and stops it on exit (a context
manager). The server dies with the process that started it, and ``wait`` stops it on SIGTERM and
SIGHUP as on Ctrl-C. :func:`check_endpoint` sends one completion to any OpenAI-compatible endpoint and
reports its latency and tokens.
"""

from __future__ import annotations

import importlib.util
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType

from optarena.envs.isolation import die_with_parent
from optarena.llm.client import LLMClient, LLMConfig
from optarena.llm.models import model_file

SERVER_INSTALL = ('pip install -e ".[llm-local]" (llama-cpp-python[server]==0.3.36 builds from '
                  'source in about 5 minutes; set CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF" '
                  "for a portable build)")


class ServerFailed(RuntimeError):
    """The local server is not installed, did not start, or exited."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalServer:
    """llama-cpp-python's server for one registered model on 127.0.0.1."""

    model: str
    port: int = 8080
    threads: int = 2
    context: int = 4096
    ready_timeout_s: float = 180.0
    log: Path | None = None
    """Where the server's output goes (default: discarded)."""

    def __post_init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> str:
        """Start the server and wait until it answers; returns its ``base_url``."""
        if importlib.util.find_spec("llama_cpp") is None:
            raise ServerFailed(f"llama-cpp-python is not installed: {SERVER_INSTALL}")
        path = model_file(self.model)
        output = self.log.open("ab") if self.log else subprocess.DEVNULL
        self._process = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(path), "--model_alias",
             self.model, "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx",
             str(self.context), "--n_threads", str(self.threads)],
            stdout=output, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                where = f"; its output is in {self.log}" if self.log else ""
                raise ServerFailed(f"the server exited with code {self._process.returncode}"
                                   f"{where} (is port {self.port} free?)")
            if self._answers():
                return self.base_url
            time.sleep(0.5)
        self.stop()
        raise ServerFailed(f"the server did not answer within {self.ready_timeout_s:g} s")

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as reply:
                return self.model in {m["id"] for m in json.load(reply)["data"]}
        except (urllib.error.URLError, OSError, ValueError, KeyError):
            return False

    def wait(self) -> int:
        """Serve until the server ends or this process is told to stop (Ctrl-C, SIGTERM from a
        supervisor or ``kill``, SIGHUP from a closed terminal): the server is stopped with it.
        Returns the server's exit code (0 when stopped)."""
        assert self._process is not None, "start() first"

        def stop(signum: int, frame: FrameType | None) -> None:
            raise KeyboardInterrupt

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
        try:
            return self._process.wait()
        except KeyboardInterrupt:
            return 0
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()


@dataclass(frozen=True)
class CheckResult:
    """One completion's text, latency and tokens."""

    text: str
    seconds: float
    prompt_tokens: int
    completion_tokens: int

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds > 0 else 0.0


def check_endpoint(config: LLMConfig) -> CheckResult:
    """Connect (raising ``LLMUnavailable`` with the reason) and time one uncached completion."""
    client = LLMClient(config.model_copy(update={"cache_dir": None}))
    client.connect()
    reply = client.complete([
        {"role": "system", "content": "You answer with JSON only."},
        {"role": "user", "content": 'Pick the fastest loop order for a matmul; answer '
                                    '{"actions": [id]} choosing among ids 3, 7 and 12.'},
    ], schema={"type": "object", "properties": {"actions": {"type": "array",
                                                            "items": {"type": "integer"}}},
               "required": ["actions"]})
    return CheckResult(reply.text, reply.seconds, reply.prompt_tokens, reply.completion_tokens)

"""The CompilerGym side of ``optarena/LlvmPassOrder-v0``: a script run by CompilerGym's own Python.

CompilerGym 0.2.5 needs ``numpy<2``, ``protobuf==3.20.3`` and the old ``gym`` API, which the rest of
the suite cannot share, so it lives in its own virtual environment (``optarena setup
compiler-gym``) and this script is the only code that imports it. It cannot import optarena (its
Python has none of optarena's dependencies); it loads the suite's child-process protocol,
:mod:`optarena.envs.isolation` (standard library only), from its file, and answers one JSON
request per line on stdin with one JSON line:

* ``{"op": "reset", "benchmark": B, "start": S}`` -- ``B`` is ``{"uri":
  "generator://csmith-v0/7"}`` or ``{"file": PATH}`` (C, ``.ll`` or ``.bc``); ``S`` is
  ``"unoptimized"`` (default) or a pipeline, ``"-Oz"``: episodes then start from the program after
  LLVM's own ``-Oz`` pipeline, applied in CompilerGym's service (its session parameter
  ``llvm.apply_baseline_optimizations``: the pipeline its ``IrInstructionCountOz`` baseline runs,
  so the start has exactly that many instructions). That program is kept as a benchmark of its
  own (its bitcode), so going back to the start is a reset, not the pipeline again; the baseline
  observations (``BASELINES``) stay those of the program as loaded. Answers the pass names (the
  action list) and the IR's SHA-1. A generated benchmark's bitcode is kept in
  ``$OPTARENA_BENCHMARK_CACHE`` (by its URI's SHA-1) for every service on the machine, and the
  last 512 benchmarks in memory.
* ``{"op": "apply", "passes": [NAME, ...], "out": PATH | null, "observations": [NAME, ...],
  "ir_sha1": BOOL}`` -- the benchmark after these passes: a state that extends the current one is
  reached by stepping the rest, any other by a reset and one ``multistep``. Writes the bitcode to
  ``out`` (if given) and answers the IR's SHA-1 (``null`` unless ``ir_sha1``, default true),
  whether the last pass changed anything and the named observations.
* ``{"op": "close"}``.

A failure answers ``{"ok": false, "error": TEXT}``; the script keeps serving. Anything CompilerGym
prints goes to stderr: stdout carries the protocol only. Killed with its owner, it closes
CompilerGym's own service first (SIGTERM).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import signal
from collections import OrderedDict
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

KNOWN_BENCHMARKS = 512
"""Benchmarks a service keeps made (their bitcode is in memory; csmith's are a few kB)."""
BASELINES = frozenset(f"{kind}{level}" for kind in ("IrInstructionCount", "ObjectTextSize")
                      for level in ("O0", "O3", "Oz"))
"""CompilerGym's observations of its own pipelines: of the program as loaded, whatever the
start (CompilerGym computes them on the benchmark it was reset to)."""


def _suite(name: str) -> ModuleType:
    """``optarena.envs.<name>`` (standard library only), loaded from its file: there is no
    optarena package here."""
    path = Path(__file__).resolve().parent.parent / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"optarena_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


class Service:
    """One ``llvm-v0`` environment and the benchmark and passes it is at."""

    def __init__(self) -> None:
        import compiler_gym  # noqa: F401 - registers llvm-v0 with gym
        import gym

        self.gym = gym
        self.env: Any = None
        self.loaded: Any = None
        """The benchmark as loaded (its baselines are the anchors)."""
        self.benchmark: Any = None
        """Where episodes start: ``loaded``, or the benchmark of its program after the start."""
        self.applied: list[str] = []
        self.known: OrderedDict[str, Any] = OrderedDict()
        """Benchmarks made so far, by request (and start: ``KEY|START``): CompilerGym makes a
        generator's benchmark anew (runs csmith and clang) each time its URI is reset, so a
        switch back costs only the reset."""
        self.baselines: dict[tuple[str, str], Any] = {}
        """(request, baseline observation) -> its value, for starts other than the program
        as loaded."""
        self.key = ""
        folder = os.environ.get("OPTARENA_BENCHMARK_CACHE")
        self.folder = Path(folder) if folder else None
        self.host = _suite("host")
        """Where the bitcode of generated benchmarks is kept for every service (None: not
        kept): a generator runs once per URI on this machine."""

    def reset(self, benchmark: dict[str, Any], start: str = "unoptimized") -> dict[str, Any]:
        from compiler_gym.datasets import Benchmark
        from compiler_gym.envs.llvm import make_benchmark

        key = json.dumps(benchmark, sort_keys=True)
        made = self.known.get(key)
        kept = None if self.folder is None or "uri" not in benchmark else \
            self.folder / f"{hashlib.sha1(benchmark['uri'].encode()).hexdigest()}.bc"
        if made is None and "file" in benchmark:
            made = make_benchmark(benchmark["file"], copt=benchmark.get("copt"))
        elif made is None and kept is not None and kept.exists():
            made = Benchmark.from_file_contents(benchmark["uri"], kept.read_bytes())
        wanted = benchmark["uri"] if made is None else made
        if self.env is None:
            self.env = self.gym.make("llvm-v0", disable_env_checker=True, benchmark=wanted)
        self.env.reset(benchmark=wanted)
        self.key = key
        self.loaded = self._remember(key, self.env.benchmark)
        if kept is not None and not kept.exists():
            with self.host.replacing(kept) as partial:
                partial.write_bytes(self.loaded.proto.program.contents)
        self.benchmark = self.loaded
        if start != "unoptimized":
            self.benchmark = self.known.get(f"{key}|{start}")
            if self.benchmark is None:  # the pipeline once; its output is the start's benchmark
                self.env.send_param("llvm.apply_baseline_optimizations", start)
                uri = f"benchmark://user-v0/optarena-start{start}-{self.env.observation['IrSha1']}"
                contents = Path(self.env.observation["BitcodeFile"]).read_bytes()
                self.benchmark = Benchmark.from_file_contents(uri, contents)
            self.env.reset(benchmark=self.benchmark)
            self._remember(f"{key}|{start}", self.benchmark)
        self.applied = []
        return {"uri": str(self.loaded.uri), "actions": list(self.env.action_space.names),
                "ir_sha1": self.env.observation["IrSha1"]}

    def _remember(self, key: str, benchmark: Any) -> Any:
        """Keep ``benchmark`` as the most recently used of the known ones."""
        self.known[key] = benchmark
        self.known.move_to_end(key)
        while len(self.known) > KNOWN_BENCHMARKS:
            self.known.popitem(last=False)
        return benchmark

    def apply(self, passes: list[str], out: str | None, observations: list[str],
              ir_sha1: bool = True) -> dict[str, Any]:
        if self.env is None:
            raise RuntimeError("reset a benchmark first")
        names = self.env.action_space.names
        unknown = [p for p in passes if p not in names]
        if unknown:
            raise ValueError(f"unknown passes {unknown}")
        seen = self._baselines([n for n in observations if n in BASELINES])
        if passes[: len(self.applied)] != self.applied:
            self.env.reset(benchmark=self.benchmark)
            self.applied = []
        rest = [names.index(p) for p in passes[len(self.applied):]]  # Python ints, as CompilerGym wants
        wanted = [*(["IrSha1"] if ir_sha1 else []), *(n for n in observations if n not in seen),
                  *(["BitcodeFile"] if out is not None else [])]
        no_effect = False
        if rest:  # the passes and every observation in one request to CompilerGym's service
            self.applied = list(passes)  # set first: a failed step leaves an unknown state
            values, _, done, info = self.env.multistep(rest, observation_spaces=wanted)
            if done or info.get("error_details"):
                self.applied = ["<failed>"]
                raise RuntimeError(f"CompilerGym: {info.get('error_details') or 'episode ended'}")
            no_effect = bool(info.get("action_had_no_effect"))
        else:
            values = [self.env.observation[name] for name in wanted]
        seen.update(zip(wanted, values, strict=True))
        if out is not None:
            shutil.copyfile(seen["BitcodeFile"], out)
        return {"ir_sha1": seen.get("IrSha1"), "no_effect": no_effect,
                "observations": {n: _jsonable(seen[n]) for n in observations}}

    def _baselines(self, names: list[str]) -> dict[str, Any]:
        """The baseline observations ``names`` of the program as loaded; where episodes start
        elsewhere, read once from a reset to it (the environment is then at no passes)."""
        if self.benchmark is self.loaded:
            return {}
        missing = [n for n in names if (self.key, n) not in self.baselines]
        if missing:
            self.env.reset(benchmark=self.loaded)
            self.baselines.update({(self.key, n): self.env.observation[n] for n in missing})
            self.env.reset(benchmark=self.benchmark)
            self.applied = []
        return {n: self.baselines[self.key, n] for n in names}

    def close(self) -> None:
        if self.env is not None:
            self.env.close()


def main() -> None:
    isolation = _suite("isolation")
    service = Service()
    operations = {"reset": service.reset, "apply": service.apply}

    def handle(request: dict[str, Any]) -> dict[str, Any]:
        op = request.pop("op", None)
        if op not in operations:
            raise ValueError(f"unknown op {op!r}")
        return operations[op](**request)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    try:
        isolation.serve(handle, ready={"ready": True}, deathsig=signal.SIGTERM)
    finally:
        service.close()


if __name__ == "__main__":
    main()

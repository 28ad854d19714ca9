"""How ``optarena/LlvmPassOrder-v0`` builds and scores programs: CompilerGym applies the passes,
:mod:`~optarena.envs.llvm_pass_order.measure` scores the IR.

A state's program is the IR CompilerGym's ``llvm-v0`` reaches after its passes; its key is the IR's
SHA-1, so pass sequences that give the same IR are one program (one measurement), or with
``identity="passes"`` a hash of the pass sequence (no IR hashed). Building it asks
the service for the features of the observation, the IR instruction count, the metric's own
observation (``ir_instructions``, ``code_size``) and, where scoring needs it (``cycles``,
``runtime``, checking), the bitcode.

With ``check`` (default: on for ``runtime``, which runs the program anyway; ``verify`` always
checks), a program with a ``main`` is run and must print what the unoptimized program printed and
exit the same way: a miscompile, crash or hang is a failed measurement (``output``, ``crash``,
``timeout``). Anchors: ``-O3`` and ``-Oz``, the compiler's own pipelines.
"""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
import tempfile
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optarena.envs.contract import Failure, Outcome, Program
from optarena.envs.llvm_pass_order.measure import (
    SERVICE_METRICS,
    BitcodeMeasurer,
    MeasureError,
    Run,
)
from optarena.envs.llvm_pass_order.session import ServiceError, Session
from optarena.envs.llvm_pass_order.space import FEATURES, PassState
from optarena.envs.llvm_pass_order.workload import Benchmark, check_start, parse_benchmark
from optarena.envs.lru import LRU

IDENTITIES = ("ir", "passes")
"""What makes two states one program: the IR they reach, or their pass sequence."""
ANCHORS = {"-O3": ("IrInstructionCountO3", "ObjectTextSizeO3"),
           "-Oz": ("IrInstructionCountOz", "ObjectTextSizeOz")}
"""Anchor -> CompilerGym's observation of it for ``ir_instructions`` and ``code_size``."""


@dataclass(frozen=True)
class BuiltIR:
    """What the service said of one IR module (and its bitcode, where scoring needs it)."""

    observations: dict[str, Any]
    bitcode: Path | None


class PassScorer:
    """Builds IR through CompilerGym services and scores it with one metric.

    Up to ``services`` services run at once (started when first needed, by ``start``), each
    holding one problem: episodes of different problems (a vector environment) then step on
    from where they are instead of resetting one service to each problem in turn. A problem
    that needs a service takes one from the less recently used half, one that loaded it before
    if there is one (loading a known benchmark again costs milliseconds, a new one a few hundred):
    with twice as many services as episodes stepped together, no running episode loses its."""

    def __init__(self, new_session: Callable[[], Session], measurer: BitcodeMeasurer,
                 metric: str, observation: str, check: bool, files_kept: int = 1024,
                 identity: str = "ir", services: int = 1, start: str = "unoptimized") -> None:
        if services < 1:
            raise ValueError(f"services must be at least 1, not {services}")
        check_start(start)
        self.new_session = new_session
        self.start = start
        """Where a problem's episodes start (:data:`~optarena.envs.llvm_pass_order.workload.STARTS`):
        its program as loaded, or after ``-Oz``; its reference is that program."""
        self.services = services
        self.sessions: list[Session] = []
        self._holding: OrderedDict[str, Session] = OrderedDict()
        """Problem -> the service it is loaded in, the problem used longest ago first."""
        self._free: list[Session] = []
        """Services holding no problem (their last request failed)."""
        self._seen: dict[Session, set[str]] = {}
        """The problems each service has loaded: it loads them again quickly."""
        self.identity = identity
        self.measurer = measurer
        self.metric = metric
        self.check = check
        self.deterministic = metric != "runtime"
        self.observations = [FEATURES[observation][0], "IrInstructionCount"]
        if metric in SERVICE_METRICS:
            self.observations.append(SERVICE_METRICS[metric][0])
        self.needs_bitcode = metric in ("cycles", "runtime") or check
        self.pass_names: list[str] = []
        self._benchmarks: dict[str, Benchmark] = {}
        self._reference_runs: dict[str, Run | None] = {}
        self._tmp = tempfile.TemporaryDirectory(prefix="optarena-llvm-")
        self._files: LRU[str, Path] = LRU(files_kept)

    # ------------------------------------------------------------------ the service

    def load(self, spec: str) -> Benchmark:
        """Parse ``spec`` and load it into the service (``ValueError`` with the reason)."""
        benchmark = self._benchmarks.get(spec)
        if benchmark is None:
            benchmark = parse_benchmark(spec)
            self._session(benchmark)
            self._benchmarks[spec] = benchmark
        return benchmark

    def _session(self, benchmark: Benchmark) -> Session:
        """The service holding ``benchmark``: its own, a new one, or the one of the problem
        used longest ago, reset to it."""
        session = self._holding.pop(benchmark.spec, None)
        if session is None:
            if self._free:
                session = self._free.pop()
            elif len(self.sessions) < self.services:
                session = self.new_session()
                self.sessions.append(session)
            else:
                session = self._evict_for(benchmark.spec)
            try:
                reply = session.request("reset", benchmark=benchmark.request,
                                        start=self.start)
            except ServiceError as err:
                self._free.append(session)
                raise ValueError(f"cannot load {benchmark.spec}: {err}") from None
            self._seen.setdefault(session, set()).add(benchmark.spec)
            self.pass_names = reply["actions"]
        self._holding[benchmark.spec] = session
        return session

    def _evict_for(self, spec: str) -> Session:
        """The service ``spec`` takes over: among the less recently used half, one that has
        loaded ``spec`` before, else the least recently used."""
        idle = list(self._holding)[: max(len(self._holding) // 2, 1)]
        victim = next((p for p in idle if spec in self._seen[self._holding[p]]), idle[0])
        return self._holding.pop(victim)

    def apply(self, state: PassState, observations: list[str], out: Path | None,
              ir_sha1: bool = True) -> dict[str, Any]:
        """The service's answer for ``state`` (retried once from a fresh reset: the service
        may have died and restarted); ``ir_sha1``: with the IR's SHA-1."""
        benchmark = self.load(state.problem)
        request = _apply_request(state, observations, out, ir_sha1)
        for attempt in range(2):
            try:
                return self._session(benchmark).request("apply", **request)
            except (ServiceError, ValueError) as err:
                self._release(state.problem)
                if attempt:
                    raise ValueError(f"CompilerGym: {err}") from None
        raise AssertionError("unreachable")

    def _release(self, problem: str) -> None:
        """The service holding ``problem`` failed: it holds nothing (reset when next used)."""
        failed = self._holding.pop(problem, None)
        if failed is not None:
            self._free.append(failed)

    def _sessions_for(self, problems: Sequence[str]) -> dict[str, Session] | None:
        """A service of its own holding each of ``problems`` (loaded now where needed), or
        ``None`` where there are not that many services or a problem does not load."""
        if not 1 < len(problems) <= self.services:
            return None
        try:
            held = {problem: self._session(self.load(problem)) for problem in problems}
        except ValueError:
            return None
        if len({id(s) for s in held.values()}) < len(problems) or \
                any(self._holding.get(problem) is not s for problem, s in held.items()):
            return None
        return held

    # ------------------------------------------------------------------ the scorer contract

    def context(self, problem: str) -> dict[str, Any]:
        unoptimized = self.apply(PassState(problem), [], None)["ir_sha1"]
        return {
            "workload_hash": unoptimized[:16],
            "target": {"triple": self.measurer.triple, "mcpu": self.measurer.mcpu,
                       "metric": self.metric, "llc": _version(self.measurer.llc),
                       "compiler_gym": "0.2.5"},
            "settings": {"runs": self.measurer.runs, "check": self.check},
        }

    def compile(self, state: PassState) -> Program | Failure:
        out = self._out(0)
        try:
            reply = self.apply(state, self.observations, out, ir_sha1=self.identity == "ir")
        except ValueError as err:
            return Failure("service", str(err))
        return self._program(state, reply, out)

    def compile_many(self, states: Sequence[PassState]) -> list[Program | Failure]:
        """:meth:`compile` of each state, in order, the states of different problems built at
        once: each problem's in the service holding it, one request in flight per service, so
        the services work in parallel. Where the problems cannot each have a service of their
        own, and for the states of a service that fails, one after another as :meth:`compile`
        (which retries from a fresh reset)."""
        queues: dict[str, deque[int]] = {}
        for index, state in enumerate(states):
            queues.setdefault(state.problem, deque()).append(index)
        found = self._sessions_for(list(queues))
        if found is None:
            return [self.compile(state) for state in states]
        held: dict[str, Session] = found
        built: list[Program | Failure | None] = [None] * len(states)
        flying: dict[str, int] = {}

        def send(problem: str) -> None:
            index = flying[problem] = queues[problem].popleft()
            held[problem].send("apply", **_apply_request(
                states[index], self.observations, self._out(index), self.identity == "ir"))

        for problem in queues:
            send(problem)
        while flying:
            for problem, index in list(flying.items()):
                del flying[problem]
                try:
                    reply = held[problem].receive()
                except ServiceError:
                    self._release(problem)  # its states left go one by one, below
                    continue
                built[index] = self._program(states[index], reply, self._out(index))
                if queues[problem]:
                    send(problem)
        return [done if done is not None else self.compile(states[index])
                for index, done in enumerate(built)]

    def _out(self, slot: int) -> Path | None:
        """Where the service writes the bitcode of a batch's ``slot``-th state (``None``: the
        score needs none)."""
        return Path(self._tmp.name) / f"current{slot}.bc" if self.needs_bitcode else None

    def _program(self, state: PassState, reply: dict[str, Any], out: Path | None) -> Program:
        """``state``'s program from the service's answer (its bitcode, if written to ``out``,
        kept under the program's name)."""
        sha = reply["ir_sha1"] or hashlib.sha1(" ".join(state.passes).encode()).hexdigest()
        bitcode = None
        if out is not None:  # named by problem too: with identity="passes" keys repeat across them
            name = hashlib.sha1(f"{state.problem}\0{sha}".encode()).hexdigest()
            bitcode = Path(self._tmp.name) / f"{name}.bc"
            out.replace(bitcode)
            self._keep(name, bitcode)
        return Program(state.problem, sha, BuiltIR(reply["observations"], bitcode))

    def reference(self, problem: str) -> Program:
        built = self.compile(PassState(problem))
        if isinstance(built, Failure):
            raise ValueError(f"cannot build {problem}: {built.detail}")
        return built

    def score(self, programs: Sequence[Program], bound: Sequence[float | None]) -> list[Outcome]:
        return [self._score_one(program) for program in programs]

    def _score_one(self, program: Program) -> Outcome:
        built: BuiltIR = program.payload
        extras = {"features": built.observations[self.observations[0]],
                  "ir_instructions": int(built.observations["IrInstructionCount"])}
        try:
            score = self._measure(program.problem, built)
        except MeasureError as err:
            return Outcome(None, Failure(err.kind, err.detail), extras=extras)
        return Outcome(score, extras=extras)

    def _measure(self, problem: str, built: BuiltIR) -> float:
        run = None
        reference_run = self.reference_run(problem)
        if reference_run is not None and (self.check or self.metric == "runtime"):
            assert built.bitcode is not None
            run = self.measurer.run(built.bitcode, runs=None if self.metric == "runtime" else 1)
            if self.check:
                self.measurer.check(run, reference_run)
        if self.metric == "cycles":
            assert built.bitcode is not None
            return float(self.measurer.cycles(built.bitcode))
        if self.metric == "runtime":
            if run is None:
                raise MeasureError("run", f"{problem} has no main that runs: use reward='cycles'")
            return run.seconds
        return float(built.observations[SERVICE_METRICS[self.metric][0]])

    def reference_run(self, problem: str) -> Run | None:
        """How the unoptimized program behaves (``None``: it has no ``main`` that runs here)."""
        if problem not in self._reference_runs:
            run = None
            if self.measurer.target == "host" and (self.check or self.metric == "runtime"):
                built = self.reference(problem).payload
                with contextlib.suppress(MeasureError):
                    run = self.measurer.run(built.bitcode, runs=1)
            self._reference_runs[problem] = run
        return self._reference_runs[problem]

    def anchors(self, problem: str) -> dict[str, Outcome]:
        """``-O3`` and ``-Oz``: the scores of the compiler's own pipelines (one that cannot be
        measured is absent)."""
        if self.metric in SERVICE_METRICS:
            index = 0 if self.metric == "ir_instructions" else 1
            names = [observation[index] for observation in ANCHORS.values()]
            reply = self.apply(PassState(problem), names, None)
            return {anchor: Outcome(float(reply["observations"][name]))
                    for anchor, name in zip(ANCHORS, names, strict=True)}
        source = self.reference(problem).payload.bitcode
        found = {}
        for anchor in ANCHORS:
            optimized = Path(self._tmp.name) / f"anchor{anchor}.bc"
            self.measurer.optimize(source, optimized, anchor)
            with contextlib.suppress(MeasureError):
                found[anchor] = Outcome(self._measure(problem, BuiltIR({}, optimized)))
        return found

    def ir_text(self, state: PassState, limit: int) -> str:
        """The IR of ``state`` as text (``llvm-dis``), cut at ``limit`` characters."""
        out = Path(self._tmp.name) / "text.bc"
        self.apply(state, [], out)
        return self.measurer.disassemble(out)[:limit]

    def opcodes(self, state: PassState) -> dict[str, int]:
        """How often each IR opcode occurs in ``state``'s program."""
        counts = self.apply(state, ["InstCountDict"], None)["observations"]["InstCountDict"]
        return {k.removesuffix("Count"): int(v) for k, v in counts.items()
                if k.endswith("Count") and not k.startswith("Total") and v}

    def _keep(self, name: str, bitcode: Path) -> None:
        """Keep a bounded number of bitcode files (the oldest are deleted)."""
        evicted = self._files.put(name, bitcode)
        if evicted is not None and evicted != bitcode:
            evicted.unlink(missing_ok=True)

    def close(self) -> None:
        for session in self.sessions:
            session.close()
        self._tmp.cleanup()



def _apply_request(state: PassState, observations: list[str], out: Path | None,
                   ir_sha1: bool) -> dict[str, Any]:
    """The fields of the service's ``apply`` request for ``state``."""
    return {"passes": list(state.passes), "out": None if out is None else str(out),
            "observations": observations, "ir_sha1": ir_sha1}


def _version(tool: str) -> str:
    done = subprocess.run([tool, "--version"], capture_output=True, text=True, check=False)
    for line in done.stdout.splitlines():
        if "LLVM version" in line:
            return line.split("LLVM version", 1)[1].strip()
    return "unknown"

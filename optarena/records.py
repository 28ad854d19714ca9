"""The records optarena writes to files and reads back, typed and versioned.

* :class:`RunRecord` -- one finished run of ``optarena compare``, a line of ``DIR/results.jsonl``:
  its :class:`RunSpec`, the environment kind's :class:`~optarena.envs.registry.Policy` resolved for
  it, the :class:`Problem` it was measured on, the agent's :class:`SearchResult` (curve,
  :class:`Usage`, best state), software versions and the :class:`Machine`. Written by
  :func:`optarena.experiments.runs.execute`; read by the report, submissions, the leaderboard and
  the backends. :class:`SearchResult`, :class:`Usage` and :class:`CurvePoint` are what agents
  return (:mod:`optarena.agents.base`): one definition, from the agent to the file.
* :class:`TrainEpisode` -- one held-out test episode of ``optarena train``, a line of
  ``DIR/episodes.jsonl``: another schema, so another model and another file name.

Reading (:func:`read_runs`, :func:`read_episodes`) checks each line's ``record_version`` and its
fields; a line that is not a record this code reads raises :class:`RecordError`, one line naming
the file, the line number and what is wrong. A torn line (a writer killed mid-line) is skipped.

**Older records are migrated on read; the files are not rewritten.** Every committed result is
version 1: the run records of ``results/*/results.jsonl`` before the policy moved from the
environment classes into the registry. Version 1 lacks the policy and the usage counters added
since (``planning_s``, ``proposals_uniform``; ``failures`` and ``proposals_reused`` in the
oldest); reading fills the policy from the registry entry of the record's environment kind
resolved for its arguments (what the environment classes answered when the runs were written:
the policy moved unchanged) and the counters with zero (a machine without ``cpu_flags``,
recorded since 2026-12-04, has ``""``; a problem written before ``anchors`` existed has its
``o3_score`` as the ``-O3`` anchor). Version 2 adds the policy; its usage counts planning
seconds, and the names ``mcts``, ``puct`` and ``llm-mcts`` are the model-based tree agents: a
version 1 record of one of them (they measured every node then) reads as ``mcts-measured``, ``puct-
measured`` or ``llm-mcts-measured`` (:data:`MEASURED_SINCE_2`), its label and the numbers unchanged
and its ``run_id``, where it was its spec's, that of the renamed spec, so that a committed race
resumes with its ``config.yaml``, whose agents are renamed the same way. A record's ``tokens`` and
``fallback_rate`` are derived from its usage and recomputed.
``optarena train``'s episodes were unversioned lines of ``results.jsonl`` (version 0); the two committed
training directories were renamed to ``episodes.jsonl`` once, their lines unchanged. Migrating
rather than rewriting keeps the committed files exactly as their runs wrote them (the measured
evidence the READMEs cite by commit) for a migration of a few lines of code.

A record whose agent used more measurements than its budget is not valid: it can be neither
built (so not written) nor read.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    computed_field,
    model_validator,
)

from optarena.envs.registry import Policy, kind

RECORD_VERSION = 2
"""The version of the run records this code writes; it reads :data:`RUN_VERSIONS`."""
MEASURED_SINCE_2 = {"mcts": "mcts-measured", "puct": "puct-measured",
                    "llm-mcts": "llm-mcts-measured"}
"""The tree agents that measured every node, by their names in version 1 records: since
version 2 those names are the model-based agents (:mod:`optarena.agents.planning`)."""
RUN_VERSIONS = (1, 2)
EPISODE_VERSION = 1
"""The version of the training episodes this code writes; it reads 0 (unversioned) too."""

M = TypeVar("M", bound=BaseModel)


class RecordError(ValueError):
    """A line that is not a record this optarena reads (the message names file and line)."""


def summarize(error: ValidationError) -> str:
    """A pydantic error as one line: ``field.path: message; ...``."""
    return "; ".join(": ".join(filter(None, (".".join(map(str, e["loc"])),
                                             e["msg"].removeprefix("Value error, "))))
                     for e in error.errors())


# ---------------------------------------------------------------------- what agents return


INFINITY = ConfigDict(extra="forbid", ser_json_inf_nan="constants")
"""Scores are infinite until a program is measured: written as JSON's ``Infinity``, as Python's
``json`` writes and reads it."""


class CurvePoint(BaseModel):
    """Best score so far after ``measurements`` measurements and ``wall_s`` seconds; of those
    measurements, ``censored`` were stopped early (estimates, never bests)."""

    model_config = INFINITY | ConfigDict(frozen=True)

    measurements: int = Field(ge=0)
    wall_s: float
    best_score: float
    best_improvement: float
    censored: int = 0


class Usage(BaseModel):
    """What a search consumed. Agents count into it in place (``usage.proposals += 1``)."""

    model_config = ConfigDict(extra="forbid")

    measurements: int = Field(0, ge=0)
    censored: int = 0
    """Of the measurements, those stopped early as clearly worse than the best (estimates)."""
    cost_model_calls: int = 0
    """Calls of the environment's cost model (``estimate``): predictions, nothing measured."""
    planning_s: float = 0.0
    """Seconds spent planning on the cost model, LLM replies excluded (model-based agents)."""
    llm_calls: int = 0
    """Completions requested from the endpoint (replies served from the disk cache included)."""
    llm_cached: int = 0
    """Of those, answered from the disk cache."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    llm_cost_usd: float = 0.0
    llm_seconds: float = 0.0
    """Time spent waiting for replies (the cached replies' original time included)."""
    proposals: int = 0
    """Expansions whose action the LLM was asked for (by a call, or from an earlier call's
    ranked list: ``proposals_reused``)."""
    proposals_reused: int = 0
    """Of those, served by an earlier call's proposals."""
    fallbacks: int = 0
    """Of those, answered by a uniform legal action (unparseable, illegal or no answer)."""
    proposals_uniform: int = 0
    """Expansions made uniformly because the round's LLM calls were used up (``llm-mcts``)."""
    failures: dict[str, int] = Field(default_factory=dict)
    """Of the measurements, the failed programs by kind (``timeout``, ``crash``,
    ``wrong_output``, ...; stock MetaSchedule's own failed trials as ``metaschedule``)."""

    @model_validator(mode="before")
    @classmethod
    def _derived(cls, data: Any) -> Any:
        """A written usage carries its derived values too: recomputed, not read."""
        if isinstance(data, Mapping):
            return {k: v for k, v in data.items() if k not in ("tokens", "fallback_rate")}
        return data

    @computed_field  # type: ignore[prop-decorator]
    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @computed_field  # type: ignore[prop-decorator]
    @property
    def fallback_rate(self) -> float:
        return self.fallbacks / self.proposals if self.proposals else 0.0

    def add_completion(self, completion: Any, cost_usd: float) -> None:
        """Count one answered request (an :class:`~optarena.llm.client.Completion`)."""
        self.llm_calls += 1
        self.llm_cached += completion.cached
        self.prompt_tokens += completion.prompt_tokens
        self.completion_tokens += completion.completion_tokens
        self.llm_cost_usd += cost_usd
        self.llm_seconds += completion.seconds


PLANNING_COSTS = {"cost_model_calls": "estimate calls", "planning_s": "planning s",
                  "llm_calls": "LLM calls", "prompt_tokens": "prompt tokens",
                  "llm_seconds": "LLM s"}
"""What a search spends besides measurements, by :class:`Usage` field, with its label."""


def costs_per_measurement(usages: Iterable[Usage]) -> dict[str, float]:
    """Each of :data:`PLANNING_COSTS` summed over ``usages``, over their measurements summed
    (``nan`` without measurements)."""
    usages = list(usages)
    measured = sum(u.measurements for u in usages)
    return {name: sum(getattr(u, name) for u in usages) / measured if measured else math.nan
            for name in PLANNING_COSTS}


class SearchResult(BaseModel):
    """The outcome of one search: the best program found, how it was reached and what it cost."""

    model_config = INFINITY

    agent: str
    seed: int
    budget: int = Field(ge=1)
    best_score: float = math.inf
    """Lowest score reached: latency in seconds, or cycles."""
    best_improvement: float = 0.0
    """Its improvement: speedup over the unscheduled program, or starting over final cycles."""
    best_state: dict[str, Any] | None = None
    best_actions: list[int] = Field(default_factory=list)
    curve: list[CurvePoint] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    wall_s: float = 0.0
    details: dict[str, Any] = Field(default_factory=dict)
    """Agent-specific settings and findings worth recording with the result."""


# ---------------------------------------------------------------------- the run record


class RunSpec(BaseModel):
    """Everything that defines one run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: str
    workload: str
    env_kwargs: dict[str, Any]
    agent: str
    label: str
    agent_config: dict[str, Any]
    seed: int
    budget: int = Field(ge=1)
    seconds: float | None = Field(None, gt=0)
    """Wall-clock the search may take besides, from its start (``None``: no limit): once past,
    it asks for no more measurements (:meth:`optarena.envs.evaluator.Evaluator.set_deadline`)."""

    @property
    def run_id(self) -> str:
        spec = self.model_dump()
        if spec["seconds"] is None:  # the ids of runs without a deadline stay as recorded
            del spec["seconds"]
        canonical = json.dumps(spec, sort_keys=True)  # key order does not matter
        digest = hashlib.sha256(canonical.encode()).hexdigest()[:10]
        return f"{self.label}-s{self.seed}-{digest}"


class Problem(BaseModel):
    """What a run's scores were measured on (``Game.problem()``): the keys every environment
    gives, and the scorer's own context besides (timing settings, tool versions, ...)."""

    model_config = ConfigDict(extra="allow")

    workload: str
    workload_hash: str
    """Identifies the problem's content, whatever its name (a verifier checks it)."""
    reference_score: float = Field(gt=0)
    deterministic: bool
    """Whether scores are a pure function of the program (cycles, counts), not timings."""
    target: Any = None
    """Where scores are measured (a TVM target, an llvm-mca CPU, ...)."""
    anchors: dict[str, float] = Field(default_factory=dict)
    """Scores of well-known alternatives to searching, by name (``-O3``, ``pytorch``)."""
    anchor_notes: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Per anchor, what it was timed with, or why it is absent."""

    @model_validator(mode="before")
    @classmethod
    def _o3_score(cls, data: Any) -> Any:
        """Problems recorded before ``anchors`` existed carry ``-O3`` as ``o3_score``."""
        if isinstance(data, Mapping) and "o3_score" in data and "anchors" not in data:
            o3_score = data["o3_score"]
            return {**{k: v for k, v in data.items() if k != "o3_score"},
                    "anchors": {"-O3": o3_score} if o3_score else {}}
        return data


class Machine(BaseModel):
    """The machine a run was measured on."""

    model_config = ConfigDict(extra="forbid")

    cpu: str
    cpu_flags: str = ""
    """A fingerprint of the CPU's flags (recorded since 2026-12-04): one model name can expose
    different instruction sets."""
    cores: int
    platform: str = ""
    hostname: str = ""


class RunRecord(BaseModel):
    """One finished run (see the module docstring)."""

    model_config = INFINITY

    record_version: int
    """:data:`RECORD_VERSION` when written; older versions are migrated on read."""
    run_id: str
    spec: RunSpec
    env_id: str
    policy: Policy
    problem: Problem
    result: SearchResult
    versions: dict[str, str | None]
    """Python and the installed versions of the packages a result depends on."""
    machine: Machine
    started: float
    finished: float

    @model_validator(mode="before")
    @classmethod
    def _migrate(cls, data: Any) -> Any:
        """Check the version; a version 1 record gets its environment's policy."""
        if not isinstance(data, Mapping):
            return data
        version = data.get("record_version")
        if version not in RUN_VERSIONS:
            raise ValueError(_version_error("record_version", version, RUN_VERSIONS)
                             if version is not None else
                             "no record_version: not a run record of optarena compare"
                             + (" (an optarena train episode?)" if "final" in data else ""))
        if version == 1:
            spec = data.get("spec")
            data = {**data, "record_version": RECORD_VERSION}
            if isinstance(spec, Mapping) and isinstance(spec.get("env_kwargs"), Mapping):
                data["policy"] = kind(str(spec.get("env"))).policy_for(spec["env_kwargs"])
            if isinstance(spec, Mapping) and spec.get("agent") in MEASURED_SINCE_2:
                renamed = {**spec, "agent": MEASURED_SINCE_2[spec["agent"]]}
                data["spec"] = renamed
                if data.get("run_id") == RunSpec(**spec).run_id:  # the id of its spec
                    data["run_id"] = RunSpec(**renamed).run_id
        return data

    @model_validator(mode="after")
    def _within_budget(self) -> RunRecord:
        used, budget = self.result.usage.measurements, min(self.spec.budget, self.result.budget)
        if used > budget:
            raise ValueError(f"run {self.run_id} used {used} measurements, over its budget of "
                             f"{budget}")
        return self


def _version_error(field: str, version: Any, known: Iterable[int]) -> str:
    known = sorted(known)
    newer = isinstance(version, int) and version > known[-1]
    return (f"{field} {version!r}, this optarena reads {known[0]} to {known[-1]}"
            + ("; upgrade optarena" if newer else ""))


# ---------------------------------------------------------------------- training episodes


class TrainEpisode(BaseModel):
    """One held-out test episode of ``optarena train``: a line of ``DIR/episodes.jsonl``."""

    model_config = ConfigDict(extra="forbid")

    record_version: int = EPISODE_VERSION
    seed: int
    problem: str
    policy: Literal["policy", "greedy", "random"]
    """Who played: the trained policy, the greedy rule or uniform legal actions."""
    reference: float
    """The problem's starting score."""
    final: float
    """The episode's final score."""
    anchor: float | None
    """The anchor's score (the environment's baseline anchor, else its first), if any."""
    anchor_name: str | None
    split: str
    machine: Machine | None = None
    """Where it ran (episodes of version 0 did not say)."""
    versions: dict[str, str | None] | None = None
    """Python and the versions of the packages it ran with (likewise)."""

    @model_validator(mode="before")
    @classmethod
    def _migrate(cls, data: Any) -> Any:
        """Check the version; unversioned lines (version 0) are the same fields."""
        if not isinstance(data, Mapping):
            return data
        version = data.get("record_version", 0)
        if version not in (0, EPISODE_VERSION):
            raise ValueError(_version_error("record_version", version, (0, EPISODE_VERSION)))
        if "run_id" in data:
            raise ValueError("a run record of optarena compare, not a training episode")
        return {**data, "record_version": EPISODE_VERSION}


# ---------------------------------------------------------------------- files


def _lines(path: Path) -> Iterator[tuple[int, Any]]:
    """The JSON lines of ``path`` with their line numbers (none if it does not exist); a torn
    line (a killed writer's; the next append starts a new line) is skipped."""
    if not path.exists():
        return
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError:
            continue


def read_records(path: Path) -> list[Any]:
    """The JSON lines of ``path``, untyped (``failures.jsonl``, the rewrites' answers); a torn
    line is skipped. Run records and training episodes are read with :func:`read_runs` and
    :func:`read_episodes`."""
    return [data for _, data in _lines(path)]


def _read(path: Path, model: type[M]) -> list[M]:
    records = []
    for number, data in _lines(path):
        try:
            records.append(model.model_validate(data))
        except ValidationError as err:
            raise RecordError(f"{path}:{number}: not a {model.__name__}: {summarize(err)}") \
                from None
    return records


def read_runs(path: Path) -> list[RunRecord]:
    """The run records of a ``results.jsonl`` (:class:`RecordError` on a line that is not one)."""
    return _read(path, RunRecord)


def read_episodes(path: Path) -> list[TrainEpisode]:
    """The training episodes of an ``episodes.jsonl`` (:class:`RecordError` as
    :func:`read_runs`)."""
    return _read(path, TrainEpisode)


def append_record(path: Path, record: BaseModel | Mapping[str, Any]) -> None:
    """Append one record as a line, flushed to disk (a torn last line is ended first). A record
    JSON cannot hold raises ``TypeError`` (a mapping) or ``ValueError`` (a model) before anything
    is written."""
    line = (record.model_dump_json() if isinstance(record, BaseModel)
            else json.dumps(record)).encode() + b"\n"
    with path.open("a+b") as handle:
        handle.seek(0, os.SEEK_END)
        if handle.tell() > 0:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                handle.write(b"\n")
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())

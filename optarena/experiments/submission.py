"""Submissions: a run's best result in a file anyone can re-verify, and its verification.

* :func:`make_submission` -- the best result of one ``results.jsonl`` run: environment and
  version, the problem (workload, its hash, the constructor arguments that define it), agent and
  settings, measurements used and what the search spent besides them (``usage``: cost-model
  calls, planning seconds, LLM calls and tokens), the solution (a state of the environment), the
  claimed score and improvement, and the machine it was measured on. How the submitter measured
  (timing, device, checks) is recorded under ``settings`` for information only.
* :func:`verify` -- rebuilds the problem on this machine and re-measures the solution **under the
  verifier's settings**: a submission's ``env_kwargs`` may only name what defines the problem
  (its kind's :attr:`~optarena.envs.registry.Policy.problem_kwargs`: the workload's knobs are in
  its name, the metric, the llvm-mca CPU); anything else (an RPC tracker, timing, fewer checker
  states) is refused with the reason, since where and how to measure is the verifier's choice
  (``settings``, the CLI's ``--set``). Each environment kind's policy forces its checks on for
  verification (:meth:`~optarena.envs.registry.Policy.verification_kwargs`). Timed scores are
  re-measured up to ``attempts`` times (default 8), the best counting and the first within the
  tolerance ending it: the claim is the best of a search's measurements, optimistic by
  selection, and timing noise on a shared machine only ever slows a program down, so one slow
  spell must not reject it while no number of attempts makes a program faster than it is.
  Deterministic scores (cycles, counts) are measured once. REJECT when the submission is
  malformed, the workload's hash differs, the solution is not a state of the problem or fails,
  the claimed improvement does not follow from the claimed score, or the measured score is worse
  than claimed beyond the tolerance (default 0.25 for timings, 0 for deterministic scores).

Timing comparisons: on the submitter's CPU (model name and the fingerprint of its flags) and
target the score is compared; elsewhere, and for a submission that does not name them, the
improvement over the reference (measured here), since absolute latencies do not carry over.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from optarena.envs.contract import game
from optarena.envs.registry import kind
from optarena.experiments.runs import machine_info
from optarena.records import Usage, read_runs, summarize

FORMAT = "optarena-submission/2"
TIMING_TOLERANCE = 0.25
"""How much worse than claimed a re-measured timing may be (noise); deterministic scores: 0."""
TIMING_ATTEMPTS = 8
"""At most this many re-measurements of a timed score (the first within the tolerance ends them)."""


class Claim(BaseModel):
    model_config = ConfigDict(extra="forbid")

    score: float = Field(gt=0)
    improvement: float = Field(gt=0)
    reference_score: float = Field(gt=0)


class Solution(BaseModel):
    model_config = ConfigDict(extra="allow")

    state: dict[str, Any]


class Submission(BaseModel):
    """What :func:`verify` reads of a submission (other keys are kept for the leaderboard)."""

    model_config = ConfigDict(extra="allow")

    format: str
    env: str
    env_id: str
    env_kwargs: dict[str, Any] = Field(default_factory=dict)
    workload: str
    workload_hash: str
    solution: Solution
    claimed: Claim
    machine: dict[str, Any] = Field(default_factory=dict)
    target: Any = None
    budget: int = Field(ge=1)
    measurements: int = Field(ge=0)
    usage: Usage | None = None
    """What the search spent (submissions made before it was included have none)."""
    wall_s: float | None = Field(None, ge=0)
    """The search's wall-clock on the submitter's machine, as submitted (shown, not verified:
    CompilerGym's leaderboard reports it so too)."""


def make_submission(out: Path, run_id: str, submitter: str | None = None) -> dict[str, Any]:
    """The submission of run ``run_id`` of the experiment in ``out``."""
    records = [r for r in read_runs(out / "results.jsonl") if r.run_id == run_id]
    if not records:
        raise ValueError(f"no run {run_id!r} in {out / 'results.jsonl'}")
    record = records[-1]
    spec, result, problem = record.spec, record.result, record.problem
    if result.best_state is None:
        raise ValueError(f"run {run_id} found no valid program: nothing to submit")
    defining = record.policy.problem_kwargs
    return {
        "format": FORMAT,
        "submitter": submitter,
        "run_id": run_id,
        "env": spec.env,
        "env_id": record.env_id,
        "env_kwargs": {k: v for k, v in spec.env_kwargs.items() if k in defining},
        "settings": {k: v for k, v in spec.env_kwargs.items() if k not in defining},
        "workload": spec.workload,
        "workload_hash": problem.workload_hash,
        "target": problem.target,
        "agent": spec.agent,
        "label": spec.label,
        "agent_config": spec.agent_config,
        "seed": spec.seed,
        "budget": spec.budget,
        "measurements": result.usage.measurements,
        "wall_s": result.wall_s,
        "usage": result.usage.model_dump(),
        "solution": {"state": result.best_state, "actions": result.best_actions},
        "claimed": {"score": result.best_score, "improvement": result.best_improvement,
                    "reference_score": problem.reference_score},
        "machine": record.machine.model_dump(),
        "versions": record.versions,
    }


@dataclass(frozen=True)
class Verdict:
    """The outcome of :func:`verify`."""

    accepted: bool
    reason: str
    score: float = math.nan
    """The score measured here (latency in seconds, or cycles)."""
    improvement: float = math.nan
    """Its improvement over the reference measured here."""

    def text(self) -> str:
        return f"{'ACCEPT' if self.accepted else 'REJECT'}: {self.reason}"


def check_settings(env: str, settings: Mapping[str, Any]) -> None:
    """``ValueError`` unless every verifier setting says how to measure (not what)."""
    env_kind = kind(env)
    defining = set(env_kind.policy.problem_kwargs) | {env_kind.problem_arg}
    named = sorted(set(settings) & defining)
    if named:
        raise ValueError(f"{named} define the problem (the submission's to say), not how the "
                         "verifier measures it")


def verify(submission: Mapping[str, Any], tolerance: float | None = None,
           attempts: int | None = None, settings: Mapping[str, Any] | None = None) -> Verdict:
    """Re-apply and re-measure a submission on this machine, under the verifier's ``settings``
    (see the module docstring)."""
    if submission.get("format") != FORMAT:
        return Verdict(False, f"not an {FORMAT} file (format {submission.get('format')!r}); "
                              "make it again with `optarena submit`")
    try:
        claim = Submission.model_validate(submission)
        env_kind = kind(claim.env)
    except ValidationError as err:
        return Verdict(False, f"malformed submission: {summarize(err)}")
    except ValueError as err:
        return Verdict(False, str(err))
    if env_kind.env_id != claim.env_id:
        return Verdict(False, f"environment {claim.env!r} is {env_kind.env_id}, not {claim.env_id}")
    policy = env_kind.policy_for(claim.env_kwargs)
    foreign = sorted(set(claim.env_kwargs) - set(policy.problem_kwargs))
    if foreign:
        return Verdict(False, f"env_kwargs {foreign} do not define the problem: where and how "
                              "to measure is the verifier's choice (it defines the problem "
                              f"only by {sorted(policy.problem_kwargs) or 'the workload'})")
    score, improvement = claim.claimed.score, claim.claimed.improvement
    if not math.isclose(improvement, claim.claimed.reference_score / score, rel_tol=1e-6):
        return Verdict(False, f"claimed improvement {improvement:.6g} does not follow from the "
                              f"claimed score {score:.6g} and reference "
                              f"{claim.claimed.reference_score:.6g}")
    verifier = policy.verification_kwargs(settings or {})
    try:
        env = env_kind.make(claim.workload, {**verifier, **claim.env_kwargs})
    except (ValueError, KeyError, TypeError) as err:
        return Verdict(False, f"cannot build workload {claim.workload!r}: {err}")
    try:
        inner = game(env)
        problem = inner.problem(anchors=False)  # a verdict needs none of the anchors
        if problem["workload_hash"] != claim.workload_hash:
            return Verdict(False, f"workload hash {claim.workload_hash} is not the hash of "
                                  f"{claim.workload} ({problem['workload_hash']}): the solution "
                                  "is for another workload")
        deterministic = bool(problem["deterministic"])
        tolerance = ((0.0 if deterministic else TIMING_TOLERANCE) if tolerance is None
                     else tolerance)
        here = machine_info()
        same_machine = deterministic or (
            claim.target == problem["target"]
            and all(claim.machine.get(key) == getattr(here, key) for key in ("cpu", "cpu_flags")))
        reference = problem["reference_score"]

        def within(measured: float) -> bool:
            if same_machine:
                return measured <= score * (1 + tolerance)
            return reference / measured >= improvement / (1 + tolerance)

        measured = _remeasure(inner, problem["workload"], claim.solution.state,
                              attempts or (1 if deterministic else TIMING_ATTEMPTS), within)
        if isinstance(measured, str):
            return Verdict(False, measured)
    finally:
        env.close()
    improvement_here = reference / measured
    if same_machine:
        detail = f"score {measured:.6g} measured, {score:.6g} claimed"
    else:
        detail = (f"improvement {improvement_here:.4g}x measured here, {improvement:.4g}x "
                  f"claimed on {claim.machine.get('cpu')} (another machine: improvements "
                  "compared)")
    ok = within(measured)
    verdict = "within" if ok else "worse than claimed beyond"
    return Verdict(ok, f"{detail}; {verdict} tolerance {tolerance:g}", measured, improvement_here)


def _remeasure(inner: Any, workload: str, data: dict[str, Any], attempts: int,
               enough: Callable[[float], bool]) -> float | str:
    """The best of up to ``attempts`` fresh measurements of the solution state, stopping at the
    first that is ``enough``, or why there is none."""
    problem = data.get("problem") if isinstance(data, dict) else None
    if problem is not None and problem != workload:
        return f"the solution is for {problem!r}, not {workload!r}"
    try:
        state = inner.as_state(data)
    except ValueError as err:
        return f"the solution is not a state of {workload}: {err}"
    scores = []
    for _ in range(attempts):
        (outcome,) = inner.evaluate([state], fresh=True)
        if not outcome.ok:
            return f"the solution fails ({outcome.failure.kind}): {outcome.failure.detail}"
        scores.append(float(outcome.score))
        if enough(scores[-1]):
            break
    return min(scores)

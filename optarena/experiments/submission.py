"""Submissions: a run's best result in a file anyone can re-verify, and the leaderboard of them.

* :func:`make_submission` -- the best result of one ``results.jsonl`` run: environment and
  version, workload and its hash, target, agent and settings, measurements used, the solution
  (schedule decisions or MetaSchedule trace; the rewritten assembly), the claimed score and
  improvement, and the machine it was measured on.
* :func:`verify` -- re-applies the solution to the named workload on this machine and re-measures
  it: tensor programs are compiled, checked against the reference outputs (always on, whatever the
  submission's settings say) and timed ``attempts`` times, the best counting (the claim is the
  best of a search's measurements, so it is optimistic by selection); assembly is checked for
  equivalence with the original block in the emulator and scored by llvm-mca. REJECT when the
  workload's hash differs, the solution does not apply, the output is wrong or inequivalent, the
  claimed improvement does not follow from the claimed score, or the measured score is worse than
  claimed beyond the tolerance.
* :func:`leaderboard` -- verifies submissions and ranks the accepted ones per workload.

Timing comparisons: on the submitter's CPU and target the latency is compared; elsewhere the
speedup over the unscheduled program (measured here) is, since absolute latencies do not carry
over between machines.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optarena.experiments.runs import ENVIRONMENTS, machine_info, make_env, read_records

FORMAT = "optarena-submission/1"
DEFAULT_TOLERANCE = {"tensor_schedule": 0.25, "aarch64_peephole": 0.0, "llvm_pass_order": 0.25}
"""How much worse than claimed a re-measured score may be: timing noise for latencies; llvm-mca
is deterministic (pass ordering scored in cycles, IR instructions or code size: 0)."""


def default_tolerance(submission: dict[str, Any]) -> float:
    """:data:`DEFAULT_TOLERANCE` of the submission's environment and metric."""
    kind = submission["env"]
    if kind == "llvm_pass_order" and submission["env_kwargs"].get("reward", "runtime") != "runtime":
        return 0.0
    return DEFAULT_TOLERANCE[kind]


def make_submission(out: Path, run_id: str, submitter: str | None = None) -> dict[str, Any]:
    """The submission of run ``run_id`` of the experiment in ``out``."""
    records = [r for r in read_records(out / "results.jsonl") if r.get("run_id") == run_id]
    if not records:
        raise ValueError(f"no run {run_id!r} in {out / 'results.jsonl'}")
    record = records[-1]
    spec, result, problem = record["spec"], record["result"], record["problem"]
    if result["best_state"] is None:
        raise ValueError(f"run {run_id} found no valid program: nothing to submit")
    return {
        "format": FORMAT,
        "submitter": submitter,
        "run_id": run_id,
        "env": spec["env"],
        "env_id": record["env_id"],
        "env_kwargs": spec["env_kwargs"],
        "workload": spec["workload"],
        "workload_hash": problem["workload_hash"],
        "target": problem["target"],
        "agent": spec["agent"],
        "label": spec["label"],
        "agent_config": spec["agent_config"],
        "seed": spec["seed"],
        "budget": spec["budget"],
        "measurements": result["usage"]["measurements"],
        "solution": {"state": result["best_state"], "actions": result["best_actions"]},
        "claimed": {"score": result["best_score"], "improvement": result["best_improvement"],
                    "reference_score": problem["reference_score"]},
        "machine": record["machine"],
        "versions": record["versions"],
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


def _env_kwargs(submission: dict[str, Any]) -> dict[str, Any]:
    """The submission's environment settings with correctness checks forced on."""
    kwargs = dict(submission["env_kwargs"])
    if submission["env"] == "tensor_schedule":
        measure = dict(kwargs.get("measure") or {})
        measure["check"] = True
        measure["tolerance"] = min(float(measure.get("tolerance", 1e-3)), 1e-3)
        kwargs["measure"] = measure
        kwargs["target"] = submission["target"]
    if submission["env"] == "llvm_pass_order":
        kwargs["check"] = True
    return kwargs


def _remeasure(inner: Any, kind: str, state: dict[str, Any], attempts: int) -> float | str:
    """The score of the solution ``state`` (tensor programs: the best of ``attempts`` fresh
    timings, as the claim is the best of a search's), or why it cannot be measured."""
    if kind in ("aarch64_peephole", "llvm_pass_order"):
        key, fixed = (("block", inner.fixed_block) if kind == "aarch64_peephole"
                      else ("benchmark", inner.fixed_benchmark))
        if state.get(key) != fixed:
            return f"the solution is for {key} {state.get(key)!r}, not {fixed!r}"
        try:
            return float(inner.set_state(state)["score"])
        except (ValueError, KeyError) as err:
            return f"the solution does not apply: {err}"
    from optarena.envs.tensor_schedule.space import InvalidSchedule, ScheduleState

    try:
        if "trace" in state:
            schedule = inner.space.replay_json(state["trace"])
        else:
            schedule = inner.space.schedule(inner.space.canonical(ScheduleState.from_json(state)))
    except (InvalidSchedule, KeyError, TypeError, ValueError) as err:
        return f"the solution does not apply to {inner.workload.name}: {err}"
    latencies = []
    for _ in range(attempts):
        measured = inner.measurer.measure(schedule.mod, fresh=True)
        if not measured.ok:
            return f"measurement failed ({measured.error_kind}): {measured.error}"
        latencies.append(float(measured.latency_s))
    return min(latencies)


def verify(submission: dict[str, Any], tolerance: float | None = None,
           attempts: int = 3) -> Verdict:
    """Re-apply and re-measure a submission on this machine (see the module docstring)."""
    if submission.get("format") != FORMAT:
        return Verdict(False, f"not an {FORMAT} file (format {submission.get('format')!r})")
    kind = submission.get("env")
    if kind not in ENVIRONMENTS or ENVIRONMENTS[kind][0] != submission.get("env_id"):
        return Verdict(False, f"unknown environment {kind!r} / {submission.get('env_id')!r}")
    tolerance = default_tolerance(submission) if tolerance is None else tolerance
    claimed = submission["claimed"]
    score, improvement = float(claimed["score"]), float(claimed["improvement"])
    if not score > 0 or not math.isclose(improvement, claimed["reference_score"] / score,
                                         rel_tol=1e-6):
        return Verdict(False, f"claimed improvement {improvement:.6g} does not follow from the "
                              f"claimed score {score:.6g} and reference {claimed['reference_score']:.6g}")
    try:
        env = make_env(kind, submission["workload"], _env_kwargs(submission))
    except (ValueError, KeyError) as err:
        return Verdict(False, f"cannot build workload {submission['workload']!r}: {err}")
    try:
        inner = env.unwrapped
        problem = inner.problem()
        if problem["workload_hash"] != submission["workload_hash"]:
            return Verdict(False, f"workload hash {submission['workload_hash']} is not the hash "
                                  f"of {submission['workload']} ({problem['workload_hash']}): the "
                                  "solution is for another workload")
        measured = _remeasure(inner, kind, submission["solution"]["state"], attempts)
        if isinstance(measured, str):
            return Verdict(False, measured)
        here = measured, problem["reference_score"] / measured
    finally:
        env.close()
    same_machine = (submission["machine"].get("cpu") == machine_info()["cpu"]
                    and submission["target"] == problem["target"])
    if same_machine:
        ok = here[0] <= score * (1 + tolerance)
        detail = f"score {here[0]:.6g} measured, {score:.6g} claimed"
    else:
        ok = here[1] >= improvement / (1 + tolerance)
        detail = (f"improvement {here[1]:.4g}x measured here, {improvement:.4g}x claimed on "
                  f"{submission['machine'].get('cpu')} (another machine: improvements compared)")
    verdict = "within" if ok else "worse than claimed beyond"
    return Verdict(ok, f"{detail}; {verdict} tolerance {tolerance:g}", *here)


def leaderboard(paths: list[Path], tolerance: float | None = None) -> str:
    """Verify the submissions and rank the accepted ones per workload (markdown)."""
    accepted: dict[tuple[str, str], list[tuple[dict[str, Any], Verdict]]] = {}
    rejected: list[tuple[Path, str]] = []
    for path in paths:
        try:
            submission = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            rejected.append((path, f"unreadable: {err}"))
            continue
        verdict = verify(submission, tolerance)
        if verdict.accepted:
            key = (submission["env_id"], submission["workload"])
            accepted.setdefault(key, []).append((submission, verdict))
        else:
            rejected.append((path, verdict.reason))
    lines = ["# optarena leaderboard", "",
             f"Verified on {machine_info()['cpu']}. Improvement: speedup over the unscheduled "
             "program, or starting over final llvm-mca cycles, as re-measured here.", ""]
    for (env_id, workload), entries in sorted(accepted.items()):
        lines += [f"## {workload} ({env_id})", "",
                  "| rank | submitter | agent | measurements | improvement (verified) | claimed "
                  "| score (verified) | run |", "|---|---|---|---|---|---|---|---|"]
        entries.sort(key=lambda e: (-e[1].improvement, e[0]["measurements"]))
        for rank, (sub, verdict) in enumerate(entries, start=1):
            lines.append(f"| {rank} | {sub.get('submitter') or '—'} | {sub['label']} "
                         f"| {sub['measurements']} / {sub['budget']} | {verdict.improvement:.3f}x "
                         f"| {sub['claimed']['improvement']:.3f}x | {verdict.score:.6g} "
                         f"| `{sub['run_id']}` |")
        lines.append("")
    if rejected:
        lines += ["## Rejected", ""] + [f"- `{path}`: {reason}" for path, reason in rejected] + [""]
    return "\n".join(lines)

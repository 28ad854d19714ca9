"""``optarena report DIR``: the standings of an experiment, its tests and its curves.

Reads ``DIR/results.jsonl`` and writes ``DIR/report.md``, the self-contained ``DIR/report.html``
(the same content, figures embedded) and ``DIR/curves_<workload>.png``. The statistics are those
of :mod:`optarena.experiments.stats`.

Everything it needs of an environment is in the records (:class:`optarena.records.RunRecord`,
their kind's :class:`~optarena.envs.registry.Policy` included): it imports no environment, nor
TVM (but for the LLM rewrites' table, where there is one: it scores answers with llvm-mca).

Each (environment, workload, budget) gets a section; when an environment has several workloads
at one budget, a summary pools them. Agents are compared with the environment's **baseline**
(the records' ``policy.baseline``, or the one given): an agent (stock MetaSchedule
for tensor programs, greedy for peepholes), or an *anchor*, a fixed score the problem records
(``-O3`` or ``-Oz`` for pass ordering; improvement = reference score / anchor score). A baseline
agent may have a budget of its own (a config's per-agent ``budget``: MetaSchedule given 512
trials, the others 128); the agents of every budget are then compared with its runs.

Tensor workloads also record what a user would run instead, timed in the same run on the same
inputs and threads (:mod:`optarena.envs.tensor_schedule.anchors`): PyTorch eager and, for
matmuls, OpenBLAS (the policy's ``speed_anchors``). Their sections say how the best schedule
found compares with them, and the tables have a column for each (:func:`speed_anchors`). They
record the workload's roofline on the machine too (the policy's ``roofline`` anchor: bytes over
a stream bandwidth and flops over a GEMM peak, both measured in the run), and their sections
give the fraction of it the best schedule and each speed anchor reach.

Definitions (per workload and budget, over the runs of an agent):

* **best** -- the improvement at the budget (speedup over the unscheduled program, starting over
  final llvm-mca cycles, the unoptimized program's score over the optimized one's): geometric
  mean over seeds, with the 95% Student-t interval of the log improvements, exponentiated.
* **rank** -- competition ranks with ties (:func:`~optarena.experiments.stats.tied_ranks`): the
  best agent by geometric mean of those not yet ranked takes the next rank, shared by every other
  unranked agent that a paired Wilcoxon test (runs paired by (workload, seed), Holm-corrected
  over the agents compared with it) does not find different at the 5% level.
* **tests** -- each agent against the baseline: paired two-sided Wilcoxon signed-rank test of
  log(agent / baseline) by (workload, seed), Holm-corrected over the agents in the table; the
  geometric mean of the ratios with its log-scale interval.
* **vs PyTorch eager**, **vs OpenBLAS** -- the anchor's latency over the agent's best latency
  (above 1: the agent's schedule is faster), per run with the anchor that run recorded: geometric
  mean over seeds with its 95% interval, as **best**. Shown where every run recorded the anchor.
* **to baseline** -- measurements until a run first reached the baseline's level (the geometric
  mean of the baseline agent's best at its budget, or the anchor's improvement): Kaplan--Meier
  median, runs that never reach it right-censored at the budget (a finished run that stopped
  early did not reach it within the budget either), the estimated fraction that reached it, and
  the range of the runs that reached it.
* **at equal samples** -- the tests above with each side's best within a checkpoint's number
  of measurements (the baseline agent's too; an anchor's fixed score), Holm-corrected over the
  agents at each checkpoint.
* **to own best** -- measurements until a run found its final best: mean and range.
* **efficiency gain** -- the Reasoning Compiler's sample efficiency, speedup per sample to the
  own best, relative to evolutionary search: ``(best / to own best) / (same for evolutionary)``.
* **wall-clock, LLM** -- seconds, LLM calls and tokens per run (means; cached replies included),
  the fallback rate over all proposals, and the run with the best improvement; the pooled
  standings give measurements and wall-clock seconds per run (per program, as CompilerGym's
  leaderboard does), and a heading the wall-clock each run was given besides its budget.
* **cost** -- what the search spent besides measurements, per measurement: cost-model estimate
  calls, planning seconds (LLM calls excluded), LLM calls, prompt tokens and LLM seconds, each
  summed over the agent's runs and divided by their measurements summed, beside the mean
  measurements and wall-clock seconds per run (:func:`cost_table`; only the costs some agent
  spent).
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from optarena.envs.registry import improvement_text
from optarena.experiments.pages import Document, Table, anchor, cost_cells, figure_png
from optarena.experiments.rewrites import REWRITES, rewrite_table
from optarena.experiments.runs import CompareConfig
from optarena.experiments.stats import (
    ALPHA,
    Interval,
    geometric_mean_interval,
    holm,
    log_t_band,
    paired_ratio_test,
    tied_ranks,
    time_to_reach,
)
from optarena.records import RunRecord, read_records, read_runs

REPORT = "report.md"
REPORT_HTML = "report.html"
ANCHOR = "anchor:"
"""Prefix of a baseline that is one of the problem's anchors rather than an agent."""
BANDS_FROM_SEEDS = 3
"""Curves of agents with at least this many seeds get a confidence band; with fewer, the band of
a t-interval is wider than the plot, so the single runs are drawn instead."""

Key = tuple[str, int]
"""Runs are paired by (workload, seed)."""

STATISTICS = (
    "**Statistics** (`optarena.experiments.stats`). Improvements are ratios, so an agent's best "
    "is the geometric mean over seeds and its 95% interval is a Student-t interval of the log "
    "improvements, exponentiated (asymmetric). Each agent is compared with the baseline by a "
    "paired two-sided Wilcoxon signed-rank test of log(agent / baseline), runs paired by "
    "(workload, seed): exact null distribution without ties, the exact sign-flip permutation "
    "distribution with ties (up to 13 pairs), the normal approximation beyond; pairs with equal "
    "results are dropped. p-values are Holm-corrected over the agents in a table. With n pairs "
    "the smallest possible p is 2/2^n, so two seeds alone never separate agents: the summaries "
    "pool an environment's workloads. Ranks have ties: the best unranked agent takes the next "
    "rank and shares it with every unranked agent not significantly different from it (Holm, 5%). "
    "At equal samples, the same test with both sides' best within a checkpoint's number of "
    "measurements. "
    "Measurements to reach the baseline are Kaplan-Meier estimates, runs that never reach it "
    "right-censored at the budget: the median, or > budget when fewer than half are estimated "
    "to reach it, the estimated fraction reaching it within the budget, and the range of the "
    "runs that reached it.")


def best_curve(record: RunRecord, budget: int) -> np.ndarray:
    """Best improvement after 1..budget measurements (``nan`` before the first curve point; a
    point at 0 measurements, the starting state's known score, holds from the start)."""
    values = np.full(budget, np.nan)
    for point in record.result.curve:
        if point.measurements <= budget:
            values[max(point.measurements - 1, 0):] = point.best_improvement
    return values


def wall_curve(record: RunRecord, times: np.ndarray) -> np.ndarray:
    """Best improvement at each of ``times`` (seconds since the run started): ``nan`` before its
    first curve point, the final best after it ended."""
    curve = record.result.curve
    walls = np.array([point.wall_s for point in curve])
    values = np.array([point.best_improvement for point in curve])
    index = np.searchsorted(walls, times, side="right") - 1
    return np.where(index >= 0, values[np.maximum(index, 0)], np.nan)


def samples_to_reach(record: RunRecord, level: float) -> float:
    """Measurements until the run's best improvement first reached ``level`` (``nan``: never)."""
    for point in record.result.curve:
        if point.best_improvement >= level * (1 - 1e-9):
            return float(point.measurements)
    return math.nan


def run_key(record: RunRecord) -> Key:
    """The (workload, seed) a run is paired by."""
    return record.spec.workload, record.spec.seed


@dataclass
class Row:
    """One agent's runs on a workload (or, in a summary, on several); its estimates are computed
    once, after :func:`group` has gathered the runs."""

    label: str
    agent: str
    runs: list[RunRecord]

    def improvements(self) -> dict[Key, float]:
        """Best improvement at the budget per (workload, seed)."""
        return {run_key(r): r.result.best_improvement for r in self.runs}

    @cached_property
    def best(self) -> Interval:
        return geometric_mean_interval([r.result.best_improvement for r in self.runs])

    @cached_property
    def to_own_best(self) -> list[float]:
        """Per run, the measurements until it found its final best."""
        return [samples_to_reach(r, r.result.best_improvement) for r in self.runs]

    def efficiency(self) -> float:
        """Best improvement (geometric mean) per sample to the own best (mean)."""
        samples = float(np.mean(self.to_own_best))
        return self.best.center / samples if samples else math.nan

    def wall_s(self) -> float:
        return float(np.mean([r.result.wall_s for r in self.runs]))

    def usage(self, key: str) -> float:
        return float(np.mean([getattr(r.result.usage, key) for r in self.runs]))

    def fallback_rate(self) -> float:
        proposals = sum(r.result.usage.proposals for r in self.runs)
        fallbacks = sum(r.result.usage.fallbacks for r in self.runs)
        return fallbacks / proposals if proposals else math.nan

    def best_run(self) -> RunRecord:
        return max(self.runs, key=lambda r: r.result.best_improvement)

    @property
    def budget(self) -> int:
        return self.runs[0].spec.budget


def group(records: list[RunRecord]) -> dict[tuple[str, str, int], list[Row]]:
    """(environment id, workload, budget) -> one row per agent label, in order of appearance."""
    rows: dict[tuple[str, str, int], dict[str, Row]] = defaultdict(dict)
    for record in records:
        spec = record.spec
        key = (record.env_id, spec.workload, spec.budget)
        row = rows[key].setdefault(spec.label, Row(spec.label, spec.agent, []))
        row.runs.append(record)
    return {key: list(by_label.values()) for key, by_label in rows.items()}


def anchor_improvement(record: RunRecord, name: str) -> float | None:
    """The improvement of the problem's anchor ``name`` in this run's record, if recorded."""
    score = record.problem.anchors.get(name)
    return record.problem.reference_score / score if score else None


def speed_anchors(runs: Iterable[RunRecord]) -> dict[str, str]:
    """The anchors that are what a user would run instead (the policy's ``speed_anchors``) and
    that every one of ``runs`` recorded, with the label the report gives them."""
    runs = list(runs)
    labels = runs[0].policy.speed_anchors if runs else {}
    return {name: label for name, label in labels.items()
            if all(name in r.policy.speed_anchors and anchor_improvement(r, name) is not None
                   for r in runs)}


def speed_against(runs: Iterable[RunRecord], name: str) -> Interval:
    """The anchor's latency over each run's best latency (the run's best improvement over the
    anchor's): geometric mean with its 95% interval."""
    return geometric_mean_interval([r.result.best_improvement / anchor_improvement(r, name)
                                    for r in runs])


@dataclass(frozen=True)
class Reference:
    """What the agents of a workload are compared with: the runs of a baseline agent, or an
    anchor of the problem (a fixed score per record)."""

    name: str
    """The baseline agent's label, or the anchor's name (``-O3``)."""
    level: float
    """The improvement to reach: the baseline agent's geometric-mean best, or the anchor's."""
    row: Row | None
    """The baseline agent's runs (``None`` for an anchor)."""

    def paired(self, row: Row) -> dict[Key, float]:
        """The baseline's improvement for each (workload, seed) to pair ``row``'s runs with: the
        baseline agent's runs, or the anchor recorded with each of ``row``'s runs."""
        if self.row is not None:
            return self.row.improvements()
        return {run_key(r): value for r in row.runs
                if (value := anchor_improvement(r, self.name)) is not None}

    def describe(self) -> str:
        if self.row is None:
            return f"the `{self.name}` anchor"
        return (f"`{self.name}`" + (f" (agent `{self.row.agent}`)" if self.row.agent != self.name
                                   else "") + f" at budget {self.row.budget}")


def reference(rows: list[Row], override: str | None = None,
              others: Iterable[Row] = ()) -> Reference | str:
    """The baseline of a workload's ``rows`` -- ``override``, else the one their records'
    policy names (an agent, or ``anchor:NAME``) -- or why there is none. A baseline agent that
    did not run at ``rows``' budget is taken from ``others`` (the workload's rows at other
    budgets, e.g. MetaSchedule given 512 trials), at its largest."""
    spec = override or rows[0].runs[0].policy.baseline
    if spec.startswith(ANCHOR):
        name = spec.removeprefix(ANCHOR)
        values = [v for row in rows for r in row.runs
                  if (v := anchor_improvement(r, name)) is not None]
        if not values:
            return (f"the baseline is the `{name}` anchor, but the records hold no `{name}` score "
                    "(written before problems recorded anchors?)")
        return Reference(name, geometric_mean_interval(values).center, None)
    row = _baseline_row(rows, spec) or _baseline_row(sorted(others, key=lambda r: -r.budget), spec)
    if row is None:
        return f"the baseline agent `{spec}` did not run on this workload"
    return Reference(row.label, row.best.center, row)


def _baseline_row(rows: Iterable[Row], spec: str) -> Row | None:
    """The first of ``rows`` labelled ``spec``, else the first of agent ``spec``."""
    rows = list(rows)
    return next((r for r in rows if r.label == spec), None) or \
        next((r for r in rows if r.agent == spec), None)


# ---------------------------------------------------------------------- formatting


def _num(value: float) -> str:
    """Three significant digits or so, without exponents (improvements, ratios)."""
    if math.isnan(value):
        return "—"
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.1f}" if abs(value) >= 10 \
        else f"{value:.2f}"


def _fmt(value: float, digits: int = 1) -> str:
    return "—" if math.isnan(value) else f"{value:.{digits}f}"


def interval_text(interval: Interval) -> str:
    """``centerx [low, high]``, the bounds left out for a single run."""
    if math.isnan(interval.center):
        return "—"
    body = f"{_num(interval.center)}x"
    return body if math.isnan(interval.low) else f"{body} [{_num(interval.low)}, {_num(interval.high)}]"


def _mean_range(values: list[float]) -> str:
    """``mean (min-max)``, the range left out for a single value."""
    mean = f"{np.mean(values):.1f}"
    return mean if len(values) < 2 else f"{mean} ({min(values):g}-{max(values):g})"


def _latency(seconds: float) -> str:
    """A latency in ms, or in µs below 1 ms."""
    return f"{seconds * 1e6:.3g} µs" if seconds < 1e-3 else f"{seconds * 1e3:.3g} ms"


def _p(value: float) -> str:
    return "—" if math.isnan(value) else "<0.001" if value < 0.001 else f"{value:.3f}"


def _with_run_counts(counts: Counter[str]) -> str:
    """``label (n runs); ...`` in first-seen order."""
    return "; ".join(f"{label} ({n} run{'s' * (n > 1)})" for label, n in counts.items())


def provenance(records: list[RunRecord]) -> str:
    """Where and with what the runs were measured: each machine and each version set, with its
    count of runs when the runs do not all share it (a race resumed on another machine)."""
    def counted(labels: list[str], what: str) -> str:
        counts = Counter(labels)
        if len(counts) == 1:
            return f"{what}: {labels[0]}."
        return f"{what}s: {_with_run_counts(counts)}."

    # Hosts sharing a model name ("AMD EPYC") can expose different instruction sets: the LLVM
    # target derived from the OS's flags tells them apart where a run has one, the fingerprint
    # of the flags (recorded since 2026-12-04) where runs of one model name differ in it.
    fingerprints: defaultdict[str, set[str]] = defaultdict(set)
    for record in records:
        fingerprints[record.machine.cpu].add(record.machine.cpu_flags)

    def machine(record: RunRecord) -> str:
        cpu, flags = record.machine.cpu, record.machine.cpu_flags
        target = record.problem.target
        mcpu = target.get("mcpu") if isinstance(target, dict) else None
        details = [f"LLVM {mcpu}"] if mcpu else []
        if flags and len(fingerprints[cpu]) > 1:
            details.append(f"flags {flags}")
        named = f"{cpu} ({', '.join(details)})" if details else cpu
        return f"{named}, {record.machine.cores} cores"

    machines = [machine(r) for r in records]
    versions = [f"optarena {r.versions.get('optarena')}, TVM {r.versions.get('apache-tvm')}, "
                f"Python {r.versions.get('python')}" for r in records]
    return f"{counted(machines, 'Machine')} {counted(versions, 'Version')}"


# ---------------------------------------------------------------------- tables


def _reach_cell(runs: Iterable[RunRecord], levels: dict[str, float], budget: int) -> str:
    """Kaplan--Meier median measurements to each run's workload level, the fraction estimated
    to reach it within the budget, and the range of the runs that reached it."""
    times, reached = [], []
    for run in runs:
        level = levels.get(run.spec.workload, math.nan)
        if math.isnan(level):
            continue
        hit = samples_to_reach(run, level)
        times.append(budget if math.isnan(hit) else hit)
        reached.append(not math.isnan(hit))
    if not times:
        return "—"
    estimate = time_to_reach(times, reached)
    median = f"> {budget}" if math.isnan(estimate.median) else f"{estimate.median:g}"
    hits = [t for t, r in zip(times, reached, strict=True) if r]
    spread = f"; {min(hits):g}-{max(hits):g}" if hits and min(hits) < max(hits) else ""
    return f"{median} ({estimate.reached:.0%}{spread})"


def _ranked(rows: list[Row]) -> list[tuple[int, Row]]:
    """``rows`` with their :func:`~optarena.experiments.stats.tied_ranks`, in rank order."""
    ranks = tied_ranks({row.label: row.improvements() for row in rows}, ALPHA)
    order = list(ranks)
    return sorted(((ranks[row.label], row) for row in rows), key=lambda e: order.index(e[1].label))


def agent_table(rows: list[Row], budget: int, ref: Reference | None) -> Table:
    """One workload's standings: a row per agent in rank order (ranks tied where the
    difference is not significant)."""
    evolutionary = next((row for row in rows if row.agent == "evolutionary"), None)
    levels = {rows[0].runs[0].spec.workload: ref.level} if ref else {}
    against = speed_anchors(r for row in rows for r in row.runs)
    table = Table(["rank", "agent", "seeds", "best: geo. mean [95% CI]",
                   *(f"vs {label}" for label in against.values()),
                   f"to {ref.name if ref else 'baseline'}: KM median (reached; range)",
                   "to own best: mean (range)", "efficiency gain", "wall-clock s", "LLM calls",
                   "tokens", "fallback rate", "best run"])
    for rank, row in _ranked(rows):
        gain = row.efficiency() / evolutionary.efficiency() if evolutionary else math.nan
        llm = row.usage("llm_calls")
        table.rows.append([
            str(rank), row.label, str(len(row.runs)), interval_text(row.best),
            *(interval_text(speed_against(row.runs, name)) for name in against),
            _reach_cell(row.runs, levels, budget) if ref else "—", _mean_range(row.to_own_best),
            _fmt(gain, 2), _fmt(row.wall_s(), 0), _fmt(llm, 1) if llm else "—",
            _fmt(row.usage("tokens"), 0) if llm else "—", _fmt(row.fallback_rate(), 2),
            f"`{row.best_run().run_id}`"])
    return table


def cost_table(rows: list[Row]) -> Table | None:
    """What each agent's search spent besides measurements, per measurement (see **cost** in
    the module docstring); ``None`` when no agent spent any of it."""
    headers, cells = cost_cells([[r.result.usage for r in row.runs] for row in rows])
    if not headers:
        return None
    table = Table(["agent", "measurements", "wall-clock s", *headers])
    for row, costs in zip(rows, cells, strict=True):
        table.rows.append([row.label, _fmt(row.usage("measurements")), _fmt(row.wall_s(), 0),
                           *costs])
    return table


def comparison_table(rows: list[Row], ref: Reference) -> Table:
    """Each agent (but the baseline agent) against the baseline: paired Wilcoxon signed-rank
    tests of log(agent / baseline) by (workload, seed), Holm-corrected over the agents."""
    compared = [row for row in rows if row is not ref.row]
    tests = [paired_ratio_test(row.improvements(), ref.paired(row)) for row in compared]
    adjusted = holm([test.p_value for test in tests])
    table = Table(["agent", "pairs", f"agent / {ref.name}: geo. mean [95% CI]", "W", "p",
                   "Holm p", "test"])
    for row, test, p in zip(compared, tests, adjusted, strict=True):
        table.rows.append([row.label, str(test.pairs), interval_text(test.ratio), _fmt(test.statistic),
                           _p(test.p_value), _p(p), test.method])
    return table


def checkpoint_table(rows: list[Row], budget: int, checkpoints: list[int]) -> Table:
    """Best improvement within each checkpoint's number of measurements (geometric mean with its
    95% log-scale interval) and, in brackets, the agent's rank there (tied where a paired test
    does not separate agents, as **rank**)."""
    marks = [m for m in checkpoints if 1 <= m <= budget]
    table = Table(["agent", *(f"best within {m} (rank)" for m in marks)])
    bests = [{row.label: within(row, m) for row in rows} for m in marks]
    ranks = [tied_ranks(best, ALPHA) for best in bests]
    for row in rows:
        cells = [f"{interval_text(geometric_mean_interval(list(best[row.label].values())))} "
                 f"(#{rank[row.label]})" for best, rank in zip(bests, ranks, strict=True)]
        table.rows.append([row.label, *cells])
    return table


def within(row: Row, measurements: int) -> dict[Key, float]:
    """Best improvement within ``measurements`` per (workload, seed)."""
    return {run_key(r): float(best_curve(r, r.spec.budget)[measurements - 1])
            for r in row.runs if measurements <= r.spec.budget}


def checkpoint_tests_table(rows: list[Row], ref: Reference, budget: int,
                           checkpoints: list[int]) -> Table:
    """Each agent against the baseline at equal samples: the best within each checkpoint's
    number of measurements on both sides (an anchor: its fixed score), paired Wilcoxon
    signed-rank tests, Holm-corrected over the agents at each checkpoint."""
    marks = [m for m in checkpoints if 1 <= m <= budget]
    compared = [row for row in rows if row is not ref.row]
    columns: list[list[str]] = []
    for mark in marks:
        baseline = within(ref.row, mark) if ref.row else None
        tests = [paired_ratio_test(within(row, mark),
                                   ref.paired(row) if baseline is None else baseline)
                 for row in compared]
        adjusted = holm([test.p_value for test in tests])
        columns.append([f"{interval_text(test.ratio)}, p {_p(p)} (n={test.pairs})"
                        for test, p in zip(tests, adjusted, strict=True)])
    table = Table(["agent", *(f"within {m}: agent / {ref.name}, Holm p" for m in marks)])
    for index, row in enumerate(compared):
        table.rows.append([row.label, *(column[index] for column in columns)])
    return table


def pool(sections: list[tuple[list[Row], Reference]]) -> tuple[list[Row], Reference]:
    """The workloads of one environment and budget as one: a row per agent label with the runs
    of every workload, and the baseline's runs pooled likewise (its level is per workload)."""
    pooled: dict[str, Row] = {}
    for rows, _ in sections:
        for row in rows:
            pooled.setdefault(row.label, Row(row.label, row.agent, [])).runs.extend(row.runs)
    first = sections[0][1]
    base_row = None
    if first.row is not None:  # the pooled baseline: one of the rows, or runs at another budget
        base_row = pooled.get(first.row.label) if any(first.row in rows for rows, _ in sections) \
            else Row(first.row.label, first.row.agent,
                     [run for _, ref in sections if ref.row for run in ref.row.runs])
    return list(pooled.values()), Reference(first.name, math.nan, base_row)


def summary_tables(sections: list[tuple[list[Row], Reference]], budget: int,
                   checkpoints: list[int] | None = None) -> list[Table]:
    """The workloads of one environment and budget pooled (:func:`pool`): standings (ranks with
    ties over (workload, seed) pairs) and each agent's test against the baseline; with
    ``checkpoints``, also the pooled :func:`checkpoint_table` and :func:`checkpoint_tests_table`."""
    pooled, ref = pool(sections)
    levels = {rows[0].runs[0].spec.workload: r.level for rows, r in sections}
    against = speed_anchors(r for row in pooled for r in row.runs)
    standings = Table(["rank", "agent", "runs", "workloads",
                       "best: geo. mean over runs [95% CI]",
                       *(f"vs {label}" for label in against.values()),
                       f"to {ref.name}: KM median (reached; range)", "measurements per run",
                       "wall-clock s per run"])
    for rank, row in _ranked(pooled):
        workloads = {r.spec.workload for r in row.runs}
        standings.rows.append([str(rank), row.label, str(len(row.runs)), str(len(workloads)),
                               interval_text(row.best),
                               *(interval_text(speed_against(row.runs, name)) for name in against),
                               _reach_cell(row.runs, levels, budget),
                               _fmt(row.usage("measurements")), _fmt(row.wall_s(), 1)])
    tables = [standings, comparison_table(pooled, ref)]
    if checkpoints:
        tables += [checkpoint_table(pooled, budget, checkpoints),
                   checkpoint_tests_table(pooled, ref, budget, checkpoints)]
    return tables


# ---------------------------------------------------------------------- curves


def _improvement_axis(value: float, _: int) -> str:
    return f"{value:g}x"


def plot_curves(rows: list[Row], budget: int, title: str, ref: Reference | None = None) -> Figure:
    """Best-so-far improvement on a log axis against measurements (left) and wall-clock seconds
    (right): per agent the geometric mean over seeds, with the 95% band of the log improvement
    for agents with :data:`BANDS_FROM_SEEDS` seeds or more, the single runs for those with
    fewer; the baseline's level dashed."""
    figure = Figure(figsize=(11, 4.6), layout="constrained")
    by_samples, by_time = figure.subplots(1, 2, sharey=True)
    x = np.arange(1, budget + 1)
    end = max(r.result.wall_s for row in rows for r in row.runs)
    times = np.linspace(0.0, end, 400)
    drawn: list[np.ndarray] = []
    for index, row in enumerate(rows):
        color = f"C{index % 10}"
        for axes, grid, curves in (
                (by_samples, x, np.array([best_curve(r, budget) for r in row.runs])),
                (by_time, times, np.array([wall_curve(r, times) for r in row.runs]))):
            band = log_t_band(curves)
            center = np.where(band.n == len(row.runs), band.center, np.nan)  # every run started
            axes.step(grid, center, where="post", color=color, linewidth=1.8,
                      label=f"{row.label} (n={len(row.runs)})")
            if len(row.runs) >= BANDS_FROM_SEEDS:
                axes.fill_between(grid, band.low, band.high, where=band.n == len(row.runs),
                                  step="post", color=color, alpha=0.12, linewidth=0)
                drawn.append(center)
            else:
                for curve in curves:
                    axes.step(grid, curve, where="post", color=color, linewidth=0.7, alpha=0.45)
                drawn += [center, *curves]
    if ref is not None:
        for axes in (by_samples, by_time):
            axes.axhline(ref.level, color="black", linestyle="--", linewidth=1,
                         label=f"baseline: {ref.name}")
        drawn.append(np.array([ref.level]))
    values = np.concatenate([v[np.isfinite(v) & (v > 0)] for v in drawn])
    by_samples.set_yscale("log")
    if len(values):
        by_samples.set_ylim(values.min() / 1.15, values.max() * 1.15)
    narrow = len(values) and values.max() / values.min() < 4  # 1-2-5 ticks would be too few
    by_samples.yaxis.set_major_locator(MaxNLocator(6) if narrow else LogLocator(subs=(1.0, 2.0, 5.0)))
    by_samples.yaxis.set_major_formatter(FuncFormatter(_improvement_axis))
    by_samples.yaxis.set_minor_formatter(NullFormatter())
    by_samples.xaxis.set_major_locator(MaxNLocator(integer=True))
    by_samples.set_xlim(1, budget)
    by_samples.set_xlabel("measurements")
    by_samples.set_ylabel("best improvement (log scale)")
    by_time.set_xlim(0, end)
    by_time.set_xlabel("wall-clock s")
    for axes in (by_samples, by_time):
        axes.grid(alpha=0.35)
        axes.grid(alpha=0.1, which="minor")
    figure.suptitle(title, fontsize=11)
    handles, labels = by_samples.get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 5),
                  fontsize=8, frameon=False)
    return figure


# ---------------------------------------------------------------------- the report


def _timed_with(note: dict[str, Any]) -> str:
    """What an anchor was timed with (its ``anchor_notes`` entry): torch and its BLAS, or the
    BLAS threadpoolctl reported, and the threads."""
    if "torch" in note:
        what = f"torch {note['torch']}, {note.get('torch_blas')}"
    else:
        blas = next((lib for lib in note.get("libraries", []) if lib.get("user_api") == "blas"), {})
        what = " ".join(str(blas[key]) for key in ("internal_api", "version", "architecture")
                        if blas.get(key))
    return f"{what}, {note['threads']} threads" if "threads" in note else what


def _speed_text(rows: list[Row]) -> str | None:
    """The workload's :func:`speed_anchors` and how the best schedule found compares with them
    (``None`` when its runs did not all record one)."""
    runs = [r for row in rows for r in row.runs]
    names = speed_anchors(runs)
    if not names:
        return None
    best = max(runs, key=lambda r: r.result.best_improvement)
    best_s = best.problem.reference_score / best.result.best_improvement
    timed, verdicts = [], []
    for name, label in names.items():
        latencies = [r.problem.anchors[name] for r in runs]
        details = [_timed_with(best.problem.anchor_notes.get(name, {}))]
        if max(latencies) > min(latencies) * 1.0001:
            details.append(f"{_latency(min(latencies))} to {_latency(max(latencies))} over the runs")
        latency = _latency(geometric_mean_interval(latencies).center)
        shown = ", ".join(filter(None, details))
        timed.append(f"{label} {latency}" + (f" ({shown})" if shown else ""))
        ratio = best.problem.anchors[name] / best_s
        verdicts.append(f"{_num(ratio)}x faster than {label}" if ratio >= 1
                        else f"{_num(1 / ratio)}x slower than {label}")
    return (f"What a user would run instead, timed in the same runs on the same inputs and "
            f"threads: {'; '.join(timed)}. The best schedule found, {_latency(best_s)} "
            f"(`{best.spec.label}`, run `{best.run_id}`), is {' and '.join(verdicts)}.")


def _roofline_text(rows: list[Row]) -> str | None:
    """The workload's roofline on the machine of its runs (the policy's ``roofline`` anchor)
    and the fraction of it the best schedule found reaches, and each speed anchor (``None`` when
    its runs did not all record it)."""
    runs = [r for row in rows for r in row.runs]
    name = runs[0].policy.roofline if runs else None
    if name is None or not all(name in r.problem.anchors for r in runs):
        return None
    best = max(runs, key=lambda r: r.result.best_improvement)
    best_s = best.problem.reference_score / best.result.best_improvement
    bound_s, note = best.problem.anchors[name], best.problem.anchor_notes.get(name, {})
    what = ""
    if {"bytes", "flops", "stream_bytes_per_s", "peak_flops_per_s"} <= note.keys():
        what = (f" ({note['bytes'] / 1e6:.3g} MB moved at {note['stream_bytes_per_s'] / 1e9:.3g} "
                f"GB/s, a reduction over as many bytes; {note['flops'] / 1e9:.3g} GFLOP at "
                f"{note['peak_flops_per_s'] / 1e9:.3g} GFLOP/s, a float32 GEMM; "
                f"{note.get('bound', '?')}-bound)")
    others = [f"{label} {bound_s / best.problem.anchors[anchor_name]:.0%}"
              for anchor_name, label in speed_anchors(runs).items()]
    return (f"The roofline on the machine of the best run, measured in the same run: "
            f"{_latency(bound_s)}{what}. The best schedule found reaches "
            f"{bound_s / best_s:.0%} of it" + (f"; {', '.join(others)}" if others else "") + ".")


def _baseline_text(ref: Reference | str) -> str:
    if isinstance(ref, str):
        return f"No baseline comparison: {ref}."
    kind = "an anchor: a fixed score of the problem" if ref.row is None \
        else f"geometric mean of its best at budget {ref.row.budget}"
    return f"Baseline: {ref.describe()}, level {_num(ref.level)}x ({kind})."


def measured_with(rows: list[Row]) -> str:
    """The target and reference score the workload's runs were measured with: each pair with its
    count of runs when the runs do not all share one (a race resumed on another machine)."""
    pairs = Counter((json.dumps(run.problem.target), run.problem.reference_score)
                    for row in rows for run in row.runs)
    if len(pairs) == 1:
        target, reference = next(iter(pairs))
        return f"target `{target}`, reference score {reference:.6g}"
    return "targets and reference scores: " + _with_run_counts(
        Counter({f"`{target}`, {reference:.6g}": n for (target, reference), n in pairs.items()}))


def budget_text(budget: int, rows: Iterable[Row]) -> str:
    """``budget``, and the wall-clock per run its runs were given besides (if any)."""
    seconds = sorted({r.spec.seconds for row in rows for r in row.runs if r.spec.seconds})
    return f"{budget}" + (f" measurements or {' / '.join(f'{s:g}' for s in seconds)} s"
                          if seconds else "")


def _workload_section(document: Document, out: Path, key: tuple[str, str, int], rows: list[Row],
                      ref: Reference | str, checkpoints: list[int] | None) -> None:
    env_id, workload, budget = key
    problem = rows[0].runs[0].problem
    document.heading(f"{workload} ({env_id}, budget {budget_text(budget, rows)})")
    document.paragraph(f"Workload hash `{problem.workload_hash}`, "
                       f"{measured_with(rows)}. {_baseline_text(ref)}")
    for text in (_speed_text(rows), _roofline_text(rows)):
        if text is not None:
            document.paragraph(text)
    known = ref if isinstance(ref, Reference) else None
    picture = out / f"curves_{anchor(workload)}.png"
    png = figure_png(plot_curves(rows, budget, f"{workload} ({env_id}, budget {budget})", known))
    picture.write_bytes(png)
    document.figure(png, picture.name, f"curves of {workload}",
                    "Best improvement so far (log scale) against measurements and wall-clock "
                    "seconds: geometric mean over seeds per agent; shaded, the 95% interval of the "
                    f"log improvement (agents with {BANDS_FROM_SEEDS}+ seeds); thin lines, the single "
                    "runs (agents with fewer); dashed, the baseline.")
    document.table(agent_table(rows, budget, known))
    costs = cost_table(rows)
    if costs is not None:
        document.heading(f"{workload}: what the search cost besides measurements", level=3)
        document.table(costs)
    if known is not None and any(row is not known.row for row in rows):
        document.heading(f"{workload}: tests against {known.name}", level=3)
        document.table(comparison_table(rows, known))
    if checkpoints:
        document.heading(f"{workload}: best within so many measurements", level=3)
        document.table(checkpoint_table(rows, budget, checkpoints))
        if known is not None and any(row is not known.row for row in rows):
            document.heading(f"{workload}: tests against {known.name} at equal samples", level=3)
            document.table(checkpoint_tests_table(rows, known, budget, checkpoints))


def write_report(out: Path, checkpoints: list[int] | None = None,
                 baseline: str | None = None) -> Path:
    """Write ``report.md``, ``report.html`` and the curve PNGs of the experiment in ``out``;
    returns the Markdown report's path. ``checkpoints`` (default: those of ``out/config.yaml``)
    add a table of the best found within so many measurements. ``baseline`` (an agent label or
    ``anchor:NAME``) replaces the environments' own baselines."""
    config = CompareConfig.load(out / "config.yaml") if (out / "config.yaml").exists() else None
    if checkpoints is None and config is not None:
        checkpoints = config.checkpoints
    records = read_runs(out / "results.jsonl")
    if not records:
        raise ValueError(f"no finished runs in {out / 'results.jsonl'}")
    failures = {r["run_id"]: r["error"] for r in read_records(out / "failures.jsonl")}
    finished = {r.run_id for r in records}
    document = Document(f"optarena report: {config.name if config else out.name}")
    document.paragraph(f"{len(records)} finished runs in `results.jsonl`. {provenance(records)}")
    document.paragraph(f"Improvement is {improvement_text(problems=True)}; higher is better. "
                       "Columns are defined in `optarena.experiments.report`.")
    if any(speed_anchors([r]) for r in records):
        labels = dict.fromkeys(label for r in records for label in r.policy.speed_anchors.values())
        document.paragraph(
            "Speedups over the unscheduled program are large and say little of what a user "
            "gains: " + ", ".join(f"`vs {label}`" for label in labels) +
            " give the latency of what a user would run instead, timed in the same run on the "
            "same inputs and threads, over the agent's best (above 1: the schedule found is "
            "faster).")
    document.paragraph(STATISTICS, note=True)
    groups = group(records)
    by_workload: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for (env_id, workload, _), rows in groups.items():
        by_workload[(env_id, workload)] += rows
    references = {key: reference(rows, baseline, by_workload[key[:2]])
                  for key, rows in groups.items()}
    pools: dict[tuple[str, int, str], list[tuple[list[Row], Reference]]] = defaultdict(list)
    for key, rows in groups.items():
        ref = references[key]
        if isinstance(ref, Reference):
            pools[(key[0], key[2], ref.name)].append((rows, ref))
    for (env_id, budget, _), sections in pools.items():
        if len(sections) < 2:
            continue
        standings, tests, *at_checkpoints = summary_tables(sections, budget, checkpoints)
        section_rows = [row for rows, _ in sections for row in rows]
        document.heading(f"All {len(sections)} workloads of {env_id} at budget "
                         f"{budget_text(budget, section_rows)}")
        document.paragraph(f"Runs paired by (workload, seed) against {sections[0][1].describe()}; "
                           "the level to reach is each workload's own baseline level.")
        document.table(standings)
        document.heading(f"Tests against {sections[0][1].name}, all workloads", level=3)
        document.table(tests)
        if at_checkpoints:
            best_within, equal_samples = at_checkpoints
            document.heading("Best within so many measurements, all workloads", level=3)
            document.table(best_within)
            document.heading(f"Tests against {sections[0][1].name} at equal samples, all "
                             "workloads", level=3)
            document.table(equal_samples)
    for key, rows in groups.items():
        _workload_section(document, out, key, rows, references[key], checkpoints)
    if (out / REWRITES).exists():
        mcpu = config.rewrites.mcpu if config is not None and config.rewrites else "neoverse-n1"
        document.heading("LLM free-form rewrites of peephole blocks")
        document.paragraph("The LLM rewrites each block with the load/store pairing peephole; "
                           "answers are scored as in Fang & Mukhanov (2024) against LLVM's output "
                           "(BLEU, exact match), by llvm-mc (syntax), by the equivalence checker "
                           f"(IO) and by llvm-mca ({mcpu}).")
        document.table(Table.from_markdown(rewrite_table(out, mcpu)))
    unresolved = {k: v for k, v in failures.items() if k not in finished}
    if unresolved:
        document.heading("Failed runs (tried again on the next `optarena compare`)")
        document.bullets([f"`{run_id}`: {error.splitlines()[0]}"
                          for run_id, error in unresolved.items()])
    (out / REPORT_HTML).write_text(document.html())
    path = out / REPORT
    path.write_text(document.markdown())
    return path

"""``optarena report DIR``: the leaderboard of an experiment and its sample-efficiency curves.

Reads ``DIR/results.jsonl`` and writes ``DIR/report.md`` (one table per workload) and
``DIR/curves_<workload>.png`` (best improvement against measurements: mean over seeds with a 95%
confidence band, one line per agent).

Definitions (per workload and budget, over the seeds of an agent):

* **best** -- the improvement at the budget: speedup over the unscheduled program for tensor
  programs, starting cycles over final cycles for peephole blocks, the unoptimized program's
  score over the optimized one's for pass ordering; mean and the half-width of a 95% Student-t
  confidence interval.
* **to MS best** -- measurements until a run first matched the mean best of stock MetaSchedule
  (``agent: metaschedule``) at the same budget; mean over the runs that matched it, and how many
  did.
* **to own best** -- measurements until a run found its final best.
* **efficiency gain** -- the Reasoning Compiler's sample efficiency, speedup per sample, with
  samples counted to the run's own best, relative to evolutionary search (``agent:
  evolutionary``): ``(mean best / mean to-own-best) / (same for evolutionary)``.
* **LLM** -- calls and tokens per run (cached replies included), and the fallback rate over all
  proposals.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from optarena.experiments.rewrites import REWRITES, rewrite_table
from optarena.experiments.runs import CompareConfig, read_records

REPORT = "report.md"


@dataclass(frozen=True)
class Estimate:
    """A sample mean with the half-width of its 95% confidence interval (``nan`` for n < 2)."""

    mean: float
    half_width: float
    n: int

    @classmethod
    def of(cls, values: list[float] | np.ndarray) -> Estimate:
        data = np.asarray(values, dtype=float)
        data = data[~np.isnan(data)]
        if len(data) == 0:
            return cls(math.nan, math.nan, 0)
        if len(data) == 1:
            return cls(float(data[0]), math.nan, 1)
        sem = float(np.std(data, ddof=1)) / math.sqrt(len(data))
        return cls(float(data.mean()), float(stats.t.ppf(0.975, len(data) - 1)) * sem, len(data))

    def text(self, digits: int = 2, unit: str = "") -> str:
        if math.isnan(self.mean):
            return "—"
        body = f"{self.mean:.{digits}f}{unit}"
        return body if math.isnan(self.half_width) else f"{body} ± {self.half_width:.{digits}f}"


def best_curve(record: dict[str, Any], budget: int) -> np.ndarray:
    """Best improvement after 1..budget measurements (``nan`` before the first)."""
    values = np.full(budget, np.nan)
    for point in record["result"]["curve"]:
        if 1 <= point["measurements"] <= budget:
            values[point["measurements"] - 1:] = point["best_improvement"]
    return values


def samples_to_reach(record: dict[str, Any], level: float) -> float:
    """Measurements until the run's best improvement first reached ``level`` (``nan``: never)."""
    for point in record["result"]["curve"]:
        if point["best_improvement"] >= level * (1 - 1e-9):
            return float(point["measurements"])
    return math.nan


@dataclass
class Row:
    """One agent's line of a workload's leaderboard (its estimates are computed once, after
    :func:`group` has gathered the runs)."""

    label: str
    agent: str
    runs: list[dict[str, Any]]

    @cached_property
    def best(self) -> Estimate:
        return Estimate.of([r["result"]["best_improvement"] for r in self.runs])

    @cached_property
    def to_own_best(self) -> Estimate:
        return Estimate.of([samples_to_reach(r, r["result"]["best_improvement"]) for r in self.runs])

    def efficiency(self) -> float:
        """Mean best improvement per sample to the own best."""
        return self.best.mean / self.to_own_best.mean

    def wall_s(self) -> float:
        return float(np.mean([r["result"]["wall_s"] for r in self.runs]))

    def usage(self, key: str) -> float:
        return float(np.mean([r["result"]["usage"][key] for r in self.runs]))

    def fallback_rate(self) -> float:
        proposals = sum(r["result"]["usage"]["proposals"] for r in self.runs)
        fallbacks = sum(r["result"]["usage"]["fallbacks"] for r in self.runs)
        return fallbacks / proposals if proposals else math.nan

    def best_run(self) -> dict[str, Any]:
        return max(self.runs, key=lambda r: r["result"]["best_improvement"])


def group(records: list[dict[str, Any]]) -> dict[tuple[str, str, int], list[Row]]:
    """(environment id, workload, budget) -> one row per agent label, in order of appearance."""
    rows: dict[tuple[str, str, int], dict[str, Row]] = defaultdict(dict)
    for record in records:
        spec = record["spec"]
        key = (record["env_id"], spec["workload"], spec["budget"])
        row = rows[key].setdefault(spec["label"], Row(spec["label"], spec["agent"], []))
        row.runs.append(record)
    return {key: list(by_label.values()) for key, by_label in rows.items()}


def _reference(rows: list[Row], agent: str) -> Row | None:
    return next((row for row in rows if row.agent == agent), None)


def _fmt(value: float, digits: int = 1) -> str:
    return "—" if math.isnan(value) else f"{value:.{digits}f}"


def leaderboard(rows: list[Row]) -> list[str]:
    """The markdown table of one workload, best mean first."""
    metaschedule = _reference(rows, "metaschedule")
    evolutionary = _reference(rows, "evolutionary")
    ms_best = metaschedule.best.mean if metaschedule else math.nan
    lines = ["| rank | agent | seeds | best (95% CI) | to MS best | to own best | efficiency gain "
             "| wall-clock s | LLM calls | tokens | fallback rate | best run |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    ranked = sorted(rows, key=lambda row: -row.best.mean)
    for rank, row in enumerate(ranked, start=1):
        if math.isnan(ms_best):
            to_ms = "—"
        else:
            reached = [samples_to_reach(r, ms_best) for r in row.runs]
            hits = [x for x in reached if not math.isnan(x)]
            to_ms = f"{_fmt(float(np.mean(hits)))} ({len(hits)}/{len(reached)})" if hits \
                else f"— (0/{len(reached)})"
        gain = row.efficiency() / evolutionary.efficiency() if evolutionary else math.nan
        llm = row.usage("llm_calls")
        lines.append(
            f"| {rank} | {row.label} | {len(row.runs)} | {row.best.text(2, 'x')} | {to_ms} "
            f"| {row.to_own_best.text(1)} | {_fmt(gain, 2)} | {_fmt(row.wall_s(), 0)} "
            f"| {_fmt(llm, 1) if llm else '—'} | {_fmt(row.usage('tokens'), 0) if llm else '—'} "
            f"| {_fmt(row.fallback_rate(), 2)} | `{row.best_run()['run_id']}` |")
    return lines


def checkpoint_table(rows: list[Row], budget: int, checkpoints: list[int]) -> list[str]:
    """Best improvement within each checkpoint's number of measurements (mean ± 95% CI)."""
    marks = [m for m in checkpoints if 1 <= m <= budget]
    lines = ["| agent | " + " | ".join(f"best within {m}" for m in marks) + " |",
             "|---|" + "---|" * len(marks)]
    for row in rows:
        curves = np.array([best_curve(r, budget) for r in row.runs])
        cells = [Estimate.of(curves[:, m - 1]).text(2, "x") for m in marks]
        lines.append(f"| {row.label} | " + " | ".join(cells) + " |")
    return lines


def plot_curves(rows: list[Row], budget: int, title: str, path: Path,
                reference: float | None = None) -> None:
    """Best improvement against measurements: mean over seeds with a 95% CI band per agent."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=120)
    x = np.arange(1, budget + 1)
    top = 1.0
    for row in rows:
        curves = np.array([best_curve(r, budget) for r in row.runs])
        points = [Estimate.of(curves[:, i]) for i in range(budget)]
        mean = np.array([p.mean for p in points])
        half = np.nan_to_num(np.array([p.half_width for p in points]))
        (line,) = axes.plot(x, mean, label=f"{row.label} (n={len(row.runs)})", linewidth=1.6)
        axes.fill_between(x, mean - half, mean + half, color=line.get_color(), alpha=0.15)
        top = max(top, float(np.nanmax(mean)))
    if reference is not None and not math.isnan(reference):
        axes.axhline(reference, color="grey", linestyle="--", linewidth=1,
                     label="stock MetaSchedule best (mean)")
    axes.set_ylim(0, 1.4 * top)  # few seeds give wide bands: keep the means readable
    axes.set_xlabel("measurements")
    axes.set_ylabel("best improvement (x)")
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


def write_report(out: Path, checkpoints: list[int] | None = None) -> Path:
    """Write ``report.md`` and the curve PNGs of the experiment in ``out``; returns the report.
    ``checkpoints`` (default: those of ``out/config.yaml``) add a table of the best found within
    so many measurements."""
    config = CompareConfig.load(out / "config.yaml") if (out / "config.yaml").exists() else None
    if checkpoints is None and config is not None:
        checkpoints = config.checkpoints
    records = read_records(out / "results.jsonl")
    if not records:
        raise ValueError(f"no finished runs in {out / 'results.jsonl'}")
    failures = {r["run_id"]: r["error"] for r in read_records(out / "failures.jsonl")}
    finished = {r["run_id"] for r in records}
    first = records[0]
    lines = [f"# optarena report: {config.name if config else out.name}", "",
             f"{len(records)} finished runs in `results.jsonl`. "
             f"Machine: {first['machine']['cpu']}, {first['machine']['cores']} cores. "
             f"optarena {first['versions'].get('optarena')}, TVM "
             f"{first['versions'].get('apache-tvm')}, Python {first['versions']['python']}.", "",
             "Improvement is the speedup over the unscheduled program (tensor programs), the "
             "starting over the final llvm-mca cycles (peephole blocks), or the unoptimized "
             "program's score over the optimized one's (pass ordering). Columns are defined in "
             "`optarena.experiments.report`; ± is the half-width of a 95% t-interval over seeds.",
             ""]
    for (env_id, workload, budget), rows in group(records).items():
        problem = rows[0].runs[0]["problem"]
        lines += [f"## {workload} ({env_id}, budget {budget})", "",
                  f"Workload hash `{problem['workload_hash']}`, target `{json.dumps(problem['target'])}`, "
                  f"reference score {problem['reference_score']:.6g}.", ""]
        if problem.get("o3_score"):
            lines[-1:-1] = [f"`opt -O3` scores {problem['o3_score']:.6g}: an improvement of "
                            f"{problem['reference_score'] / problem['o3_score']:.3f}x.", ""]
        lines += leaderboard(rows)
        if checkpoints:
            lines += ["", *checkpoint_table(rows, budget, checkpoints)]
        metaschedule = _reference(rows, "metaschedule")
        picture = out / f"curves_{_slug(workload)}.png"
        plot_curves(rows, budget, f"{workload} ({env_id})", picture,
                    metaschedule.best.mean if metaschedule else None)
        lines += ["", f"![curves]({picture.name})", ""]
    if (out / REWRITES).exists():
        mcpu = config.rewrites.mcpu if config is not None and config.rewrites else "neoverse-n1"
        lines += ["## LLM free-form rewrites of peephole blocks", "",
                  "The LLM rewrites each block with the load/store pairing peephole; answers are "
                  "scored as in Fang & Mukhanov (2024) against LLVM's output (BLEU, exact match), "
                  f"by llvm-mc (syntax), by the equivalence checker (IO) and by llvm-mca ({mcpu}).",
                  "", *rewrite_table(out, mcpu), ""]
    unresolved = {k: v for k, v in failures.items() if k not in finished}
    if unresolved:
        lines += ["## Failed runs (tried again on the next `optarena compare`)", ""]
        lines += [f"- `{run_id}`: {error.splitlines()[0]}" for run_id, error in unresolved.items()]
        lines.append("")
    path = out / REPORT
    path.write_text("\n".join(lines))
    return path

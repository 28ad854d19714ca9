"""``optarena leaderboard``: verified submissions, ranked within versioned tracks.

A **track** (:class:`Track`) is one task that submissions compete on: an environment, its
workloads, the settings that define the problem (the metric, the CPU modelled) and a budget of
measurements. A track's id carries its version (``rc-layers-small-64/v1``): changing any of
these makes a new version, so a standing never mixes tasks. :data:`TRACKS` are the built-in ones.

A submission names its track (``"track": "rc-layers-small-64/v1"``) or is placed in the track
with the smallest budget that fits its environment, workload, settings and budget (the newest
version among equals); one that fits none is listed as *untracked*. A submission that names a
track it does not fit -- another environment, a workload outside the track, other settings, or a
``budget`` or ``measurements`` above the track's budget -- is **refused** with the reason,
before anything is measured. The others are verified (:func:`optarena.experiments.submission.verify`:
re-applied and re-measured here) and the accepted ones ranked:

* per workload, by verified improvement, then by fewer measurements (equal keys share a rank),
  each entry with what its search spent besides measurements, per measurement (cost-model
  estimate calls, planning seconds, LLM calls, prompt tokens, LLM seconds: the submission's
  ``usage``; only the costs some entry spent);
* per track, the entries of one submitter and agent by the geometric mean of their best verified
  improvement over the track's workloads; only entries covering every workload are ranked.

:func:`write_leaderboard` writes the Markdown leaderboard and a self-contained HTML page.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from optarena.envs.registry import improvement_text, kind
from optarena.experiments.pages import Document, Table, anchor, cost_cells, figure_png
from optarena.experiments.stats import geometric_mean_interval
from optarena.records import Usage

if TYPE_CHECKING:
    from optarena.experiments.submission import Verdict

Verify = Callable[[dict[str, Any], float | None], "Verdict"]
"""How submissions are verified: :func:`optarena.experiments.submission.verify`'s signature."""


@dataclass(frozen=True)
class Track:
    """One task submissions compete on (see the module docstring)."""

    name: str
    version: int
    env: str
    """The environment kind (``tensor_schedule``, ``aarch64_peephole``, ``llvm_pass_order``)."""
    workloads: tuple[str, ...]
    budget: int
    """The most measurements a submission may have used (and been allowed)."""
    description: str
    settings: tuple[tuple[str, Any], ...] = ()
    """Environment constructor arguments that define the problem, as (name, value); a
    submission that leaves one out has the environment's default."""

    @property
    def id(self) -> str:
        return f"{self.name}/v{self.version}"


RC_LAYERS = ("llama3-8b-attention", "deepseek-r1-moe", "flux-attention", "flux-conv",
             "llama4-scout-mlp")
RC_LAYERS_SMALL = ("llama3-8b-attention:seq_len=32", "deepseek-r1-moe:tokens=2",
                   "flux-attention:seq_len=32", "flux-conv:size=8", "llama4-scout-mlp:tokens=2")
LLVM_HELDOUT = tuple(f"heldout:{name}" for name in (
    "adler_fnv", "checksums", "sha1", "aes", "rc4", "xtea", "bwt", "huffman", "lz77", "search",
    "sorting", "components", "dijkstra", "toposort", "aho", "strsearch", "blur", "median", "sobel",
    "adpcm", "fft", "fir_iir", "bitcount", "gemm", "jacobi", "lu", "numeric"))
"""The test set of split ``llvm-heldout/v1``, frozen with the track (a test checks they agree;
written out: the leaderboard imports no environment)."""
PEEPHOLE_BLOCKS = tuple(f"loads_stores/O1/{name}/0" for name in (
    "dot4", "copy_big", "sum4", "rotate4", "zero4", "matvec2", "stack_heavy", "many_locals"))

TRACKS: tuple[Track, ...] = (
    Track("rc-layers-small-32", 1, "tensor_schedule", RC_LAYERS_SMALL, 32,
          "The Reasoning Compiler's five layers at small sizes, 32 measurements "
          "(`configs/rc-cpu-small.yaml`)."),
    Track("rc-layers-small-64", 1, "tensor_schedule", RC_LAYERS_SMALL, 64,
          "The Reasoning Compiler's five layers at small sizes, 64 measurements."),
    Track("rc-layers-1000", 1, "tensor_schedule", RC_LAYERS, 1000,
          "The Reasoning Compiler's five layers at their default sizes, 1000 measurements "
          "(`configs/rc-cpu.yaml`)."),
    Track("peephole-o1-24", 1, "aarch64_peephole", PEEPHOLE_BLOCKS, 24,
          "Eight AArch64 -O1 load/store blocks, llvm-mca cycles on Neoverse N1, 24 measurements "
          "(`configs/peephole.yaml`).", (("mcpu", "neoverse-n1"),)),
    Track("llvm-csmith-cycles-32", 1, "llvm_pass_order", ("csmith:1", "csmith:2"), 32,
          "LLVM pass ordering of two csmith programs, scored in cycles, 32 measurements "
          "(`configs/llvm.yaml`).", (("reward", "cycles"),)),
    Track("llvm-ic-heldout", 1, "llvm_pass_order", LLVM_HELDOUT, 10_000,
          "LLVM pass ordering by IR instruction count, in the spirit of CompilerGym's "
          "`llvm-ic-v0` (its leaderboard scores on cBench, which cannot be fetched here): the 27 "
          "held-out C programs of split `llvm-heldout/v1` from their unoptimized IR, up to "
          "10,000 programs scored each (`configs/llvm-ic.yaml`); a submission is a pass "
          "sequence, replayed.", (("reward", "ir_instructions"), ("start", "unoptimized"))),
    Track("llvm-ic-heldout-oz", 1, "llvm_pass_order", LLVM_HELDOUT, 10_000,
          "The same from `-Oz`'s output (`start: -Oz`): the improvement is `-Oz`'s IR "
          "instructions over the submission's.", (("reward", "ir_instructions"),
                                                   ("start", "-Oz"))),
)


def _setting(submission: dict[str, Any], name: str) -> Any:
    """The submission's value of environment argument ``name``: its own, else its default (the
    kind's :attr:`~optarena.envs.registry.Policy.problem_kwargs`; ``None`` if it has none)."""
    kwargs = submission.get("env_kwargs") or {}
    if name in kwargs:
        return kwargs[name]
    return kind(submission["env"]).policy.problem_kwargs.get(name)


def misfit(track: Track, submission: dict[str, Any]) -> str | None:
    """Why ``submission`` does not compete in ``track`` (``None``: it does)."""
    if submission.get("env") != track.env:
        return f"track {track.id} is for {track.env}, not {submission.get('env')}"
    if submission.get("workload") not in track.workloads:
        return (f"workload {submission.get('workload')!r} is not in track {track.id} "
                f"({', '.join(track.workloads)})")
    for name, value in track.settings:
        actual = _setting(submission, name)
        if actual != value:
            return f"track {track.id} needs {name}={value!r}, the submission has {actual!r}"
    for what in ("budget", "measurements"):
        used = submission.get(what)
        if not isinstance(used, int):
            return f"the submission gives no {what}"
        if used > track.budget:
            return f"{what} {used} is above track {track.id}'s budget of {track.budget} measurements"
    return None


def place(submission: dict[str, Any], tracks: Sequence[Track] = TRACKS
          ) -> tuple[Track | None, str | None]:
    """The track ``submission`` competes in (``None``: untracked) and why it is refused
    (``None``: it is not); see the module docstring."""
    named = submission.get("track")
    if named is not None:
        track = next((t for t in tracks if t.id == named), None)
        if track is None:
            return None, f"unknown track {named!r} (tracks: {', '.join(t.id for t in tracks)})"
        return track, misfit(track, submission)
    fitting = [t for t in tracks if misfit(t, submission) is None]
    return (min(fitting, key=lambda t: (t.budget, -t.version)) if fitting else None), None


@dataclass(frozen=True)
class Entry:
    """An accepted submission with its verdict and track."""

    submission: dict[str, Any]
    verdict: Verdict
    track: Track | None

    @property
    def competitor(self) -> tuple[str, str]:
        """(submitter, agent label): whose entries a track's standing combines."""
        return self.submission.get("submitter") or "—", self.submission["label"]


@dataclass
class Leaderboard:
    """Verified submissions by track, and those refused or rejected (file, reason)."""

    tracks: Sequence[Track]
    entries: list[Entry] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    """Outside the rules of the track they name (not measured)."""
    rejected: list[tuple[str, str]] = field(default_factory=list)
    """Unreadable, or not accepted by verification."""


def build_leaderboard(paths: list[Path], tolerance: float | None = None,
                      tracks: Sequence[Track] = TRACKS, verify: Verify | None = None) -> Leaderboard:
    """Place every submission file in its track and verify the ones that are not refused.
    ``verify`` defaults to :func:`optarena.experiments.submission.verify`."""
    if verify is None:
        from optarena.experiments import submission

        verify = submission.verify
    board = Leaderboard(tracks)
    for path in paths:
        try:
            submission = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            board.rejected.append((str(path), f"unreadable: {err}"))
            continue
        track, refusal = place(submission, tracks)
        if refusal is not None:
            board.refused.append((str(path), refusal))
            continue
        verdict = verify(submission, tolerance)
        if verdict.accepted:
            board.entries.append(Entry(submission, verdict, track))
        else:
            board.rejected.append((str(path), verdict.reason))
    return board


def _ranks(keys: list[tuple[float, ...]]) -> list[int]:
    """Competition ranks of ``keys`` sorted ascending: equal keys share a rank."""
    return [keys.index(key) + 1 for key in keys]


def workload_table(entries: list[Entry]) -> Table:
    """The accepted submissions of one workload, best verified improvement first, each with what
    its search spent besides measurements, per measurement (the costs some entry spent; ``—``
    for a submission that does not say)."""
    entries = sorted(entries, key=lambda e: (-e.verdict.improvement, e.submission["measurements"]))
    ranks = _ranks([(-e.verdict.improvement, e.submission["measurements"]) for e in entries])
    headers, costs = cost_cells([[Usage.model_validate(e.submission["usage"])]
                                 if e.submission.get("usage") else [] for e in entries])
    table = Table(["rank", "submitter", "agent", "measurements", "improvement (verified)",
                   "claimed", "score (verified)", *headers, "wall-clock s (claimed)", "run"])
    for rank, entry, cost in zip(ranks, entries, costs, strict=True):
        sub = entry.submission
        wall = sub.get("wall_s")
        table.rows.append([str(rank), entry.competitor[0], sub["label"],
                           f"{sub['measurements']} / {sub['budget']}",
                           f"{entry.verdict.improvement:.3f}x",
                           f"{sub['claimed']['improvement']:.3f}x", f"{entry.verdict.score:.6g}",
                           *cost, "—" if wall is None else f"{wall:.1f}", f"`{sub['run_id']}`"])
    return table


def _best_by_workload(entries: list[Entry]) -> dict[tuple[str, str], dict[str, Entry]]:
    """competitor -> workload -> their entry with the best verified improvement."""
    best: dict[tuple[str, str], dict[str, Entry]] = {}
    for entry in entries:
        mine = best.setdefault(entry.competitor, {})
        known = mine.get(entry.submission["workload"])
        if known is None or entry.verdict.improvement > known.verdict.improvement:
            mine[entry.submission["workload"]] = entry
    return best


def standings_table(track: Track, entries: list[Entry]) -> Table:
    """A track's standing: each competitor's geometric-mean verified improvement over the
    track's workloads; those that cover every workload ranked first, the others unranked."""
    rows = []
    for (submitter, label), by_workload in _best_by_workload(entries).items():
        improvement = geometric_mean_interval(
            [e.verdict.improvement for e in by_workload.values()]).center
        measurements = sum(e.submission["measurements"] for e in by_workload.values())
        rows.append((len(by_workload) < len(track.workloads), -improvement, measurements,
                     submitter, label, len(by_workload)))
    rows.sort()  # complete entries first, so their ranks line up with the first rows
    ranks = _ranks([(r[1], r[2]) for r in rows if not r[0]])
    table = Table(["rank", "submitter", "agent", "workloads",
                   "improvement: geo. mean over workloads", "measurements (sum)"])
    for index, (incomplete, negative, measurements, submitter, label, covered) in enumerate(rows):
        table.rows.append(["—" if incomplete else str(ranks[index]), submitter, label,
                           f"{covered} / {len(track.workloads)}", f"{-negative:.3f}x",
                           str(measurements)])
    return table


def plot_track(track: Track, entries: list[Entry]) -> Figure:
    """Verified improvement (log scale) per workload of the track, one marker per competitor."""
    figure = Figure(figsize=(9, 3.8), layout="constrained")
    axes = figure.subplots()
    competitors = _best_by_workload(entries)
    for index, (competitor, by_workload) in enumerate(competitors.items()):
        offset = 0.1 * (index - (len(competitors) - 1) / 2)  # side by side, not on top
        positions = [track.workloads.index(w) + offset for w in by_workload]
        axes.plot(positions, [e.verdict.improvement for e in by_workload.values()], "o",
                  color=f"C{index % 10}", label=" / ".join(competitor), alpha=0.85)
    axes.set_yscale("log")
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}x"))
    axes.yaxis.set_minor_formatter(NullFormatter())
    axes.set_xticks(range(len(track.workloads)), track.workloads, rotation=15, fontsize=8)
    axes.set_xlim(-0.5, len(track.workloads) - 0.5)
    axes.set_ylabel("verified improvement (log scale)")
    axes.set_title(f"{track.id}: budget {track.budget}", fontsize=10)
    axes.grid(alpha=0.3)
    figure.legend(loc="outside right upper", fontsize=8, frameon=False)
    return figure


def render(board: Leaderboard, machine: str, figures: Path | None = None) -> Document:
    """The leaderboard as a :class:`~optarena.experiments.pages.Document`; ``figures``, when
    given, is the Markdown file whose directory receives the tracks' charts as PNG files."""
    document = Document("optarena leaderboard")
    document.paragraph(
        f"Verified on {machine}. Improvement: {improvement_text()}, as re-measured here. "
        "Each entry also shows what its search spent besides measurements, per measurement, "
        "where its submission says. Submissions compete within versioned tracks "
        "(environment, workloads, settings, budget); a submission outside the track it names is "
        "refused unmeasured. `optarena.experiments.leaderboard` has the rules.")
    overview = Table(["track", "environment", "workloads", "budget", "settings", "entries"])
    for track in board.tracks:
        count = sum(e.track is track for e in board.entries)
        settings = ", ".join(f"{k}={v}" for k, v in track.settings) or "—"
        overview.rows.append([f"`{track.id}`", track.env, str(len(track.workloads)),
                              str(track.budget), settings, str(count)])
    document.table(overview)
    for track in board.tracks:
        entries = [e for e in board.entries if e.track is track]
        if not entries:
            continue
        document.heading(f"Track {track.id}")
        document.paragraph(f"{track.description} Workloads: "
                           + ", ".join(f"`{w}`" for w in track.workloads) + ".")
        document.table(standings_table(track, entries))
        if figures is not None:
            png = figure_png(plot_track(track, entries))
            picture = figures.parent / f"{figures.stem}_{anchor(track.id)}.png"
            picture.write_bytes(png)
            document.figure(png, picture.name, f"verified improvements of {track.id}",
                            "Each competitor's best verified improvement per workload.")
        for workload in track.workloads:
            mine = [e for e in entries if e.submission["workload"] == workload]
            if mine:
                document.heading(f"{workload} ({track.id})", level=3)
                document.table(workload_table(mine))
    untracked: dict[tuple[str, str], list[Entry]] = {}
    for entry in board.entries:
        if entry.track is None:
            key = (entry.submission["env_id"], entry.submission["workload"])
            untracked.setdefault(key, []).append(entry)
    for env_id, workload in sorted(untracked):
        document.heading(f"{workload} ({env_id}, untracked)")
        document.table(workload_table(untracked[(env_id, workload)]))
    if board.refused:
        document.heading("Refused (outside their track)")
        document.bullets([f"`{path}`: {reason}" for path, reason in board.refused])
    if board.rejected:
        document.heading("Rejected")
        document.bullets([f"`{path}`: {reason}" for path, reason in board.rejected])
    return document


def write_leaderboard(paths: list[Path], markdown: Path, html: Path,
                      tolerance: float | None = None, tracks: Sequence[Track] = TRACKS,
                      verify: Verify | None = None) -> Leaderboard:
    """Verify the submission files, rank them within their tracks and write the Markdown
    leaderboard (with the tracks' charts as PNG files beside it) and the HTML page."""
    from optarena.experiments.runs import machine_info

    board = build_leaderboard(paths, tolerance, tracks, verify)
    document = render(board, machine_info().cpu, markdown)
    markdown.write_text(document.markdown())
    html.write_text(document.html())
    return board

"""The experiment report and the leaderboard: their statistics from synthetic records, and their
HTML pages rendered in headless Chromium (every agent shown, every plot decoded, nothing loaded
from outside the page)."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from optarena.experiments.leaderboard import (
    TRACKS,
    Entry,
    Track,
    place,
    workload_table,
    write_leaderboard,
)
from optarena.experiments.report import cost_table, group, plot_curves, reference, write_report
from optarena.experiments.submission import FORMAT, Verdict
from optarena.records import RunRecord, append_record

ENV_IDS = {"tensor_schedule": "optarena/TensorSchedule-v0",
           "llvm_pass_order": "optarena/LlvmPassOrder-v0"}
BUDGET = 8
SEEDS = range(5)
WORKLOADS = {"matmul-64": 1.0, "conv-8": 3.0}  # workload -> scale of its improvements
CHROMIUM = shutil.which("chromium")


def _record(workload: str, label: str, seed: int, curve: list[tuple[int, float]],
            env: str = "tensor_schedule", problem: dict | None = None, llm_calls: int = 0
            ) -> RunRecord:
    reference_score = 1e-3
    points = [{"measurements": m, "wall_s": 0.5 * m + 0.1 * seed, "best_score": reference_score / v,
               "best_improvement": v} for m, v in curve]
    usage = {"measurements": curve[-1][0], "cost_model_calls": 0, "llm_calls": llm_calls,
             "llm_cached": 0, "prompt_tokens": 90 * llm_calls, "completion_tokens": 10 * llm_calls,
             "tokens": 100 * llm_calls, "llm_cost_usd": 0.0, "llm_seconds": 0.0,
             "proposals": llm_calls, "fallbacks": 0, "fallback_rate": 0.0}
    return RunRecord.model_validate({
        "record_version": 1, "run_id": f"{label}-s{seed}-{workload}",
        "spec": {"env": env, "workload": workload, "env_kwargs": {}, "agent": label,
                 "label": label, "agent_config": {}, "seed": seed, "budget": BUDGET},
        "env_id": ENV_IDS[env],
        "problem": {"workload": workload, "workload_hash": "0123456789abcdef",
                    "target": {"kind": "llvm"}, "reference_score": reference_score,
                    "deterministic": env != "tensor_schedule", **(problem or {})},
        "result": {"agent": label, "seed": seed, "budget": BUDGET,
                   "best_score": reference_score / curve[-1][1], "best_improvement": curve[-1][1],
                   "best_state": {}, "best_actions": [], "curve": points, "usage": usage,
                   "wall_s": points[-1]["wall_s"] + 0.2, "details": {}},
        "versions": {"python": "3.11.7", "optarena": "0.1.0", "apache-tvm": "0.27"},
        "machine": {"cpu": "Test CPU", "cores": 2, "platform": "linux", "hostname": "test"},
        "started": 0.0, "finished": 1.0,
    })


def _race() -> list[RunRecord]:
    """Two workloads, five seeds: MetaSchedule (the baseline) reaches about 4x at measurement
    6; MCTS 8x at 3, on every run; random 2x, never reaching MetaSchedule; LLM-MCTS, 2 seeds only,
    7-8x at 2."""
    records = []
    for workload, scale in WORKLOADS.items():
        for seed in SEEDS:
            records += [
                _record(workload, "metaschedule", seed, [(1, scale), (6, 4 * scale * (1 + .01 * seed))]),
                _record(workload, "mcts", seed, [(1, 2 * scale), (3, 8 * scale * (1 + .02 * seed))]),
                _record(workload, "random", seed, [(1, scale), (8, 2 * scale * (1 + .01 * seed))]),
            ]
            if seed < 2:
                records.append(_record(workload, "llm-mcts", seed,
                                       [(1, 3 * scale), (2, (7 + seed) * scale)], llm_calls=4))
    return records


@pytest.fixture(scope="module")
def race(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("race")
    for record in _race():
        append_record(out / "results.jsonl", record)
    write_report(out)
    return out


def _rows(markdown: str, header_start: str) -> dict[str, list[str]]:
    """The table whose header begins with ``header_start``: agent -> cells (first column kept)."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    column = header.index("agent")
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[column]] = cells
    return rows


def _section(markdown: str, heading: str) -> str:
    start = markdown.index(f"## {heading}")
    end = markdown.find("\n## ", start + 1)
    return markdown[start:end if end > 0 else None]


# ---------------------------------------------------------------------- report statistics


def test_workload_table_ranks_with_ties_and_censors_runs_that_never_reach_the_baseline(race):
    section = _section((race / "report.md").read_text(), "matmul-64")
    assert "Baseline: `metaschedule`" in section  # the registry's baseline of tensor programs
    table = _rows(section, "| rank |")
    # 5 seeds: the smallest p against the leader is 2/32, Holm over 3 agents: nobody separates
    assert {label: cells[0] for label, cells in table.items()} == \
        {"mcts": "1", "llm-mcts": "1", "metaschedule": "1", "random": "1"}
    assert list(table) == ["mcts", "llm-mcts", "metaschedule", "random"]  # geometric means
    # the level is MetaSchedule's geometric-mean best, 4 * 1.0199: seeds 2-4 reach it at 6
    assert table["metaschedule"][4] == "6 (60%)"
    assert table["mcts"][4] == "3 (100%)" and table["random"][4] == f"> {BUDGET} (0%)"
    assert table["llm-mcts"][2] == "2" and table["llm-mcts"][8] == "4.0"  # seeds, LLM calls
    best = np.array([8 * (1 + .02 * s) for s in SEEDS])
    assert table["mcts"][3].startswith(f"{np.exp(np.log(best).mean()):.2f}x [")
    tests = _rows(section, "| agent | pairs |")
    assert "metaschedule" not in tests  # the baseline is not tested against itself
    # mcts and random: 5 pairs all one way, p = 2/32; llm-mcts: 2 pairs, p = 0.5. Holm: 3 * 2/32
    assert tests["mcts"][4:7] == ["0.062", "0.188", "exact"]
    assert tests["random"][5] == "0.188" and tests["llm-mcts"][5] == "0.500"


def test_pooled_workloads_separate_agents_that_two_seeds_cannot(race):
    section = _section((race / "report.md").read_text(), "All 2 workloads")
    ranks = {label: cells[0] for label, cells in _rows(section, "| rank |").items()}
    # 10 pairs: mcts beats MetaSchedule and random on all (p = 2/1024, Holm x3 < 0.05);
    # LLM-MCTS, 4 pairs, cannot be told from mcts; then MetaSchedule beats random.
    assert ranks == {"mcts": "1", "llm-mcts": "1", "metaschedule": "3", "random": "4"}
    tests = _rows(section, "| agent | pairs |")
    assert tests["mcts"][1] == "10" and tests["mcts"][4] == "0.002"
    assert tests["llm-mcts"][1] == "4"


def test_anchor_baselines_and_missing_anchors(tmp_path):
    with_anchor, without = tmp_path / "anchored", tmp_path / "old"
    for out, problem in ((with_anchor, {"anchors": {"-O3": 1e-3 / 5.0}}), (without, {})):
        out.mkdir()
        for seed in (0, 1):
            for label, value in (("greedy", 4.0), ("mcts", 6.0)):
                append_record(out / "results.jsonl",
                              _record("csmith:1", label, seed, [(1, 1.0), (4, value + seed)],
                                      env="llvm_pass_order", problem=problem))
    text = write_report(with_anchor).read_text()
    assert "Baseline: the `-O3` anchor, level 5.00x" in text
    table = _rows(text, "| rank |")
    assert table["mcts"][4] == "4 (100%)" and table["greedy"][4] == "4 (50%)"  # 4 then 5 vs 5
    assert "greedy" in _rows(text, "| agent | pairs |")  # every agent is tested against -O3
    old = write_report(without).read_text()
    assert "No baseline comparison: the baseline is the `-O3` anchor, but the records hold no" in old
    assert _rows(old, "| rank |")["mcts"][4] == "—"
    chosen = write_report(without, baseline="greedy").read_text()  # an explicit baseline
    assert "Baseline: `greedy` at budget 8, level 4.47x" in chosen


def test_the_cost_table_gives_what_each_search_spent_per_measurement(race):
    section = _section((race / "report.md").read_text(), "matmul-64")
    assert "### matmul-64: what the search cost besides measurements" in section
    costs = _rows(section, "| agent | measurements |")
    header = next(line for line in section.splitlines() if line.startswith("| agent | meas"))
    # only LLM-MCTS spent anything besides measurements, and only LLM calls and prompt tokens
    assert header == ("| agent | measurements | wall-clock s | LLM calls / measurement | "
                      "prompt tokens / measurement |")
    # 4 calls and 360 prompt tokens per run, 2 measurements and 1.2-1.3 s per run
    assert costs["llm-mcts"][1:] == ["2.0", "1", "2", "180"]
    assert costs["mcts"][3:] == ["0", "0"]
    plain = [_record("w", "mcts", seed, [(1, 2.0), (3, 4.0)]) for seed in (0, 1)]
    (rows,) = group(plain).values()
    assert cost_table(rows) is None  # no column of zeros for searches that spend nothing


def test_a_leaderboard_entry_shows_what_its_result_cost():
    spent = _submission("a", "llm-mcts", 4.0, usage={"measurements": 16, "llm_calls": 8,
                                                     "planning_s": 4.0, "prompt_tokens": 1600},
                        wall_s=12.34)
    entries = [Entry(sub, Verdict(True, "ok", 1e-3 / 4.0, 4.0), TOY)
               for sub in (spent, _submission("a", "mcts", 3.0))]  # this one says nothing
    table = workload_table(entries)
    assert table.headers[7:-1] == ["planning s / measurement", "LLM calls / measurement",
                                   "prompt tokens / measurement", "wall-clock s (claimed)"]
    assert [row[7:-1] for row in table.rows] == [["0.25", "0.5", "100", "12.3"],
                                                 ["—", "—", "—", "—"]]


def test_curves_are_geometric_means_on_a_log_axis_with_integer_measurement_ticks():
    records = [_record("w", "mcts", seed, [(1, value), (3, 2 * value)])
               for seed, value in enumerate((2.0, 8.0))]
    (rows,) = group(records).values()
    figure = plot_curves(rows, 3, "w", None)
    by_samples, by_time = figure.axes
    assert by_samples.get_yscale() == by_time.get_yscale() == "log"
    ticks = [t for t in by_samples.get_xticks() if 1 <= t <= 3]
    assert ticks and all(float(t).is_integer() for t in ticks)  # not "2.5 measurements"
    (mean,) = [line for line in by_samples.lines if line.get_label() == "mcts (n=2)"]
    assert list(mean.get_ydata()) == pytest.approx([4.0, 4.0, 8.0])  # not the arithmetic 5, 10
    (over_time,) = [line for line in by_time.lines if line.get_label() == "mcts (n=2)"]
    assert np.nanmax(over_time.get_ydata()) == pytest.approx(8.0)
    assert reference(rows, "nobody") == "the baseline agent `nobody` did not run on this workload"


# ---------------------------------------------------------------------- the leaderboard


def _submission(workload: str, label: str, improvement: float, *, submitter: str = "ada",
                env: str = "tensor_schedule", budget: int = 16, measurements: int = 16,
                **extra: object) -> dict:
    return {"format": FORMAT, "submitter": submitter, "run_id": f"{label}-{workload}",
            "env": env, "env_id": ENV_IDS[env], "env_kwargs": {}, "workload": workload,
            "workload_hash": "0123456789abcdef", "target": {"kind": "llvm"}, "agent": label,
            "label": label, "agent_config": {}, "seed": 0, "budget": budget,
            "measurements": measurements, "solution": {"state": {}, "actions": []},
            "claimed": {"score": 1e-3 / improvement, "improvement": improvement,
                        "reference_score": 1e-3},
            "machine": {"cpu": "Test CPU"}, "versions": {}, **extra}


TOY = Track("toy", 1, "tensor_schedule", ("a", "b"), 16, "Two toy workloads.")
TOY_LONG = Track("toy-long", 1, "tensor_schedule", ("a", "b"), 64, "The same at 64.")


def test_submissions_are_placed_in_their_track_or_refused_with_the_reason():
    tracks = (TOY_LONG, TOY)
    assert place(_submission("a", "x", 2.0), tracks) == (TOY, None)  # smallest budget that fits
    assert place(_submission("a", "x", 2.0, budget=32, measurements=20), tracks) == (TOY_LONG, None)
    assert place(_submission("c", "x", 2.0), tracks) == (None, None)  # untracked
    assert place(_submission("a", "x", 2.0, budget=100), tracks) == (None, None)
    assert place(_submission("a", "x", 2.0, budget=100, track="toy/v1"), tracks) == \
        (TOY, "budget 100 is above track toy/v1's budget of 16 measurements")
    assert place(_submission("a", "x", 2.0, measurements=17, track="toy/v1"), tracks)[1] == \
        "measurements 17 is above track toy/v1's budget of 16 measurements"
    assert place(_submission("c", "x", 2.0, track="toy/v1"), tracks)[1] == \
        "workload 'c' is not in track toy/v1 (a, b)"
    assert place(_submission("a", "x", 2.0, track="toy/v2"), tracks)[1] == \
        "unknown track 'toy/v2' (tracks: toy-long/v1, toy/v1)"
    runtime = _submission("csmith:1", "x", 2.0, env="llvm_pass_order", budget=32, measurements=32,
                          track="llvm-csmith-cycles-32/v1")
    assert place(runtime)[1] == \
        "track llvm-csmith-cycles-32/v1 needs reward='cycles', the submission has 'runtime'"
    cycles = {**runtime, "env_kwargs": {"reward": "cycles"}}
    assert place(cycles)[1] is None
    rc = _submission("flux-conv:size=8", "x", 2.0, budget=64, measurements=64)
    assert place(rc)[0].id == "rc-layers-small-64/v1"
    assert "rc-layers-small-64/v1" in [t.id for t in TRACKS]
    ic = _submission("heldout:sha1", "x", 2.0, env="llvm_pass_order", budget=5000,
                     measurements=4800)
    assert place(ic) == (None, None)  # run time, not IR instructions: untracked
    ic = {**ic, "env_kwargs": {"reward": "ir_instructions"}}
    assert place(ic)[0].id == "llvm-ic-heldout/v1"
    assert place({**ic, "measurements": 10_001, "track": "llvm-ic-heldout/v1"})[1] == \
        "measurements 10001 is above track llvm-ic-heldout/v1's budget of 10000 measurements"
    from_oz = {**ic, "env_kwargs": {"reward": "ir_instructions", "start": "-Oz"}}
    assert place(from_oz)[0].id == "llvm-ic-heldout-oz/v1"
    assert place({**from_oz, "track": "llvm-ic-heldout/v1"})[1] == \
        "track llvm-ic-heldout/v1 needs start='unoptimized', the submission has '-Oz'"


def test_the_llvm_ic_track_holds_the_held_out_split_s_test_programs():
    from optarena.envs.llvm_pass_order.splits import SPLITS

    train, test = next(s for s in SPLITS if s.id == "llvm-heldout/v1").problems()
    for track in (t for t in TRACKS if t.id.startswith("llvm-ic-heldout")):
        assert sorted(track.workloads) == sorted(test) and len(test) == 27
        assert not set(track.workloads) & set(train)


# ---------------------------------------------------------------------- in the browser


MARK_LOADED = """<script>
window.addEventListener("load", () => {
  for (const img of document.images) {
    img.dataset.decoded = String(img.complete && img.naturalWidth > 0);
    img.dataset.shownWidth = String(Math.round(img.getBoundingClientRect().width));
  }
  const text = document.createElement("pre");
  text.id = "rendered-text";
  text.textContent = document.querySelector("main").innerText;
  document.body.appendChild(text);
});
</script>"""


class _Page(HTMLParser):
    """What a dumped DOM shows: images under each h2 heading, links, and the rendered text."""

    def __init__(self) -> None:
        super().__init__()
        self.heading: str | None = None
        self.images: dict[str | None, list[dict[str, str | None]]] = {}
        self.links: list[str] = []
        self.text = ""
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "h2":
            self._in, self.heading = "h2", ""
        elif tag == "pre" and found.get("id") == "rendered-text":
            self._in = "text"
        elif tag == "img":
            self.images.setdefault(self.heading, []).append(found)
        self.links += [value or "" for key, value in attrs if key in ("src", "href")]

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h2", "pre"):
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "h2":
            self.heading = (self.heading or "") + data
        elif self._in == "text":
            self.text += data


def _render(page: Path, tmp_path: Path) -> _Page:
    """``page`` loaded in headless Chromium, its DOM dumped once loaded."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run installs it)")
    marked = tmp_path / f"marked-{page.name}"
    marked.write_text(page.read_text().replace("</body>", MARK_LOADED + "</body>"))
    profile = tmp_path / f"profile-{page.stem}"
    profile.mkdir()
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", "--window-size=1280,2000",
         "--dump-dom", marked.as_uri()],
        capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    parsed = _Page()
    parsed.feed(done.stdout)
    assert parsed.text, "the page did not finish loading"
    return parsed


def _self_contained(page: _Page) -> None:
    outside = [link for link in page.links if not link.startswith(("data:", "#"))]
    assert not outside, f"the page loads {outside}"


def test_report_page_shows_every_agent_and_its_plot_in_chromium(race, tmp_path):
    page = _render(race / "report.html", tmp_path)
    _self_contained(page)
    labels = ["mcts", "llm-mcts", "metaschedule", "random"]
    for workload in WORKLOADS:
        heading = f"{workload} (optarena/TensorSchedule-v0, budget {BUDGET})"
        (image,) = page.images[heading]  # one figure per workload section, decoded and shown
        assert image["data-decoded"] == "true" and int(image["data-shown-width"] or 0) > 300
        assert image["alt"] == f"curves of {workload}"
        start = page.text.rindex(heading)  # the section, not its line in the contents
        end = min((i for w in WORKLOADS if (i := page.text.rfind(f"{w} (optarena", start + 1)) > 0),
                  default=len(page.text))
        shown = page.text[start:end]
        for label in labels:  # a row of the standings: rank, agent, ...
            assert re.search(rf"\n\d+\t{label}\t", shown), f"no row of {label} for {workload}"
        assert "tests against metaschedule" in shown
    assert (race / "curves_matmul-64.png").read_bytes()[:4] == b"\x89PNG"
    assert "![curves of matmul-64](curves_matmul-64.png)" in (race / "report.md").read_text()


def test_leaderboard_page_ranks_tracked_entries_and_gives_reasons(tmp_path):
    submissions = {
        "ada-a": _submission("a", "mcts", 4.0),
        "ada-b": _submission("b", "mcts", 9.0),
        "bob-a": _submission("a", "evolutionary", 3.0, submitter="bob"),
        "bob-b": _submission("b", "evolutionary", 16.0, submitter="bob"),
        "cy-a": _submission("a", "random", 8.0, submitter="cy"),  # one workload: unranked
        "over": _submission("a", "ppo", 50.0, submitter="eve", budget=64, measurements=64,
                            track="toy/v1"),
        "tampered": _submission("b", "greedy", 99.0, submitter="mallory"),
        "loose": _submission("matmul-128", "mcts", 5.0, submitter="dan"),  # untracked
    }
    paths = []
    for name, data in submissions.items():
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(data))
    verified: list[str] = []

    def verify(submission: dict, tolerance: float | None) -> Verdict:
        verified.append(submission["run_id"])
        if submission["submitter"] == "mallory":
            return Verdict(False, "score 1e-05 claimed, 0.001 measured; worse than claimed")
        measured = submission["claimed"]["improvement"] * 0.9
        return Verdict(True, "within tolerance", 1e-3 / measured, measured)

    markdown, html = tmp_path / "LEADERBOARD.md", tmp_path / "LEADERBOARD.html"
    board = write_leaderboard(paths, markdown, html, tracks=(*TRACKS, TOY), verify=verify)
    assert "ppo-a" not in verified  # refused before anything is measured
    assert len(board.entries) == 6 and len(board.refused) == 1 and len(board.rejected) == 1
    text = markdown.read_text()
    standing = _rows(_section(text, "Track toy/v1"), "| rank | submitter |")
    # geometric means of the verified improvements over a and b: bob sqrt(3 * 16) * 0.9 = 6.235,
    # ada sqrt(4 * 9) * 0.9 = 5.4; cy, with one workload, is listed unranked
    assert [(cells[0], cells[1]) for cells in standing.values()] == \
        [("1", "bob"), ("2", "ada"), ("—", "cy")]
    assert standing["mcts"][4] == "5.400x" and standing["random"][3] == "1 / 2"
    page = _render(html, tmp_path)
    _self_contained(page)
    (chart,) = page.images["Track toy/v1"]
    assert chart["data-decoded"] == "true"
    for shown in ("ada", "bob", "cy", "dan", "matmul-128 (optarena/TensorSchedule-v0, untracked)",
                  "budget 64 is above track toy/v1's budget of 16 measurements",
                  "tampered.json", "worse than claimed"):
        assert shown in page.text, shown
    assert "mallory" not in page.text and "over.json" in page.text
    assert math.isclose(board.entries[0].verdict.improvement, 3.6)

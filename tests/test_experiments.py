"""Experiments: configs, resumable compare runs (killed for real), reports, submissions and
their verification against tampering. Runs use real environments (llvm-mca, the emulator, TVM)."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import yaml
from pydantic import ValidationError

from optarena.envs.contract import Outcome
from optarena.envs.host import cpu_fingerprint
from optarena.envs.registry import kind
from optarena.envs.tensor_schedule.measure import Measurer
from optarena.experiments import submission
from optarena.experiments.compare import compare
from optarena.experiments.pages import Table
from optarena.experiments.report import (
    agent_table,
    checkpoint_table,
    checkpoint_tests_table,
    group,
    measured_with,
    provenance,
    reference,
    samples_to_reach,
    summary_tables,
    write_report,
)
from optarena.experiments.runs import CompareConfig
from optarena.records import RunRecord, append_record, read_records, read_runs

from .conftest import FAST_MEASURE, private_cache

BLOCK = "loads_stores/O1/dot4/0"
OTHER_BLOCK = "loads_stores/O1/dot2/0"

PEEPHOLE_CONFIG = {
    "name": "peephole-test",
    "environments": [{"env": "aarch64_peephole", "workloads": [BLOCK]}],
    "agents": [{"agent": "random"}, {"agent": "greedy"}, {"agent": "mcts"}],
    "seeds": [0, 1],
    "budget": 6,
}


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment variables for ``optarena`` subprocesses: a private cache directory."""
    return private_cache(tmp_path_factory.mktemp("cli-cache"))


def _optarena(*args: str, env: dict[str, str], timeout: float = 600
              ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "optarena.experiments.cli", *args],
                          capture_output=True, text=True, env=env, timeout=timeout, check=False)


# ---------------------------------------------------------------------- configs and records


def test_config_expands_to_runs_whose_ids_follow_their_settings():
    config = CompareConfig(**PEEPHOLE_CONFIG)
    runs = config.runs()
    assert len(runs) == 6 and len({r.run_id for r in runs}) == 6
    assert [r.seed for r in runs] == [0, 0, 0, 1, 1, 1]  # every agent at seed 0 first
    again = CompareConfig(**PEEPHOLE_CONFIG).runs()
    assert [r.run_id for r in again] == [r.run_id for r in runs]
    longer = CompareConfig(**{**PEEPHOLE_CONFIG, "budget": 7}).runs()
    assert not {r.run_id for r in longer} & {r.run_id for r in runs}
    own = CompareConfig(**{**PEEPHOLE_CONFIG, "agents": [{"agent": "random"},
                                                         {"agent": "greedy", "budget": 9}]}).runs()
    assert [(r.label, r.budget) for r in own[:2]] == [("random", 6), ("greedy", 9)]
    assert own[0].run_id == runs[0].run_id  # an agent without its own budget is the same run


@pytest.mark.parametrize("change, message", [
    ({"environments": [{"env": "nope", "workloads": ["x"]}]}, "unknown env"),
    ({"agents": [{"agent": "random"}, {"agent": "random"}]}, "unique"),
    ({"environments": [{"env": "aarch64_peephole", "workloads": [BLOCK],
                        "kwargs": {"block": BLOCK}}]}, "workloads"),
    ({"budget": 0}, "greater than or equal"),
    ({"typo": 1}, "Extra inputs"),
])
def test_bad_configs_are_refused_with_the_reason(change, message):
    with pytest.raises(ValidationError, match=message):
        CompareConfig(**{**PEEPHOLE_CONFIG, **change})


def test_a_torn_last_line_is_skipped_and_the_next_record_starts_a_new_line(tmp_path):
    path = tmp_path / "results.jsonl"
    append_record(path, {"run_id": "a"})
    with path.open("a") as handle:
        handle.write('{"run_id": "b", "resu')  # the writer was killed mid-line
    assert [r["run_id"] for r in read_records(path)] == ["a"]
    append_record(path, {"run_id": "c"})
    assert [r["run_id"] for r in read_records(path)] == ["a", "c"]


# ---------------------------------------------------------------------- compare: kill and resume


def test_a_record_json_cannot_hold_is_refused_before_anything_is_written(tmp_path):
    path = tmp_path / "results.jsonl"
    append_record(path, {"run_id": "a"})
    with pytest.raises(TypeError, match="int64"):
        append_record(path, {"run_id": "b", "sketch": np.int64(1)})
    assert [r["run_id"] for r in read_records(path)] == ["a"] and path.read_text().endswith("\n")


def test_a_killed_compare_resumes_to_the_same_finished_runs(tmp_path, cli_env):
    config = {**PEEPHOLE_CONFIG, "seeds": [0]}  # three runs, one at a time: killed in the third
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    out = tmp_path / "out"
    expected = {r.run_id for r in CompareConfig(**config).runs()}
    process = subprocess.Popen(
        [sys.executable, "-m", "optarena.experiments.cli", "compare", "--config",
         str(config_path), "--out", str(out)],
        env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = out / "results.jsonl"
    deadline = time.monotonic() + 300
    while len(read_records(results)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    children = psutil.Process(process.pid).children(recursive=True)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = results.read_text()
    finished_before = {r["run_id"] for r in read_records(results)}
    assert 2 <= len(finished_before) < len(expected), "kill the run halfway"
    _, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, "a run's process outlived the killed experiment"

    resumed = _optarena("compare", "--config", str(config_path), "--out", str(out), env=cli_env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    records = read_records(results)
    ids = [r["run_id"] for r in records]
    assert set(ids) == expected and len(ids) == len(expected)  # none lost, none run twice
    assert results.read_text().startswith(before)  # what was recorded stays as it was
    assert f"{len(finished_before)} already" in resumed.stdout
    for record in records:
        assert record["result"]["usage"]["measurements"] <= 6
        assert record["problem"]["workload"] == BLOCK and record["versions"]["optarena"]
        assert record["machine"]["cores"] >= 1
    report = (out / "report.md").read_text()
    for label in ("random", "greedy", "mcts"):
        assert f"| {label} | 1 |" in report
    assert (out / "curves_loads_stores_O1_dot4_0.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    again = _optarena("compare", "--config", str(config_path), "--out", str(out), env=cli_env)
    assert "0 to go" in again.stdout and len(read_records(results)) == len(expected)
    changed = _optarena("compare", "--config", str(config_path), "--out", str(out),
                        "--budget", "9", env=cli_env)
    assert changed.returncode == 2 and "another config" in changed.stderr
    recorded = (out / "config.yaml").read_text()
    part = _optarena("compare", "--config", str(config_path), "--out", str(out), "--agents",
                     "mcts", "--seeds", "0", env=cli_env)  # a selection of the same config
    assert part.returncode == 0 and "0 to go" in part.stdout, part.stdout
    assert (out / "config.yaml").read_text() == recorded  # the directory still records it whole


def test_a_failing_run_is_recorded_as_a_failure_and_the_others_finish(tmp_path):
    config = CompareConfig(**{**PEEPHOLE_CONFIG, "seeds": [0], "workers": 2, "agents": [
        {"agent": "random"},
        {"agent": "llm-mcts", "config": {"llm": {"base_url": "http://127.0.0.1:9/v1"}}}]})
    outcome = compare(config, tmp_path)
    assert len(outcome.finished) == 1 and len(outcome.failed) == 1
    (failure,) = outcome.failed.values()
    assert "LLMUnavailable" in failure
    assert [r["spec"]["agent"] for r in read_records(tmp_path / "failures.jsonl")] == ["llm-mcts"]
    assert "Failed runs" in write_report(tmp_path).read_text()


def test_a_run_past_its_timeout_is_killed_and_recorded(tmp_path):
    config = CompareConfig(**{**PEEPHOLE_CONFIG, "seeds": [0], "agents": [{"agent": "ppo"}],
                              "run_timeout_s": 1.0})
    outcome = compare(config, tmp_path)
    assert not outcome.finished
    assert "killed after run_timeout_s=1" in next(iter(outcome.failed.values()))
    assert not (tmp_path / "results.jsonl").exists()


# ---------------------------------------------------------------------- report statistics


def _record(label: str, agent: str, seed: int, curve: list[tuple[int, float]], *,
            budget: int = 10, workload: str = "w", machine: dict | None = None,
            problem: dict | None = None, **usage: float) -> RunRecord:
    """A tensor run's record with ``curve`` as (measurements, best improvement) points."""
    return RunRecord.model_validate({
        "record_version": 1, "run_id": f"{label}-{seed}", "env_id": "optarena/TensorSchedule-v0",
        "spec": {"env": "tensor_schedule", "workload": workload, "env_kwargs": {},
                 "agent": agent, "label": label, "agent_config": {}, "seed": seed,
                 "budget": budget},
        "problem": {"workload": workload, "workload_hash": "0123", "reference_score": 1.0,
                    "deterministic": False, **(problem or {})},
        "result": {"agent": agent, "seed": seed, "budget": budget,
                   "best_improvement": curve[-1][1], "wall_s": 1.0,
                   "curve": [{"measurements": m, "wall_s": 0.1 * m, "best_score": 1 / v,
                              "best_improvement": v} for m, v in curve],
                   "usage": {"measurements": curve[-1][0], **usage}},
        "versions": {"python": "3.11.7"}, "machine": machine or {"cpu": "Test CPU", "cores": 2},
        "started": 0.0, "finished": 1.0})


def _cells(table: Table, column: int) -> dict[str, list[str]]:
    return {row[column]: row for row in table.rows}


def test_report_columns_follow_their_definitions():
    records = [
        _record("evo", "evolutionary", 0, [(1, 1.0), (5, 2.0)]),
        _record("evo", "evolutionary", 1, [(1, 1.0), (5, 2.0)]),
        _record("ms", "metaschedule", 0, [(1, 1.0), (8, 3.0)]),
        _record("ms", "metaschedule", 1, [(1, 1.0), (8, 3.0)]),
        _record("llm", "llm-mcts", 0, [(1, 1.5), (2, 4.0)], llm_calls=4, prompt_tokens=400,
                proposals=4, fallbacks=1),
        _record("llm", "llm-mcts", 1, [(1, 1.5), (3, 3.0), (4, 4.0)], llm_calls=6,
                prompt_tokens=600, proposals=6, fallbacks=0),
    ]
    assert samples_to_reach(records[4], 3.0) == 2.0
    assert math.isnan(samples_to_reach(records[0], 3.0))
    (rows,) = group(records).values()
    ref = reference(rows, "metaschedule")
    assert ref.name == "ms" and ref.level == pytest.approx(3.0)
    table = _cells(agent_table(rows, 10, ref), 1)
    assert list(table) == ["llm", "ms", "evo"]  # geometric mean best first
    assert {row[0] for row in table.values()} == {"1"}  # two seeds never separate agents
    assert table["llm"][3] == "4.00x [4.00, 4.00]"
    # MS's level (3.0) reached after 2 and 3 measurements: Kaplan-Meier median 2, all reach it
    assert table["llm"][4] == "2 (100%; 2-3)"
    assert table["evo"][4] == "> 10 (0%)"  # censored at the budget
    assert table["llm"][5] == "3.0 (2-4)"  # to own best: mean (range)
    # efficiency: (4.0 / 3 samples) / (2.0 / 5 samples) = 3.33; evolutionary is the unit
    assert table["llm"][6] == "3.33" and table["evo"][6] == "1.00"
    assert table["llm"][8:11] == ["5.0", "500", "0.10"]  # calls, tokens per run, 1/10 fallbacks
    assert table["ms"][8] == "—"
    within = _cells(checkpoint_table(rows, 10, [1, 3, 50]), 0)
    # within 3: 4.0 and 3.0, geometric mean sqrt(12) = 3.46, log half-width 12.706 * ln(4/3) / 2
    assert within["llm"][1:] == ["1.50x [1.50, 1.50] (#1)", "3.46x [0.56, 21.5] (#1)"]


def test_report_names_every_machine_a_resumed_race_ran_on():
    versions = {"optarena": "1.0", "apache-tvm": "0.27", "python": "3.11.7"}
    records = [_record("evo", "evolutionary", seed, [(1, 2.0)], machine={"cpu": cpu, "cores": 2})
               for seed, cpu in enumerate(["Intel Xeon", "Intel Xeon", "AMD EPYC"])]
    for record in records:
        record.versions = versions
    assert provenance(records) == ("Machines: Intel Xeon, 2 cores (2 runs); AMD EPYC, 2 cores "
                                   "(1 run). Version: optarena 1.0, TVM 0.27, Python 3.11.7.")
    assert provenance(records[:2]).startswith("Machine: Intel Xeon, 2 cores. Version: optarena")
    # two hosts of one model name that expose different instruction sets (their tensor runs'
    # LLVM targets differ) are two machines
    epyc = [_record("evo", "evolutionary", 2, [(1, 2.0)], machine={"cpu": "AMD EPYC", "cores": 2},
                    problem={"target": {"kind": "llvm", "mcpu": mcpu}}) for mcpu in ("znver3", "znver1")]
    for record in epyc:
        record.versions = versions
    assert provenance(epyc).startswith("Machines: AMD EPYC (LLVM znver3), 2 cores (1 run); "
                                       "AMD EPYC (LLVM znver1), 2 cores (1 run). Version:")
    # ... and so are two such hosts without a target, told apart by their flags' fingerprints
    hosts = [records[2].model_copy(update={"machine": records[2].machine.model_copy(
        update={"cpu_flags": cpu_fingerprint(flags)})})
             for flags in (["avx2", "fma"], ["avx2", "fma", "vaes"], ["fma", "avx2"])]
    assert provenance(hosts).startswith(
        f"Machines: AMD EPYC (flags {cpu_fingerprint(['fma', 'avx2'])}), 2 cores (2 runs); "
        f"AMD EPYC (flags {cpu_fingerprint(['vaes', 'avx2', 'fma'])}), 2 cores (1 run). Version:")
    assert provenance(hosts[::2]).startswith("Machine: AMD EPYC, 2 cores. Version:")


def test_a_workload_section_names_every_target_its_runs_were_measured_with():
    targets = [{"kind": "llvm", "mcpu": mcpu} for mcpu in ("rocketlake", "rocketlake", "znver3")]
    records = [_record("evo", "evolutionary", seed, [(1, 2.0)], problem={
        "target": target, "reference_score": 0.5 if seed < 2 else 0.25})
               for seed, target in enumerate(targets)]
    rows = group(records)[("optarena/TensorSchedule-v0", "w", 10)]
    assert measured_with(rows) == (
        'targets and reference scores: `{"kind": "llvm", "mcpu": "rocketlake"}`, 0.5 (2 runs); '
        '`{"kind": "llvm", "mcpu": "znver3"}`, 0.25 (1 run)')
    one = group(records[:2])[("optarena/TensorSchedule-v0", "w", 10)]
    assert measured_with(one) == 'target `{"kind": "llvm", "mcpu": "rocketlake"}`, ' \
        "reference score 0.5"


def test_agents_are_tested_against_the_baseline_at_equal_samples():
    records = [_record("a", "mcts", seed, [(1, 1.0), (2, 2.0 + 0.1 * seed)]) for seed in range(6)]
    records += [_record("ms", "metaschedule", seed, [(1, 1.0), (5, 10.0)]) for seed in range(6)]
    (rows,) = group(records).values()
    table = checkpoint_tests_table(rows, reference(rows, "metaschedule"), 10, [2, 5, 50])
    assert table.headers[1:] == ["within 2: agent / ms, Holm p", "within 5: agent / ms, Holm p"]
    (row,) = table.rows
    # within 2 the agent leads in all 6 pairs, within 5 it trails in all 6: exact two-sided
    # Wilcoxon p = 2 / 2^6 both times
    assert row[1].endswith("p 0.031 (n=6)") and row[1].startswith("2.2")
    assert row[2].endswith("p 0.031 (n=6)") and row[2].startswith("0.2")
    ranks = {label: [cell.split("(#")[1].rstrip(")") for cell in cells]
             for label, *cells in checkpoint_table(rows, 10, [2, 5]).rows}
    assert ranks == {"a": ["1", "2"], "ms": ["2", "1"]}  # the leader changes between checkpoints


def test_a_starting_score_counts_at_every_checkpoint():
    # a peephole block no rule applies to: the run's curve is its start (0 measurements) alone
    records = [_record("greedy", "greedy", seed, [(0, 1.0)]) for seed in range(3)]
    records += [_record("mcts", "mcts", seed, [(0, 1.0), (4, 2.0)]) for seed in range(3)]
    (rows,) = group(records).values()
    within = _cells(checkpoint_table(rows, 10, [1, 8]), 0)
    assert within["greedy"][1:] == ["1.00x [1.00, 1.00] (#1)", "1.00x [1.00, 1.00] (#1)"]
    assert within["mcts"][1].startswith("1.00x") and within["mcts"][2].startswith("2.00x")
    (row,) = checkpoint_tests_table(rows, reference(rows, "greedy"), 10, [1, 8]).rows
    assert row[1].endswith("(n=3)") and row[2].endswith("(n=3)")


def test_a_baseline_with_a_budget_of_its_own_is_the_reference_at_every_budget():
    records = [_record("evo", "evolutionary", seed, [(1, 1.0), (4, 3.5)]) for seed in (0, 1)]
    records += [_record("ms-512", "metaschedule", seed, [(1, 1.0), (300, 3.0 + seed)], budget=512)
                for seed in (0, 1)]
    groups = group(records)
    assert set(groups) == {("optarena/TensorSchedule-v0", "w", 10),
                           ("optarena/TensorSchedule-v0", "w", 512)}
    evo_rows, ms_rows = groups[("optarena/TensorSchedule-v0", "w", 10)], \
        groups[("optarena/TensorSchedule-v0", "w", 512)]
    assert reference(evo_rows, "metaschedule") == \
        "the baseline agent `metaschedule` did not run on this workload"
    ref = reference(evo_rows, "metaschedule", ms_rows + evo_rows)
    assert ref.row is ms_rows[0] and ref.level == pytest.approx(math.sqrt(3.0 * 4.0))
    assert "at budget 512" in ref.describe()
    # evolutionary reaches MS-512's level (3.46x) at its 4th measurement in both seeds
    assert _cells(agent_table(evo_rows, 10, ref), 1)["evo"][4] == "4 (100%)"
    # pooled with a second workload, evolutionary's runs are paired with MS-512's
    other = [r.model_copy(update={"spec": r.spec.model_copy(update={"workload": "v"})})
             for r in records]
    other_groups = group(other)
    other_rows = other_groups[("optarena/TensorSchedule-v0", "v", 10)]
    other_ref = reference(other_rows, "metaschedule",
                          other_groups[("optarena/TensorSchedule-v0", "v", 512)])
    standings, tests = summary_tables([(evo_rows, ref), (other_rows, other_ref)], 10)
    assert [row[1] for row in standings.rows] == ["evo"]
    (test,) = tests.rows
    assert test[:2] == ["evo", "4"]  # 2 workloads x 2 seeds paired with MS-512's runs


# ---------------------------------------------------------------------- submissions


@pytest.fixture(scope="module")
def peephole_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("peephole-results")
    config = CompareConfig(**{**PEEPHOLE_CONFIG, "seeds": [0], "agents": [{"agent": "greedy"}],
                              "budget": 12})
    assert not compare(config, out).failed
    return out


@pytest.fixture
def genuine(peephole_results: Path) -> dict:
    (record,) = read_runs(peephole_results / "results.jsonl")
    return submission.make_submission(peephole_results, record.run_id, "tester")


def test_a_genuine_peephole_submission_is_accepted_and_cycles_must_match_exactly(genuine):
    assert genuine["claimed"]["improvement"] > 1.2 and "ldp" in genuine["solution"]["state"]["asm"]
    verdict = submission.verify(genuine)
    assert verdict.accepted, verdict.reason
    assert verdict.score == genuine["claimed"]["score"]


def _claim(sub: dict, score: float) -> dict:
    """``sub`` claiming ``score``, with a consistent improvement (a careful tamperer)."""
    claimed = {**sub["claimed"], "score": score,
               "improvement": sub["claimed"]["reference_score"] / score}
    return {**sub, "claimed": claimed}


class _Remeasured:
    """A problem whose solution re-measures to ``latencies`` in turn."""

    def __init__(self, latencies: list[float]) -> None:
        self.latencies, self.calls = list(latencies), 0

    def as_state(self, data: dict) -> dict:
        return data

    def evaluate(self, states: list, *, fresh: bool = False) -> list[Outcome]:
        assert fresh, "a verifier re-measures, whatever is known"
        self.calls += 1
        return [Outcome(self.latencies.pop(0)) for _ in states]


def test_a_slow_spell_does_not_reject_a_timing_and_more_attempts_make_nothing_faster():
    def within(latency: float) -> bool:  # a claim of 1.0 at tolerance 0.25
        return latency <= 1.25

    slow_spell = _Remeasured([1.5, 1.4, 1.1, 1.0])
    assert submission._remeasure(slow_spell, "w", {}, 8, within) == 1.1
    assert slow_spell.calls == 3  # the first measurement within the tolerance ends them
    slower = _Remeasured([1.5, 1.3, 1.4, 1.6, 1.3, 1.5, 1.4, 1.3, 1.0])
    assert submission._remeasure(slower, "w", {}, 8, within) == 1.3 and slower.calls == 8


def test_tampered_peephole_submissions_are_rejected(genuine):
    state = genuine["solution"]["state"]
    fewer_cycles = _claim(genuine, genuine["claimed"]["score"] - 1)
    assert "worse than claimed" in submission.verify(fewer_cycles).reason
    inflated = {**genuine, "claimed": {**genuine["claimed"], "improvement": 9.0}}
    assert "does not follow" in submission.verify(inflated).reason
    # an offset changed by hand: assembles, but reads other memory
    wrong = state["asm"].replace("#16]", "#24]", 1)
    assert wrong != state["asm"]
    inequivalent = {**genuine, "solution": {**genuine["solution"], "state": {**state, "asm": wrong}}}
    verdict = submission.verify(inequivalent)
    assert not verdict.accepted and "the solution fails (" in verdict.reason
    other_hash = {**genuine, "workload_hash": "0" * 16}
    assert "another workload" in submission.verify(other_hash).reason
    other_block = {**genuine, "solution": {**genuine["solution"],
                                           "state": {**state, "problem": OTHER_BLOCK}}}
    assert f"the solution is for {OTHER_BLOCK!r}" in submission.verify(other_block).reason
    assert "malformed submission: claimed.score" in submission.verify(
        {**genuine, "claimed": {**genuine["claimed"], "score": "fast"}}).reason
    assert "malformed submission: workload" in submission.verify(
        {k: v for k, v in genuine.items() if k != "workload"}).reason


def test_the_verifier_decides_how_to_measure(genuine):
    """A submission may not lower the checker's states (nor name a device or timing); the
    verifier's own settings may raise them but not change the problem."""
    weaker = {**genuine, "env_kwargs": {**genuine["env_kwargs"], "check_states": 1}}
    verdict = submission.verify(weaker)
    assert not verdict.accepted and "['check_states'] do not define the problem" in verdict.reason
    assert submission.verify(genuine, settings={"check_states": 32}).accepted
    assert kind("aarch64_peephole").policy_for({}).verification_kwargs(
        {"check_states": 1})["check_states"] == 8
    with pytest.raises(ValueError, match="define the problem"):
        submission.check_settings("aarch64_peephole", {"mcpu": "cortex-a53"})


def test_verify_and_leaderboard_commands(genuine, tmp_path, cli_env):
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(genuine))
    bad.write_text(json.dumps(_claim(genuine, genuine["claimed"]["score"] * 0.5)))
    accepted = _optarena("verify", str(good), env=cli_env)
    assert accepted.returncode == 0 and accepted.stdout.startswith("ACCEPT")
    rejected = _optarena("verify", str(bad), env=cli_env)
    assert rejected.returncode == 1 and rejected.stdout.startswith("REJECT")
    board = tmp_path / "LEADERBOARD.md"
    done = _optarena("leaderboard", str(good), str(bad), "-o", str(board), env=cli_env)
    assert done.returncode == 0, done.stderr
    text = board.read_text()
    assert "| 1 | tester | greedy | " in text
    assert "## Rejected" in text and "bad.json" in text and "good.json" not in text


@pytest.fixture(scope="module")
def tensor_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tensor-results")
    config = CompareConfig(
        environments=[{"env": "tensor_schedule", "workloads": ["matmul-128"],
                       "kwargs": {"measure": FAST_MEASURE}}],
        agents=[{"agent": "mcts-measured"}], seeds=[0], budget=8)
    assert not compare(config, out).failed
    return out


def test_a_tensor_submission_is_re_measured_and_tampering_is_rejected(tensor_results, tmp_path,
                                                                     monkeypatch):
    (record,) = read_runs(tensor_results / "results.jsonl")
    genuine = submission.make_submission(tensor_results, record.run_id)
    assert genuine["workload_hash"] == record.problem.workload_hash
    assert record.problem.anchors, "the race timed its anchors"

    def timed_anchors(*args: object) -> None:
        raise AssertionError("a verifier needs no anchor")

    monkeypatch.setattr(Measurer, "measure_anchors", timed_anchors)
    # tests run two at a time: the other's load can double a re-measured time here (a claim three
    # times too fast is still rejected below, at the default tolerance)
    verdict = submission.verify(genuine, tolerance=1.0)
    assert verdict.accepted, verdict.reason
    assert verdict.improvement > 2 and np.isfinite(verdict.score)
    assert verdict.reason.startswith("score ")  # this machine: latencies are compared
    # a CPU of the same model name with other flags is another machine: improvements compared
    elsewhere = {**genuine, "machine": {**genuine["machine"], "cpu_flags": "0123456789ab"}}
    assert "another machine" in submission.verify(elsewhere).reason

    faster = _claim(genuine, genuine["claimed"]["score"] / 3)
    assert "worse than claimed" in submission.verify(faster).reason
    from optarena.envs.tensor_schedule.workload import get_workload

    # the state of matmul-128 under the name and the true hash of matmul-256: a state names its
    # problem, and with the name changed too its decisions replay (MetaSchedule snaps tile
    # factors) into a correct but slower program than the claim
    moved = {**genuine, "workload": "matmul-256",
             "workload_hash": get_workload("matmul-256").structural_hash}
    verdict = submission.verify(moved)
    assert not verdict.accepted and "the solution is for 'matmul-128'" in verdict.reason
    renamed_state = {**genuine["solution"]["state"], "problem": "matmul-256"}
    verdict = submission.verify({**moved, "solution": {"state": renamed_state}})
    assert not verdict.accepted
    assert "not a state" in verdict.reason or "worse than claimed" in verdict.reason
    renamed = {**genuine, "workload": "matmul-256"}
    assert "another workload" in submission.verify(renamed).reason
    for how in ({"measure": {**FAST_MEASURE, "check": False}},
                {"rpc": {"tracker_host": "203.0.113.7", "tracker_port": 9190, "key": "fast"}}):
        verdict = submission.verify({**genuine, "env_kwargs": how})
        assert not verdict.accepted and "do not define the problem" in verdict.reason


@pytest.mark.slow
def test_a_metaschedule_submission_is_verified(tmp_path):
    config = CompareConfig(
        environments=[{"env": "tensor_schedule", "workloads": ["matmul-128"],
                       "kwargs": {"measure": FAST_MEASURE}}],
        agents=[{"agent": "metaschedule"}], seeds=[0], budget=8)
    assert not compare(config, tmp_path).failed
    (record,) = read_runs(tmp_path / "results.jsonl")
    genuine = submission.make_submission(tmp_path, record.run_id)
    assert genuine["solution"]["state"]["problem"] == "matmul-128"
    assert genuine["settings"] == {"measure": FAST_MEASURE} and genuine["env_kwargs"] == {}
    verdict = submission.verify(genuine)
    assert verdict.accepted, verdict.reason
    assert not submission.verify(_claim(genuine, genuine["claimed"]["score"] / 3)).accepted

"""Run records and training episodes (optarena.records): every committed result loads through
them, reading checks the version and the budget, the policy comes from the registry, and reading
or reporting a result imports no environment and no TVM."""

from __future__ import annotations

import inspect
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from optarena.envs.registry import KINDS, kind
from optarena.experiments.pages import cost_cells
from optarena.experiments.runs import CompareConfig
from optarena.records import (
    RECORD_VERSION,
    RecordError,
    RunRecord,
    SearchResult,
    Usage,
    append_record,
    read_episodes,
    read_runs,
)

RESULTS = Path(__file__).parent.parent / "results"
COMMITTED_RUNS = sorted(RESULTS.glob("**/results.jsonl"))
COMMITTED_EPISODES = sorted(RESULTS.glob("**/episodes.jsonl"))
ENV_MODULES = ("optarena.envs.tensor_schedule", "optarena.envs.aarch64_peephole",
               "optarena.envs.llvm_pass_order")


def _first_line(path: Path) -> dict:
    return json.loads(path.read_text().splitlines()[0])


def test_every_committed_result_loads_through_the_record_models():
    assert len(COMMITTED_RUNS) >= 12 and len(COMMITTED_EPISODES) == 2
    for path in COMMITTED_RUNS:
        records = read_runs(path)
        lines = path.read_text().splitlines()
        assert len(records) == len(lines), path
        for record, line in zip(records, lines, strict=True):
            data = json.loads(line)
            # version 1 is migrated on read, the file left as it was
            assert data["record_version"] in (1, RECORD_VERSION)
            assert record.record_version == RECORD_VERSION
            today = kind(record.spec.env).policy_for(record.spec.env_kwargs)
            # a problem argument added since (the pass-order start) is at its default in them
            added = set(today.problem_kwargs) - set(record.policy.problem_kwargs)
            assert record.policy == today.model_copy(update={"problem_kwargs": {
                k: v for k, v in today.problem_kwargs.items() if k not in added}})
            assert added <= {"start"} and all(
                today.problem_kwargs[k] == record.spec.env_kwargs.get(k, today.problem_kwargs[k])
                for k in added)
            assert record.result.usage.tokens == data["result"]["usage"]["tokens"]
            if data["record_version"] == 1:  # before the planning loop
                assert record.result.usage.planning_s == 0.0
            assert record.problem.workload_hash == data["problem"]["workload_hash"]
            # ids as written (those of runs without a deadline as before RunSpec.seconds)
            assert record.run_id == record.spec.run_id
    for path in COMMITTED_EPISODES:
        episodes = read_episodes(path)
        assert len(episodes) == len(path.read_text().splitlines())
        assert {e.policy for e in episodes} == {"policy", "greedy", "random"}
        assert all(e.machine is None for e in episodes)  # version 0 did not record it


def test_the_tree_agents_of_version_1_records_read_as_the_measured_agents_and_resume():
    """Before the planning loop ``mcts``, ``puct`` and ``llm-mcts`` measured every node: their
    committed records read as ``*-measured`` (label unchanged), and the committed config, renamed
    the same way, expands to their run ids, so ``compare`` skips them."""
    out = RESULTS / "llm-vs-mcts-quiet"
    records = read_runs(out / "results.jsonl")
    labels = {r.spec.label: r.spec.agent for r in records}
    assert labels["mcts"] == "mcts-measured" and labels["llm-mcts"] == "llm-mcts-measured"
    assert labels["metaschedule"] == "metaschedule"
    expected = {spec.run_id for spec in CompareConfig.load(out / "config.yaml").runs()}
    assert {r.run_id for r in records} == expected
    assert all(r.run_id == r.spec.run_id for r in records)


def test_a_record_is_written_and_read_back_as_it_was(tmp_path):
    record = read_runs(RESULTS / "rc-cpu-small-5" / "results.jsonl")[4]
    assert not math.isfinite(record.result.curve[0].best_score)  # nothing measured yet
    record.result.usage.planning_s += 1.5  # agents count in place
    append_record(tmp_path / "results.jsonl", record)
    (again,) = read_runs(tmp_path / "results.jsonl")
    assert again == record and "Infinity" in (tmp_path / "results.jsonl").read_text()


def _read_error(read: object, path: Path) -> str:
    with pytest.raises(RecordError) as error:
        read(path)  # type: ignore[operator]
    return str(error.value)


def test_reading_names_the_file_line_and_version_of_a_record_it_cannot_read(tmp_path):
    path = tmp_path / "results.jsonl"
    good = _first_line(COMMITTED_RUNS[0])
    append_record(path, good)
    append_record(path, {**good, "record_version": 3})
    assert _read_error(read_runs, path) == (
        f"{path}:2: not a RunRecord: record_version 3, this optarena reads 1 to "
        f"{RECORD_VERSION}; upgrade optarena")
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "spec": "x"}) + "\n")
    assert "results.jsonl:2: not a RunRecord: spec: Input should be" in \
        _read_error(read_runs, path)
    episodes = RESULTS / "train-llvm" / "episodes.jsonl"
    assert _read_error(read_runs, episodes) == (
        f"{episodes}:1: not a RunRecord: no record_version: not a run record of optarena "
        "compare (an optarena train episode?)")
    assert _read_error(read_episodes, path) == (
        f"{path}:1: not a TrainEpisode: a run record of optarena compare, not a training episode")


def test_a_record_over_its_budget_can_be_neither_built_nor_read(tmp_path):
    data = _first_line(COMMITTED_RUNS[0])
    budget = data["spec"]["budget"]
    data["result"]["usage"]["measurements"] = budget + 1
    with pytest.raises(ValidationError, match=f"used {budget + 1} measurements, over its budget "
                                              f"of {budget}"):
        RunRecord.model_validate(data)
    (tmp_path / "results.jsonl").write_text(json.dumps(data) + "\n")
    with pytest.raises(RecordError, match=r"results.jsonl:1: .* over its budget"):
        read_runs(tmp_path / "results.jsonl")
    within = _first_line(COMMITTED_RUNS[0])
    within["result"]["budget"] = within["result"]["usage"]["measurements"] - 1  # the agent's own
    with pytest.raises(ValidationError, match="over its budget"):
        RunRecord.model_validate(within)


def test_a_problem_recorded_before_anchors_has_its_o3_score_as_the_anchor():
    data = _first_line(RESULTS / "llvm-5" / "results.jsonl")
    problem = {k: v for k, v in data["problem"].items() if k != "anchors"}
    record = RunRecord.model_validate({**data, "problem": {**problem, "o3_score": 1234.0}})
    assert record.problem.anchors == {"-O3": 1234.0}
    assert "o3_score" not in record.problem.model_dump()


def test_usage_derives_its_totals_and_costs_per_measurement():
    usage = Usage(measurements=4, cost_model_calls=400, planning_s=2.0, prompt_tokens=30,
                  completion_tokens=10, proposals=4, fallbacks=1)
    usage.llm_calls += 2
    assert usage.model_dump()["tokens"] == 40 and usage.fallback_rate == 0.25
    assert Usage.model_validate(usage.model_dump()) == usage  # derived values are not read
    headers, (cells, nothing) = cost_cells([[usage, Usage(measurements=4)], []])
    # only the costs some group spent: no LLM seconds column
    assert headers == ["estimate calls / measurement", "planning s / measurement",
                       "LLM calls / measurement", "prompt tokens / measurement"]
    assert cells == ["50", "0.25", "0.25", "3.75"] and nothing == ["—"] * 4
    assert cost_cells([[Usage(measurements=3)]]) == ([], [[]])
    assert SearchResult(agent="a", seed=0, budget=1).best_score == math.inf


def test_the_policy_is_the_registry_s_data_resolved_for_the_arguments():
    llvm, tensor, peephole = kind("llvm_pass_order"), kind("tensor_schedule"), \
        kind("aarch64_peephole")
    assert llvm.policy_for({}).baseline == "anchor:-O3"
    assert llvm.policy_for({"reward": "ir_instructions"}).baseline == "anchor:-Oz"
    assert llvm.policy_for({}).measures_time and not llvm.policy_for({"reward": "cycles"}) \
        .measures_time
    assert tensor.policy_for({}).measures_time
    assert not tensor.policy_for({"rpc": {"key": "farm"}}).measures_time
    assert peephole.policy_for({}).baseline == "greedy"
    forced = tensor.policy_for({}).verification_kwargs(
        {"measure": {"check": False, "tolerance": 1, "repeat": 9}, "max_steps": 4})
    assert forced == {"measure": {"check": True, "tolerance": 1e-3, "repeat": 9,
                                  "early_stop": None, "spread": None}, "max_steps": 4}
    assert tensor.policy_for({}).verification_kwargs({"measure": {"tolerance": 1e-5}})[
        "measure"]["tolerance"] == 1e-5  # a stricter tolerance is kept
    checker = peephole.policy_for({}).verification_kwargs
    proofs = {"prove": True, "proof_time_limit": 0.05}  # proofs forced on, at least 50 ms
    assert checker({"check_states": 1}) == {"check_states": 8, **proofs}
    assert checker({"check_states": 32, "prove": False, "proof_time_limit": 1.0}) == {
        "check_states": 32, "prove": True, "proof_time_limit": 1.0}


@pytest.mark.parametrize("name,problem,kwargs", [
    ("tensor_schedule", "matmul-64", {}), ("tensor_schedule", "matmul-64", {"surrogate": True}),
    ("aarch64_peephole", "loads_stores/O1/dot4/0", {})])
def test_the_policy_says_whether_the_environment_has_a_cost_model(name, problem, kwargs):
    """What a config is checked against before any run (a model-based agent needs a cost
    model) is what the environment made with those arguments has (pass ordering has none:
    test_llvm_pass_order's race refuses the model-based agents)."""
    from optarena.envs.contract import game

    env_kind = kind(name)
    env = env_kind.make(problem, kwargs)
    try:
        assert game(env).has_cost_model == env_kind.policy.has_cost_model(kwargs)
    finally:
        env.close()
    assert not kind("llvm_pass_order").policy.has_cost_model({"reward": "ir_instructions"})


@pytest.mark.parametrize("name", ["aarch64_peephole", "llvm_pass_order"])
def test_the_registry_s_problem_defaults_are_the_constructors(name):
    env_kind = KINDS[name]
    parameters = inspect.signature(env_kind.env_class()).parameters
    for argument, default in env_kind.policy.problem_kwargs.items():
        assert parameters[argument].default == default, argument
    if name == "aarch64_peephole":
        from optarena.envs.aarch64_peephole.env import CHECK_STATES
        from optarena.envs.aarch64_peephole.prove import DEFAULT_TIME_LIMIT

        assert env_kind.policy_for({}).verification_kwargs({}) == {
            "check_states": CHECK_STATES, "prove": True, "proof_time_limit": DEFAULT_TIME_LIMIT}


def test_report_submit_and_leaderboard_import_no_environment_and_no_tvm(tmp_path):
    """``optarena report`` and ``submit`` on a tensor race, and ``optarena leaderboard`` placing
    and rejecting tensor submissions, import neither TVM nor an environment module (verifying an
    accepted tensor submission re-measures it: that one needs TVM)."""
    out = tmp_path / "race"
    out.mkdir()
    for name in ("config.yaml", "results.jsonl"):
        shutil.copy(RESULTS / "early-stop" / "on" / name, out / name)
    best = max(read_runs(out / "results.jsonl"), key=lambda r: r.result.best_improvement)
    submitted, off_track, stale = (tmp_path / f"{n}.json" for n in ("sub", "off", "stale"))
    board = tmp_path / "LEADERBOARD.md"
    code = (
        "import json, sys\n"
        "from optarena.experiments.cli import main\n"
        f"codes = [main(['report', {str(out)!r}]),\n"
        f"         main(['submit', {str(out)!r}, '--run', {best.run_id!r}, '-o', "
        f"{str(submitted)!r}])]\n"
        f"data = json.loads(open({str(submitted)!r}).read())\n"
        f"open({str(off_track)!r}, 'w').write(json.dumps({{**data, "
        "'track': 'rc-layers-small-64/v1'}))\n"
        f"open({str(stale)!r}, 'w').write(json.dumps({{**data, "
        "'format': 'optarena-submission/1'}))\n"
        f"codes.append(main(['leaderboard', {str(off_track)!r}, {str(stale)!r}, '-o', "
        f"{str(board)!r}]))\n"
        "print(json.dumps({'codes': codes, 'loaded': sorted(m for m in sys.modules "
        f"if m.split('.')[0] == 'tvm' or m.startswith({ENV_MODULES!r}))}}))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    outcome = json.loads(done.stdout.splitlines()[-1])
    assert outcome == {"codes": [0, 0, 0], "loaded": []}
    report = (out / "report.md").read_text()
    assert "Baseline: the baseline agent `metaschedule` did not run" not in report
    assert "did not run on this workload" in report  # the policy's baseline, read from records
    submission = json.loads(submitted.read_text())
    assert submission["usage"]["measurements"] == submission["measurements"]
    leaderboard = board.read_text()
    assert "is not in track rc-layers-small-64/v1" in leaderboard
    assert "stale.json" in leaderboard and "not an optarena-submission/2 file" in leaderboard

"""The held-out programs of optarena/LlvmPassOrder-v0 (``heldout:NAME``) and the split
``llvm-heldout/v1``: each program builds (clang-14, natively, warnings as errors) and checks its
own output; one steps in the real environment (needs CompilerGym, as in test_llvm_pass_order); the
slow test builds every one through CompilerGym and compares its output with clang-14 -O2's."""

from __future__ import annotations

import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from optarena.envs.llvm_pass_order.space import PassState
from optarena.envs.llvm_pass_order.splits import HELDOUT_V1
from optarena.envs.llvm_pass_order.workload import heldout_names, parse_benchmark
from optarena.envs.splits import get_split
from optarena.experiments import submission
from optarena.experiments.compare import compare
from optarena.experiments.report import write_report
from optarena.experiments.runs import CompareConfig
from optarena.records import read_runs
from tests.test_llvm_pass_order import needs_compiler_gym

KINDS = {"hashing and checksums", "cipher", "compression", "sorting and searching", "graph",
         "string search", "image filter", "signal processing", "matrix and numeric"}
"""The kinds of program cBench and MiBench hold, as each program's first line names its own."""


def _source(name: str) -> Path:
    return Path(parse_benchmark(f"heldout:{name}").request["file"])


def _build_and_run(name: str, level: str, folder: Path) -> subprocess.CompletedProcess[str]:
    exe = folder / f"{name}{level}"
    subprocess.run(["clang-14", "-std=c99", "-Wall", "-Wextra", "-Werror", level, str(_source(name)),
                    "-o", str(exe), "-lm"], check=True, capture_output=True, text=True)
    return subprocess.run([str(exe)], capture_output=True, text=True, timeout=30, check=False)


def test_the_split_pins_the_programs_and_they_cover_every_kind():
    assert sorted(HELDOUT_V1) == heldout_names()  # a new program needs llvm-heldout/v2
    split = get_split("llvm-heldout/v1")
    train, test = split.problems()
    assert test == [f"heldout:{name}" for name in HELDOUT_V1] and len(test) >= 20
    assert all(p.startswith("csmith:") for p in train)  # disjoint: test_train checks every split
    assert split.kwargs["reward"] == "ir_instructions"
    kinds = set()
    for name in HELDOUT_V1:
        text = _source(name).read_text()
        kinds.add(re.match(r"/\* optarena LlvmPassOrder-v0 held-out program \(([^)]+)\)",
                           text).group(1))
        assert len(text.splitlines()) >= 100, name
    assert kinds == KINDS
    with pytest.raises(ValueError, match="unknown heldout program 'nope'"):
        parse_benchmark("heldout:nope")


def test_every_program_builds_and_checks_itself(tmp_path):
    with ThreadPoolExecutor(2) as pool:
        runs = pool.map(lambda name: _build_and_run(name, "-O0", tmp_path), HELDOUT_V1)
    for name, run in zip(HELDOUT_V1, runs, strict=True):
        assert run.returncode == 0 and run.stdout.endswith(f"{name}: ok\n"), run.stdout


def test_a_failed_check_exits_1(tmp_path):
    broken = tmp_path / "sha1.c"  # a wrong round constant: the published digests no longer match
    broken.write_text(_source("sha1").read_text().replace("0x5A827999u", "0x5A827998u"))
    exe = tmp_path / "sha1"
    subprocess.run(["clang-14", "-O1", str(broken), "-o", str(exe)], check=True)
    done = subprocess.run([str(exe)], capture_output=True, text=True, check=False)
    assert done.returncode == 1 and "FAILED sha1(abc)" in done.stdout
    assert done.stdout.endswith("sha1: FAILED\n")


@needs_compiler_gym
def test_a_program_steps_in_the_environment_and_has_its_oz_anchor():
    env = gym.make("optarena/LlvmPassOrder-v0", benchmark="heldout:sha1",
                   reward="ir_instructions", check=True, store=None)
    try:
        llvm = env.unwrapped
        _, info = llvm.reset(seed=0)
        unoptimized = info["score"]
        anchors = llvm.problem()["anchors"]
        assert set(anchors) == {"-O3", "-Oz"} and 0 < anchors["-Oz"] < unoptimized
        assert llvm.llvm.reference_run("heldout:sha1").stdout.endswith("sha1: ok\n")
        _, reward, _, _, info = llvm.step(llvm.pass_names.index("-mem2reg"))
        assert "failure" not in info and 0 < info["score"] < unoptimized and reward > 0
    finally:
        env.close()


@pytest.mark.slow
@needs_compiler_gym
def test_every_program_runs_in_the_environment_as_at_o2_and_oz_shrinks_it(tmp_path):
    specs = [f"heldout:{name}" for name in HELDOUT_V1]
    env = gym.make("optarena/LlvmPassOrder-v0", benchmark=specs, reward="ir_instructions",
                   check=True, store=None)
    try:
        llvm = env.unwrapped
        for name, spec in zip(HELDOUT_V1, specs, strict=True):
            _, info = llvm.reset(options={"problem": spec})
            assert 0 < llvm.problem()["anchors"]["-Oz"] < info["score"], spec
            run, native = llvm.llvm.reference_run(spec), _build_and_run(name, "-O2", tmp_path)
            assert run is not None and run.returncode == 0, spec
            assert run.stdout.endswith(f"{name}: ok\n"), run.stdout
            assert (native.stdout, native.returncode) == (run.stdout, 0), spec
    finally:
        env.close()


@needs_compiler_gym
def test_crossover_joins_a_prefix_of_one_pass_sequence_to_a_suffix_of_another():
    env = gym.make("optarena/LlvmPassOrder-v0", benchmark=["heldout:sha1", "heldout:rc4"],
                   reward="ir_instructions", store=None)
    try:
        llvm = env.unwrapped
        a = PassState("heldout:sha1", ("-sroa", "-instcombine", "-gvn"))
        b = PassState("heldout:sha1", ("-licm", "-dce"))
        rng = np.random.default_rng(0)
        children = {llvm.crossover(a, b, rng) for _ in range(200)}
        cuts = {(a.passes[:i] + b.passes[j:]) for i in range(4) for j in range(3)}
        assert {child.passes for child in children} == cuts  # every cut point, nothing else
        assert "differ" in llvm.crossover(a, PassState("heldout:rc4", ("-dce",)), rng)
    finally:
        env.close()


@needs_compiler_gym
def test_a_run_budgeted_in_seconds_searches_until_then_and_its_passes_replay_to_its_count(
        tmp_path):
    config = CompareConfig(
        name="ic", environments=[{"env": "llvm_pass_order", "workloads": ["heldout:sha1"],
                                  "kwargs": {"reward": "ir_instructions"}}],
        agents=[{"agent": "evolutionary"}], seeds=[0], budget=100_000, seconds=4)
    assert not compare(config, tmp_path).failed
    (record,) = read_runs(tmp_path / "results.jsonl")
    assert record.spec.seconds == 4 and record.run_id == record.spec.run_id
    # it stopped at the deadline, not for want of states, far inside the count
    assert record.result.wall_s >= 4 and 50 < record.result.usage.measurements < 100_000
    assert record.result.best_improvement > 1.2  # it searched: 20% fewer IR instructions
    genuine = submission.make_submission(tmp_path, record.run_id, "tester")
    verdict = submission.verify(genuine)
    assert verdict.accepted and verdict.score == genuine["claimed"]["score"], verdict.reason
    write_report(tmp_path)
    assert "budget 100000 measurements or 4 s" in (tmp_path / "report.md").read_text()


@needs_compiler_gym
def test_from_the_oz_start_the_reference_is_oz_s_program_and_passes_go_on_from_it():
    made = {start: gym.make("optarena/LlvmPassOrder-v0", benchmark="heldout:sha1",
                            reward="ir_instructions", start=start, store=None)
            for start in ("unoptimized", "-Oz")}
    try:
        plain, llvm = made["unoptimized"].unwrapped, made["-Oz"].unwrapped
        _, info = llvm.reset(seed=0)
        problem = llvm.problem()
        oz = plain.problem()["anchors"]["-Oz"]
        # the start has exactly -Oz's IR instructions: CompilerGym's own -Oz pipeline
        assert info["score"] == problem["reference_score"] == problem["anchors"]["-Oz"] == oz
        assert plain.problem()["reference_score"] > oz
        # the anchors are the program's as loaded, though the start is kept as its own benchmark
        assert problem["anchors"] == plain.problem()["anchors"]
        assert problem["workload_hash"] != plain.problem()["workload_hash"]  # another problem
        first, other = (PassState("heldout:sha1", (name,)) for name in ("-instcombine", "-gvn"))
        outcomes = llvm.evaluate([first, other])
        assert all(0 < o.score <= 1.05 * oz for o in outcomes)  # from -Oz's program, not from O0
        # a state the service reaches by a reset (not by stepping on) starts from -Oz again
        (again,) = llvm.evaluate([PassState("heldout:sha1")], fresh=True)
        assert again.score == oz
        with pytest.raises(ValueError, match="unknown start"):
            gym.make("optarena/LlvmPassOrder-v0", benchmark="heldout:sha1", start="-O9",
                     store=None)
    finally:
        for env in made.values():
            env.close()

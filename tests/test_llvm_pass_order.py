"""optarena/LlvmPassOrder-v0: real CompilerGym (its own venv), real llc/llvm-mca, real program runs.

The environment tests need ``optarena setup compiler-gym``; they are skipped without it, unless
``OPTARENA_REQUIRE_COMPILER_GYM=1`` (CI) makes that a failure.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import psutil
import pytest
from gymnasium.utils.env_checker import check_env

from optarena.envs.contract import Failure
from optarena.envs.llvm_pass_order.measure import (
    BitcodeMeasurer,
    MeasureError,
    Run,
    block_weights,
    mark_blocks,
)
from optarena.envs.llvm_pass_order.provision import check_system
from optarena.envs.llvm_pass_order.scorer import PassScorer
from optarena.envs.llvm_pass_order.session import CompilerGymMissing, Session, compiler_gym_home
from optarena.envs.llvm_pass_order.space import EXCLUDED_BY_DEFAULT, PassState, pass_mask
from optarena.envs.llvm_pass_order.workload import (
    check_benchmarks,
    parse_benchmark,
    suite_names,
)
from optarena.experiments import submission
from optarena.experiments.compare import compare
from optarena.experiments.runs import CompareConfig
from optarena.records import read_records
from tests.test_agents import assert_contract, make_agent


def _compiler_gym_ready() -> bool:
    try:
        Session()
    except CompilerGymMissing:
        return False
    return True


needs_compiler_gym = pytest.mark.skipif(
    not _compiler_gym_ready() and os.environ.get("OPTARENA_REQUIRE_COMPILER_GYM") != "1",
    reason="CompilerGym is not set up (optarena setup compiler-gym)")


# ---------------------------------------------------------------- no CompilerGym needed


def test_benchmark_specs_name_the_suite_the_generators_and_files(tmp_path):
    assert {"matmul", "crc32", "sort", "stencil"} <= set(suite_names())
    assert parse_benchmark("suite:crc32").request["file"].endswith("benchmarks/crc32.c")
    assert parse_benchmark("csmith:7").request == {"uri": "generator://csmith-v0/7"}
    assert parse_benchmark("llvm-stress:0").request == {"uri": "generator://llvm-stress-v0/0"}
    source = tmp_path / "mine.c"
    source.write_text("int main(void) { return 0; }\n")
    assert parse_benchmark(str(source)).request == {"file": str(source.resolve())}
    for bad, message in [("benchmark://cbench-v1/qsort", "downloads"), ("csmith:x", "seed"),
                         ("suite:nope", "unknown suite"), (str(tmp_path / "gone.c"), "no such"),
                         ("mystery", "unknown benchmark")]:
        with pytest.raises(ValueError, match=message):
            parse_benchmark(bad)
    check_benchmarks(["suite:crc32"], {"start": "-Oz"})  # a config is checked before any run
    with pytest.raises(ValueError, match="unknown start 'Oz'; use one of unoptimized, -Oz"):
        check_benchmarks(["suite:crc32"], {"start": "Oz"})


def test_the_default_mask_leaves_out_instrumentation_and_a_subset_must_name_real_passes():
    names = ["-mem2reg", "-gvn", "-sancov", "-insert-gcov-profiling"]
    assert pass_mask(names, None).tolist() == [1, 1, 0, 0]
    assert set(EXCLUDED_BY_DEFAULT) >= {"-sancov", "-insert-gcov-profiling"}
    assert pass_mask(names, ["-gvn"]).tolist() == [0, 1, 0, 0]
    with pytest.raises(ValueError, match="unknown passes"):
        pass_mask(names, ["-gvn", "-O3"])


X86_ASM = """\
main:                                   # @main
# %bb.0:
\tpushq\t%rax
.LBB0_1:                                # =>This Loop Header: Depth=1
                                        #     Child Loop BB0_2 Depth 2
\tcallq\twork
.LBB0_2:                                #   Parent Loop BB0_1 Depth=1
                                        # =>  This Inner Loop Header: Depth=2
\taddl\t$1, %eax
\tjne\t.LBB0_2
# %bb.3:                                #   in Loop: Header=BB0_1 Depth=1
\tjne\t.LBB0_1
\tretq
work:                                   # @work
# %bb.0:
\timull\t%edi, %eax
\tretq
"""


def test_blocks_are_weighted_by_loop_depth_and_by_how_often_their_function_is_called():
    marked, blocks = mark_blocks(X86_ASM)
    assert [(b.function, b.depth, b.calls) for b in blocks] == [
        ("main", 0, []), ("main", 1, ["work"]), ("main", 2, []), ("main", 1, []), ("work", 0, [])]
    assert marked.count("LLVM-MCA-BEGIN") == marked.count("LLVM-MCA-END") == 5
    # work is called once per iteration of main's outer loop: 32 times
    assert block_weights(blocks) == [1, 32, 32 * 32, 32, 32]


def test_promoting_memory_to_registers_saves_cycles_and_a_changed_output_is_a_miscompile(tmp_path):
    source = Path(parse_benchmark("suite:stencil").request["file"])
    plain, optimized = tmp_path / "plain.bc", tmp_path / "optimized.bc"
    subprocess.run(["clang-14", "-O0", "-Xclang", "-disable-O0-optnone", "-emit-llvm", "-c",
                    str(source), "-o", str(plain)], check=True)
    subprocess.run(["opt-14", "-mem2reg", str(plain), "-o", str(optimized)], check=True)
    measurer = BitcodeMeasurer("host", "x86-64-v3", runs=1)
    assert measurer.cycles(optimized) < 0.9 * measurer.cycles(plain)
    reference = measurer.run(plain)
    measurer.check(measurer.run(optimized), reference)  # same output: no error
    with pytest.raises(MeasureError, match="output"):
        measurer.check(Run(reference.stdout + "0", 0, 0.01), reference)


def test_the_system_has_what_compiler_gym_needs():
    assert check_system() == []


# ---------------------------------------------------------------- real CompilerGym


@pytest.fixture(scope="module")
def crc32_env():
    env = gym.make("optarena/LlvmPassOrder-v0", benchmark="suite:crc32", runs=3, max_steps=6)
    yield env
    env.close()


@needs_compiler_gym
def test_check_env_passes(crc32_env):
    check_env(crc32_env.unwrapped, skip_render_check=True)


@needs_compiler_gym
def test_the_same_ir_is_measured_once_and_a_masked_pass_changes_nothing(crc32_env):
    env = crc32_env.unwrapped
    _, info = env.reset(seed=0)
    assert info["state"]["passes"] == [] and info["improvement"] == 1.0
    assert set(env.problem()["anchors"]) == {"-O3", "-Oz"}
    mem2reg, sancov = env.pass_names.index("-mem2reg"), env.pass_names.index("-sancov")
    _, _, _, _, info = env.step(mem2reg)
    measured = env.evaluator.num_measurements
    _, reward, _, _, info = env.step(mem2reg)  # mem2reg again: the same IR
    assert env.evaluator.num_measurements == measured and reward == 0.0
    assert info["state"]["passes"] == ["-mem2reg", "-mem2reg"]
    _, reward, _, _, info = env.step(sancov)
    assert "not an allowed pass" in info["invalid_action"] and reward == 0.0
    assert info["state"]["passes"] == ["-mem2reg", "-mem2reg"]
    assert env.evaluator.num_measurements == measured


@needs_compiler_gym
def test_with_pass_identity_no_ir_is_hashed_and_each_sequence_is_a_program(tmp_path):
    by_ir = gym.make("optarena/LlvmPassOrder-v0", benchmark="suite:crc32",
                     reward="ir_instructions", store=None)
    by_passes = gym.make("optarena/LlvmPassOrder-v0", benchmark="suite:crc32",
                         reward="ir_instructions", store=None, identity="passes")
    try:
        mem2reg = by_ir.unwrapped.pass_names.index("-mem2reg")
        scores = []
        for env in (by_ir, by_passes):
            _, start = env.reset(seed=0)
            env.step(mem2reg)
            _, _, _, _, info = env.step(mem2reg)  # the same IR again
            scores.append((start["score"], info["score"], env.unwrapped.evaluator.num_measurements))
            assert env.unwrapped.problem()["workload_hash"] == \
                by_ir.unwrapped.problem()["workload_hash"]  # the IR's, whatever the identity
        assert scores[0][:2] == scores[1][:2]
        assert (scores[0][2], scores[1][2]) == (1, 2)
    finally:
        by_ir.close()
        by_passes.close()
    with pytest.raises(ValueError, match="unknown identity"):
        gym.make("optarena/LlvmPassOrder-v0", benchmark="suite:crc32", reward="ir_instructions",
                 identity="names")


def _record_requests(llvm: PassScorer, requests: list[str]) -> None:
    """Append the op of every request to ``llvm``'s services (those it starts later too)."""

    def counted(session: Session) -> Session:
        original = session.request
        session.request = lambda op, **fields: (requests.append(op), original(op, **fields))[1]
        return session

    for session in llvm.sessions:
        counted(session)
    new_session = llvm.new_session
    llvm.new_session = lambda: counted(new_session())


@needs_compiler_gym
def test_episodes_of_two_programs_step_on_in_their_own_services():
    specs = ["suite:crc32", "csmith:1"]
    answers, resets = [], []
    for services in (1, 2):
        env = gym.make("optarena/LlvmPassOrder-v0", benchmark=specs, reward="ir_instructions",
                       store=None, identity="passes", services=services).unwrapped
        requests: list[str] = []
        _record_requests(env.llvm, requests)
        try:
            passes: tuple[str, ...] = ()
            seen = []
            for name in ("-sroa", "-gvn", "-instcombine"):  # the two programs in turn
                passes = (*passes, name)
                for spec in specs:
                    reply = env.llvm.apply(PassState(spec, passes), ["IrInstructionCount"], None,
                                           ir_sha1=False)
                    seen.append(reply["observations"]["IrInstructionCount"])
            answers.append(seen)
            resets.append(requests.count("reset"))
        finally:
            env.close()
    assert answers[0] == answers[1] and len(set(answers[0])) > 2
    assert resets == [5, 1]  # one service: a reset at each switch; two: csmith:1 loaded once
    assert any((compiler_gym_home() / "benchmarks").glob("*.bc"))  # csmith's bitcode is kept


def _recorded(name: str, method: Any, events: list[str]) -> Any:
    """``method`` of a :class:`Session`, appending ``name`` to ``events`` at each call."""

    def call(self: Session, *args: Any, **kwargs: Any) -> Any:
        events.append(name)
        return method(self, *args, **kwargs)

    return call


@needs_compiler_gym
def test_a_batch_of_three_programs_is_built_at_once_as_one_by_one_and_a_bad_state_fails_alone(
        monkeypatch):
    specs = ["suite:crc32", "csmith:1", "csmith:2"]
    env = gym.make("optarena/LlvmPassOrder-v0", benchmark=specs, reward="ir_instructions",
                   store=None, services=3).unwrapped
    events: list[str] = []
    for name in ("send", "receive"):
        monkeypatch.setattr(Session, name, _recorded(name, getattr(Session, name), events))
    try:
        states = [PassState(spec, passes) for passes in (("-sroa",), ("-sroa", "-gvn"))
                  for spec in specs] + [PassState("csmith:1", ("-no-such-pass",))]
        for spec in specs:
            env.llvm.load(spec)
        events.clear()
        together = env.llvm.compile_many(states)
        assert events[:3] == ["send"] * 3  # every service at work before any answer is read
        alone = [env.llvm.compile(state) for state in states]
        assert [(p.key, p.payload.observations) for p in together[:-1]] == \
            [(p.key, p.payload.observations) for p in alone[:-1]]
        assert len({p.key for p in together[:-1]}) == 6
        assert isinstance(together[-1], Failure) and "unknown passes" in together[-1].detail
        assert isinstance(alone[-1], Failure)
    finally:
        env.close()


@needs_compiler_gym
def test_set_state_reaches_what_stepping_reached_and_rejects_unknown_passes(crc32_env):
    env = crc32_env.unwrapped
    env.reset()
    for name in ("-sroa", "-instcombine", "-licm"):
        _, _, _, _, stepped = env.step(env.pass_names.index(name))
    env.reset()
    jumped = env.set_state({"problem": "suite:crc32", "passes": ["-sroa", "-instcombine", "-licm"]})
    assert jumped["score"] == stepped["score"] and jumped["state"] == stepped["state"]
    assert env.transition(env.get_state(), env.pass_names.index("-gvn")).passes[-1] == "-gvn"
    with pytest.raises(ValueError, match="unknown passes"):
        env.set_state({"problem": "suite:crc32", "passes": ["-O3"]})
    assert env.get_state().passes == ("-sroa", "-instcombine", "-licm")


@needs_compiler_gym
def test_a_killed_service_is_restarted_and_the_episode_goes_on(crc32_env):
    env = crc32_env.unwrapped
    env.reset()
    service = env.llvm.sessions[0].child
    pid = service.pid
    assert pid is not None
    os.killpg(pid, signal.SIGKILL)
    _, _, _, _, info = env.step(env.pass_names.index("-gvn"))
    assert "invalid_action" not in info and info["state"]["passes"] == ["-gvn"]
    assert service.pid not in (None, pid)


@needs_compiler_gym
def test_a_program_that_hangs_has_no_runtime_but_still_has_cycles(tmp_path):
    source = tmp_path / "spin.c"
    source.write_text("int main(void) { volatile int x = 1; while (x) {} return 0; }\n")
    started = {p.pid for p in psutil.Process().children(recursive=True)}
    with pytest.raises(ValueError, match="no main that runs"):
        gym.make("optarena/LlvmPassOrder-v0", benchmark=str(source), run_timeout_s=1)
    assert {p.pid for p in psutil.Process().children(recursive=True)} <= started  # no leftovers
    env = gym.make("optarena/LlvmPassOrder-v0", benchmark=str(source), reward="cycles",
                   run_timeout_s=1)
    try:
        _, info = env.reset()
        assert info["score"] > 0
    finally:
        env.close()


@pytest.mark.slow
@needs_compiler_gym
@pytest.mark.parametrize("name,program,reward", [
    ("mcts-measured", "suite:crc32", "runtime"), ("evolutionary", "csmith:1", "cycles"),
    ("ppo", "suite:crc32", "runtime"), ("llm-mcts-measured", "csmith:1", "cycles")])
def test_agents_race_on_a_suite_program_and_a_csmith_program(name, program, reward):
    """Pass ordering has no cost model: the tree agents that measure every node race on it. Each
    agent on one of the two programs and rewards (a suite program timed, a csmith one counted)."""
    env = gym.make("optarena/LlvmPassOrder-v0", benchmark=program, reward=reward, runs=3)
    try:
        result = make_agent(name).run(env, budget=8, seed=0)
        assert_contract(result, 8)
        assert result.best_state["problem"] == program
        assert np.isfinite(result.best_improvement)
        if name == "llm-mcts-measured":
            assert result.usage.proposals > 0 and result.usage.fallbacks == 0
    finally:
        env.close()


@needs_compiler_gym
def test_a_raced_pass_order_is_submitted_verified_and_a_tampered_one_rejected(tmp_path):
    config = CompareConfig(
        name="llvm-test", environments=[{"env": "llvm_pass_order", "workloads": ["csmith:1"],
                                         "kwargs": {"reward": "cycles"}}],
        agents=[{"agent": "greedy"}], seeds=[0], budget=6)
    assert not compare(config, tmp_path).failed
    (record,) = read_records(tmp_path / "results.jsonl")
    assert record["problem"]["anchors"]["-O3"] > 0
    assert record["problem"]["target"]["metric"] == "cycles"
    genuine = submission.make_submission(tmp_path, record["run_id"], "tester")
    verdict = submission.verify(genuine)
    assert verdict.accepted and verdict.score == genuine["claimed"]["score"], verdict.reason
    score = genuine["claimed"]["score"] * 0.99  # cycles are deterministic: any gain is a lie
    better = {**genuine, "claimed": {**genuine["claimed"], "score": score,
                                     "improvement": genuine["claimed"]["reference_score"] / score}}
    assert "worse than claimed" in submission.verify(better).reason
    state = genuine["solution"]["state"]
    other = {**genuine, "solution": {**genuine["solution"],
                                     "state": {**state, "problem": "csmith:2"}}}
    assert "the solution is for 'csmith:2', not 'csmith:1'" in submission.verify(other).reason

"""The measurement layer against real kernels: wrong, crashing, hanging, illegal-instruction."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import tvm
from tvm.script import from_source

from optarena.envs.host import cpu_seconds
from optarena.envs.tensor_schedule.measure import MeasureConfig, Measurer, RPCConfig
from optarena.envs.tensor_schedule.space import DesignSpace
from optarena.envs.tensor_schedule.target import host_cpu_flags, host_target
from optarena.envs.tensor_schedule.workload import get_workload

SIGNATURE = ('@T.prim_func(s_tir=True)\n'
             'def main(A: T.Buffer((64, 64), "float32"), B: T.Buffer((64, 64), "float32"),'
             ' C: T.Buffer((64, 64), "float32")):\n'
             '    T.func_attr({"global_symbol": "main", "tirx.noalias": True})\n')
WRONG = SIGNATURE + """    for i, j in T.grid(64, 64):
        with T.sblock("C"):
            vi, vj = T.axis.remap("SS", [i, j])
            C[vi, vj] = A[vi, vj] + B[vi, vj]
"""
PARTIAL = SIGNATURE + """    for i, j, k in T.grid(32, 64, 64):
        with T.sblock("C"):
            vi, vj, vk = T.axis.remap("SSR", [i, j, k])
            with T.init():
                C[vi, vj] = T.float32(0.0)
            C[vi, vj] = C[vi, vj] + A[vi, vk] * B[vk, vj]
"""
PARALLEL = SIGNATURE + """    for i in T.parallel(64):
        for j, k in T.grid(64, 64):
            with T.sblock("C"):
                vi, vj, vk = T.axis.remap("SSR", [i, j, k])
                with T.init():
                    C[vi, vj] = T.float32(0.0)
                C[vi, vj] = C[vi, vj] + A[vi, vk] * B[vk, vj]
"""
ABORT = SIGNATURE + '    T.evaluate(T.call_extern("int32", "abort"))\n'
SLEEP = SIGNATURE + '    T.evaluate(T.call_extern("int32", "sleep", 600))\n'
FAST = MeasureConfig(number=1, repeat=3, min_repeat_ms=5, timeout_s=30, quiet=False)


def _mod(text: str) -> tvm.IRModule:
    func = from_source(text)
    return tvm.IRModule({"main": func})


@pytest.fixture(scope="module")
def matmul_measurer():
    workload = get_workload("matmul-64")
    measurer = Measurer(workload, tvm.target.Target(host_target()), FAST)
    yield measurer
    measurer.close()


def test_correct_program_is_timed_and_checked(matmul_measurer):
    result = matmul_measurer.measure(matmul_measurer.workload.mod)
    assert result.ok and result.latency_s > 0
    assert len(result.runs_s) == 3 and result.latency_s == float(np.median(result.runs_s))
    assert result.max_error is not None and result.max_error < 1e-5


def test_the_workers_start_without_pytorch(matmul_measurer):
    """TVM's FFI imports PyTorch whenever it is installed (seconds of CPU at every worker's start
    and exit): the workers block it. The anchors' worker, which times PyTorch, has its own
    (test_tensor_anchors.py)."""
    assert matmul_measurer.measure(get_workload("matmul-64").mod).ok
    for worker in matmul_measurer.workers:
        maps = Path(f"/proc/{worker.pid}/maps").read_text()
        assert "libtvm" in maps and "libtorch" not in maps


def test_wrong_program_is_never_accepted(matmul_measurer):
    result = matmul_measurer.measure(_mod(WRONG))
    assert not result.ok and result.error_kind == "wrong_output"
    assert result.max_error > FAST.tolerance


def test_program_that_skips_half_its_output_is_caught(matmul_measurer):
    # the previous (correct) run left a valid C in the buffer: outputs are reset before checking
    matmul_measurer.measure(matmul_measurer.workload.mod)
    result = matmul_measurer.measure(_mod(PARTIAL))
    assert result.error_kind == "wrong_output"


def test_crashing_kernel_is_survived(matmul_measurer):
    result = matmul_measurer.measure(_mod(ABORT))
    assert result.error_kind == "crash" and "SIGABRT" in result.error
    after = matmul_measurer.measure(_mod(WRONG.replace("A[vi, vj] + B", "A[vi, vj] - B")))
    assert after.error_kind == "wrong_output", "the next measurement runs in a fresh worker"


@pytest.mark.parametrize("phase, settings", [
    ("build", {"build_timeout_s": 8.0, "timeout_s": 60.0}),  # the check's call hangs
    ("time", {"build_timeout_s": 60.0, "timeout_s": 8.0, "check": False}),  # the first timed call
])
def test_hanging_kernel_times_out_in_its_phase_and_is_survived(phase, settings):
    workload = get_workload("matmul-64")
    measurer = Measurer(workload, tvm.target.Target(host_target()),
                        FAST.model_copy(update=settings))
    try:
        measurer.measure(workload.mod)  # start the worker outside the timed part
        start = time.perf_counter()
        result = measurer.measure(_mod(SLEEP))
        assert result.error_kind == "timeout" and "within 8 s" in result.error, phase
        assert time.perf_counter() - start < 30, "the other phase's timeout (60 s) does not apply"
        expected = "wrong_output" if measurer.config.check else None  # in a fresh worker
        assert measurer.measure(_mod(WRONG)).error_kind == expected
    finally:
        measurer.close()


@pytest.mark.skipif("avx512f" in host_cpu_flags(), reason="needs a CPU without AVX-512")
def test_code_for_a_cpu_the_host_lacks_is_a_crash_not_a_dead_env():
    workload = get_workload("matmul-128")
    target = tvm.target.Target({"kind": "llvm", "mcpu": "znver4", "num-cores": 2})
    space = DesignSpace(workload, target)
    measurer = Measurer(workload, target, FAST)
    try:
        result = measurer.measure(space.schedule(space.sample(np.random.default_rng(0))).mod)
        assert result.error_kind == "crash" and "SIGILL" in result.error
        assert measurer.measure(workload.mod).ok
    finally:
        measurer.close()


def test_rpc_runner_measures_through_a_local_tracker():
    pytest.importorskip("tornado")
    from tvm.rpc.server import Server
    from tvm.rpc.tracker import Tracker

    tracker = Tracker(host="127.0.0.1", port=9190, port_end=9290, silent=True)
    server = Server(host="127.0.0.1", port=9300, port_end=9400, silent=True,
                    tracker_addr=("127.0.0.1", tracker.port), key="optarena-test")
    workload = get_workload("matmul-64")
    measurer = Measurer(workload, tvm.target.Target(host_target()), FAST,
                        RPCConfig(tracker_port=tracker.port, key="optarena-test"))
    try:
        deadline = time.time() + 20
        while "optarena-test" not in tvm.rpc.connect_tracker("127.0.0.1", tracker.port).text_summary():
            assert time.time() < deadline, "RPC server did not register with the tracker"
            time.sleep(0.2)
        result = measurer.measure(workload.mod)
        assert result.ok and result.max_error < 1e-5
        summary = tvm.rpc.connect_tracker("127.0.0.1", tracker.port).summary()
        queue = summary["queue_info"]["optarena-test"]
        assert queue["free"] == 0, "the worker holds the remote device while measuring"
        assert measurer.measure(_mod(WRONG)).error_kind == "wrong_output"
    finally:
        measurer.close()
        server.terminate()
        tracker.terminate()


@pytest.mark.slow  # 27 s (two RPC servers); the RPC runner's test covers RPC in the default run
def test_a_batch_is_measured_on_every_device_of_a_farm():
    """Two RPC servers under one key: a worker holds each, and a batch runs on both."""
    pytest.importorskip("tornado")
    from tvm.rpc.server import Server
    from tvm.rpc.tracker import Tracker

    tracker = Tracker(host="127.0.0.1", port=9500, port_end=9600, silent=True)
    servers = [Server(host="127.0.0.1", port=9700, port_end=9800, silent=True,
                      tracker_addr=("127.0.0.1", tracker.port), key="farm") for _ in range(2)]
    workload = get_workload("matmul-64")
    try:
        client = tvm.rpc.connect_tracker("127.0.0.1", tracker.port)
        deadline = time.time() + 30
        while client.summary()["queue_info"].get("farm", {}).get("free", 0) < 2:
            assert time.time() < deadline, "the RPC servers did not register with the tracker"
            time.sleep(0.2)
        measurer = Measurer(workload, tvm.target.Target(host_target()), FAST,
                            RPCConfig(tracker_port=tracker.port, key="farm"))
        assert len(measurer.workers) == 2  # one per free device
        try:
            results = measurer.measure_many([workload.mod, _mod(WRONG), workload.mod,
                                             _mod(WRONG.replace("+ B", "- B"))])
            assert client.summary()["queue_info"]["farm"]["free"] == 0  # both devices held
        finally:
            measurer.close()
        assert [r.error_kind for r in results] == [None, "wrong_output", None, "wrong_output"]
        assert all(r.max_error < 1e-5 for r in (results[0], results[2]))
    finally:
        for server in servers:
            server.terminate()
        tracker.terminate()


def test_a_workers_programs_are_timed_once_the_other_workers_are_idle(monkeypatch):
    """Two workers build a batch; each one's programs are then timed one after another, and
    only after waiting for the other worker (its TVM pool spins on after its last kernel)."""
    from optarena.envs.tensor_schedule import measure as measure_module

    events: list[tuple[str, object]] = []
    waited = measure_module.wait_until_idle
    monkeypatch.setattr(measure_module, "wait_until_idle", lambda pids: events.append(
        ("wait", frozenset(pids))) or waited([]))
    timed = measure_module._Job.timed
    monkeypatch.setattr(measure_module._Job, "timed", lambda job, timeout: events.append(
        ("time", job.worker.pid)) or timed(job, timeout))
    workload = get_workload("matmul-64")
    measurer = Measurer(workload, tvm.target.Target(host_target()),
                        FAST.model_copy(update={"build_workers": 2, "quiet": True}))
    try:
        results = measurer.measure_many([workload.mod, _mod(WRONG), workload.mod, workload.mod,
                                         workload.mod])
        pids = {worker.pid for worker in measurer.workers}
    finally:
        measurer.close()
    assert [r.error_kind for r in results] == [None, "wrong_output", None, None, None]
    timings = [pid for kind, pid in events if kind == "time"]
    assert len(timings) == 4 and set(timings) == pids  # both workers built and timed some
    groups = [pid for i, pid in enumerate(timings) if i == 0 or timings[i - 1] != pid]
    assert len(groups) == 2  # each worker's programs timed together
    for index, (kind, pid) in enumerate(events):  # a worker's first timing follows a wait
        if kind == "time" and (index == 0 or events[index - 1] != ("time", pid)):
            assert index > 0 and events[index - 1] == ("wait", frozenset(pids - {pid})), events


def test_timing_after_workers_that_stay_busy_warns(monkeypatch):
    from optarena.envs.tensor_schedule import measure as measure_module

    monkeypatch.setattr(measure_module, "wait_until_idle", lambda pids: False)
    workload = get_workload("matmul-64")
    measurer = Measurer(workload, tvm.target.Target(host_target()),
                        FAST.model_copy(update={"build_workers": 2, "quiet": True}))
    try:
        with pytest.warns(RuntimeWarning, match="still busy"):
            (result,) = measurer.measure_many([workload.mod])
    finally:
        measurer.close()
    assert result.ok  # timed anyway


def test_a_workers_idle_pool_threads_sleep_soon_after_its_kernels(monkeypatch):
    """TVM's idle pool threads spin 300,000 yields after a parallel kernel (a core for 0.05-2 s
    by the host, which the other worker's builds and the quiet wait pay for); the workers'
    ``spin_count`` bounds it. Compared with TVM's default in the same run: the CPU a worker uses
    in the half second after its reply. The setting, not the environment the worker inherits
    (here a spin of 1), decides."""
    monkeypatch.setenv("TVM_THREAD_POOL_SPIN_COUNT", "1")
    workload = get_workload("matmul-64")

    def idle_cpu(spin_count: int | None) -> float:
        config = FAST.model_copy(update={"build_workers": 1, "spin_count": spin_count})
        measurer = Measurer(workload, tvm.target.Target(host_target()), config)
        try:
            assert measurer.measure(_mod(PARALLEL)).ok
            (worker,) = measurer.workers
            before = cpu_seconds(worker.pid)
            time.sleep(0.5)
            return cpu_seconds(worker.pid) - before
        finally:
            measurer.close()

    default, bounded = idle_cpu(None), idle_cpu(10_000)
    # 300,000 yields took 45-49 ms on the fastest host seen (an idle core answers a yield at once)
    assert default > 0.02, f"TVM's default spin used only {default:.3f} s: nothing to bound"
    assert bounded < min(0.02, default / 4), \
        f"the worker used {bounded:.3f} s of CPU while idle, TVM's default {default:.3f} s"


def test_measured_quiet_is_a_setting_that_defines_a_latency():
    assert MeasureConfig().quiet
    assert MeasureConfig(quiet=False).defining() != MeasureConfig().defining()
    assert MeasureConfig(spin_count=None).defining() != MeasureConfig().defining()
